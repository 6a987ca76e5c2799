"""CAR's resampler net, the official `DSN` of sunwj/CAR `modules.py` (see the specs).

[B, 3, H, W] (H, W multiples of 8) -> (kernels, offsets_h, offsets_v), each [B, k*k, H/s, W/s]; the offsets are
the tanh outputs, in units of `offset_unit` = s (the official CUDA op multiplies them).
"""

from __future__ import annotations

import torch
from torch import nn

from muraljax.port.torch_reference.edsr import MeanShift


class DownsampleBlock(nn.Module):
  """Pixel-unshuffle by `scale`, then a conv: [B, C, H, W] -> [B, out, H/scale, W/scale]."""

  def __init__(self, scale: int, input_channels: int, output_channels: int, ksize: int = 1):
    super().__init__()
    self.downsample = nn.Sequential(
        nn.PixelUnshuffle(scale),
        nn.Conv2d(input_channels * scale**2, output_channels, kernel_size=ksize, stride=1, padding=ksize // 2))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.downsample(x)


class UpsampleBlock(nn.Module):
  """A conv, then pixel-shuffle by `scale`: [B, C, H, W] -> [B, out, H*scale, W*scale]."""

  def __init__(self, scale: int, input_channels: int, output_channels: int, ksize: int = 1):
    super().__init__()
    self.upsample = nn.Sequential(
        nn.Conv2d(input_channels, output_channels * scale**2, kernel_size=ksize, stride=1, padding=ksize // 2),
        nn.PixelShuffle(scale))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.upsample(x)


class ResidualBlock(nn.Module):
  """x + (reflect-pad 1, 3x3, LeakyReLU 0.2, reflect-pad 1, 3x3)."""

  def __init__(self, input_channels: int, channels: int):
    super().__init__()
    self.transform = nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(input_channels, channels, 3), nn.LeakyReLU(0.2),
        nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return x + self.transform(x)


def _trunk(scale: int) -> nn.Sequential:
  layers = []
  for _ in range(3):
    layers += [nn.ReflectionPad2d(1), nn.Conv2d(256, 256, 3), nn.ReLU()]
  return nn.Sequential(*layers, UpsampleBlock(8 // scale, 256, 256), nn.ReflectionPad2d(1),
                       nn.Conv2d(256, 256, 3), nn.ReLU())


def _head(k_size: int, *output: nn.Module) -> nn.Sequential:
  return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(256, 256, 3), nn.ReLU(), nn.ReflectionPad2d(1),
                       nn.Conv2d(256, k_size**2, 3), *output)


class DSN(nn.Module):
  """The kernel generation net; k_size = 3 * scale + 1."""

  def __init__(self, k_size: int, input_channels: int = 3, scale: int = 4):
    super().__init__()
    self.k_size = k_size
    self.sub_mean = MeanShift(1.0, sign=-1)
    self.ds_1 = nn.Sequential(nn.ReflectionPad2d(2), nn.Conv2d(input_channels, 64, 5), nn.LeakyReLU(0.2))
    self.ds_2 = DownsampleBlock(2, 64, 128, ksize=1)
    self.ds_4 = DownsampleBlock(2, 128, 128, ksize=1)
    self.res_4 = nn.Sequential(*[ResidualBlock(128, 128) for _ in range(5)])
    self.ds_8 = DownsampleBlock(2, 128, 256)
    self.kernels_trunk = _trunk(scale)
    self.kernels_weight = _head(k_size)
    self.offsets_trunk = _trunk(scale)
    self.offsets_h_generation = _head(k_size, nn.Tanh())
    self.offsets_v_generation = _head(k_size, nn.Tanh())

  def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = self.ds_4(self.ds_2(self.ds_1(self.sub_mean(x))))
    x = self.ds_8(x + self.res_4(x))
    k_weight = torch.clamp(self.kernels_weight(self.kernels_trunk(x)), min=1e-6, max=1)
    kernels = k_weight / torch.sum(k_weight, dim=1, keepdim=True).clamp(min=1e-6)
    offsets = self.offsets_trunk(x)
    return kernels, self.offsets_h_generation(offsets), self.offsets_v_generation(offsets)
