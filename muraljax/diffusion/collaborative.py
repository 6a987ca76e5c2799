"""Collaborative multi-scale inpainting: S scales (e.g. 256, 512, 1024) denoise one image together.

Scales are ordered coarse to fine; scale s sees the image at 1 / k_s of the finest size (k = 4, 2, 1 for
256/512/1024), made by `pyramid`: images box-averaged (`downsample`), masks max-pooled (`downsample_mask`: a
coarse pixel is damaged when any pixel under it is, so its intact pixels are exactly known). All scales walk
the same noise levels as muraljax.diffusion.samplers.inpaint (its `sampling_timesteps` and
`resampling_levels`, RePaint jumps included). One denoising step, at level l with alpha_bar a:

 1. known-region replacement per scale: intact pixels of x_t^s <- sqrt(a) image_s + sqrt(1 - a) noise;
 2. coarse to fine, each scale estimates x0: x0^s = clip(x0 from denoise_fns[s](x_t^s, t, coarse)), where
    `coarse` is None for the coarsest scale and the next coarser scale's x0 estimate, bilinearly upsampled to
    this scale (`upsample`), for the others;
 3. fusion at the finest size, with per-pixel weights w [B, H, W, S] (muraljax.diffusion.fusion: summing to 1
    on damaged pixels, 0 on intact ones) and the finest estimate x0^f:
      fused = (1 - sum_s w_s) image + sum_s w_s (x0^f + up_{k_s}(x0^s - down_{k_s}(x0^f)))
    Scale s's proposal is the finest estimate with its content up to scale s's resolution replaced by scale
    s's estimate: where the coarse scale dominates (large holes) it sets the structure while the finest scale
    still adds the texture finer than the coarse pixels; the finest scale's proposal is x0^f itself;
 4. the fused estimate goes back down: scale s continues from down_{k_s}(fused), the finest from fused;
 5. a DDIM step per scale from its x0 (eta = 0 deterministic, eta = 1 DDPM): samplers.ddim_step, as
    samplers.inpaint takes it.

`cascade=True` is the plain coarse-to-fine ablation: nothing goes back down (each coarser scale continues from
its own estimate, as if sampled alone) and the default weights give the finest scale every damaged pixel, so
coarser scales only condition it.

Everything is one `lax.scan`, deterministic given `rng`. Results per scale equal the input exactly on intact
pixels. Guidance (classifier-free) belongs inside the denoise functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from muraljax.diffusion import fusion, samplers, schedules

# denoise_fn(x_t [B, h, w, C], t int32 [B], coarse_x0 [B, h, w, C] or None) -> the network's output
# [B, h, w, C], predicting `prediction`; coarse_x0 is None for the coarsest scale.
DenoiseFn = Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]


def downsample(images: jax.Array, factor: int) -> jax.Array:
  """[B, H, W, C] -> [B, H / factor, W / factor, C]: the mean of each factor x factor block."""
  if factor == 1:
    return images
  b, h, w, c = images.shape
  return images.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def downsample_mask(mask: jax.Array, factor: int) -> jax.Array:
  """[B, H, W, 1] -> [B, H / factor, W / factor, 1]: damaged (the block's maximum) where any pixel under it is."""
  if factor == 1:
    return mask
  b, h, w, c = mask.shape
  return mask.reshape(b, h // factor, factor, w // factor, factor, c).max(axis=(2, 4))


def upsample(images: jax.Array, factor: int) -> jax.Array:
  """[B, H, W, C] -> [B, H factor, W factor, C], bilinear with half-pixel centres and clamped borders (PyTorch's
  interpolate(mode='bilinear', align_corners=False))."""
  if factor == 1:
    return images
  b, h, w, c = images.shape
  return jax.image.resize(images, (b, h * factor, w * factor, c), method="linear")


def pyramid(image: jax.Array, mask: jax.Array, factors: Sequence[int]) -> tuple[list[jax.Array], list[jax.Array]]:
  """(images, masks) per scale, coarse to fine, from the finest image [B, H, W, C] and mask [B, H, W, 1];
  factors e.g. (4, 2, 1). H and W must be multiples of every factor."""
  for factor in factors:
    if image.shape[1] % factor or image.shape[2] % factor:
      raise ValueError(f"Image sides {image.shape[1:3]} must be multiples of every scale factor {tuple(factors)}; "
                       f"crop or pad them to multiples of {max(factors)}.")
  return ([downsample(image, f) for f in factors],
          [downsample_mask((mask >= 0.5).astype(jnp.float32), f) for f in factors])


def fuse(x0s: Sequence[jax.Array], weights: jax.Array, known: jax.Array, factors: Sequence[int]) -> jax.Array:
  """The fused x0 estimate [B, H, W, C] at the finest size (step 3 of the module docstring).

  Args:
    x0s: per scale, coarse to fine, the x0 estimates [B, H / k_s, W / k_s, C].
    weights: [B, H, W, S] fusion weights (muraljax.diffusion.fusion.fusion_weights).
    known: [B, H, W, C] the finest image, taken where the weights sum to 0 (intact pixels).
    factors: k_s per scale, the finest 1.
  """
  finest = x0s[-1]
  fused = (1.0 - jnp.sum(weights, axis=-1, keepdims=True)) * known + weights[..., -1:] * finest
  for s, (x0, factor) in enumerate(zip(x0s[:-1], factors[:-1])):
    proposal = finest + upsample(x0 - downsample(finest, factor), factor)
    fused = fused + weights[..., s:s + 1] * proposal
  return fused


def _scale_factors(images: Sequence[jax.Array], masks: Sequence[jax.Array]) -> tuple[int, ...]:
  """k_s per scale, checking that the scales are consistent (coarse to fine, integer ratios)."""
  if not images or len(images) != len(masks):
    raise ValueError(f"Give one image and one mask per scale, coarse to fine; got {len(images)} images and "
                     f"{len(masks)} masks.")
  batch, height, width, channels = images[-1].shape
  factors = []
  for image, mask in zip(images, masks):
    b, h, w, c = image.shape
    if (b, c) != (batch, channels) or height % h or width % w or height // h != width // w:
      raise ValueError(f"Scale images {[tuple(i.shape) for i in images]} must run coarse to fine, each the "
                       f"finest one, {tuple(images[-1].shape)}, shrunk by an integer factor (collaborative.pyramid "
                       "makes them).")
    if mask.shape != (b, h, w, 1):
      raise ValueError(f"The mask {mask.shape} does not match its scale's images {image.shape}; give it the "
                       "images' [B, H, W] and one channel.")
    factors.append(height // h)
  if any(a <= b or a % b for a, b in zip(factors, factors[1:])):
    raise ValueError(f"Scales must run coarse to fine, each finer by an integer factor; got sizes "
                     f"{[tuple(i.shape[1:3]) for i in images]}.")
  return tuple(factors)


def sample(denoise_fns: Sequence[DenoiseFn], schedule: schedules.Schedule, damaged_per_scale: Sequence[jax.Array],
           mask_per_scale: Sequence[jax.Array], rng: jax.Array, *, prediction: str, steps: int = 50,
           eta: float = 0.0, fusion_weights: jax.Array | None = None, cascade: bool = False,
           characteristic_length: float = fusion.CHARACTERISTIC_LENGTH, temperature: float = fusion.TEMPERATURE,
           jump_length: int = 1, jump_n_sample: int = 1) -> tuple[jax.Array, ...]:
  """Inpaints the damage at every scale together (see the module docstring).

  Args:
    denoise_fns: per scale, coarse to fine, its denoiser (see `DenoiseFn`); they may close over conditions.
    schedule: the noise schedule the networks were trained with.
    damaged_per_scale: per scale, the image [B, H / k_s, W / k_s, C] in [-1, 1] (only intact pixels are used).
    mask_per_scale: per scale, [B, H / k_s, W / k_s, 1], >= 0.5 = damaged. `pyramid` makes both lists.
    rng: PRNG key; the same key gives the same samples.
    prediction: what the networks predict, 'epsilon' or 'v'.
    steps: number of noise levels.
    eta: DDIM's stochasticity (0 = deterministic, 1 = DDPM).
    fusion_weights: [B, H, W, S] per-pixel weights at the finest size; None = fusion.fusion_weights of the
      finest mask with `characteristic_length`, `temperature` and `cascade`.
    cascade: the coarse-to-fine ablation: no fused estimate goes back down to the coarser scales.
    characteristic_length, temperature: the default fusion weights' (see muraljax.diffusion.fusion).
    jump_length, jump_n_sample: RePaint resampling; 1, 1 = none.

  Returns:
    Per scale, coarse to fine, float32 [B, H / k_s, W / k_s, C]: the input on intact pixels, sampled on damaged
    ones. The last is the restoration. With one scale there is nothing to fuse: that is samplers.inpaint.
  """
  schedules.check_prediction(prediction)
  factors = _scale_factors(damaged_per_scale, mask_per_scale)
  if len(denoise_fns) != len(factors):
    raise ValueError(f"Give one denoise function per scale: {len(factors)} scales, {len(denoise_fns)} functions.")
  if len(factors) == 1:
    return (samplers.inpaint(lambda x, t, _: denoise_fns[0](x, t, None), schedule, damaged_per_scale[0],
                             mask_per_scale[0], rng, prediction=prediction, steps=steps, eta=eta,
                             jump_length=jump_length, jump_n_sample=jump_n_sample),)
  images = [image.astype(jnp.float32) for image in damaged_per_scale]
  damaged = [mask >= 0.5 for mask in mask_per_scale]
  if fusion_weights is None:
    fusion_weights = fusion.fusion_weights(mask_per_scale[-1], factors, characteristic_length=characteristic_length,
                                           temperature=temperature, cascade=cascade)
  if fusion_weights.shape != images[-1].shape[:3] + (len(factors),):
    raise ValueError(f"fusion_weights {fusion_weights.shape} must be [B, H, W, scales] = "
                     f"{images[-1].shape[:3] + (len(factors),)}, at the finest scale's size.")
  alpha_bars, level_timesteps = samplers.noise_levels(schedule, steps)
  levels = samplers.resampling_levels(steps, jump_length, jump_n_sample)

  def denoise(xs, source, target, key):
    alpha_bar = alpha_bars[source]
    keys = jax.random.split(key, 2 * len(xs))
    xs = [samplers.replace_known(x, image, hole, alpha_bar, k)
          for x, hole, image, k in zip(xs, damaged, images, keys[::2])]
    t = jnp.full(xs[0].shape[:1], level_timesteps[source])
    x0s, coarse = [], None
    for s, (denoise_fn, x) in enumerate(zip(denoise_fns, xs)):
      output = denoise_fn(x, t, coarse).astype(jnp.float32)
      x0s.append(jnp.clip(schedules.x0_from_output(prediction, x, output, alpha_bar), -1.0, 1.0))
      if s + 1 < len(xs):
        coarse = upsample(x0s[-1], factors[s] // factors[s + 1])
    fused = fuse(x0s, fusion_weights, images[-1], factors)
    targets = x0s[:-1] if cascade else [downsample(fused, factor) for factor in factors[:-1]]
    return tuple(samplers.ddim_step(x, x0, alpha_bar, alpha_bars[target], eta, k)
                 for x, x0, k in zip(xs, targets + [fused], keys[1::2]))

  start_keys = jax.random.split(jax.random.fold_in(rng, len(levels)), len(images))
  start = tuple(jax.random.normal(k, image.shape) for k, image in zip(start_keys, images))
  samples = samplers.walk_levels(denoise, start, rng, alpha_bars, levels)
  return tuple(jnp.where(hole, x, image) for x, hole, image in zip(samples, damaged, images))
