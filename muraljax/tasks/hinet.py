"""HINet trained to restore damaged murals: damaged image in, clean image out (blind: no mask input)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections

from muraljax import config as config_lib
from muraljax.models import partitioning
from muraljax.models.hinet import HINet
from muraljax.tasks.base import Batch, Params


def psnr_loss(pred: jax.Array, target: jax.Array, weight: float) -> jax.Array:
  """HINet's PSNR loss: weight * 10/ln(10) * mean_b log(MSE_b + 1e-8), i.e. weight * (-PSNR) up to a constant."""
  mse = jnp.mean(jnp.square(pred.astype(jnp.float32) - target), axis=(1, 2, 3))
  return weight * (10.0 / math.log(10.0)) * jnp.mean(jnp.log(mse + 1e-8))


def model_from_config(config: ml_collections.ConfigDict) -> HINet:
  return HINet(wf=config.model.wf, depth=config.model.depth, relu_slope=config.model.relu_slope,
               hin_levels=tuple(config.model.hin_levels), dtype=config_lib.compute_dtype(config.train),
               remat=config.train.remat)


class HINetTask:
  """Both stage outputs are supervised with the PSNR loss; inference uses the second stage."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.model = model_from_config(config)
    self.loss_weight = config.loss.psnr_weight

  def init(self, rng: jax.Array, batch: Batch, keep_axis_names: bool = False) -> Params:
    return partitioning.maybe_unbox(self.model.init(rng, batch["damaged"])["params"], keep_axis_names)

  def loss(self, params: Params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    del rng  # HINet is deterministic.
    out_1, out_2 = self.model.apply({"params": params}, batch["damaged"])
    loss_1 = psnr_loss(out_1, batch["clean"], self.loss_weight)
    loss_2 = psnr_loss(out_2, batch["clean"], self.loss_weight)
    return loss_1 + loss_2, {"loss_stage1": loss_1, "loss_stage2": loss_2}

  def predict(self, params: Params, batch: Batch) -> jax.Array:
    _, out_2 = self.model.apply({"params": params}, batch["damaged"])
    return jnp.clip(out_2.astype(jnp.float32), 0.0, 1.0)
