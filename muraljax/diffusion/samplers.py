"""DDIM / DDPM inpainting samplers with known-region replacement (RePaint), guidance, one compiled program.

`inpaint` denoises from pure noise over `steps` noise levels: level 0 is the clean image (alpha_bar = 1) and level
l = 1 .. steps is timestep tau_l = round(l T / steps) - 1 ("trailing" spacing, so the first level is the
noisiest timestep T - 1). Before every denoising step the intact region of the current sample is replaced by
the input noised to that level, x_l = sqrt(alpha_bar_l) x_known + sqrt(1 - alpha_bar_l) eps (RePaint, Lugmayr
et al. 2022); the step itself is DDIM's (Song et al. 2021) from the network's x0 estimate (clipped to [-1, 1],
with eps recomputed from it):

  x_{l-1} = sqrt(alpha_bar_{l-1}) x0 + sqrt(1 - alpha_bar_{l-1} - sigma^2) eps + sigma z,
  sigma = eta sqrt((1 - alpha_bar_{l-1}) / (1 - alpha_bar_l) (1 - alpha_bar_l / alpha_bar_{l-1})).

eta = 0 is deterministic DDIM; eta = 1 is exactly DDPM's ancestral sampler (same posterior mean and variance),
which with steps = T is the original DDPM. RePaint's resampling: with jump_n_sample > 1, every jump_length
levels the sampler goes back up jump_length levels by forward noising, x_{l+1} = sqrt(a) x_l + sqrt(1 - a) z
with a = alpha_bar_{l+1} / alpha_bar_l, and denoises them again (jump_n_sample passes in all), which
harmonises the generated region with the known one. With guidance_scale s != 1 the network runs with and
without its condition and the output is uncond + s (cond - uncond) (classifier-free guidance).

The whole run is one `lax.scan` over a static list of level transitions (`walk_levels`), so it compiles once per
shape and setting. Its parts (`noise_levels`, `replace_known`, `ddim_step`, `guided`, `walk_levels`) are the
multi-scale sampler's too (muraljax.diffusion.collaborative). It is deterministic given `rng`. Masks: values
>= 0.5 are damaged (non-binary masks are thresholded there). The result equals the input exactly on intact
pixels (replaced at the end) and is sampled on damaged ones; an all-intact mask returns the input. Image sides
must suit the network (the U-Net raises an error naming valid sizes otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from muraljax.diffusion import schedules

# model_fn(x_t [B, H, W, C], t int32 [B], drop_condition) -> the network's output [B, H, W, C] (predicting
# `prediction`); drop_condition (a Python bool) asks for the unconditional output, for guidance.
ModelFn = Callable[[jax.Array, jax.Array, bool], jax.Array]


def sampling_timesteps(num_timesteps: int, steps: int) -> np.ndarray:
  """The timesteps of levels 1 .. steps, int32 [steps], ascending: round(l T / steps) - 1."""
  if not 1 <= steps <= num_timesteps:
    raise ValueError(f"steps={steps} sampling steps do not fit a {num_timesteps}-step schedule; use 1 to "
                     f"{num_timesteps}.")
  return (np.round(np.arange(1, steps + 1) * num_timesteps / steps) - 1).astype(np.int32)


def resampling_levels(steps: int, jump_length: int = 1, jump_n_sample: int = 1) -> np.ndarray:
  """The sequence of levels the sampler visits, int32, from `steps` to 0 (RePaint's `get_schedule_jump`).

  Consecutive entries differ by one level: down is a denoising step, up a forward-noising one. With
  jump_n_sample = 1 it is simply steps, steps - 1, ..., 0.
  """
  if jump_length < 1 or jump_n_sample < 1:
    raise ValueError(f"jump_length ({jump_length}) and jump_n_sample ({jump_n_sample}) must be at least 1.")
  # RePaint counts t = steps - 1 .. 0 for the noisy levels and -1 for the clean one: level = t + 1.
  jumps = {t: jump_n_sample - 1 for t in range(0, steps - jump_length, jump_length)}
  t, times = steps, []
  while t >= 1:
    t -= 1
    times.append(t)
    if jumps.get(t, 0) > 0:
      jumps[t] -= 1
      for _ in range(jump_length):
        t += 1
        times.append(t)
  return np.array([t + 1 for t in times] + [0], np.int32)


def noise_levels(schedule: schedules.Schedule, steps: int) -> tuple[jax.Array, jax.Array]:
  """(alpha_bar float32 [steps + 1], timestep int32 [steps + 1]) of levels 0 .. steps; level 0 is the clean
  image (alpha_bar 1, timestep 0)."""
  timesteps = sampling_timesteps(schedule.num_timesteps, steps)
  return (jnp.concatenate([jnp.ones(1), schedule.alphas_cumprod[timesteps]]),
          jnp.asarray(np.concatenate([[0], timesteps]), jnp.int32))


def ddim_step(x: jax.Array, x0: jax.Array, alpha_bar: jax.Array, alpha_bar_prev: jax.Array, eta: float,
              key: jax.Array) -> jax.Array:
  """x_{l-1} from x_l [B, H, W, C] and its x0 estimate: the DDIM update of the module docstring, with eps
  recomputed from x0 and sigma from eta (0 = deterministic, 1 = DDPM)."""
  eps = schedules.eps_from_x0(x, x0, alpha_bar)
  variance = eta**2 * (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)
  direction = jnp.sqrt(jnp.maximum(1 - alpha_bar_prev - variance, 0.0))
  return jnp.sqrt(alpha_bar_prev) * x0 + direction * eps + jnp.sqrt(variance) * jax.random.normal(key, x.shape)


def replace_known(x: jax.Array, image: jax.Array, damaged: jax.Array, alpha_bar: jax.Array,
                  key: jax.Array) -> jax.Array:
  """x with its intact pixels (where `damaged` is False) replaced by `image` noised to alpha_bar (RePaint)."""
  known = jnp.sqrt(alpha_bar) * image + jnp.sqrt(1 - alpha_bar) * jax.random.normal(key, image.shape)
  return jnp.where(damaged, x, known)


def guided(model_fn: ModelFn, guidance_scale: float) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """(x_t, t) -> float32 output with classifier-free guidance, uncond + s (cond - uncond); s = 1 is the
  conditional output alone (one network pass)."""

  def network(x: jax.Array, t: jax.Array) -> jax.Array:
    output = model_fn(x, t, False).astype(jnp.float32)
    if guidance_scale == 1.0:
      return output
    unconditional = model_fn(x, t, True).astype(jnp.float32)
    return unconditional + guidance_scale * (output - unconditional)

  return network


def walk_levels(denoise: Callable[[Any, jax.Array, jax.Array, jax.Array], Any], start: Any, rng: jax.Array,
                alpha_bars: jax.Array, levels: np.ndarray) -> Any:
  """Runs the level sequence `levels` (from `resampling_levels`) from `start`, an array or a tuple of arrays,
  in one `lax.scan`: `denoise(x, source, target, key)` for each step down, forward noising of every array,
  x_{l+1} = sqrt(a) x_l + sqrt(1 - a) z with a = alpha_bar_{l+1} / alpha_bar_l, for each step up. Step i uses
  the key fold_in(rng, i)."""

  def renoise(xs: Any, source: jax.Array, target: jax.Array, key: jax.Array) -> Any:
    ratio = alpha_bars[target] / alpha_bars[source]
    leaves, tree = jax.tree.flatten(xs)
    return tree.unflatten([jnp.sqrt(ratio) * x + jnp.sqrt(1 - ratio) * jax.random.normal(k, x.shape)
                           for x, k in zip(leaves, jax.random.split(key, len(leaves)))])

  def transition(xs: Any, step: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[Any, None]:
    index, source, target = step
    key = jax.random.fold_in(rng, index)
    return jax.lax.cond(target < source, denoise, renoise, xs, source, target, key), None

  transitions = (jnp.arange(len(levels) - 1), jnp.asarray(levels[:-1]), jnp.asarray(levels[1:]))
  return jax.lax.scan(transition, start, transitions)[0]


def _check_inputs(image: jax.Array, mask: jax.Array) -> None:
  if image.ndim != 4:
    raise ValueError(f"inpaint needs images [B, H, W, C], got shape {image.shape}.")
  if mask.shape != image.shape[:3] + (1,):
    raise ValueError(f"The mask {mask.shape} does not match the images {image.shape}; give it the images' "
                     "[B, H, W] and one channel.")


def inpaint(model_fn: ModelFn, schedule: schedules.Schedule, image: jax.Array, mask: jax.Array, rng: jax.Array,
            *, prediction: str, steps: int = 50, eta: float = 0.0, guidance_scale: float = 1.0,
            jump_length: int = 1, jump_n_sample: int = 1) -> jax.Array:
  """Samples the damaged region of `image` given its intact region (see the module docstring).

  Args:
    model_fn: the denoiser (see `ModelFn`); it may close over the condition.
    schedule: the noise schedule the network was trained with.
    image: [B, H, W, C] in [-1, 1]; only its intact pixels are used.
    mask: [B, H, W, 1]; >= 0.5 = damaged (to sample), else intact (kept).
    rng: PRNG key; the same key gives the same samples.
    prediction: what model_fn predicts, 'epsilon' or 'v'.
    steps: number of noise levels (denoising steps without resampling).
    eta: DDIM's stochasticity (0 = deterministic, 1 = DDPM).
    guidance_scale: classifier-free guidance scale; 1 = conditional model only (one network pass per step).
    jump_length, jump_n_sample: RePaint resampling; 1, 1 = none.

  Returns:
    float32 [B, H, W, C] in [-1, 1]: `image` on intact pixels, sampled on damaged ones.
  """
  _check_inputs(image, mask)
  schedules.check_prediction(prediction)
  image = image.astype(jnp.float32)
  damaged = mask >= 0.5
  alpha_bars, level_timesteps = noise_levels(schedule, steps)
  levels = resampling_levels(steps, jump_length, jump_n_sample)
  network = guided(model_fn, guidance_scale)

  def denoise(x: jax.Array, source: jax.Array, target: jax.Array, key: jax.Array) -> jax.Array:
    known_key, step_key = jax.random.split(key)
    alpha_bar = alpha_bars[source]
    x = replace_known(x, image, damaged, alpha_bar, known_key)
    t = jnp.full(x.shape[:1], level_timesteps[source])
    x0 = jnp.clip(schedules.x0_from_output(prediction, x, network(x, t), alpha_bar), -1.0, 1.0)
    return ddim_step(x, x0, alpha_bar, alpha_bars[target], eta, step_key)

  start = jax.random.normal(jax.random.fold_in(rng, len(levels)), image.shape)
  return jnp.where(damaged, walk_levels(denoise, start, rng, alpha_bars, levels), image)
