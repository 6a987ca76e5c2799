"""DiffuMural's scales: one U-Net (and ControlNet) per image side in `config.model.scales`, and the crops they fit.

`model.scales` lists the sides the scales train at, coarse to fine, each double the previous (256, 512, 1024);
the training crop `data.patch_size` is the finest side, and the coarser inputs are that crop shrunk by the
factors k_s = finest / side_s (4, 2, 1). The coarsest scale's U-Net is the one `model.block_out_channels`,
`down_block_types`, `up_block_types` and `fdp_levels` describe. Each finer scale's U-Net prepends one level
(ResNet blocks only) of half the first level's width (at least `norm_num_groups`) and shifts `fdp_levels` by
one, so every scale's lower levels, attention and FDP blocks work on feature maps of the same sizes: for the
paper's 128-128-256-256-512-512 at 256 px, the 512 px U-Net is 64-128-128-256-256-512-512 and the 1024 px one
32-64-128-128-256-256-512-512, attention at 16 x 16 in all three; each finer U-Net costs one more full-size
level rather than 4x (U-Net + ControlNet forward: 0.65, 1.10, 1.56 TFLOP at 256, 512, 1024 px).

Every U-Net halves its input `levels - 1` times, so image sides must be multiples of `size_multiple` = the
coarsest U-Net's multiple times 2^(S - 1) (the same for every scale: the finer U-Nets have one more level per
halving of k_s). `check_sides` says which crops and scales fit.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from muraljax.models.controlnet import ControlNet
from muraljax.models.unet import UNet, UNetConfig


def scale_key(side: int) -> str:
  """The params entry of the scale of this side: 'scale_<side>'."""
  return f"scale_{side}"


@dataclasses.dataclass(frozen=True)
class Scale:
  """One scale: its training side, its shrink factor from the finest image, its params' key and networks."""

  side: int
  factor: int
  unet: UNet
  controlnet: ControlNet
  loss_weight: float

  @property
  def key(self) -> str:
    return scale_key(self.side)

  @property
  def unet_config(self) -> UNetConfig:
    return self.unet.config


def unet_config(config: ml_collections.ConfigDict, num_classes: int, finer: int = 0) -> UNetConfig:
  """The U-Net `finer` scales above the coarsest (see the module docstring)."""
  m = config.model
  channels, down, up = tuple(m.block_out_channels), tuple(m.down_block_types), tuple(m.up_block_types)
  for _ in range(finer):
    channels = (max(channels[0] // 2, m.norm_num_groups),) + channels
    down, up = ("DownBlock2D",) + down, up + ("UpBlock2D",)
  return UNetConfig(
      block_out_channels=channels, down_block_types=down, up_block_types=up, layers_per_block=m.layers_per_block,
      attention_head_dim=m.attention_head_dim, norm_num_groups=m.norm_num_groups, norm_eps=m.norm_eps,
      flip_sin_to_cos=m.flip_sin_to_cos, freq_shift=m.freq_shift, num_class_embeds=num_classes, out_channels=3,
      fdp_levels=tuple(level + finer for level in m.fdp_levels), remat=config.train.remat)


def check_sides(scales: tuple[int, ...], patch_size: int, eval_size: int | None, coarsest_multiple: int) -> None:
  """Raises ValueError naming valid sizes unless `scales` double from one to the next, the coarsest is a
  multiple of its U-Net's `coarsest_multiple`, the training crop is the finest side and the eval crops (None:
  no evaluation) fit."""
  if not scales or any(side < 1 for side in scales):
    raise ValueError(f"model.scales={scales} must list at least one positive image side, coarse to fine, e.g. "
                     "(256, 512, 1024).")
  count = len(scales)
  multiple = coarsest_multiple * 2 ** (count - 1)
  valid = _chain(max(scales[-1] - scales[-1] % multiple, multiple), count)
  if any(fine != 2 * coarse for coarse, fine in zip(scales, scales[1:])):
    raise ValueError(f"model.scales={scales} must double from each scale to the next, coarse to fine, e.g. "
                     f"{valid}.")
  if scales[0] % coarsest_multiple:
    raise ValueError(f"model.scales={scales}: the coarsest side must be a multiple of {coarsest_multiple} (its "
                     f"U-Net halves it {coarsest_multiple.bit_length() - 1} times); use e.g. {valid} or "
                     f"{_chain(valid[-1] + multiple, count)}.")
  if patch_size != scales[-1]:
    raise ValueError(f"data.patch_size={patch_size} does not fit model.scales={scales}: the training crop is the "
                     f"finest scale, so crop {scales[-1]} px, or make model.scales the doubling chain that ends at "
                     f"a crop that is a multiple of {multiple} ({_nearest(patch_size, multiple)}).")
  if eval_size is not None and eval_size % multiple:
    raise ValueError(f"data.eval_size={eval_size} does not fit model.scales={scales}: evaluation crops must be "
                     f"multiples of {multiple}; use {_nearest(eval_size, multiple)}.")


def _nearest(side: int, multiple: int) -> str:
  """The multiples of `multiple` nearest `side`, for error messages."""
  lower = side - side % multiple
  return str(side) if not side % multiple else f"{lower} or {lower + multiple}" if lower else str(multiple)


def _chain(finest: int, count: int) -> tuple[int, ...]:
  """The `count` sides that double up to `finest`."""
  return tuple(finest >> (count - 1 - s) for s in range(count))


def build(config: ml_collections.ConfigDict, num_classes: int, dtype) -> tuple[Scale, ...]:
  """The scales of `config.model.scales`, coarse to fine, after `check_sides` and a check of the per-scale
  loss weights."""
  scales = tuple(config.model.scales)
  weights = tuple(config.diffusion.scale_loss_weights)
  if len(weights) != len(scales) or any(w < 0 for w in weights):
    raise ValueError(f"diffusion.scale_loss_weights={weights} must give one non-negative weight per scale of "
                     f"model.scales={scales}, coarse to fine.")
  configs = [unet_config(config, num_classes, finer) for finer in range(len(scales))]
  evaluates = config.train.eval_every and config.data.eval_images
  check_sides(scales, config.data.patch_size, config.data.eval_size if evaluates else None,
              configs[0].size_multiple)
  conditioning = tuple(config.model.controlnet_conditioning_channels)
  return tuple(Scale(side=side, factor=scales[-1] // side, unet=UNet(unet, dtype),
                     controlnet=ControlNet(unet, conditioning, dtype), loss_weight=weight)
               for side, unet, weight in zip(scales, configs, weights))
