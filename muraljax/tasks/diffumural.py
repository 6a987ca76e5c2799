"""DiffuMural: collaborative multi-scale pixel-space diffusion, a U-Net and a ControlNet per scale.

Scales (muraljax.tasks.diffumural_scales): `model.scales` sides coarse to fine, e.g. 256/512/1024; the batch comes
at the finest size and scale s sees it shrunk by k_s (collaborative.pyramid: images box-averaged, masks and
contours max-pooled, so a coarse pixel is damaged when any pixel under it is). Params:
{'scale_<side>': {'unet': ..., 'controlnet': ...}} per scale. One scale, e.g. model.scales = (256,), is the plain
single-scale model.

Conditions per scale, per example (images mapped to [-1, 1], see muraljax.diffusion.schedules):
  masked image [B, h, w, 3]  the damaged input with its damaged pixels zeroed,
  mask [B, h, w, 1]          1 = damaged,
  contour [B, h, w, 1]       when config.data.contours (muraljax.data.contours, computed by the pipeline),
  damage type [B]            class label: an id into DAMAGE_TYPES (cracks, flaking, collapse, fading, unknown),
                             the batch's 'damage_type' (muraljax.data.degrade labels synthetic damage by the
                             kind covering most of it), 'unknown' for every example when the batch has none.
The U-Net input is [noisy image, conditions] and, for every scale but the coarsest, the coarser scale's x0
estimate upsampled 2x (3 + 4 or 5 (+ 3) channels); the ControlNet gets the same input plus the condition
channels through its condition embedding, and its residuals go into the U-Net's skips.

Training (`loss`), one step over all scales: t ~ U{0 .. T-1} per example, the same at every scale, and noise
drawn independently per scale. Coarse to fine, each scale predicts eps or v; its loss is

  L_s = MSE on the eps / v target (optionally min-SNR weighted)
        + frequency_weight FreqAmp(x0_hat, x0; alpha_bar)          (muraljax.diffusion.frequency)
        + cycle(x0_hat, x0, mask, contour; alpha_bar)              (muraljax.diffusion.cycle: contour_weight,
                                                                    known_weight)

with x0_hat the one-step x0 estimate from the output (unclipped) and per-example weights alpha_bar_t, which
discount the blurry estimates of noisy timesteps; the total is sum_s scale_loss_weight_s L_s. The next finer
scale is conditioned on stop_gradient(upsample(clip(x0_hat))) of this step, as sampling conditions it. With
probability `diffusion.condition_dropout` an example's conditions are zeroed at every scale and its damage type
set to 'unknown' (the coarse estimate stays), which trains the unconditional model classifier-free guidance
needs. With model.freeze_base only the ControlNets train (`trainable`).

Evaluation and restoration (`predict`) inpaint with muraljax.diffusion.collaborative.sample, drawing with the
given rng (default: the fixed key of `sampling.seed`): the scales denoise together, fused per pixel by
muraljax.diffusion.fusion's weights (`collaboration` settings; `cascade` is the coarse-to-fine ablation); one
scale is plain RePaint DDIM/DDPM (samplers.inpaint). Intact pixels are kept exactly. The trainer passes EMA
params when train.ema_decay > 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from muraljax import config as config_lib
from muraljax.data.damage_types import DAMAGE_TYPES, UNKNOWN_DAMAGE
from muraljax.diffusion import collaborative, cycle, frequency, losses, samplers, schedules
from muraljax.models import partitioning
from muraljax.models.controlnet import copy_encoder_from_unet
from muraljax.tasks import diffumural_scales
from muraljax.tasks.base import Batch, Params, image_inputs

SAMPLERS = ("ddim", "ddpm")


class DiffuMuralTask:
  """Params {'scale_<side>': {'unet', 'controlnet'}} per scale; see the module docstring."""

  blind = False  # DiffuMural inpaints the masked pixels
  sampled = True
  restores = True

  def __init__(self, config: ml_collections.ConfigDict):
    self.scales = diffumural_scales.build(config, len(DAMAGE_TYPES), config_lib.compute_dtype(config.train))
    self.factors = tuple(scale.factor for scale in self.scales)
    self.freeze_base = config.model.freeze_base
    self.controlnet_from_base = config.model.controlnet_from_base
    self.use_contours = config.data.contours
    diffusion = config.diffusion
    schedules.check_prediction(diffusion.prediction)
    self.schedule = schedules.make_schedule(diffusion.schedule, diffusion.num_timesteps)
    self.prediction = diffusion.prediction
    self.min_snr_gamma = diffusion.min_snr_gamma
    self.condition_dropout = diffusion.condition_dropout
    self.frequency = dict(weight=diffusion.frequency_weight, log_amplitude=diffusion.frequency_log_amplitude)
    self.cycle_weights = dict(contour_weight=diffusion.cycle_contour_weight,
                              known_weight=diffusion.cycle_known_weight)
    sampling = config.sampling
    if sampling.sampler not in SAMPLERS:
      raise ValueError(f"Unknown sampling.sampler {sampling.sampler!r}; use one of {list(SAMPLERS)}.")
    samplers.sampling_timesteps(diffusion.num_timesteps, sampling.steps)  # Fails early on a bad step count.
    self.sampling = dict(steps=sampling.steps, eta=1.0 if sampling.sampler == "ddpm" else sampling.eta,
                         jump_length=sampling.jump_length, jump_n_sample=sampling.jump_n_sample)
    self.guidance_scale = sampling.guidance_scale
    self.sampling_seed = sampling.seed
    collaboration = config.collaboration
    if collaboration.characteristic_length <= 0 or collaboration.temperature <= 0:
      raise ValueError(f"collaboration.characteristic_length ({collaboration.characteristic_length}) and "
                       f"temperature ({collaboration.temperature}) must be positive.")
    self.collaboration = dict(characteristic_length=collaboration.characteristic_length,
                              temperature=collaboration.temperature, cascade=collaboration.cascade)

  @property
  def condition_channels(self) -> int:
    return 5 if self.use_contours else 4

  @property
  def size_multiple(self) -> int:
    """Images to `predict` must have sides that are multiples of this (every scale's U-Net must fit)."""
    return self.scales[-1].unet_config.size_multiple

  def inputs(self, batch_size: int, height: int, width: int) -> dict[str, jax.ShapeDtypeStruct]:
    """The damaged images, masks, contours (with data.contours) and damage types `predict` conditions on."""
    images = image_inputs(batch_size, height, width, blind=False)
    if self.use_contours:
      images["contour"] = jax.ShapeDtypeStruct((batch_size, height, width, 1), jnp.float32)
    return images | {"damage_type": jax.ShapeDtypeStruct((batch_size,), jnp.int32)}

  def init(self, rng: jax.Array, batch: Batch, keep_axis_names: bool = False) -> Params:
    """Fresh params; they do not depend on the image size, so each scale is initialised on its U-Net's
    smallest input."""
    b = batch["damaged"].shape[0]
    t, labels = jnp.zeros((b,), jnp.int32), jnp.full((b,), UNKNOWN_DAMAGE)
    params = {}
    for s, (scale, key) in enumerate(zip(self.scales, jax.random.split(rng, len(self.scales)))):
      side = scale.unet_config.size_multiple
      condition = jnp.zeros((b, side, side, self.condition_channels))
      sample = jnp.zeros((b, side, side, 3 + self.condition_channels + (3 if s else 0)))
      unet_rng, controlnet_rng = jax.random.split(key)
      unet = scale.unet.init(unet_rng, sample, t, labels)["params"]
      controlnet = scale.controlnet.init(controlnet_rng, sample, t, condition, labels)["params"]
      if self.controlnet_from_base:
        controlnet = copy_encoder_from_unet(controlnet, unet)
      params[scale.key] = {"unet": unet, "controlnet": controlnet}
    return partitioning.maybe_unbox(params, keep_axis_names)

  def trainable(self, params: Params):
    return {key: {"unet": jax.tree.map(lambda _: not self.freeze_base, scale["unet"]),
                  "controlnet": jax.tree.map(lambda _: True, scale["controlnet"])}
            for key, scale in params.items()}

  def conditions(self, batch: Batch) -> tuple[list[jax.Array], list[jax.Array], list[jax.Array]]:
    """Per scale, coarse to fine: (damaged images [B, h, w, 3] in [-1, 1], masks [B, h, w, 1] in {0, 1},
    conditions [masked image, mask(, contour)] [B, h, w, 4 or 5])."""
    images, masks = collaborative.pyramid(schedules.to_diffusion_range(batch["damaged"]), batch["mask"],
                                          self.factors)
    conditions = []
    for image, mask, factor in zip(images, masks, self.factors):
      channels = [image * (1.0 - mask), mask]
      if self.use_contours:
        if "contour" not in batch:
          raise ValueError("config.data.contours is set but the batch has no 'contour'; build batches with the "
                           "data pipeline (which adds it) or add contours.contour_map of each damaged image.")
        channels.append(collaborative.downsample_mask(batch["contour"], factor))
      conditions.append(jnp.concatenate(channels, axis=-1).astype(jnp.float32))
    return images, masks, conditions

  def damage_labels(self, batch: Batch) -> jax.Array:
    """int32 [B]: the batch's 'damage_type' ids, or 'unknown' for every example when it has none."""
    if "damage_type" in batch:
      return batch["damage_type"].astype(jnp.int32)
    return jnp.full(batch["damaged"].shape[:1], UNKNOWN_DAMAGE, jnp.int32)

  def denoise(self, params: Params, s: int, x_t: jax.Array, t: jax.Array, condition: jax.Array,
              labels: jax.Array, coarse: jax.Array | None = None) -> jax.Array:
    """Scale s's network output (eps or v) [B, h, w, 3], float32, for noisy images x_t in [-1, 1] at timesteps
    t; `coarse` is the coarser scale's upsampled x0 estimate (None for the coarsest scale)."""
    scale = self.scales[s]
    if (coarse is None) != (s == 0):
      raise ValueError(f"Scale {scale.side} takes {'no' if s == 0 else 'the'} coarser scale's x0 estimate.")
    sample = jnp.concatenate([x_t, condition] + ([] if coarse is None else [coarse]), axis=-1)
    p = params[scale.key]
    down, mid = scale.controlnet.apply({"params": p["controlnet"]}, sample, t, condition, labels)
    return scale.unet.apply({"params": p["unet"]}, sample, t, labels, down, mid).astype(jnp.float32)

  def _x0_losses(self, x0_hat: jax.Array, x0: jax.Array, mask: jax.Array, contour: jax.Array,
                 alpha_bar: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The frequency-amplitude and cycle-consistency terms of one scale (those with weight 0 skipped)."""
    loss, metrics = jnp.zeros(()), {}
    if self.frequency["weight"]:
      metrics["frequency"] = frequency.frequency_amplitude_loss(
          x0_hat, x0, log_amplitude=self.frequency["log_amplitude"], weights=alpha_bar)
      loss = loss + self.frequency["weight"] * metrics["frequency"]
    if any(self.cycle_weights.values()):
      cycle_loss, terms = cycle.cycle_consistency_loss(x0_hat, x0, mask, contour, weights=alpha_bar,
                                                       **self.cycle_weights)
      loss, metrics = loss + cycle_loss, metrics | terms
    return loss, metrics

  def loss(self, params: Params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    t_rng, noise_rng, dropout_rng = jax.random.split(rng, 3)
    targets, _ = collaborative.pyramid(schedules.to_diffusion_range(batch["clean"]), batch["mask"], self.factors)
    _, masks, conditions = self.conditions(batch)
    batch_size = targets[0].shape[0]
    t = jax.random.randint(t_rng, (batch_size,), 0, self.schedule.num_timesteps)
    alpha_bar = self.schedule.alpha_bar(t)
    keep = jax.random.uniform(dropout_rng, (batch_size,)) >= self.condition_dropout
    labels = jnp.where(keep, self.damage_labels(batch), UNKNOWN_DAMAGE)
    total, metrics, coarse = jnp.zeros(()), {}, None
    for s, (scale, x0, mask, condition, key) in enumerate(zip(
        self.scales, targets, masks, conditions, jax.random.split(noise_rng, len(self.scales)))):
      noise = jax.random.normal(key, x0.shape)
      x_t = schedules.q_sample(self.schedule, x0, t, noise)
      output = self.denoise(params, s, x_t, t, condition * keep[:, None, None, None], labels, coarse)
      target = schedules.prediction_target(self.prediction, x0, noise, alpha_bar)
      loss = losses.denoising_loss(output, target, alpha_bar, prediction=self.prediction,
                                   min_snr_gamma=self.min_snr_gamma)
      x0_hat = schedules.x0_from_output(self.prediction, x_t, output, alpha_bar)
      contour = condition[..., 4:] if self.use_contours else jnp.zeros_like(mask)  # the contour channel
      extra, terms = self._x0_losses(x0_hat, x0, mask, contour, alpha_bar)
      loss = loss + extra
      total = total + scale.loss_weight * loss
      terms |= {"loss": loss, "mse": jnp.mean(jnp.square(output - target))}
      metrics |= {f"{scale.key}/{name}": value for name, value in terms.items()}
      coarse = jax.lax.stop_gradient(collaborative.upsample(jnp.clip(x0_hat, -1.0, 1.0), 2))
    return total, metrics

  def predict(self, params: Params, batch: Batch, rng: jax.Array | None = None) -> jax.Array:
    """Inpainted images [B, H, W, 3] in [0, 1]: the input on intact pixels (exactly), sampled on damaged ones with
    `rng` (None: PRNGKey(sampling.seed)). H and W must be multiples of `size_multiple`."""
    images, masks, conditions = self.conditions(batch)
    labels = self.damage_labels(batch)

    def denoise_fn(s: int) -> collaborative.DenoiseFn:
      condition = conditions[s]

      def fn(x_t: jax.Array, t: jax.Array, coarse: jax.Array | None) -> jax.Array:
        def model_fn(x: jax.Array, t: jax.Array, drop_condition: bool) -> jax.Array:
          if drop_condition:
            return self.denoise(params, s, x, t, jnp.zeros_like(condition), jnp.full_like(labels, UNKNOWN_DAMAGE),
                                coarse)
          return self.denoise(params, s, x, t, condition, labels, coarse)

        return samplers.guided(model_fn, self.guidance_scale)(x_t, t)

      return fn

    rng = jax.random.PRNGKey(self.sampling_seed) if rng is None else rng
    samples = collaborative.sample([denoise_fn(s) for s in range(len(self.scales))], self.schedule, images, masks,
                                   rng, prediction=self.prediction, **self.sampling, **self.collaboration)
    restored = jnp.clip(schedules.to_unit_range(samples[-1]), 0.0, 1.0)
    return jnp.where(batch["mask"] >= 0.5, restored, batch["damaged"])
