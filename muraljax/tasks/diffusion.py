"""DiffuMural at one scale: a pixel-space diffusion U-Net with a ControlNet, conditioned on the damage.

Conditions, per example (images mapped to [-1, 1], see muraljax.diffusion.schedules):
  masked image [B, H, W, 3]  the damaged input with its damaged pixels zeroed,
  mask [B, H, W, 1]          1 = damaged,
  contour [B, H, W, 1]       when config.data.contours (muraljax.data.contours, computed by the pipeline),
  damage type [B]            class label: an id into DAMAGE_TYPES, from the batch's 'damage_type' when it has
                             one; the data pipeline does not expose it yet, so every example is 'unknown'.
The U-Net input is [noisy image, conditions] (3 + 4 or 5 channels); the ControlNet gets the same input plus the
condition channels through its condition embedding, and its residuals go into the U-Net's skips.

Training (`loss`): t ~ U{0 .. T-1} and noise per example from the step's rng, MSE on the epsilon or v target
(optionally min-SNR weighted). With probability `diffusion.condition_dropout` an example's conditions are
zeroed and its damage type set to 'unknown', which trains the unconditional model classifier-free guidance
needs. With model.freeze_base only the ControlNet trains (`trainable`). Evaluation (`predict`) inpaints the
damaged pixels with the DDIM/DDPM sampler of muraljax.diffusion.samplers (fixed seed), keeping intact pixels
exactly; the trainer passes EMA params when train.ema_decay > 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from muraljax import config as config_lib
from muraljax.diffusion import losses, samplers, schedules
from muraljax.models import partitioning
from muraljax.models.controlnet import ControlNet, copy_encoder_from_unet
from muraljax.models.unet import UNet, UNetConfig
from muraljax.tasks.base import Batch, Params

DAMAGE_TYPES = ("cracks", "flaking", "collapse", "fading", "unknown")
UNKNOWN_DAMAGE = DAMAGE_TYPES.index("unknown")
SAMPLERS = ("ddim", "ddpm")


def unet_config(config: ml_collections.ConfigDict) -> UNetConfig:
  m = config.model
  return UNetConfig(
      block_out_channels=tuple(m.block_out_channels), down_block_types=tuple(m.down_block_types),
      up_block_types=tuple(m.up_block_types), layers_per_block=m.layers_per_block,
      attention_head_dim=m.attention_head_dim, norm_num_groups=m.norm_num_groups, norm_eps=m.norm_eps,
      flip_sin_to_cos=m.flip_sin_to_cos, freq_shift=m.freq_shift, num_class_embeds=len(DAMAGE_TYPES),
      out_channels=3, remat=config.train.remat)


class DiffusionTask:
  """Params {'unet': ..., 'controlnet': ...}; see the module docstring."""

  def __init__(self, config: ml_collections.ConfigDict):
    dtype = config_lib.compute_dtype(config.train)
    self.unet_config = unet_config(config)
    self.unet = UNet(self.unet_config, dtype)
    self.controlnet = ControlNet(self.unet_config, tuple(config.model.controlnet_conditioning_channels), dtype)
    self.freeze_base = config.model.freeze_base
    self.controlnet_from_base = config.model.controlnet_from_base
    self.use_contours = config.data.contours
    diffusion = config.diffusion
    schedules.check_prediction(diffusion.prediction)
    self.schedule = schedules.make_schedule(diffusion.schedule, diffusion.num_timesteps)
    self.prediction = diffusion.prediction
    self.min_snr_gamma = diffusion.min_snr_gamma
    self.condition_dropout = diffusion.condition_dropout
    sampling = config.sampling
    if sampling.sampler not in SAMPLERS:
      raise ValueError(f"Unknown sampling.sampler {sampling.sampler!r}; use one of {list(SAMPLERS)}.")
    samplers.sampling_timesteps(diffusion.num_timesteps, sampling.steps)  # Fails early on a bad step count.
    self.sampling = dict(steps=sampling.steps, eta=1.0 if sampling.sampler == "ddpm" else sampling.eta,
                         guidance_scale=sampling.guidance_scale, jump_length=sampling.jump_length,
                         jump_n_sample=sampling.jump_n_sample)
    self.sampling_seed = sampling.seed

  @property
  def condition_channels(self) -> int:
    return 5 if self.use_contours else 4

  def init(self, rng: jax.Array, batch: Batch, keep_axis_names: bool = False) -> Params:
    b, h, w, _ = batch["damaged"].shape
    condition = jnp.zeros((b, h, w, self.condition_channels))
    sample = jnp.zeros((b, h, w, 3 + self.condition_channels))
    t, labels = jnp.zeros((b,), jnp.int32), jnp.full((b,), UNKNOWN_DAMAGE)
    unet_rng, controlnet_rng = jax.random.split(rng)
    unet = self.unet.init(unet_rng, sample, t, labels)["params"]
    controlnet = self.controlnet.init(controlnet_rng, sample, t, condition, labels)["params"]
    if self.controlnet_from_base:
      controlnet = copy_encoder_from_unet(controlnet, unet)
    return partitioning.maybe_unbox({"unet": unet, "controlnet": controlnet}, keep_axis_names)

  def trainable(self, params: Params):
    return {"unet": jax.tree.map(lambda _: not self.freeze_base, params["unet"]),
            "controlnet": jax.tree.map(lambda _: True, params["controlnet"])}

  def condition(self, batch: Batch) -> jax.Array:
    """[masked image, mask(, contour)] [B, H, W, 4 or 5], images in [-1, 1], damaged pixels zeroed."""
    mask = (batch["mask"] >= 0.5).astype(jnp.float32)
    channels = [schedules.to_diffusion_range(batch["damaged"]) * (1.0 - mask), mask]
    if self.use_contours:
      if "contour" not in batch:
        raise ValueError("config.data.contours is set but the batch has no 'contour'; build batches with the "
                         "data pipeline (which adds it) or add contours.contour_map of each damaged image.")
      channels.append(batch["contour"])
    return jnp.concatenate(channels, axis=-1).astype(jnp.float32)

  def damage_labels(self, batch: Batch) -> jax.Array:
    """int32 [B]: the batch's 'damage_type' ids, or 'unknown' for every example when it has none."""
    if "damage_type" in batch:
      return batch["damage_type"].astype(jnp.int32)
    return jnp.full(batch["damaged"].shape[:1], UNKNOWN_DAMAGE, jnp.int32)

  def denoise(self, params: Params, x_t: jax.Array, t: jax.Array, condition: jax.Array,
              labels: jax.Array) -> jax.Array:
    """The network output (eps or v) [B, H, W, 3], float32, for noisy images x_t in [-1, 1] at timesteps t."""
    sample = jnp.concatenate([x_t, condition], axis=-1)
    down, mid = self.controlnet.apply({"params": params["controlnet"]}, sample, t, condition, labels)
    output = self.unet.apply({"params": params["unet"]}, sample, t, labels, down, mid)
    return output.astype(jnp.float32)

  def loss(self, params: Params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    t_rng, noise_rng, dropout_rng = jax.random.split(rng, 3)
    x0 = schedules.to_diffusion_range(batch["clean"])
    batch_size = x0.shape[0]
    t = jax.random.randint(t_rng, (batch_size,), 0, self.schedule.num_timesteps)
    noise = jax.random.normal(noise_rng, x0.shape)
    x_t = schedules.q_sample(self.schedule, x0, t, noise)
    keep = jax.random.uniform(dropout_rng, (batch_size,)) >= self.condition_dropout
    condition = self.condition(batch) * keep[:, None, None, None]
    labels = jnp.where(keep, self.damage_labels(batch), UNKNOWN_DAMAGE)
    output = self.denoise(params, x_t, t, condition, labels)
    alpha_bar = self.schedule.alpha_bar(t)
    target = schedules.prediction_target(self.prediction, x0, noise, alpha_bar)
    loss = losses.denoising_loss(output, target, alpha_bar, prediction=self.prediction,
                                 min_snr_gamma=self.min_snr_gamma)
    return loss, {"mse": jnp.mean(jnp.square(output - target))}

  def predict(self, params: Params, batch: Batch) -> jax.Array:
    """Inpainted images [B, H, W, 3] in [0, 1]: the input on intact pixels (exactly), sampled on damaged ones."""
    damaged = batch["mask"] >= 0.5
    condition, labels = self.condition(batch), self.damage_labels(batch)

    def model_fn(x_t: jax.Array, t: jax.Array, drop_condition: bool) -> jax.Array:
      if drop_condition:
        return self.denoise(params, x_t, t, jnp.zeros_like(condition), jnp.full_like(labels, UNKNOWN_DAMAGE))
      return self.denoise(params, x_t, t, condition, labels)

    sample = samplers.inpaint(model_fn, self.schedule, schedules.to_diffusion_range(batch["damaged"]),
                              damaged.astype(jnp.float32), jax.random.PRNGKey(self.sampling_seed),
                              prediction=self.prediction, **self.sampling)
    restored = jnp.clip(schedules.to_unit_range(sample), 0.0, 1.0)
    return jnp.where(damaged, restored, batch["damaged"])
