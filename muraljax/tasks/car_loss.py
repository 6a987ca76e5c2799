"""CAR's training loss terms, as pure functions (NHWC; formulas of the MindSpore training port).

  loss = l1_weight * L1(reconstruction, HR) + tv_weight * offset_tv + offset_weight * offset_magnitude

with defaults 1, 0.005, 0.001 (the port's; the paper's exact weights are unverified). The regularisers are
computed, as in the port, on offsets in offset units: the official net's raw tanh outputs, which the CUDA
op multiplies by the offset unit s. `car_loss` takes the offsets as `KernelGenerationNet` returns them
(HR pixels) and divides by s; the term functions take offset units directly.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def l1_loss(reconstruction: jax.Array, target: jax.Array) -> jax.Array:
  """Mean absolute error of [B, H, W, C] images -> scalar."""
  return jnp.mean(jnp.abs(reconstruction - target))


def offset_tv_loss(kernels: jax.Array, offsets_h: jax.Array, offsets_v: jax.Array) -> jax.Array:
  """Kernel-weighted total variation of the offsets: neighbouring LR pixels should move their taps alike.

  Args:
    kernels: [B, h, w, k*k] tap weights.
    offsets_h, offsets_v: [B, h, w, k*k] offsets (offset units).

  Returns:
    Scalar: sum over pixels and taps of |dv along w| * kernel + |dh along h| * kernel, divided by B, where
    each difference is weighted by the kernel of its first pixel. The pairing (vertical offsets differenced
    along the width, horizontal ones along the height) is the port's.
  """
  along_w = jnp.abs(offsets_v[:, :, 1:] - offsets_v[:, :, :-1]) * kernels[:, :, :-1]
  along_h = jnp.abs(offsets_h[:, 1:] - offsets_h[:, :-1]) * kernels[:, :-1]
  return (along_w.sum() + along_h.sum()) / kernels.shape[0]


def tap_distance_weights(taps: int) -> jax.Array:
  """[k*k] weight of tap k*y + x: sqrt((x - k/2)^2 + (y - k/2)^2) / k (the port's centre k/2, not (k-1)/2)."""
  k = math.isqrt(taps)
  if k * k != taps:
    raise ValueError(f"Offsets need a square number of taps (k*k) in the last axis, got {taps}.")
  y, x = jnp.divmod(jnp.arange(taps, dtype=jnp.float32), k)
  return jnp.sqrt((x - k / 2) ** 2 + (y - k / 2) ** 2) / k


def offset_magnitude_loss(offsets_h: jax.Array, offsets_v: jax.Array) -> jax.Array:
  """Distance-weighted offset length: outer taps may move less than the centre ones.

  Args:
    offsets_h, offsets_v: [B, h, w, k*k] offsets (offset units).

  Returns:
    Scalar: sum over taps of sqrt(dh^2 + dv^2) * w_tap, divided by B*h*w. The length's gradient at exactly
    zero offset is taken as 0 (sqrt's is infinite there).
  """
  squared = offsets_h**2 + offsets_v**2
  nonzero = squared > 0
  length = jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squared, 1.0)), 0.0)
  b, h, w, taps = offsets_h.shape
  return jnp.sum(length * tap_distance_weights(taps)) / (b * h * w)


def car_loss(
    reconstruction: jax.Array,
    target: jax.Array,
    kernels: jax.Array,
    offsets_h: jax.Array,
    offsets_v: jax.Array,
    scale: int,
    l1_weight: float = 1.0,
    tv_weight: float = 0.005,
    offset_weight: float = 0.001,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The CAR objective.

  Args:
    reconstruction, target: [B, H, W, C] upscaled image and HR ground truth.
    kernels: [B, H/s, W/s, k*k] resampling kernels.
    offsets_h, offsets_v: [B, H/s, W/s, k*k] offsets in HR pixels, as the net returns them.
    scale: s, the offset unit.
    l1_weight, tv_weight, offset_weight: term weights.

  Returns:
    (scalar loss, {"l1", "offset_tv", "offset_magnitude"} unweighted terms).
  """
  offsets_h, offsets_v = offsets_h / scale, offsets_v / scale
  terms = {
      "l1": l1_loss(reconstruction, target),
      "offset_tv": offset_tv_loss(kernels, offsets_h, offsets_v),
      "offset_magnitude": offset_magnitude_loss(offsets_h, offsets_v),
  }
  loss = l1_weight * terms["l1"] + tv_weight * terms["offset_tv"] + offset_weight * terms["offset_magnitude"]
  return loss, terms
