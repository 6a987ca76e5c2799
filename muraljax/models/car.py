"""CAR's resampler ("kernel generation") net, the downscaling it drives, and the LR quantisation, NHWC.

Port of the official `DSN` (sunwj/CAR `modules.py`). All convs are "valid" after reflection padding;
LeakyReLU slope 0.2 in the encoder, ReLU in the trunks and heads:

  sub_mean -> ds_1 (pad 2, 5x5 3->64, LeakyReLU) -> ds_2 / ds_4 (pixel-unshuffle 2, 1x1 -> 128)
  -> x + res_4(x) (5 x [x + (pad 1, 3x3, LeakyReLU, pad 1, 3x3)]) -> ds_8 (pixel-unshuffle 2, 1x1 -> 256, H/8)
  -> kernels_trunk / offsets_trunk (3 x [pad 1, 3x3, ReLU], 1x1 -> 256*(8/s)^2 + pixel-shuffle 8/s (H/s),
     pad 1, 3x3, ReLU)
  -> kernels_weight: (pad 1, 3x3, ReLU, pad 1, 3x3 -> k*k), clamp [1e-6, 1], divide by the sum (>= 1e-6);
     offsets_{h,v}_generation: same layers, tanh, times the offset unit s.

Outputs kernels, offsets_h, offsets_v [B, H/s, W/s, k*k] (float32; tap index k*ky + kx). Offsets are in HR
pixels, within [-s, s]: the official net returns the tanh and its CUDA op multiplies by `offset_unit` = s;
here the net does the multiplication and `resample.resample` takes HR pixels (same sampling positions).

Image sizes: H and W must be multiples of s (the resampling op needs them). Sides that are not multiples of 8
(the net downsamples by 8) are reflect-padded at the bottom/right to the next multiple of 8 and the outputs
cropped back to [H/s, W/s], so the kernels of the real pixels are kept and the padding only widens the
context at the border.

Parameter tree, one-to-one with the official `kgn.pth` (`TORCH_NAME_RULES`):

| Flax path                          | PyTorch name (`kgn.pth` adds a `module.` prefix) |
|------------------------------------|--------------------------------------------------|
| `sub_mean/kernel`, `sub_mean/bias` | `sub_mean.weight` (3, 3, 1, 1), `sub_mean.bias`  |
| `ds_1_1/kernel` [5, 5, 3, 64]      | `ds_1.1.weight` (64, 3, 5, 5)                    |
| `ds_2/downsample_1/kernel`         | `ds_2.downsample.1.weight`                       |
| `res_4_0/transform_1/kernel`       | `res_4.0.transform.1.weight`                     |
| `kernels_trunk_9/upsample_0/bias`  | `kernels_trunk.9.upsample.0.bias`                |
| `offsets_h_generation_4/kernel`    | `offsets_h_generation.4.weight`                  |

i.e. the index `_i` of an entry of an official `nn.Sequential` becomes `.i` (the convs keep their Sequential
positions: 1, 4, 7, 11 after the padding and activation entries). `sub_mean` is the fixed mean shift of
`edsr.MeanShift` (a param under `stop_gradient`; see `edsr.trainable_mask`). Official counts: 9,896,455
parameters at x4, 10,645,663 at x2, `sub_mean` included.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from muraljax.models import partitioning, torch_names
from muraljax.models.edsr import MeanShift
from muraljax.models.ops import crop_to, pad_to_multiple, pixel_shuffle, pixel_unshuffle
from muraljax.models.resample import kernel_size, resample

Dtype = Any

_SEQUENTIALS = "ds_1|res_4|kernels_trunk|kernels_weight|offsets_trunk|offsets_h_generation|offsets_v_generation"
TORCH_NAME_RULES: torch_names.Rules = (
    (rf"^({_SEQUENTIALS})_(\d+)", r"\1.\2"),
    (r"(transform|downsample|upsample)_(\d+)", r"\1.\2"),
)
LEAKY_SLOPE = 0.2
QUANTIZATION_LEVELS = 255


def torch_layout(params: Mapping, prefix: str = "module.") -> dict[str, tuple[int, ...]]:
  """{official PyTorch name: PyTorch shape} of a resampler param tree; `prefix` as in the official `kgn.pth`."""
  return torch_names.torch_layout(params, TORCH_NAME_RULES, prefix)


@jax.custom_vjp
def quantize(x: jax.Array) -> jax.Array:
  """round(clip(x, 0, 1) * 255) / 255 with CAR's soft-rounding gradient.

  The backward pass is the derivative of the paper's soft rounding r(u) = u - sin(2 pi u) / (2 pi) on the
  0-255 scale, u = 255 x: d quantize / dx = 1 - cos(2 pi u) = 1 - cos(510 pi x). It is 0 at the 256
  quantisation levels, 2 halfway between them and 1 on average. As in the training port, the clip is not
  differentiated: out-of-range values get the same surrogate gradient.
  """
  return jnp.round(jnp.clip(x, 0, 1) * QUANTIZATION_LEVELS) / QUANTIZATION_LEVELS


def _quantize_forward(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  return quantize(x), x


def _quantize_backward(x: jax.Array, grad: jax.Array) -> tuple[jax.Array]:
  return (grad * (1 - jnp.cos(2 * jnp.pi * QUANTIZATION_LEVELS * x)),)


quantize.defvjp(_quantize_forward, _quantize_backward)


def _reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


class Downscaled(NamedTuple):
  """`KernelGenerationNet.downscale` output: the LR image and the net outputs the CAR losses need."""

  image: jax.Array  # [B, H/s, W/s, C], not quantised
  kernels: jax.Array  # [B, H/s, W/s, k*k]
  offsets_h: jax.Array  # [B, H/s, W/s, k*k], HR pixels
  offsets_v: jax.Array  # [B, H/s, W/s, k*k], HR pixels


class DownsampleBlock(nn.Module):
  """Pixel-unshuffle 2 then 1x1 conv (`downsample_1`): [B, H, W, C] -> [B, H/2, W/2, features]."""

  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = partitioning.Conv(self.features, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype, name="downsample_1")
    return conv(pixel_unshuffle(x, 2))


class UpsampleBlock(nn.Module):
  """1x1 conv (`upsample_0`) then pixel-shuffle: [B, H, W, C] -> [B, H*factor, W*factor, features]."""

  features: int
  factor: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    out = self.features * self.factor**2
    conv = partitioning.Conv(out, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype, name="upsample_0")
    return pixel_shuffle(conv(x), self.factor)


class ResidualBlock(nn.Module):
  """x + (pad 1, 3x3, LeakyReLU, pad 1, 3x3) with convs `transform_1`, `transform_4`: [B, H, W, C] -> same."""

  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(partitioning.Conv, x.shape[-1], (3, 3), padding="VALID", dtype=self.dtype,
                             param_dtype=self.param_dtype)
    out = nn.leaky_relu(conv(name="transform_1")(_reflect_pad(x, 1)), LEAKY_SLOPE)
    return x + conv(name="transform_4")(_reflect_pad(out, 1))


class KernelGenerationNet(nn.Module):
  """CAR's resampler net: [B, H, W, 3] RGB in [0, 1] -> (kernels, offsets_h, offsets_v) [B, H/s, W/s, k*k].

  `downscale` also applies the kernels (`apply(params, image, method="downscale")`).
  """

  scale: int = 4
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  remat: str = "none"  # Rematerialisation of each residual block (partitioning.REMAT_POLICIES).

  def _conv(self, features: int, size: int, name: str, x: jax.Array) -> jax.Array:
    """A "valid" conv after reflection padding by size // 2."""
    conv = partitioning.Conv(features, (size, size), padding="VALID", dtype=self.dtype, param_dtype=self.param_dtype,
                   name=name)
    return conv(_reflect_pad(x, size // 2))

  def _trunk(self, name: str, x: jax.Array) -> jax.Array:
    """Shared body of `kernels_trunk` / `offsets_trunk`: [B, H/8, W/8, 256] -> [B, H/s, W/s, 256]."""
    for index in (1, 4, 7):
      x = nn.relu(self._conv(256, 3, f"{name}_{index}", x))
    x = UpsampleBlock(256, 8 // self.scale, self.dtype, self.param_dtype, name=f"{name}_9")(x)
    return nn.relu(self._conv(256, 3, f"{name}_11", x))

  def _head(self, name: str, taps: int, x: jax.Array) -> jax.Array:
    """`kernels_weight` / `offsets_*_generation` before their output nonlinearity, float32 [.., taps]."""
    x = nn.relu(self._conv(256, 3, f"{name}_1", x))
    return self._conv(taps, 3, f"{name}_4", x).astype(jnp.float32)

  @nn.compact
  def __call__(self, image: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    s = self.scale
    taps = kernel_size(s) ** 2
    if image.ndim != 4 or image.shape[-1] != 3:
      raise ValueError(f"The CAR resampler needs RGB images [B, H, W, 3], got shape {image.shape}.")
    height, width = image.shape[1:3]
    if height % s or width % s:
      raise ValueError(f"The CAR resampler needs image sides divisible by the scale {s}, got {height}x{width}; "
                       "crop or pad the image first.")
    kwargs = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x, _ = pad_to_multiple(image, 8)

    x = MeanShift(-1.0, name="sub_mean", **kwargs)(x)
    x = nn.leaky_relu(self._conv(64, 5, "ds_1_1", x), LEAKY_SLOPE)
    x = DownsampleBlock(128, name="ds_2", **kwargs)(x)
    x = DownsampleBlock(128, name="ds_4", **kwargs)(x)
    res = x
    for i in range(5):
      res = partitioning.remat(ResidualBlock, self.remat)(name=f"res_4_{i}", **kwargs)(res)
    x = DownsampleBlock(256, name="ds_8", **kwargs)(x + res)

    weights = jnp.clip(self._head("kernels_weight", taps, self._trunk("kernels_trunk", x)), 1e-6, 1.0)
    kernels = weights / jnp.maximum(weights.sum(axis=-1, keepdims=True), 1e-6)
    offsets = self._trunk("offsets_trunk", x)
    offsets_h = s * jnp.tanh(self._head("offsets_h_generation", taps, offsets))
    offsets_v = s * jnp.tanh(self._head("offsets_v_generation", taps, offsets))
    lr_size = (height // s, width // s)
    return crop_to(kernels, lr_size), crop_to(offsets_h, lr_size), crop_to(offsets_v, lr_size)

  def downscale(self, image: jax.Array) -> Downscaled:
    """[B, H, W, 3] -> `Downscaled`: the content-adaptive LR image [B, H/s, W/s, 3] and the net outputs."""
    kernels, offsets_h, offsets_v = self(image)
    return Downscaled(resample(image, kernels, offsets_h, offsets_v, self.scale), kernels, offsets_h, offsets_v)
