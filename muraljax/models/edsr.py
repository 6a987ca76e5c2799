"""CAR's upscaler: the EDSR variant of the official CAR code (`EDSR/edsr.py`, `EDSR/common.py`), NHWC.

Zero-padded 3x3 convs with bias. sub_mean -> head conv 3->F -> body: R residual blocks
(conv, ReLU, conv, x0.1, + x) and one conv, plus a global skip from the head -> tail: log2(s) x [conv F->4F,
pixel-shuffle 2] then conv F->3 -> add_mean. Official sizes: R = 32, F = 256 (43,089,947 parameters at x4,
40,729,627 at x2, both mean shifts included).

Parameter tree, one-to-one with the official state dict (`TORCH_NAME_RULES`: every `name_i` -> `name.i`):

| Flax path                      | PyTorch name (`usn.pth` adds a `module.` prefix) |
|--------------------------------|--------------------------------------------------|
| `sub_mean/kernel` [1, 1, 3, 3] | `sub_mean.weight` (3, 3, 1, 1)                   |
| `head_0/kernel`                | `head.0.weight`                                  |
| `body_7/body_2/bias`           | `body.7.body.2.bias` (block 7, second conv)      |
| `body_32/kernel`               | `body.32.weight` (the conv after the blocks)     |
| `tail_0_2/kernel`              | `tail.0.2.weight` (second upsampling conv, x4)   |
| `tail_1/kernel`, `add_mean/*`  | `tail.1.weight`, `add_mean.*`                    |

The mean shifts are fixed 1x1 convs (identity weight, -/+ RGB-mean bias, `requires_grad=False` upstream).
They stay ordinary entries of the `params` collection so the tree, counts and ported checkpoints match the
official ones; the forward pass applies them under `stop_gradient`, so their gradient is exactly zero and no
optimizer moves them, except decoupled weight decay: mask it with `trainable_mask(params)`. Other params use
Flax's default initialisers (LeCun-normal kernels, zero biases), not PyTorch's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from muraljax.models import partitioning, torch_names
from muraljax.models.ops import pixel_shuffle

Dtype = Any

RGB_MEAN = (0.4488, 0.4371, 0.4040)
MEAN_SHIFT_NAMES = ("sub_mean", "add_mean")
TORCH_NAME_RULES: torch_names.Rules = ((r"_(\d+)", r".\1"),)
UPSCALES = (2, 4)


def torch_layout(params: Mapping, prefix: str = "module.") -> dict[str, tuple[int, ...]]:
  """{official PyTorch name: PyTorch shape} of an EDSR param tree; `prefix` as in the official `usn.pth`."""
  return torch_names.torch_layout(params, TORCH_NAME_RULES, prefix)


def trainable_mask(params: Mapping) -> Any:
  """Same tree as `params` with False at the fixed mean shifts (`sub_mean`, `add_mean`) and True elsewhere.

  For `optax.masked` (e.g. around weight decay) in any model that contains a `MeanShift`.
  """
  return jax.tree_util.tree_map_with_path(
      lambda path, _: not any(getattr(k, "key", None) in MEAN_SHIFT_NAMES for k in path), params)


class MeanShift(nn.Module):
  """Fixed 1x1 conv adding `sign` x RGB mean (rgb_range 1, std 1): [B, H, W, 3] -> [B, H, W, 3]."""

  sign: float
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    identity = lambda key, shape, dtype: jnp.eye(3, dtype=dtype).reshape(shape)
    mean = lambda key, shape, dtype: self.sign * jnp.asarray(RGB_MEAN, dtype)
    kernel = jax.lax.stop_gradient(self.param("kernel", partitioning.annotated(identity, partitioning.CONV), (1, 1, 3, 3), self.param_dtype))
    bias = jax.lax.stop_gradient(self.param("bias", partitioning.annotated(mean, partitioning.VECTOR), (3,), self.param_dtype))
    return jnp.einsum("bhwi,io->bhwo", x.astype(self.dtype), kernel[0, 0].astype(self.dtype)) + bias.astype(
        self.dtype)


class ResBlock(nn.Module):
  """x + res_scale * conv(ReLU(conv(x))): [B, H, W, F] -> [B, H, W, F]; convs `body_0`, `body_2`."""

  features: int
  res_scale: float = 0.1
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(partitioning.Conv, self.features, (3, 3), dtype=self.dtype, param_dtype=self.param_dtype)
    return x + self.res_scale * conv(name="body_2")(nn.relu(conv(name="body_0")(x)))


class EDSR(nn.Module):
  """EDSR upscaler: [B, h, w, 3] RGB in [0, 1] -> [B, h*scale, w*scale, 3].

  `n_resblocks` / `n_feats` default to the official CAR sizes; shrink them for tests and smoke runs.
  """

  scale: int = 4
  n_resblocks: int = 32
  n_feats: int = 256
  res_scale: float = 0.1
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  remat: str = "none"  # Rematerialisation of each residual block (partitioning.REMAT_POLICIES).

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.scale not in UPSCALES:
      raise ValueError(f"EDSR upscales by 2 or 4, got scale={self.scale}; pass scale=2 or scale=4.")
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"EDSR needs RGB images [B, h, w, 3], got shape {x.shape}.")
    kwargs = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    conv = functools.partial(partitioning.Conv, kernel_size=(3, 3), **kwargs)

    x = conv(self.n_feats, name="head_0")(MeanShift(-1.0, name="sub_mean", **kwargs)(x))
    res = x
    for i in range(self.n_resblocks):
      res = partitioning.remat(ResBlock, self.remat)(self.n_feats, self.res_scale, name=f"body_{i}", **kwargs)(res)
    res = conv(self.n_feats, name=f"body_{self.n_resblocks}")(res) + x
    for i in range(self.scale.bit_length() - 1):  # log2(scale) x [conv, pixel-shuffle 2]
      res = pixel_shuffle(conv(4 * self.n_feats, name=f"tail_0_{2 * i}")(res), 2)
    return MeanShift(1.0, name="add_mean", **kwargs)(conv(3, name="tail_1")(res))
