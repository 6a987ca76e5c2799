"""Parameter-free tensor ops shared by the model families (NHWC)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pixel_shuffle(x: jax.Array, factor: int) -> jax.Array:
  """[B, H, W, C*r*r] -> [B, H*r, W*r, C], with PyTorch's channel order (c*r*r + dy*r + dx)."""
  b, h, w, c = x.shape
  r = factor
  if c % (r * r):
    raise ValueError(f"pixel_shuffle({r}) needs channels divisible by {r * r}, got {c}.")
  x = x.reshape(b, h, w, c // (r * r), r, r)
  x = x.transpose(0, 1, 4, 2, 5, 3)
  return x.reshape(b, h * r, w * r, c // (r * r))


def pixel_unshuffle(x: jax.Array, factor: int) -> jax.Array:
  """[B, H*r, W*r, C] -> [B, H, W, C*r*r], the inverse of `pixel_shuffle` (PyTorch's channel order)."""
  b, hr, wr, c = x.shape
  r = factor
  if hr % r or wr % r:
    raise ValueError(f"pixel_unshuffle({r}) needs height and width divisible by {r}, got {hr}x{wr}.")
  x = x.reshape(b, hr // r, r, wr // r, r, c)
  x = x.transpose(0, 1, 3, 5, 2, 4)
  return x.reshape(b, hr // r, wr // r, c * r * r)


def pad_to_multiple(x: jax.Array, multiple: int, mode: str = "reflect") -> tuple[jax.Array, tuple[int, int]]:
  """Pads H and W of [B, H, W, C] at the bottom/right up to multiples of `multiple`.

  Returns the padded array and the original (H, W), for `crop_to`.
  """
  h, w = x.shape[1:3]
  pad_h, pad_w = -h % multiple, -w % multiple
  if pad_h or pad_w:
    # Reflection needs the pad to be smaller than the side; fall back to edge padding for tiny inputs.
    fits = pad_h < h and pad_w < w
    x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode=mode if fits else "edge")
  return x, (h, w)


def crop_to(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Crops [B, H', W', C] back to the top-left [B, H, W, C]."""
  return x[:, : size[0], : size[1], :]
