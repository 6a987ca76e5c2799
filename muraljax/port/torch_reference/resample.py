"""CAR's downscaling path between its resampler net and its upscaler, in PyTorch and differentiable: the resampling op
with the official CUDA kernel's semantics (muraljax.models.resample.resample) and the 8-bit quantiser with its
soft-rounding gradient (muraljax.models.car.quantize)."""

from __future__ import annotations

import math

import torch


def resample(image: torch.Tensor, kernels: torch.Tensor, offsets_h: torch.Tensor, offsets_v: torch.Tensor,
             scale: int) -> torch.Tensor:
  """image [B, C, H, W]; kernels, offsets (HR pixels) [B, k*k, H/s, W/s], as `DSN` lays them out -> [B, C, H/s, W/s].

  All taps at once: four gathers of [B, C, k*k*h*w] from the flattened reflect-padded image.
  """
  k = 3 * scale + 1
  padded = torch.nn.functional.pad(image, (k // 2,) * 4, mode="reflect")
  b, c, padded_h, padded_w = padded.shape
  _, taps, h, w = kernels.shape
  tap = torch.arange(taps).view(1, taps, 1, 1)

  def corners(offsets, lr_index, tap_index, size):  # As muraljax.models.resample.axis_corners.
    whole = lr_index * scale + tap_index + (scale - 2) // 2
    shifted = offsets + 0.5
    floor = shifted.floor()
    low = (whole + floor.long()).clamp(0, size - 1)
    return low, (low + 1).clamp(max=size - 1), shifted - floor

  top, bottom, beta = corners(offsets_v, torch.arange(h).view(1, 1, h, 1), tap // k, padded_h)
  left, right, alpha = corners(offsets_h, torch.arange(w).view(1, 1, 1, w), tap % k, padded_w)
  planes = padded.reshape(b, c, padded_h * padded_w)

  def sample(y, x):
    index = (y * padded_w + x).view(b, 1, -1).expand(b, c, -1)
    return planes.gather(2, index).view(b, c, taps, h, w)

  value = ((1 - alpha) * (1 - beta)).unsqueeze(1) * sample(top, left)
  value = value + (alpha * (1 - beta)).unsqueeze(1) * sample(top, right)
  value = value + ((1 - alpha) * beta).unsqueeze(1) * sample(bottom, left)
  value = value + (alpha * beta).unsqueeze(1) * sample(bottom, right)
  return (kernels.unsqueeze(1) * value).sum(2)


class _Quantize(torch.autograd.Function):
  """8-bit rounding forward; the gradient of the soft-rounding surrogate backward."""

  @staticmethod
  def forward(ctx, x):
    ctx.save_for_backward(x)
    return (x.clamp(0, 1) * 255).round() / 255

  @staticmethod
  def backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return grad * (1 - torch.cos(2 * math.pi * 255 * x))


def quantize(x: torch.Tensor) -> torch.Tensor:
  """x [B, C, H, W] rounded to 8 bits, with the soft-rounding surrogate gradient."""
  return _Quantize.apply(x)
