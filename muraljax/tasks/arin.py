"""ARIN: blind inpainting of murals by CAR (content-adaptive downscale + EDSR upscale) followed by HINet.

The damaged image goes through CAR (`muraljax.tasks.car`); CAR's restoration, clipped to [0, 1] as the image the
paper fed to HINet, goes through HINet (`muraljax.tasks.hinet`). Params: {'car': CAR task params, 'hinet': HINet
params}. `config.arin.phase` picks what trains:

  'car'    CAR alone with the CAR loss; HINet is frozen and unused, and `predict` returns CAR's restoration.
  'hinet'  HINet on the outputs of the frozen CAR (no gradient reaches CAR) with HINet's PSNR loss on both of its
           stages; as the paper, after a 'car' run (start it with init_from).
  'joint'  both, end to end: loss.car_weight * CAR loss + loss.hinet_weight * HINet loss.

Every phase keeps the fixed mean shifts of the CAR nets frozen. Training patches must be multiples of
lcm(8, 2^(HINet depth - 1)), 16 for the paper's depth 5: the CAR resampler downsamples by 8 (8 is a multiple of
the scale) and HINet by 2^(depth - 1). (The paper resized its images to multiples of 6 and 16; no part of the
nets needs the 6.) Other image sizes are padded by the nets and cropped back.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections

from muraljax.tasks.base import Batch, Params
from muraljax.tasks.car import PATCH_MULTIPLE, CARTask, check_patch_size
from muraljax.tasks.hinet import HINetTask

PHASES = ("car", "hinet", "joint")


def _part_config(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """The config a single-family task reads, from ARIN's `model.<name>` and `loss.<name>` sections."""
  # Attribute access, as every task reads its config: a missing section raises AttributeError naming it.
  return ml_collections.ConfigDict({"model": getattr(config.model, name), "loss": getattr(config.loss, name),
                                    "train": config.train, "data": config.data})


def _prefixed(prefix: str, metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
  return {f"{prefix}_{k}": v for k, v in metrics.items()}


class ARINTask:
  """CAR -> HINet, trained in the phase `config.arin.phase` (see the module docstring)."""

  sampled = False
  size_multiple = 1  # both nets pad their inputs themselves
  restores = True

  def __init__(self, config: ml_collections.ConfigDict):
    self.phase = config.arin.phase
    if self.phase not in PHASES:
      raise ValueError(f"Unknown arin.phase {self.phase!r}; choose one of {list(PHASES)}.")
    check_patch_size(config.data.patch_size, math.lcm(PATCH_MULTIPLE, 2 ** (config.model.hinet.depth - 1)),
                     "the CAR resampler downsamples by 8 and HINet by 2^(model.hinet.depth - 1)")
    self.car = CARTask(_part_config(config, "car"), model_field="model.car")
    self.hinet = HINetTask(_part_config(config, "hinet"))
    self.blind = self.hinet.blind  # CAR never sees the mask; an inpainting HINet stage does
    self.car_weight = config.loss.car_weight
    self.hinet_weight = config.loss.hinet_weight

  def inputs(self, batch_size: int, height: int, width: int) -> dict[str, jax.ShapeDtypeStruct]:
    return self.hinet.inputs(batch_size, height, width)  # CAR reads only the damaged image

  def init(self, rng: jax.Array, batch: Batch, keep_axis_names: bool = False) -> Params:
    car_rng, hinet_rng = jax.random.split(rng)
    return {"car": self.car.init(car_rng, batch, keep_axis_names),
            "hinet": self.hinet.init(hinet_rng, batch, keep_axis_names)}

  def loss(self, params: Params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    restored, down = self.car.restore(params["car"], batch["damaged"])
    metrics = {}
    if self.phase != "hinet":
      car_loss, car_terms = self.car.objective(restored, down, batch["clean"])
      metrics |= _prefixed("car", car_terms | {"loss": car_loss})
      if self.phase == "car":
        return car_loss, metrics
    hinet_input = self._as_image(restored)
    if self.phase == "hinet":
      hinet_input = jax.lax.stop_gradient(hinet_input)
    hinet_loss, hinet_terms = self.hinet.loss(params["hinet"], {**batch, "damaged": hinet_input}, rng)
    metrics |= _prefixed("hinet", hinet_terms | {"loss": hinet_loss})
    if self.phase == "hinet":
      return hinet_loss, metrics
    return self.car_weight * car_loss + self.hinet_weight * hinet_loss, metrics

  def predict(self, params: Params, batch: Batch, rng: jax.Array | None = None) -> jax.Array:
    """CAR's restoration in phase 'car' (HINet is untrained there), else HINet's final output on it."""
    del rng  # ARIN is deterministic.
    restored = self._as_image(self.car.restore(params["car"], batch["damaged"])[0])
    if self.phase == "car":
      return restored
    return self.hinet.predict(params["hinet"], {**batch, "damaged": restored})

  def trainable(self, params: Params):
    """CAR (less its fixed mean shifts) in phases 'car' and 'joint'; HINet in phases 'hinet' and 'joint'."""
    train_car, train_hinet = self.phase != "hinet", self.phase != "car"
    return {"car": jax.tree.map(lambda t: t and train_car, self.car.trainable(params["car"])),
            "hinet": jax.tree.map(lambda _: train_hinet, params["hinet"])}

  @staticmethod
  def _as_image(car_restoration: jax.Array) -> jax.Array:
    """CAR's restoration as the image HINet gets: float32, clipped to [0, 1]."""
    return jnp.clip(car_restoration.astype(jnp.float32), 0.0, 1.0)
