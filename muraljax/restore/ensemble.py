"""Flip self-ensemble of a deterministic model, averaged in its low frequencies only.

With `size` views the model restores a tile and its mirror images (2: also left-right; 4: also up-down and both),
and the outputs, mirrored back, are averaged. The views disagree most in the fine grain each invents in a hole,
and a plain average of that grain is a blur, which a perceptual metric such as LPIPS punishes. So only the
average's low frequencies are taken: the result is the first view's output plus a Gaussian low-pass
(`LOW_PASS_SIGMA`) of (average - first output). Outside the holes every view reproduces the input, so the
correction vanishes there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from muraljax import config

SIZES = config.ENSEMBLE_SIZES
"""Views an ensemble may have (a run's config restore.ensemble is checked against them before training)."""
LOW_PASS_SIGMA = 1.5
"""Pixels; keeps the averaged shading and colour, drops the averaged grain."""
_FLIPPED_AXES = ((), (2,), (1,), (1, 2))  # per view, the axes of [B, H, W, C] it mirrors
_TRUNCATE = 3.5  # Gaussian taps reach this many sigmas


def views(x: jax.Array, size: int) -> jax.Array:
  """[size * B, H, W, C]: the `size` views of the tiles `x` [B, H, W, C], view-major."""
  return jnp.concatenate([jnp.flip(x, axes) if axes else x for axes in _FLIPPED_AXES[:size]])


def combine(outputs: jax.Array, size: int) -> jax.Array:
  """[B, H, W, C]: the ensemble of the model's `outputs` [size * B, H, W, C] on `views(x, size)`."""
  per_view = jnp.split(outputs, size)
  restored = [jnp.flip(y, axes) if axes else y for y, axes in zip(per_view, _FLIPPED_AXES)]
  first = restored[0]
  if size == 1:
    return first
  return first + low_pass(sum(restored) / size - first)


def gaussian_taps(sigma: float) -> np.ndarray:
  """The normalised 1-D Gaussian of `sigma` pixels, truncated at `_TRUNCATE` sigmas (float32 [2r + 1])."""
  radius = int(_TRUNCATE * sigma + 0.5)
  taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
  return (taps / taps.sum()).astype(np.float32)


def low_pass(x: jax.Array, sigma: float = LOW_PASS_SIGMA) -> jax.Array:
  """Separable Gaussian blur of `x` [B, H, W, C] along H and W, the borders mirrored (edge pixel repeated)."""
  taps = gaussian_taps(sigma)
  radius = len(taps) // 2
  for axis in (1, 2):
    padding = [(0, 0)] * x.ndim
    padding[axis] = (radius, radius)
    padded = jnp.pad(x, padding, mode="symmetric")
    size = x.shape[axis]
    x = sum(float(t) * jax.lax.slice_in_dim(padded, i, i + size, axis=axis) for i, t in enumerate(taps))
  return x
