"""CAR's EDSR upscaler, as the official `EDSR/edsr.py` and `EDSR/common.py` (see the specs).

[B, 3, h, w] -> [B, 3, h*scale, w*scale].
"""

from __future__ import annotations

import torch
from torch import nn

RGB_MEAN = (0.4488, 0.4371, 0.4040)


class MeanShift(nn.Conv2d):
  """Fixed 1x1 conv adding sign * rgb_range * RGB mean (std 1)."""

  def __init__(self, rgb_range: float, sign: int = -1):
    super().__init__(3, 3, kernel_size=1)
    self.weight.data = torch.eye(3).view(3, 3, 1, 1)
    self.bias.data = sign * rgb_range * torch.tensor(RGB_MEAN)
    for p in self.parameters():
      p.requires_grad = False


def default_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
  return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class ResBlock(nn.Module):
  """x + res_scale * conv(ReLU(conv(x)))."""

  def __init__(self, n_feats: int, kernel_size: int, res_scale: float = 1.0):
    super().__init__()
    self.body = nn.Sequential(default_conv(n_feats, n_feats, kernel_size), nn.ReLU(True),
                              default_conv(n_feats, n_feats, kernel_size))
    self.res_scale = res_scale

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.body(x).mul(self.res_scale) + x


class Upsampler(nn.Sequential):
  """log2(scale) x [conv n_feats -> 4 n_feats, pixel-shuffle 2]."""

  def __init__(self, scale: int, n_feats: int):
    layers = []
    for _ in range(scale.bit_length() - 1):
      layers += [default_conv(n_feats, 4 * n_feats, 3), nn.PixelShuffle(2)]
    super().__init__(*layers)


class EDSR(nn.Module):
  def __init__(self, n_resblocks: int = 32, n_feats: int = 256, scale: int = 4, rgb_range: float = 1.0,
               n_colors: int = 3, res_scale: float = 0.1):
    super().__init__()
    self.sub_mean = MeanShift(rgb_range)
    self.add_mean = MeanShift(rgb_range, sign=1)
    self.head = nn.Sequential(default_conv(n_colors, n_feats, 3))
    body = [ResBlock(n_feats, 3, res_scale=res_scale) for _ in range(n_resblocks)]
    self.body = nn.Sequential(*body, default_conv(n_feats, n_feats, 3))
    self.tail = nn.Sequential(Upsampler(scale, n_feats), default_conv(n_feats, n_colors, 3))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.head(self.sub_mean(x))
    return self.add_mean(self.tail(self.body(x) + x))
