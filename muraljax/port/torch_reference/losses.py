"""The tasks' training losses on NCHW tensors: HINet's PSNR loss and CAR's L1 + total-variation + offset loss."""

from __future__ import annotations

import math

import torch


def psnr_loss(pred: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
  """muraljax.tasks.hinet.psnr_loss: pred, target [B, C, H, W] -> scalar."""
  mse = (pred - target).square().mean(dim=(1, 2, 3))
  return weight * (10.0 / math.log(10.0)) * (mse + 1e-8).log().mean()


def car_loss(restored: torch.Tensor, clean: torch.Tensor, kernels: torch.Tensor, offsets_h: torch.Tensor,
             offsets_v: torch.Tensor, scale: int, weights) -> torch.Tensor:
  """muraljax.tasks.car_loss.car_loss: restored, clean [B, C, H, W]; kernels and offsets (HR pixels)
  [B, k*k, h, w]; `weights` the config's loss.car section -> scalar."""
  offsets_h, offsets_v = offsets_h / scale, offsets_v / scale
  l1 = (restored - clean).abs().mean()
  along_w = (offsets_v[..., 1:] - offsets_v[..., :-1]).abs() * kernels[..., :-1]
  along_h = (offsets_h[:, :, 1:] - offsets_h[:, :, :-1]).abs() * kernels[:, :, :-1]
  tv = (along_w.sum() + along_h.sum()) / kernels.shape[0]
  b, taps, h, w = offsets_h.shape
  k = math.isqrt(taps)
  tap = torch.arange(taps, dtype=torch.float32)
  y, x = tap.div(k, rounding_mode="floor"), tap % k
  distance = (((x - k / 2) ** 2 + (y - k / 2) ** 2).sqrt() / k).view(1, taps, 1, 1)
  squared = offsets_h**2 + offsets_v**2
  nonzero = squared > 0
  length = torch.where(nonzero, torch.where(nonzero, squared, torch.ones_like(squared)).sqrt(), 0.0)
  magnitude = (length * distance).sum() / (b * h * w)
  return weights.l1_weight * l1 + weights.tv_weight * tv + weights.offset_weight * magnitude
