"""CAR's content-adaptive resampling op (the official `adaptive_gridsampler` CUDA kernel), in pure JAX.

Every low-resolution (LR) pixel is a weighted sum of k x k bilinear samples of the reflect-padded
high-resolution (HR) image (pad k // 2); the net predicts one kernel weight and one (horizontal, vertical)
offset per tap and LR pixel. For LR pixel (i, j) and tap (ky, kx), tap index k*ky + kx, in padded HR
coordinates:

  p_x = (j + 0.5)*s + kx + offsets_h - 0.5,   p_y = (i + 0.5)*s + ky + offsets_v - 0.5.

Offsets at this interface are in HR pixels. The official net emits tanh values in [-1, 1] and the CUDA kernel
multiplies them by `offset_unit` (= s) before sampling (the spec's `offsets_h*s`); here the net applies that
factor (`car.py`) and the op takes the product, so `resample(image, kernels, s * tanh_h, s * tanh_v, s)`
equals the official `Downsampler(s, k)(image, kernels, tanh_h, tanh_v, s)`.

The bilinear fractions are taken before clamping, and the corners are clamped as the CUDA kernel does: the
left corner to the padded image, the right corner to `left + 1`, clamped again (likewise top / bottom). Far
left of the image (floor(p_x) <= -2) this samples pixels 0 and 1 with weights (1 - a, a) rather than an
edge-replicated pixel 0.

Formulation (chosen with `benchmarks/resample_op.py`): a `lax.scan` over the k kernel rows, each step
gathering the four bilinear corners of its k taps as C-vectors and reducing them with the kernel. The step is
checkpointed, so the backward pass holds one row of samples instead of all k*k taps: at x4, batch 4,
512^2 -> 128^2 on CPU, ~0.3 GB of XLA temporaries for forward+backward instead of ~1.9 GB for the all-taps
gather, and no slower.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SCALES = (2, 4)


def kernel_size(scale: int) -> int:
  """The official kernel size k = 3s + 1 (13 at x4, 7 at x2); raises for unsupported scales."""
  if scale not in SCALES:
    raise ValueError(f"CAR supports scale 2 or 4, got {scale}; pass scale=2 or scale=4.")
  return 3 * scale + 1


def axis_corners(
    offsets: jax.Array, lr_index: jax.Array, tap: jax.Array, scale: int, padded_size: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Bilinear corners of taps along one axis.

  Args:
    offsets: [B, h, w, T] offsets along this axis in HR pixels, for T taps.
    lr_index: LR pixel index along this axis, broadcastable to `offsets` (e.g. [1, 1, w, 1]).
    tap: [T] kernel column (x) or row (y) of every tap.
    scale: the downscaling factor s.
    padded_size: length of the padded HR image along this axis.

  Returns:
    (low, high, frac), each [B, h, w, T]: int32 clamped indices of the two corners and the weight of `high`
    (the weight of `low` is 1 - frac).
  """
  # (j + 0.5)*s - 0.5 = j*s + (s - 2)/2 + 0.5 for even s: keep the integer part exact and the fraction small,
  # so the fraction keeps full float precision at large coordinates.
  whole = lr_index * scale + tap + (scale - 2) // 2
  shifted = offsets + 0.5
  floor = jnp.floor(shifted)
  frac = shifted - floor
  low = jnp.clip(whole + floor.astype(jnp.int32), 0, padded_size - 1)
  high = jnp.minimum(low + 1, padded_size - 1)
  return low, high, frac


def bilinear_samples(
    padded: jax.Array, rows: tuple[jax.Array, ...], cols: tuple[jax.Array, ...]
) -> jax.Array:
  """Bilinear samples of `padded` [B, Hp, Wp, C] at the corners from `axis_corners` -> [B, h, w, T, C]."""
  top, bottom, beta = rows
  left, right, alpha = cols
  pixel = jax.vmap(lambda image, y, x: image[y, x])
  value = ((1 - alpha) * (1 - beta))[..., None] * pixel(padded, top, left)
  value += (alpha * (1 - beta))[..., None] * pixel(padded, top, right)
  value += ((1 - alpha) * beta)[..., None] * pixel(padded, bottom, left)
  value += (alpha * beta)[..., None] * pixel(padded, bottom, right)
  return value


def _check_inputs(image: jax.Array, kernels: jax.Array, offsets_h: jax.Array, offsets_v: jax.Array, scale: int):
  k = kernel_size(scale)
  if image.ndim != 4:
    raise ValueError(f"resample needs an image [B, H, W, C], got shape {image.shape}.")
  b, hr_h, hr_w, _ = image.shape
  if hr_h % scale or hr_w % scale:
    raise ValueError(f"resample needs image sides divisible by scale {scale}, got {hr_h}x{hr_w}; crop or pad it.")
  want = (b, hr_h // scale, hr_w // scale, k * k)
  for name, array in (("kernels", kernels), ("offsets_h", offsets_h), ("offsets_v", offsets_v)):
    if array.shape != want:
      raise ValueError(f"resample needs {name} of shape {want} for an image {image.shape} at x{scale}, "
                       f"got {array.shape}.")


def resample(
    image: jax.Array, kernels: jax.Array, offsets_h: jax.Array, offsets_v: jax.Array, scale: int
) -> jax.Array:
  """Downscales `image` with per-pixel kernels and offsets (the official CUDA semantics, differentiable).

  Args:
    image: [B, H, W, C] HR image, H and W divisible by `scale`.
    kernels: [B, H/s, W/s, k*k] tap weights, tap index k*ky + kx; one kernel for all channels.
    offsets_h: [B, H/s, W/s, k*k] horizontal (x, width) sample offsets in HR pixels.
    offsets_v: [B, H/s, W/s, k*k] vertical (y, height) sample offsets in HR pixels.
    scale: s in {2, 4}; k = 3s + 1.

  Returns:
    [B, H/s, W/s, C] LR image, in the dtype of `image` and `kernels` combined. Sample positions are computed
    in at least float32 whatever the input dtype.
  """
  _check_inputs(image, kernels, offsets_h, offsets_v, scale)
  k = kernel_size(scale)
  out_dtype = jnp.result_type(image, kernels)
  dtype = jnp.promote_types(jnp.result_type(out_dtype, offsets_h, offsets_v), jnp.float32)
  pad = k // 2
  padded = jnp.pad(image.astype(dtype), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  _, padded_h, padded_w, channels = padded.shape
  b, lr_h, lr_w, _ = kernels.shape

  def by_row(taps: jax.Array) -> jax.Array:  # [B, h, w, k*k] -> [k, B, h, w, k], one kernel row per step
    return taps.astype(dtype).reshape(b, lr_h, lr_w, k, k).transpose(3, 0, 1, 2, 4)

  @jax.checkpoint
  def add_row(total, row):
    row_kernels, row_offsets_h, row_offsets_v, tap_y = row
    rows = axis_corners(row_offsets_v, jnp.arange(lr_h)[:, None, None], tap_y, scale, padded_h)
    cols = axis_corners(row_offsets_h, jnp.arange(lr_w)[:, None], jnp.arange(k), scale, padded_w)
    return total + jnp.einsum("bhwt,bhwtc->bhwc", row_kernels, bilinear_samples(padded, rows, cols)), None

  zeros = jnp.zeros((b, lr_h, lr_w, channels), dtype)
  rows = (by_row(kernels), by_row(offsets_h), by_row(offsets_v), jnp.arange(k))
  return jax.lax.scan(add_row, zeros, rows)[0].astype(out_dtype)
