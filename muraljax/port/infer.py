"""Reading a model's architecture off its checkpoint: which official variant a state dict was saved from.

Each function takes a state dict (without wrappers or `module.` prefix) that holds its family's signature tensor
(and, for diffusers models, the folder's config.json) and returns the Flax module that fits it, with a note per
architecture field saying how it was found.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from muraljax.models.car import KernelGenerationNet
from muraljax.models.edsr import EDSR, UPSCALES
from muraljax.models.hinet import HINet
from muraljax.models.resample import SCALES
from muraljax.models.unet import UNet, UNetConfig
from muraljax.port.errors import PortError
from muraljax.port.reading import StateDict


@dataclasses.dataclass(frozen=True)
class Inferred:
  """The module a checkpoint fits, {field: 'value (evidence)'}, and its init input shapes when the family's
  defaults do not fit (a U-Net's input channels are no module field)."""

  module: nn.Module
  notes: dict[str, str]
  inputs: tuple[jax.ShapeDtypeStruct, ...] | None = None


def _indices(tensors: StateDict, pattern: str) -> list[int]:
  """Sorted distinct integers captured by `pattern` (one group, matched at the start) over the tensor names."""
  return sorted({int(m.group(1)) for name in tensors if (m := re.match(pattern, name))})


def hinet(tensors: StateDict) -> Inferred:
  """Width and input channels from conv_01, depth from the encoder blocks, HIN levels from their norms."""
  wf, in_chn = tensors["conv_01.weight"].shape[:2]
  levels = _indices(tensors, r"down_path_1\.(\d+)\.")
  hin_levels = tuple(i for i in levels if f"down_path_1.{i}.norm.weight" in tensors)
  module = HINet(in_chn=in_chn, wf=wf, depth=len(levels), hin_levels=hin_levels)
  return Inferred(module, {
      "in_chn": f"{in_chn} (conv_01.weight input channels)",
      "wf": f"{wf} (conv_01.weight output channels)",
      "depth": f"{len(levels)} (encoder blocks down_path_1.*)",
      "hin_levels": f"{hin_levels} (encoder blocks with a norm)",
      "relu_slope": f"{module.relu_slope} (not stored in checkpoints; the official value)",
  })


def car_resampler(tensors: StateDict) -> Inferred:
  """The scale from the number of kernel taps, (3s + 1)^2."""
  taps = tensors["kernels_weight.4.weight"].shape[0]
  size = math.isqrt(taps)
  scale = (size - 1) // 3
  if size * size != taps or 3 * scale + 1 != size or scale not in SCALES:
    raise PortError(f"kernels_weight.4.weight has {taps} output channels, but CAR's resampler predicts "
                    "(3s + 1)^2 kernel taps (49 at x2, 169 at x4); port an official kgn.pth.")
  return Inferred(KernelGenerationNet(scale=scale),
                  {"scale": f"{scale} (kernels_weight.4.weight has {taps} = {size}^2 kernel taps)"})


def car_upscaler(tensors: StateDict) -> Inferred:
  """Width from the head conv, depth from the residual blocks, scale from the upsampling convs."""
  n_feats = tensors["head.0.weight"].shape[0]
  n_resblocks = len(_indices(tensors, r"body\.(\d+)\.body\.0\.weight$"))
  upsamplings = len(_indices(tensors, r"tail\.0\.(\d+)\.weight$"))
  scale = 2**upsamplings
  if scale not in UPSCALES:
    raise PortError(f"The checkpoint has {upsamplings} upsampling convs (tail.0.*), but CAR's EDSR upscales by "
                    f"{' or '.join(map(str, UPSCALES))} (1 or 2 of them); port an official usn.pth.")
  return Inferred(EDSR(scale=scale, n_resblocks=n_resblocks, n_feats=n_feats), {
      "scale": f"{scale} ({upsamplings} upsampling convs tail.0.*)",
      "n_resblocks": f"{n_resblocks} (residual blocks body.*.body.0)",
      "n_feats": f"{n_feats} (head.0.weight output channels)",
  })


# diffusers UNet2DModel settings that muraljax's U-Net implements at these values only.
UNET_FIXED_SETTINGS = {
    "center_input_sample": False, "time_embedding_type": "positional", "time_embedding_dim": None,
    "mid_block_type": "UNetMidBlock2D", "mid_block_scale_factor": 1, "downsample_padding": 1,
    "downsample_type": "conv", "upsample_type": "conv", "act_fn": "silu", "attn_norm_num_groups": None,
    "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None,
}
# UNet2DModel fields no tensor shape reveals, with diffusers' defaults (used when there is no config.json).
UNET_CONFIG_ONLY_FIELDS = {"attention_head_dim": 8, "norm_num_groups": 32, "norm_eps": 1e-5,
                           "flip_sin_to_cos": True, "freq_shift": 0}


def unet_inputs(config: UNetConfig, in_channels: int) -> tuple[jax.ShapeDtypeStruct, ...]:
  """Init inputs of a UNet: sample [1, m, m, in_channels], timesteps [1] (and class labels [1])."""
  side = config.size_multiple
  inputs = (jax.ShapeDtypeStruct((1, side, side, in_channels), jnp.float32), jax.ShapeDtypeStruct((1,), jnp.int32))
  return inputs + ((jax.ShapeDtypeStruct((1,), jnp.int32),) if config.num_class_embeds else ())


def unet(tensors: StateDict, config: dict[str, Any] | None) -> Inferred:
  """The block layout from the tensors; what no tensor shows from the folder's config.json (or diffusers'
  defaults). Settings of config.json that muraljax's U-Net does not implement are refused, all listed."""
  config = config or {}
  if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
    raise PortError(f"The model folder holds a {config['_class_name']}, not a UNet2DModel; port a pixel-space "
                    "diffusers UNet2DModel.")
  unsupported = [f"{k}={config[k]!r} (supported: {v!r})" for k, v in UNET_FIXED_SETTINGS.items()
                 if k in config and config[k] != v]
  if unsupported:
    raise PortError(f"The UNet2DModel's config.json sets {', '.join(unsupported)}, which muraljax's U-Net does "
                    "not implement; port a UNet2DModel that uses the supported values.")
  levels = _indices(tensors, r"down_blocks\.(\d+)\.")
  has_attention = lambda blocks, i: any(name.startswith(f"{blocks}.{i}.attentions.") for name in tensors)
  fields = dict(
      block_out_channels=tuple(tensors[f"down_blocks.{i}.resnets.0.conv1.weight"].shape[0] for i in levels),
      down_block_types=tuple("AttnDownBlock2D" if has_attention("down_blocks", i) else "DownBlock2D"
                             for i in levels),
      up_block_types=tuple("AttnUpBlock2D" if has_attention("up_blocks", i) else "UpBlock2D"
                           for i in _indices(tensors, r"up_blocks\.(\d+)\.")),
      layers_per_block=len(_indices(tensors, r"down_blocks\.0\.resnets\.(\d+)\.")),
      num_class_embeds=tensors["class_embedding.weight"].shape[0] if "class_embedding.weight" in tensors else None,
      out_channels=tensors["conv_out.weight"].shape[0],
  )
  in_channels = tensors["conv_in.weight"].shape[1]
  notes = {
      "in_channels": f"{in_channels} (conv_in.weight input channels)",
      "block_out_channels": f"{fields['block_out_channels']} (down_blocks.*.resnets.0.conv1 output channels)",
      "down_block_types": f"{fields['down_block_types']} (down blocks with attentions.*)",
      "up_block_types": f"{fields['up_block_types']} (up blocks with attentions.*)",
      "layers_per_block": f"{fields['layers_per_block']} (down_blocks.0.resnets.*)",
      "num_class_embeds": f"{fields['num_class_embeds']} (class_embedding.weight rows)",
      "out_channels": f"{fields['out_channels']} (conv_out.weight output channels)",
  }
  for field, default in UNET_CONFIG_ONLY_FIELDS.items():
    fields[field] = config.get(field, default)
    source = "config.json" if field in config else "no config.json: diffusers' default"
    notes[field] = f"{fields[field]!r} ({source})"
  try:
    unet_config = UNetConfig(**fields)
  except ValueError as e:
    raise PortError(f"The checkpoint's U-Net does not fit muraljax's ({e}); pass the diffusers model folder "
                    "with its config.json as --src.") from None
  return Inferred(UNet(unet_config), notes, unet_inputs(unet_config, in_channels))
