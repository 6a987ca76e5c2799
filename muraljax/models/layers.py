"""Layers shared by the model families (NHWC), each equivalent to a PyTorch layer of the official code.

* `conv2d`: `nn.Conv` with PyTorch `nn.Conv2d`'s explicit symmetric zero padding.
* `UpConv2x2`: PyTorch `nn.ConvTranspose2d(in, out, kernel_size=2, stride=2)` as one matmul + depth-to-space.
* `HalfInstanceNorm`: HINet's instance normalisation of the first half of the channels.

Initialisers are Flax's defaults (LeCun-normal kernels, zero biases, unit scales); ported or trained weights
replace them, so PyTorch's initial distributions are not reproduced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from muraljax.models import partitioning
from muraljax.models.ops import pixel_shuffle

Dtype = Any


def conv2d(
    features: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | None = None,
    use_bias: bool = True,
    dtype: Dtype | None = None,
    param_dtype: Dtype = jnp.float32,
    kernel_init: Callable = nn.initializers.lecun_normal(),
    name: str | None = None,
) -> nn.Conv:
  """`nn.Conv` padded like PyTorch `nn.Conv2d(..., kernel_size, stride, padding)`.

  `padding` is the zero padding on every side; the default `kernel_size // 2` keeps H and W for odd kernels.
  Kernel [k, k, C_in, features] (PyTorch weight [features, C_in, k, k] transposed (2, 3, 1, 0)).
  """
  return partitioning.Conv(
      features,
      (kernel_size, kernel_size),
      strides=stride,
      padding=kernel_size // 2 if padding is None else padding,
      use_bias=use_bias,
      dtype=dtype,
      param_dtype=param_dtype,
      kernel_init=kernel_init,
      name=name,
  )


class UpConv2x2(nn.Module):
  """PyTorch `nn.ConvTranspose2d(C_in, features, kernel_size=2, stride=2)`: [B, H, W, C_in] -> [B, 2H, 2W, features].

  With stride equal to the kernel size the output pixels (2i + a, 2j + b) depend on input pixel (i, j) only:
    out[n, 2i + a, 2j + b, o] = sum_c x[n, i, j, c] * kernel[a, b, c, o] + bias[o],
  so the layer is one matmul to [B, H, W, features * 2 * 2] followed by depth-to-space (`pixel_shuffle`),
  which XLA runs much faster than a general transposed convolution.

  Params: `kernel` [2, 2, C_in, features] (PyTorch weight [C_in, features, 2, 2] transposed (2, 3, 0, 1)),
  `bias` [features]. Flax's default initialisers (as `nn.ConvTranspose`): LeCun-normal kernel, zero bias.
  """

  features: int
  use_bias: bool = True
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    in_features = x.shape[-1]
    kernel = self.param(
        "kernel", partitioning.annotated(nn.initializers.lecun_normal(), partitioning.CONV), (2, 2, in_features, self.features), self.param_dtype
    )
    bias = self.param("bias", partitioning.annotated(nn.initializers.zeros, partitioning.VECTOR), (self.features,), self.param_dtype) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)

    # [C_in, features * 2 * 2] has PyTorch's weight layout, whose channel order pixel_shuffle expects.
    taps = x @ kernel.transpose(2, 3, 0, 1).reshape(in_features, self.features * 4)
    y = pixel_shuffle(taps, 2)
    return y + bias if bias is not None else y


class HalfInstanceNorm(nn.Module):
  """Instance norm of the first C // 2 channels of [B, H, W, C]; the other half passes through unchanged.

  Per sample and channel, over H and W: (x - mean) / sqrt(biased variance + epsilon) * scale + bias, as
  PyTorch `nn.InstanceNorm2d(C // 2, affine=True)` (no running statistics). Statistics are computed in float32
  whatever the compute dtype. Params: `scale`, `bias` [C // 2] (PyTorch `norm.weight`, `norm.bias`).
  """

  epsilon: float = 1e-5
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    if channels % 2:
      raise ValueError(f"HalfInstanceNorm needs an even number of channels, got {channels}.")
    half = channels // 2
    scale = self.param("scale", partitioning.annotated(nn.initializers.ones, partitioning.VECTOR), (half,), self.param_dtype)
    bias = self.param("bias", partitioning.annotated(nn.initializers.zeros, partitioning.VECTOR), (half,), self.param_dtype)
    dtype = self.dtype or jnp.result_type(x, scale)

    normalized = x[..., :half].astype(jnp.float32)
    mean = normalized.mean(axis=(1, 2), keepdims=True)
    centered = normalized - mean
    variance = jnp.square(centered).mean(axis=(1, 2), keepdims=True)
    normalized = centered * jax.lax.rsqrt(variance + self.epsilon) * scale.astype(jnp.float32)
    normalized = normalized + bias.astype(jnp.float32)
    return jnp.concatenate([normalized.astype(dtype), x[..., half:].astype(dtype)], axis=-1)
