"""Pixel-space diffusion U-Net with the block structure and parameter names of diffusers' `UNet2DModel` (NHWC).

A `UNetConfig` with the same down/up block types, block_out_channels, layers_per_block, attention_head_dim,
norm_num_groups, norm_eps, flip_sin_to_cos, freq_shift and num_class_embeds as a diffusers `UNet2DModel`
(downsample_padding 1, act 'silu', time_embedding_type 'positional', resnet_time_scale_shift 'default',
add_attention True, dropout 0) gives a param tree that holds exactly its state dict:

| Flax path                                          | diffusers name                                  |
|----------------------------------------------------|-------------------------------------------------|
| `conv_in/kernel` [3, 3, I, O]                      | `conv_in.weight` (O, I, 3, 3)                   |
| (no params: sinusoidal features)                   | `time_proj`                                     |
| `time_embedding/linear_1/kernel` [I, O]            | `time_embedding.linear_1.weight` (O, I)         |
| `class_embedding/embedding` [N, D]                 | `class_embedding.weight` (N, D)                 |
| `down_blocks_0/resnets_1/norm1/scale`              | `down_blocks.0.resnets.1.norm1.weight`          |
|   (also conv1, time_emb_proj, norm2, conv2, conv_shortcut)                                           |
| `down_blocks_1/attentions_0/to_out_0/kernel`       | `down_blocks.1.attentions.0.to_out.0.weight`    |
|   (also group_norm, to_q, to_k, to_v)                                                                |
| `down_blocks_0/downsamplers_0/conv/kernel`         | `down_blocks.0.downsamplers.0.conv.weight`      |
| `mid_block/{resnets_0,attentions_0,resnets_1}`     | `mid_block.{resnets.0,attentions.0,resnets.1}`  |
| `up_blocks_0/{resnets_j,attentions_j}`             | `up_blocks.0.{resnets.j,attentions.j}`          |
| `up_blocks_0/upsamplers_0/conv/kernel`             | `up_blocks.0.upsamplers.0.conv.weight`          |
| `conv_norm_out/{scale,bias}`, `conv_out/kernel`    | `conv_norm_out.{weight,bias}`, `conv_out.weight`|

i.e. '/' -> '.', list elements `name_i` -> `name.i` (`TORCH_NAME_RULES`), `kernel`/`scale`/`embedding` ->
`weight`, conv kernels HWIO <-> OIHW, dense kernels [in, out] <-> (out, in). `torch_layout(params)` gives
{diffusers name: PyTorch shape} for a U-Net or ControlNet param tree.

FDP (DiffuMural's frequency-domain processing, muraljax.models.fdp.SpectralBlock) is muraljax's addition: at the
levels in `config.fdp_levels` every layer of the down block and of the up block at that resolution is followed by
a spectral block (`down_blocks_i/fdps_j`, `up_blocks_k/fdps_j`), and the mid block gets one after its attention
(`mid_block/fdps_0`) when the lowest level is among them. These params have no diffusers name
(`MURALJAX_ONLY` matches their paths; `torch_layout` leaves them out), and a fresh spectral block is the
identity, so diffusers weights ported into a U-Net with FDP compute exactly what they computed before.

Structure (as diffusers): the time embedding (sinusoidal features of width C0 -> linear_1 -> SiLU -> linear_2,
width 4 C0, plus the class embedding of the labels when num_class_embeds is set) feeds every ResNet block.
Down block i runs `layers_per_block` ResNet blocks (each followed by self-attention in an AttnDownBlock2D) and,
except the last, a stride-2 3x3 conv; every output is a skip, after conv_in's. The mid block is ResNet,
attention, ResNet. Up block i runs layers_per_block + 1 ResNet blocks on [features, skip] concatenations (plus
attention in an AttnUpBlock2D) and, except the last, nearest-neighbour 2x upsampling + 3x3 conv. Then
GroupNorm, SiLU, conv_out. ControlNet residuals are added to the skips and the mid-block output, as diffusers'
`down_block_additional_residuals` / `mid_block_additional_residual`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from muraljax.models import partitioning, torch_names
from muraljax.models.fdp import SpectralBlock
from muraljax.models.layers import conv2d

Dtype = Any

DOWN_BLOCK_TYPES = ("DownBlock2D", "AttnDownBlock2D")
UP_BLOCK_TYPES = ("UpBlock2D", "AttnUpBlock2D")

# Paths ('/'-joined) of the params that are muraljax's additions to diffusers' layout: the FDP blocks.
MURALJAX_ONLY = r"(^|/)fdps_\d+(/|$)"

TORCH_NAME_RULES: torch_names.Rules = (
    (r"\b(down_blocks|up_blocks|resnets|attentions|downsamplers|upsamplers|to_out|controlnet_down_blocks|blocks)"
     r"_(\d+)\b", r"\1.\2"),
)


@dataclasses.dataclass(frozen=True)
class UNetConfig:
  """The architecture, in diffusers `UNet2DModel`'s terms (see the module docstring)."""

  block_out_channels: tuple[int, ...] = (128, 256)
  down_block_types: tuple[str, ...] = ("DownBlock2D", "AttnDownBlock2D")
  up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "UpBlock2D")
  layers_per_block: int = 2
  attention_head_dim: int | None = 8  # Channels per attention head; None = one head over all channels.
  norm_num_groups: int = 32
  norm_eps: float = 1e-5
  flip_sin_to_cos: bool = True  # Time features [cos, sin] (True) or [sin, cos].
  freq_shift: int = 0  # Frequencies exp(-ln(10000) k / (C0 / 2 - freq_shift)).
  num_class_embeds: int | None = None  # Number of class labels (class_embedding rows); None = unconditional.
  out_channels: int = 3
  fdp_levels: tuple[int, ...] = ()  # Levels (0 = full size) with FDP spectral blocks (see the module docstring).
  remat: str = "none"  # Not architecture: how ResNet, attention and FDP blocks are rematerialised (REMAT_POLICIES).

  def __post_init__(self):
    levels = len(self.block_out_channels)
    if not levels or len(self.down_block_types) != levels or len(self.up_block_types) != levels:
      raise ValueError(f"block_out_channels {self.block_out_channels}, down_block_types {self.down_block_types} "
                       f"and up_block_types {self.up_block_types} must have the same, non-zero length.")
    for kind, allowed in ((self.down_block_types, DOWN_BLOCK_TYPES), (self.up_block_types, UP_BLOCK_TYPES)):
      if set(kind) - set(allowed):
        raise ValueError(f"Unknown block types {sorted(set(kind) - set(allowed))}; use {list(allowed)}.")
    if any(channels % self.norm_num_groups for channels in self.block_out_channels):
      raise ValueError(f"block_out_channels {self.block_out_channels} must all be multiples of norm_num_groups="
                       f"{self.norm_num_groups}.")
    reversed_channels = self.block_out_channels[::-1]
    attended = {self.block_out_channels[-1]}  # the mid block's
    attended |= {c for c, kind in zip(self.block_out_channels, self.down_block_types) if kind.startswith("Attn")}
    attended |= {c for c, kind in zip(reversed_channels, self.up_block_types) if kind.startswith("Attn")}
    partitioning.check_remat(self.remat)
    if set(self.fdp_levels) - set(range(levels)):
      raise ValueError(f"fdp_levels {self.fdp_levels} must be levels of the U-Net, 0 (full size) to {levels - 1}.")
    if self.attention_head_dim and any(channels % self.attention_head_dim for channels in attended):
      raise ValueError(f"The channels of the levels with attention, {sorted(attended)}, must be multiples of "
                       f"attention_head_dim={self.attention_head_dim}.")

  @property
  def size_multiple(self) -> int:
    """Image sides must be multiples of this: 2 ** (number of downsampling convs)."""
    return 2 ** (len(self.block_out_channels) - 1)

  def check_image_size(self, height: int, width: int) -> None:
    """Raises ValueError naming valid sizes when height or width is not a multiple of `size_multiple`."""
    m = self.size_multiple
    if height % m or width % m:
      def nearest(side: int) -> str:
        lower = side - side % m
        return str(side) if not side % m else f"{lower} or {lower + m}" if lower else str(m)

      raise ValueError(f"The U-Net downsamples {len(self.block_out_channels) - 1} times, so image sides must be "
                       f"multiples of {m}; got {height}x{width}: pad or crop to {nearest(height)} x "
                       f"{nearest(width)}.")


def torch_layout(params: Mapping) -> dict[str, tuple[int, ...]]:
  """{diffusers name: PyTorch shape} of a U-Net or ControlNet param tree (arrays or ShapeDtypeStructs)."""
  return torch_names.torch_layout(_torch_leaf_conventions(params), TORCH_NAME_RULES)


def _torch_leaf_conventions(tree: Mapping) -> dict:
  """FDP blocks left out, embedding tables renamed to `scale` (-> 'weight'), dense kernels [in, out] given
  PyTorch's (out, in) shape; torch_names.torch_layout handles the rest."""
  out = {}
  for key, value in tree.items():
    if re.search(MURALJAX_ONLY, key):
      continue
    if isinstance(value, Mapping):
      out[key] = _torch_leaf_conventions(value)
    elif key == "embedding":
      out["scale"] = value
    elif key == "kernel" and value.ndim == 2:
      out[key] = jax.ShapeDtypeStruct(value.shape[::-1], value.dtype)
    else:
      out[key] = value
  return out


def timestep_features(timesteps: jax.Array, dim: int, flip_sin_to_cos: bool, freq_shift: int) -> jax.Array:
  """diffusers' `get_timestep_embedding`: timesteps [B] -> float32 [B, dim] sinusoids (max period 10000)."""
  half = dim // 2
  frequencies = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / (half - freq_shift))
  angles = timesteps.astype(jnp.float32)[:, None] * frequencies[None, :]
  pair = (jnp.cos(angles), jnp.sin(angles)) if flip_sin_to_cos else (jnp.sin(angles), jnp.cos(angles))
  features = jnp.concatenate(pair, axis=-1)
  return jnp.pad(features, ((0, 0), (0, dim % 2)))


def _group_norm(config: UNetConfig, dtype: Dtype, name: str) -> nn.GroupNorm:
  return partitioning.GroupNorm(num_groups=config.norm_num_groups, epsilon=config.norm_eps, dtype=dtype, name=name)


class ResnetBlock2D(nn.Module):
  """[B, H, W, C] x time embedding [B, D] -> [B, H, W, out_channels]: GroupNorm, SiLU, conv, + projected time,
  GroupNorm, SiLU, conv, + (1x1-projected when C != out_channels) input."""

  config: UNetConfig
  out_channels: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, temb: jax.Array) -> jax.Array:
    conv = functools.partial(conv2d, self.out_channels, dtype=self.dtype)
    h = conv(3, name="conv1")(nn.silu(_group_norm(self.config, self.dtype, "norm1")(x)))
    h = h + partitioning.Dense(self.out_channels, dtype=self.dtype, name="time_emb_proj")(nn.silu(temb))[:, None, None, :]
    h = conv(3, name="conv2")(nn.silu(_group_norm(self.config, self.dtype, "norm2")(h)))
    if x.shape[-1] != self.out_channels:
      x = conv(1, name="conv_shortcut")(x)
    return x + h


class AttentionBlock(nn.Module):
  """Residual multi-head self-attention over the H*W positions of [B, H, W, C] (diffusers' `Attention` with
  group_norm, to_q/k/v, to_out.0 and a residual connection); softmax in float32."""

  config: UNetConfig
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    heads = c // self.config.attention_head_dim if self.config.attention_head_dim else 1
    tokens = _group_norm(self.config, self.dtype, "group_norm")(x).reshape(b, h * w, c)
    q, k, v = (partitioning.Dense(c, dtype=self.dtype, name=name)(tokens).reshape(b, h * w, heads, c // heads)
               for name in ("to_q", "to_k", "to_v"))
    attended = jax.nn.dot_product_attention(q, k, v).reshape(b, h * w, c)
    return x + partitioning.Dense(c, dtype=self.dtype, name="to_out_0")(attended).reshape(b, h, w, c)


def _resnet(config: UNetConfig, out_channels: int, dtype: Dtype, name: str) -> ResnetBlock2D:
  """A ResnetBlock2D, rematerialised as config.remat says."""
  return partitioning.remat(ResnetBlock2D, config.remat)(config, out_channels, dtype, name=name)


def _attention(config: UNetConfig, dtype: Dtype, name: str) -> AttentionBlock:
  """An AttentionBlock, rematerialised as config.remat says."""
  return partitioning.remat(AttentionBlock, config.remat)(config, dtype, name=name)


def _spectral(config: UNetConfig, dtype: Dtype, name: str) -> SpectralBlock:
  """An FDP SpectralBlock with the U-Net's GroupNorm settings, rematerialised as config.remat says."""
  return partitioning.remat(SpectralBlock, config.remat)(config.norm_num_groups, config.norm_eps, dtype, name=name)


class Downsample2D(nn.Module):
  """3x3 stride-2 conv (padding 1): [B, H, W, C] -> [B, H/2, W/2, C]."""

  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return conv2d(x.shape[-1], 3, stride=2, padding=1, dtype=self.dtype, name="conv")(x)


class Upsample2D(nn.Module):
  """Nearest-neighbour 2x resize, then a 3x3 conv: [B, H, W, C] -> [B, 2H, 2W, C]."""

  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    return conv2d(x.shape[-1], 3, dtype=self.dtype, name="conv")(x)


class DownBlock2D(nn.Module):
  """diffusers' DownBlock2D (attention=False) or AttnDownBlock2D (True).

  __call__(x [B, H, W, C], temb) -> (out, skips): out [B, H/2, W/2, out_channels] when `add_downsample`, and
  the output of every layer (and of the downsampler) as skips. With `fdp`, each layer ends in a spectral block.
  """

  config: UNetConfig
  out_channels: int
  attention: bool
  add_downsample: bool
  fdp: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, temb: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    skips = []
    for j in range(self.config.layers_per_block):
      x = _resnet(self.config, self.out_channels, self.dtype, name=f"resnets_{j}")(x, temb)
      if self.attention:
        x = _attention(self.config, self.dtype, name=f"attentions_{j}")(x)
      if self.fdp:
        x = _spectral(self.config, self.dtype, name=f"fdps_{j}")(x)
      skips.append(x)
    if self.add_downsample:
      x = Downsample2D(self.dtype, name="downsamplers_0")(x)
      skips.append(x)
    return x, tuple(skips)


class UpBlock2D(nn.Module):
  """diffusers' UpBlock2D (attention=False) or AttnUpBlock2D (True): layers_per_block + 1 layers, each on the
  concatenation [x, the last remaining skip] (ending in a spectral block with `fdp`); then 2x upsampling when
  `add_upsample`."""

  config: UNetConfig
  out_channels: int
  attention: bool
  add_upsample: bool
  fdp: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, skips: Sequence[jax.Array], temb: jax.Array) -> jax.Array:
    for j, skip in enumerate(reversed(skips)):
      x = jnp.concatenate([x, skip.astype(x.dtype)], axis=-1)
      x = _resnet(self.config, self.out_channels, self.dtype, name=f"resnets_{j}")(x, temb)
      if self.attention:
        x = _attention(self.config, self.dtype, name=f"attentions_{j}")(x)
      if self.fdp:
        x = _spectral(self.config, self.dtype, name=f"fdps_{j}")(x)
    if self.add_upsample:
      x = Upsample2D(self.dtype, name="upsamplers_0")(x)
    return x


class MidBlock2D(nn.Module):
  """diffusers' UNetMidBlock2D: ResNet block, self-attention (then a spectral block with `fdp`), ResNet block;
  [B, h, w, C] -> same shape."""

  config: UNetConfig
  fdp: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, temb: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    x = _resnet(self.config, channels, self.dtype, name="resnets_0")(x, temb)
    x = _attention(self.config, self.dtype, name="attentions_0")(x)
    if self.fdp:
      x = _spectral(self.config, self.dtype, name="fdps_0")(x)
    return _resnet(self.config, channels, self.dtype, name="resnets_1")(x, temb)


class TimestepEmbedding(nn.Module):
  """linear_1 -> SiLU -> linear_2: time features [B, C0] -> embedding [B, features]."""

  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.silu(partitioning.Dense(self.features, dtype=self.dtype, name="linear_1")(x))
    return partitioning.Dense(self.features, dtype=self.dtype, name="linear_2")(x)


# The encoder half, shared by the U-Net and its ControlNet: these create their submodules ("time_embedding",
# "class_embedding", "conv_in", "down_blocks_i", "mid_block") in the module whose compact method calls them.


def embed_time_and_class(config: UNetConfig, timesteps: jax.Array, class_labels: jax.Array | None,
                         dtype: Dtype) -> jax.Array:
  """Timesteps [B] (and int class labels [B]) -> the embedding [B, 4 C0] every ResNet block receives."""
  width = config.block_out_channels[0]
  features = timestep_features(timesteps, width, config.flip_sin_to_cos, config.freq_shift)
  emb = TimestepEmbedding(4 * width, dtype, name="time_embedding")(features)
  if config.num_class_embeds:
    if class_labels is None:
      raise ValueError(f"This U-Net is class-conditioned (num_class_embeds={config.num_class_embeds}); pass "
                       "class_labels, int [B].")
    emb = emb + partitioning.Embed(config.num_class_embeds, 4 * width, dtype=dtype, name="class_embedding")(class_labels)
  return emb


def conv_in(config: UNetConfig, sample: jax.Array, dtype: Dtype) -> jax.Array:
  """[B, H, W, in_channels] -> [B, H, W, C0]."""
  return conv2d(config.block_out_channels[0], 3, dtype=dtype, name="conv_in")(sample)


def encode(config: UNetConfig, x: jax.Array, temb: jax.Array,
           dtype: Dtype) -> tuple[jax.Array, tuple[jax.Array, ...]]:
  """Down blocks and mid block on conv_in's output x [B, H, W, C0] -> (mid-block output [B, H/f, W/f, C_last],
  skips: x, then every down-block output, each [B, h, w, C])."""
  skips = [x]
  last = len(config.block_out_channels) - 1
  for i, (channels, kind) in enumerate(zip(config.block_out_channels, config.down_block_types)):
    x, block_skips = DownBlock2D(config, channels, kind == "AttnDownBlock2D", i < last, i in config.fdp_levels,
                                 dtype, name=f"down_blocks_{i}")(x, temb)
    skips.extend(block_skips)
  return MidBlock2D(config, last in config.fdp_levels, dtype, name="mid_block")(x, temb), tuple(skips)


class UNet(nn.Module):
  """The denoiser: (sample [B, H, W, in_channels], timesteps [B]) -> [B, H, W, out_channels] in `dtype`.

  H and W must be multiples of `config.size_multiple` (a clear error says so otherwise). `class_labels` int [B]
  is required when config.num_class_embeds is set. `down_block_additional_residuals` (one per skip, shaped like
  the skips) and `mid_block_additional_residual` come from a ControlNet.
  """

  config: UNetConfig
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, sample: jax.Array, timesteps: jax.Array, class_labels: jax.Array | None = None,
               down_block_additional_residuals: Sequence[jax.Array] | None = None,
               mid_block_additional_residual: jax.Array | None = None) -> jax.Array:
    config = self.config
    config.check_image_size(*sample.shape[1:3])
    temb = embed_time_and_class(config, timesteps, class_labels, self.dtype)
    x, skips = encode(config, conv_in(config, sample, self.dtype), temb, self.dtype)
    if down_block_additional_residuals is not None:
      if len(down_block_additional_residuals) != len(skips):
        raise ValueError(f"Got {len(down_block_additional_residuals)} down-block residuals for {len(skips)} skips; "
                         "pass one per skip, as the ControlNet of this U-Net config returns.")
      skips = tuple(s + r.astype(s.dtype) for s, r in zip(skips, down_block_additional_residuals))
    if mid_block_additional_residual is not None:
      x = x + mid_block_additional_residual.astype(x.dtype)

    per_block = config.layers_per_block + 1
    channels = tuple(reversed(config.block_out_channels))
    last = len(channels) - 1
    for i, (out_channels, kind) in enumerate(zip(channels, config.up_block_types)):
      block_skips, skips = skips[-per_block:], skips[:-per_block]
      x = UpBlock2D(config, out_channels, kind == "AttnUpBlock2D", i < last, last - i in config.fdp_levels,
                    self.dtype, name=f"up_blocks_{i}")(x, block_skips, temb)
    x = nn.silu(_group_norm(config, self.dtype, "conv_norm_out")(x))
    return conv2d(config.out_channels, 3, dtype=self.dtype, name="conv_out")(x)
