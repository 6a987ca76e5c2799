"""Reading a model's architecture off its checkpoint: which official variant a state dict was saved from.

Each function takes a state dict (without wrappers or `module.` prefix) that holds its family's signature tensor
and returns the Flax module that fits it, with a note per architecture field saying how it was found.
"""

from __future__ import annotations

import dataclasses
import math
import re

import flax.linen as nn

from muraljax.models.car import KernelGenerationNet
from muraljax.models.edsr import EDSR, UPSCALES
from muraljax.models.hinet import HINet
from muraljax.models.resample import SCALES
from muraljax.port.errors import PortError
from muraljax.port.reading import StateDict


@dataclasses.dataclass(frozen=True)
class Inferred:
  """The module a checkpoint fits, and {field: 'value (evidence)'} for each architecture field."""

  module: nn.Module
  notes: dict[str, str]


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
