"""ControlNet for the pixel-space U-Net (Zhang et al. 2023), with diffusers' `ControlNetModel` parameter names.

A trainable copy of the U-Net's encoder (conv_in, time and class embedding, down blocks, mid block) whose input
is the U-Net's input plus an embedding of the condition image, and whose outputs reach the U-Net through
zero-initialised 1x1 convs, one per skip (`controlnet_down_blocks_i`) and one for the mid block
(`controlnet_mid_block`). With those zero and the condition embedding's last conv zero too, a freshly
initialised ControlNet returns exact zeros, so the conditioned U-Net starts out as the base U-Net.

The condition embedding keeps diffusers' `ControlNetConditioningEmbedding` names (conv_in, blocks.{2i, 2i+1},
conv_out, SiLU after every conv but the last) but does not downsample: the U-Net works on pixels, not latents.
Names map to diffusers with `muraljax.models.unet.torch_layout`, e.g. `controlnet_down_blocks_3/kernel` ->
`controlnet_down_blocks.3.weight`, `controlnet_cond_embedding/blocks_1/bias` ->
`controlnet_cond_embedding.blocks.1.bias`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from muraljax.models import partitioning
from muraljax.models.layers import conv2d
from muraljax.models.unet import UNetConfig, conv_in, embed_time_and_class, encode

Dtype = Any

# Top-level entries of a ControlNet param tree that are copies of the U-Net's.
SHARED_WITH_UNET = ("conv_in", "time_embedding", "class_embedding", "mid_block")


class ConditioningEmbedding(nn.Module):
  """Condition [B, H, W, C_cond] -> [B, H, W, out_channels]: 3x3 convs through `channels`, the last one zero."""

  channels: tuple[int, ...]
  out_channels: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, condition: jax.Array) -> jax.Array:
    conv = functools.partial(conv2d, kernel_size=3, dtype=self.dtype)
    x = nn.silu(conv(self.channels[0], name="conv_in")(condition))
    for i, (width, next_width) in enumerate(zip(self.channels[:-1], self.channels[1:])):
      x = nn.silu(conv(width, name=f"blocks_{2 * i}")(x))
      x = nn.silu(conv(next_width, name=f"blocks_{2 * i + 1}")(x))
    return partitioning.Conv(self.out_channels, (3, 3), padding=1, dtype=self.dtype, kernel_init=nn.initializers.zeros,
                   name="conv_out")(x)


class ControlNet(nn.Module):
  """(sample, timesteps, condition [B, H, W, C_cond], class_labels) -> (down residuals, mid residual).

  `sample` is what the U-Net gets. The residuals are shaped like the U-Net's skips and mid-block output (in
  `dtype`); pass them as its `down_block_additional_residuals` / `mid_block_additional_residual`.
  """

  unet: UNetConfig
  conditioning_channels: tuple[int, ...] = (16, 32)  # Widths of the condition embedding's convs.
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, sample: jax.Array, timesteps: jax.Array, condition: jax.Array,
               class_labels: jax.Array | None = None) -> tuple[tuple[jax.Array, ...], jax.Array]:
    config = self.unet
    config.check_image_size(*sample.shape[1:3])
    if condition.shape[:3] != sample.shape[:3]:
      raise ValueError(f"The ControlNet condition {condition.shape} and sample {sample.shape} differ in batch or "
                       "size; give the condition the sample's [B, H, W].")
    temb = embed_time_and_class(config, timesteps, class_labels, self.dtype)
    x = conv_in(config, sample, self.dtype)
    x = x + ConditioningEmbedding(self.conditioning_channels, x.shape[-1], self.dtype,
                                  name="controlnet_cond_embedding")(condition)
    x, skips = encode(config, x, temb, self.dtype)
    zero_conv = functools.partial(partitioning.Conv, kernel_size=(1, 1), dtype=self.dtype, kernel_init=nn.initializers.zeros)
    down = tuple(zero_conv(s.shape[-1], name=f"controlnet_down_blocks_{i}")(s) for i, s in enumerate(skips))
    return down, zero_conv(x.shape[-1], name="controlnet_mid_block")(x)


def copy_encoder_from_unet(controlnet_params: Mapping, unet_params: Mapping) -> dict:
  """ControlNet params whose encoder (conv_in, time/class embedding, down blocks, mid block, their FDP blocks
  included) is the U-Net's.

  The condition embedding and the zero convs are kept. Raises ValueError naming the first entry whose shapes
  differ (e.g. a ControlNet fed a different number of input channels than the U-Net).
  """
  copied = dict(controlnet_params)
  for name in controlnet_params:
    if name in SHARED_WITH_UNET or name.startswith("down_blocks_"):
      source, target = unet_params[name], controlnet_params[name]
      if jax.tree.map(jnp.shape, source) != jax.tree.map(jnp.shape, target):
        raise ValueError(f"The ControlNet's {name!r} is shaped differently from the U-Net's; build both from the "
                         "same UNetConfig and the same input channels.")
      copied[name] = source
  return copied
