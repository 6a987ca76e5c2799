"""PyTorch reference implementations of the official models, written from the specs, for the porting parity tests
and the PyTorch comparison benchmarks (it needs the `port` extra: torch; nothing in the core imports it).

Module trees (hence state-dict names and order) follow the official code: HINet (megvii-model/HINet
`hinet_arch.py`), CAR's resampler net `DSN` (sunwj/CAR `modules.py`) and its EDSR upscaler (`EDSR/edsr.py`).
`resample` holds CAR's resampling op and quantiser, `losses` the tasks' losses and `training` the reference train
step, all as muraljax computes them. NCHW, as PyTorch. Also the helpers the parity tests share.
"""

from __future__ import annotations

import numpy as np
import torch


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
  """Overwrites every parameter in place with seeded noise, none trivially 0 or 1; returns `module`.

  Kernels get fan-in-scaled normal noise (activations stay O(1) through deep nets), 1-D weights (norm scales)
  1 + 0.1 N(0, 1), biases 0.1 N(0, 1); the fixed mean shifts are perturbed too.
  """
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, param in module.named_parameters():
      noise = torch.randn(param.shape, generator=generator)
      if param.ndim > 1:
        param.copy_(noise / np.sqrt(param[0].numel()))
      else:
        param.copy_(0.1 * noise + (name.endswith("weight")))
  return module


def nchw(image: np.ndarray) -> torch.Tensor:
  """[B, H, W, C] NumPy -> [B, C, H, W] torch."""
  return torch.from_numpy(np.ascontiguousarray(np.transpose(image, (0, 3, 1, 2))))


def nhwc(tensor: torch.Tensor) -> np.ndarray:
  """[B, C, H, W] torch -> [B, H, W, C] NumPy."""
  return tensor.detach().permute(0, 2, 3, 1).numpy()
