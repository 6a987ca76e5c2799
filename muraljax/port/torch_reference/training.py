"""The reference nets of a muraljax config with its task's loss, and a train step as muraljax's: what the PyTorch
comparison benchmarks time and check against the JAX trainer."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from muraljax.port.torch_reference import car, edsr, hinet
from muraljax.port.torch_reference.losses import car_loss, psnr_loss
from muraljax.port.torch_reference.resample import quantize, resample

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # loss(damaged, clean), both [B, 3, H, W]
Step = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]  # step(damaged, clean) -> metrics


def hinet_for(model_config) -> hinet.HINet:
  """The reference HINet for a muraljax HINet model config (HIN levels >= depth are ignored, as muraljax)."""
  levels = sorted(i for i in model_config.hin_levels if i < model_config.depth) or [model_config.depth]
  if levels != list(range(levels[0], levels[-1] + 1)):
    raise ValueError(f"The reference HINet takes a contiguous range of HIN levels, got {levels}.")
  return hinet.HINet(wf=model_config.wf, depth=model_config.depth, relu_slope=model_config.relu_slope,
                     hin_position_left=levels[0], hin_position_right=levels[-1])


def model_and_loss(config) -> tuple[torch.nn.Module, Loss]:
  """The reference net(s) for `config` as one nn.Module, and the task's loss(damaged, clean) on NCHW tensors."""
  if config.task == "hinet":
    model = hinet_for(config.model)
    weight = config.loss.psnr_weight
    return model, lambda damaged, clean: sum(psnr_loss(out, clean, weight) for out in model(damaged))
  if config.task != "arin":
    raise ValueError(f"No PyTorch reference for task {config.task!r}; compare 'hinet' or 'arin'.")
  s, phase = config.model.car.scale, config.arin.phase
  model = torch.nn.ModuleDict({
      "resampler": car.DSN(3 * s + 1, scale=s),
      "upscaler": edsr.EDSR(config.model.car.n_resblocks, config.model.car.n_feats, scale=s),
      "hinet": hinet_for(config.model.hinet)})
  for name in ("resampler", "upscaler") if phase == "hinet" else ("hinet",) if phase == "car" else ():
    model[name].requires_grad_(False)

  def loss(damaged, clean):  # As muraljax.tasks.arin.ARINTask.loss.
    kernels, tanh_h, tanh_v = model["resampler"](damaged)
    offsets_h, offsets_v = s * tanh_h, s * tanh_v
    restored = model["upscaler"](quantize(resample(damaged, kernels, offsets_h, offsets_v, s)))
    car_part = car_loss(restored, clean, kernels, offsets_h, offsets_v, s, config.loss.car)
    if phase == "car":
      return car_part
    hinet_input = restored.clamp(0, 1)
    if phase == "hinet":
      hinet_input = hinet_input.detach()
    weight = config.loss.hinet.psnr_weight
    hinet_part = sum(psnr_loss(out, clean, weight) for out in model["hinet"](hinet_input))
    if phase == "hinet":
      return hinet_part
    return config.loss.car_weight * car_part + config.loss.hinet_weight * hinet_part

  return model, loss


def learning_rate(optimizer, num_steps: int, step: int) -> float:
  """muraljax.train.state.learning_rate_schedule (linear warm-up, then cosine decay) at `step`."""
  warmup = optimizer.warmup_steps
  if step < warmup:
    return optimizer.learning_rate * step / warmup
  decay = max(num_steps, warmup + 1) - warmup
  cosine = 0.5 * (1 + math.cos(math.pi * min(step - warmup, decay) / decay))
  return optimizer.end_learning_rate + (optimizer.learning_rate - optimizer.end_learning_rate) * cosine


def train_step(config, model: torch.nn.Module, loss_fn: Loss) -> Step:
  """step(damaged, clean) -> metrics, as the muraljax trainer's step: clip, Adam(W), norms."""
  opt = config.optimizer
  params = [p for p in model.parameters() if p.requires_grad]
  adam = torch.optim.AdamW if opt.weight_decay else torch.optim.Adam
  optimizer = adam(params, lr=opt.learning_rate, betas=(opt.b1, opt.b2), eps=opt.eps, weight_decay=opt.weight_decay)
  count = 0

  def step(damaged, clean) -> dict[str, float]:
    nonlocal count
    for group in optimizer.param_groups:
      group["lr"] = learning_rate(opt, config.train.num_steps, count)
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(damaged, clean)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, opt.grad_clip_norm if opt.grad_clip_norm > 0 else math.inf)
    optimizer.step()
    count += 1
    with torch.no_grad():
      param_norm = torch.stack([p.norm() for p in model.parameters()]).norm()
    return {"loss": loss.item(), "grad_norm": grad_norm.item(), "param_norm": param_norm.item()}

  return step
