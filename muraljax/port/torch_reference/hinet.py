"""HINet as the official `basicsr/models/archs/hinet_arch.py` (see the specs): [B, 3, H, W] -> [out_1, out_2].

H and W must be multiples of 2^(depth - 1); the reference does no padding.
"""

from __future__ import annotations

import torch
from torch import nn


class UNetConvBlock(nn.Module):
  """conv_1 (+ HIN on the first half) -> LeakyReLU -> conv_2 -> LeakyReLU, + 1x1 identity, + CSFF; 4x4 down."""

  def __init__(self, in_size: int, out_size: int, downsample: bool, relu_slope: float, use_csff: bool = False,
               use_hin: bool = False):
    super().__init__()
    self.downsample = downsample
    self.identity = nn.Conv2d(in_size, out_size, 1, 1, 0)
    self.use_csff = use_csff
    self.conv_1 = nn.Conv2d(in_size, out_size, kernel_size=3, padding=1, bias=True)
    self.relu_1 = nn.LeakyReLU(relu_slope)
    self.conv_2 = nn.Conv2d(out_size, out_size, kernel_size=3, padding=1, bias=True)
    self.relu_2 = nn.LeakyReLU(relu_slope)
    if downsample and use_csff:
      self.csff_enc = nn.Conv2d(out_size, out_size, 3, 1, 1)
      self.csff_dec = nn.Conv2d(out_size, out_size, 3, 1, 1)
    if use_hin:
      self.norm = nn.InstanceNorm2d(out_size // 2, affine=True)
    self.use_hin = use_hin
    if downsample:
      self.downsample = nn.Conv2d(out_size, out_size, kernel_size=4, stride=2, padding=1, bias=False)

  def forward(self, x: torch.Tensor, enc: torch.Tensor | None = None, dec: torch.Tensor | None = None):
    out = self.conv_1(x)
    if self.use_hin:
      out_1, out_2 = torch.chunk(out, 2, dim=1)
      out = torch.cat([self.norm(out_1), out_2], dim=1)
    out = self.relu_1(out)
    out = self.relu_2(self.conv_2(out))
    out = out + self.identity(x)
    if enc is not None and dec is not None:
      out = out + self.csff_enc(enc) + self.csff_dec(dec)
    if self.downsample:
      return self.downsample(out), out
    return out


class UNetUpBlock(nn.Module):
  """ConvTranspose2d(k=2, s=2), concat with the bridge, UNetConvBlock without HIN."""

  def __init__(self, in_size: int, out_size: int, relu_slope: float):
    super().__init__()
    self.up = nn.ConvTranspose2d(in_size, out_size, kernel_size=2, stride=2, bias=True)
    self.conv_block = UNetConvBlock(in_size, out_size, False, relu_slope)

  def forward(self, x: torch.Tensor, bridge: torch.Tensor) -> torch.Tensor:
    return self.conv_block(torch.cat([self.up(x), bridge], 1))


class SAM(nn.Module):
  """Supervised attention module: (features, image) -> (attended features, stage-1 image)."""

  def __init__(self, n_feat: int, in_chn: int = 3):
    super().__init__()
    self.conv1 = nn.Conv2d(n_feat, n_feat, 3, padding=1)
    self.conv2 = nn.Conv2d(n_feat, in_chn, 3, padding=1)
    self.conv3 = nn.Conv2d(in_chn, n_feat, 3, padding=1)

  def forward(self, x: torch.Tensor, x_img: torch.Tensor):
    img = self.conv2(x) + x_img
    return self.conv1(x) * torch.sigmoid(self.conv3(img)) + x, img


class HINet(nn.Module):
  """The official constructor: HIN at levels hin_position_left .. hin_position_right (inclusive)."""

  def __init__(self, in_chn: int = 3, wf: int = 64, depth: int = 5, relu_slope: float = 0.2,
               hin_position_left: int = 0, hin_position_right: int = 4):
    super().__init__()
    self.depth = depth
    self.down_path_1 = nn.ModuleList()
    self.down_path_2 = nn.ModuleList()
    self.conv_01 = nn.Conv2d(in_chn, wf, 3, 1, 1)
    self.conv_02 = nn.Conv2d(in_chn, wf, 3, 1, 1)
    prev = wf
    for i in range(depth):
      use_hin = hin_position_left <= i <= hin_position_right
      downsample = i + 1 < depth
      self.down_path_1.append(UNetConvBlock(prev, 2**i * wf, downsample, relu_slope, use_hin=use_hin))
      self.down_path_2.append(UNetConvBlock(prev, 2**i * wf, downsample, relu_slope, use_csff=downsample,
                                            use_hin=use_hin))
      prev = 2**i * wf
    self.up_path_1 = nn.ModuleList()
    self.up_path_2 = nn.ModuleList()
    self.skip_conv_1 = nn.ModuleList()
    self.skip_conv_2 = nn.ModuleList()
    for i in reversed(range(depth - 1)):
      self.up_path_1.append(UNetUpBlock(prev, 2**i * wf, relu_slope))
      self.up_path_2.append(UNetUpBlock(prev, 2**i * wf, relu_slope))
      self.skip_conv_1.append(nn.Conv2d(2**i * wf, 2**i * wf, 3, 1, 1))
      self.skip_conv_2.append(nn.Conv2d(2**i * wf, 2**i * wf, 3, 1, 1))
      prev = 2**i * wf
    self.sam12 = SAM(prev, in_chn)
    self.cat12 = nn.Conv2d(prev * 2, prev, 1, 1, 0)
    self.last = nn.Conv2d(prev, in_chn, 3, 1, 1, bias=True)

  def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
    x1 = self.conv_01(image)
    encs, decs = [], []
    for i, down in enumerate(self.down_path_1):
      if i + 1 < self.depth:
        x1, x1_up = down(x1)
        encs.append(x1_up)
      else:
        x1 = down(x1)
    for i, up in enumerate(self.up_path_1):
      x1 = up(x1, self.skip_conv_1[i](encs[-i - 1]))
      decs.append(x1)
    sam_feature, out_1 = self.sam12(x1, image)

    x2 = self.cat12(torch.cat([self.conv_02(image), sam_feature], dim=1))
    blocks = []
    for i, down in enumerate(self.down_path_2):
      if i + 1 < self.depth:
        x2, x2_up = down(x2, encs[i], decs[-i - 1])
        blocks.append(x2_up)
      else:
        x2 = down(x2)
    for i, up in enumerate(self.up_path_2):
      x2 = up(x2, self.skip_conv_2[i](blocks[-i - 1]))
    return [out_1, self.last(x2) + image]
