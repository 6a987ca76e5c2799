"""Noise schedules, the forward process q(x_t | x_0), and the epsilon / v / x0 parameterisations.

Images inside diffusion live in [-1, 1]: `to_diffusion_range(x) = 2 x - 1` maps the data pipeline's [0, 1]
there and `to_unit_range` maps back. With alpha_bar_t = prod_{s <= t} (1 - beta_s) (`Schedule.alphas_cumprod`,
t = 0 .. T - 1), the forward process is

  x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,    eps ~ N(0, I),

and a network predicts either eps ('epsilon') or v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 ('v',
Salimans & Ho 2022). The conversions below take `alpha_bar` already broadcast against the images (e.g.
[B, 1, 1, 1]), so they serve any noise level, including the clean level alpha_bar = 1 the samplers end on.
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("epsilon", "v")


@flax.struct.dataclass
class Schedule:
  """A discrete noise schedule: `betas` and `alphas_cumprod`, float32 [T], alphas_cumprod strictly decreasing."""

  betas: jax.Array
  alphas_cumprod: jax.Array

  @property
  def num_timesteps(self) -> int:
    return self.betas.shape[0]

  def alpha_bar(self, t: jax.Array) -> jax.Array:
    """alpha_bar at integer timesteps t [B], as [B, 1, 1, 1] to broadcast against NHWC images."""
    return self.alphas_cumprod[t][:, None, None, None]


def _from_betas(betas: np.ndarray) -> Schedule:
  alphas_cumprod = np.cumprod(1.0 - betas)
  return Schedule(betas=jnp.asarray(betas, jnp.float32), alphas_cumprod=jnp.asarray(alphas_cumprod, jnp.float32))


def linear_schedule(num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
  """DDPM's linear betas from beta_start to beta_end (Ho et al. 2020)."""
  return _from_betas(np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64))


def cosine_schedule(num_timesteps: int = 1000, offset: float = 0.008, max_beta: float = 0.999) -> Schedule:
  """Nichol & Dhariwal's cosine schedule: alpha_bar(s) = cos(((s + offset) / (1 + offset)) pi / 2)^2 at
  s = t / T, betas_t = 1 - alpha_bar((t + 1) / T) / alpha_bar(t / T) clipped at max_beta."""
  steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
  alpha_bar = np.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
  return _from_betas(np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta))


def make_schedule(name: str, num_timesteps: int) -> Schedule:
  """The schedule called `name` ('linear' or 'cosine') with `num_timesteps` steps."""
  if name not in SCHEDULES:
    raise ValueError(f"Unknown noise schedule {name!r}; use one of {list(SCHEDULES)}.")
  if num_timesteps < 2:
    raise ValueError(f"A noise schedule needs at least 2 timesteps, got {num_timesteps}.")
  return linear_schedule(num_timesteps) if name == "linear" else cosine_schedule(num_timesteps)


def to_diffusion_range(images: jax.Array) -> jax.Array:
  """[0, 1] -> [-1, 1]."""
  return 2.0 * images - 1.0


def to_unit_range(images: jax.Array) -> jax.Array:
  """[-1, 1] -> [0, 1]."""
  return (images + 1.0) / 2.0


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
  """x_t ~ q(x_t | x_0) for clean images x0 [B, H, W, C], integer timesteps t [B] and standard noise."""
  alpha_bar = schedule.alpha_bar(t)
  return jnp.sqrt(alpha_bar) * x0 + jnp.sqrt(1.0 - alpha_bar) * noise


def snr(alpha_bar: jax.Array) -> jax.Array:
  """Signal-to-noise ratio alpha_bar / (1 - alpha_bar)."""
  return alpha_bar / (1.0 - alpha_bar)


def x0_from_eps(x_t: jax.Array, eps: jax.Array, alpha_bar: jax.Array) -> jax.Array:
  return (x_t - jnp.sqrt(1.0 - alpha_bar) * eps) / jnp.sqrt(alpha_bar)


def eps_from_x0(x_t: jax.Array, x0: jax.Array, alpha_bar: jax.Array) -> jax.Array:
  return (x_t - jnp.sqrt(alpha_bar) * x0) / jnp.sqrt(1.0 - alpha_bar)


def v_from(x0: jax.Array, eps: jax.Array, alpha_bar: jax.Array) -> jax.Array:
  """v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0."""
  return jnp.sqrt(alpha_bar) * eps - jnp.sqrt(1.0 - alpha_bar) * x0


def x0_from_v(x_t: jax.Array, v: jax.Array, alpha_bar: jax.Array) -> jax.Array:
  return jnp.sqrt(alpha_bar) * x_t - jnp.sqrt(1.0 - alpha_bar) * v


def eps_from_v(x_t: jax.Array, v: jax.Array, alpha_bar: jax.Array) -> jax.Array:
  return jnp.sqrt(1.0 - alpha_bar) * x_t + jnp.sqrt(alpha_bar) * v


def check_prediction(prediction: str) -> None:
  if prediction not in PREDICTIONS:
    raise ValueError(f"Unknown prediction type {prediction!r}; use one of {list(PREDICTIONS)}.")


def x0_from_output(prediction: str, x_t: jax.Array, output: jax.Array, alpha_bar: jax.Array) -> jax.Array:
  """The clean-image estimate from a network output that predicts `prediction` ('epsilon' or 'v')."""
  check_prediction(prediction)
  return x0_from_eps(x_t, output, alpha_bar) if prediction == "epsilon" else x0_from_v(x_t, output, alpha_bar)


def prediction_target(prediction: str, x0: jax.Array, noise: jax.Array, alpha_bar: jax.Array) -> jax.Array:
  """What a network predicting `prediction` should output for x_t = q_sample(x0, noise)."""
  check_prediction(prediction)
  return noise if prediction == "epsilon" else v_from(x0, noise, alpha_bar)
