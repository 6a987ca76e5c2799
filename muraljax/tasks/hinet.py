"""HINet trained to restore damaged murals: damaged image in, clean image out.

The paper's HINet is blind (no mask input) and trained with the PSNR loss on both stages. With `model.mask_input`
or `model.prefill` it is an inpainting model: it gets the damage mask, starts from a classical fill of the holes,
and only its damaged pixels are trained and restored (muraljax.models.hinet). The loss is a weighted sum (weights
in `config.loss`; 0 switches a term off):

  psnr_weight * (PSNR loss of stage 1 + PSNR loss of stage 2)     the paper's loss (`psnr_loss`)
  + hole_l1_weight * (hole L1 of stage 1 + hole L1 of stage 2)    `hole_l1`, damaged pixels weighted hole_weight
  + perceptual_weight * LPIPS(stage 2, clean)                     AlexNet LPIPS (muraljax.metrics.lpips)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections

from muraljax import config as config_lib
from muraljax.metrics import lpips
from muraljax.models import partitioning
from muraljax.models.hinet import HINet
from muraljax.tasks.base import Batch, Params, image_inputs


def psnr_loss(pred: jax.Array, target: jax.Array, weight: float) -> jax.Array:
  """HINet's PSNR loss: weight * 10/ln(10) * mean_b log(MSE_b + 1e-8), i.e. weight * (-PSNR) up to a constant."""
  mse = jnp.mean(jnp.square(pred.astype(jnp.float32) - target), axis=(1, 2, 3))
  return weight * (10.0 / math.log(10.0)) * jnp.mean(jnp.log(mse + 1e-8))


def hole_l1(pred: jax.Array, target: jax.Array, mask: jax.Array, hole_weight: float) -> jax.Array:
  """Mean absolute error over [B, H, W, C] where damaged pixels (mask [B, H, W, 1] = 1) count hole_weight times
  and intact ones once."""
  weights = 1.0 + (hole_weight - 1.0) * mask
  return jnp.mean(jnp.abs(pred.astype(jnp.float32) - target) * weights)


def perceptual_loss(lpips_params: dict, pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean LPIPS (AlexNet, whole image) of pred and target [B, H, W, 3] in [0, 1]."""
  return jnp.mean(lpips.distance(lpips_params, pred, target, jnp.ones_like(target[..., :1])))


def model_from_config(config: ml_collections.ConfigDict) -> HINet:
  return HINet(wf=config.model.wf, depth=config.model.depth, relu_slope=config.model.relu_slope,
               hin_levels=tuple(config.model.hin_levels), dtype=config_lib.compute_dtype(config.train),
               remat=config.train.remat, mask_input=config.model.get("mask_input", False),
               prefill=config.model.get("prefill", "none"), prefill_sweeps=config.model.get("prefill_sweeps", 16))


class HINetTask:
  """Both stage outputs are supervised (see the module docstring); inference uses the second stage."""

  sampled = False
  size_multiple = 1  # the model pads its input to a multiple of 2^(depth - 1) itself
  restores = True

  def __init__(self, config: ml_collections.ConfigDict):
    self.model = model_from_config(config)
    self.blind = not self.model.mask_aware
    self.loss_weight = config.loss.psnr_weight
    self.hole_l1_weight = config.loss.get("hole_l1_weight", 0.0)
    self.hole_weight = config.loss.get("hole_weight", 1.0)
    self.perceptual_weight = config.loss.get("perceptual_weight", 0.0)
    if min(self.loss_weight, self.hole_l1_weight, self.perceptual_weight) < 0 or self.hole_weight < 0:
      raise ValueError("The HINet loss weights (loss.psnr_weight, hole_l1_weight, hole_weight, perceptual_weight) "
                       "must be >= 0.")
    self.lpips_params = {"params": lpips.load_params()} if self.perceptual_weight else None

  def _apply(self, params: Params, batch: Batch) -> tuple[jax.Array, jax.Array]:
    mask = None if self.blind else batch["mask"]
    return self.model.apply({"params": params}, batch["damaged"], mask)

  def inputs(self, batch_size: int, height: int, width: int) -> dict[str, jax.ShapeDtypeStruct]:
    return image_inputs(batch_size, height, width, self.blind)

  def init(self, rng: jax.Array, batch: Batch, keep_axis_names: bool = False) -> Params:
    mask = None if self.blind else batch["mask"]
    return partitioning.maybe_unbox(self.model.init(rng, batch["damaged"], mask)["params"], keep_axis_names)

  def loss(self, params: Params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    del rng  # HINet is deterministic.
    outputs = self._apply(params, batch)
    clean = batch["clean"]
    stage_losses = [psnr_loss(out, clean, self.loss_weight) for out in outputs]
    metrics = {"loss_stage1": stage_losses[0], "loss_stage2": stage_losses[1]}
    total = stage_losses[0] + stage_losses[1]
    if self.hole_l1_weight:
      l1 = sum(hole_l1(out, clean, batch["mask"], self.hole_weight) for out in outputs)
      metrics["loss_hole_l1"] = l1
      total += self.hole_l1_weight * l1
    if self.perceptual_weight:
      perceptual = perceptual_loss(self.lpips_params, outputs[1], clean)
      metrics["loss_perceptual"] = perceptual
      total += self.perceptual_weight * perceptual
    return total, metrics

  def predict(self, params: Params, batch: Batch, rng: jax.Array | None = None) -> jax.Array:
    del rng  # HINet is deterministic.
    _, out_2 = self._apply(params, batch)
    return jnp.clip(out_2.astype(jnp.float32), 0.0, 1.0)
