"""CAR trained to restore damaged murals: damaged image -> content-adaptive downscale -> 8-bit quantisation ->
EDSR upscale, compared with the clean image.

The original CAR learns to reconstruct its own input (an HR photograph). For murals the input is the damaged
image and the target the clean one, as ARIN fine-tunes CAR on the Dunhuang challenge's (deteriorated, ground
truth) pairs: the round trip through the low resolution then has to fill holes and cracks, not only keep detail.
Blind, like HINet: the mask is not an input.

Params: {'resampler': KernelGenerationNet params (official `kgn.pth`), 'upscaler': EDSR params (`usn.pth`)}.
The fixed mean shifts of both nets are frozen (`trainable`).

Sizes: training patches (`data.patch_size`) must be multiples of `PATCH_MULTIPLE` = 8, as the official code
crops images to multiples of 8 (the resampler downsamples by 8; 8 is also a multiple of the scale), so the
low-resolution image is exactly patch / s and training never sees padding. Any other image (eval crops, whole
photographs) is reflect-padded at the bottom/right to a multiple of s and the restoration cropped back.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from muraljax import config as config_lib
from muraljax.data.errors import DataError
from muraljax.models import edsr, partitioning
from muraljax.models.car import Downscaled, KernelGenerationNet, quantize
from muraljax.models.ops import crop_to, pad_to_multiple
from muraljax.models.resample import SCALES
from muraljax.tasks.base import Batch, Params, image_inputs
from muraljax.tasks.car_loss import car_loss

PATCH_MULTIPLE = 8


def check_patch_size(patch_size: int, multiple: int, reason: str) -> None:
  """Raises DataError naming the nearest valid sizes when training patches are not multiples of `multiple`."""
  if patch_size % multiple:
    lower = patch_size // multiple * multiple
    sizes = f"{lower} or {lower + multiple}" if lower else f"{multiple}"
    raise DataError(f"data.patch_size={patch_size} is not a multiple of {multiple} ({reason}); use {sizes}.")


class CARTask:
  """CAR restoration trained with `car_loss` (L1 to the clean image plus the offset regularisers).

  `model_field` names the config section holding the CAR model (for error messages), e.g. 'model.car' in ARIN.
  """

  blind = True
  sampled = False
  size_multiple = 1  # any other image is padded to a multiple of the scale and cropped back
  restores = False  # CAR alone is ARIN's first stage; restoration takes HINet or ARIN

  def __init__(self, config: ml_collections.ConfigDict, *, model_field: str = "model"):
    self.scale = config.model.scale
    if self.scale not in SCALES:
      raise ValueError(f"CAR resamples by 2 or 4, got {model_field}.scale={self.scale}; set it to 2 or 4.")
    check_patch_size(config.data.patch_size, PATCH_MULTIPLE, "the CAR resampler downsamples by 8")
    dtype = config_lib.compute_dtype(config.train)
    self.resampler = KernelGenerationNet(scale=self.scale, dtype=dtype, remat=config.train.remat)
    self.upscaler = edsr.EDSR(scale=self.scale, n_resblocks=config.model.n_resblocks,
                              n_feats=config.model.n_feats, dtype=dtype, remat=config.train.remat)
    self.loss_weights = dict(l1_weight=config.loss.l1_weight, tv_weight=config.loss.tv_weight,
                             offset_weight=config.loss.offset_weight)

  def inputs(self, batch_size: int, height: int, width: int) -> dict[str, jax.ShapeDtypeStruct]:
    return image_inputs(batch_size, height, width, blind=True)

  def init(self, rng: jax.Array, batch: Batch, keep_axis_names: bool = False) -> Params:
    image, _ = pad_to_multiple(batch["damaged"], self.scale)
    resampler_rng, upscaler_rng = jax.random.split(rng)
    b, h, w, c = image.shape
    low_resolution = jnp.zeros((b, h // self.scale, w // self.scale, c), image.dtype)
    params = {"resampler": self.resampler.init(resampler_rng, image)["params"],
              "upscaler": self.upscaler.init(upscaler_rng, low_resolution)["params"]}
    return partitioning.maybe_unbox(params, keep_axis_names)

  def restore(self, params: Params, image: jax.Array) -> tuple[jax.Array, Downscaled]:
    """[B, H, W, 3] -> (reconstruction [B, H, W, 3] in the compute dtype, unclipped; the downscaling).

    The low-resolution image is quantised to 8 bits, with the soft-rounding surrogate gradient.
    """
    padded, size = pad_to_multiple(image, self.scale)
    down = self.resampler.apply({"params": params["resampler"]}, padded, method="downscale")
    reconstruction = self.upscaler.apply({"params": params["upscaler"]}, quantize(down.image))
    return crop_to(reconstruction, size), down

  def objective(self, reconstruction: jax.Array, down: Downscaled,
                clean: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`car_loss` of a `restore` output against the clean image: (scalar, unweighted terms)."""
    return car_loss(reconstruction.astype(jnp.float32), clean, down.kernels, down.offsets_h, down.offsets_v,
                    self.scale, **self.loss_weights)

  def loss(self, params: Params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    del rng  # CAR is deterministic.
    reconstruction, down = self.restore(params, batch["damaged"])
    return self.objective(reconstruction, down, batch["clean"])

  def predict(self, params: Params, batch: Batch, rng: jax.Array | None = None) -> jax.Array:
    del rng  # CAR is deterministic.
    return jnp.clip(self.restore(params, batch["damaged"])[0].astype(jnp.float32), 0.0, 1.0)

  def trainable(self, params: Params):
    """Everything but the fixed RGB mean shifts (resampler `sub_mean`, upscaler `sub_mean` / `add_mean`)."""
    return edsr.trainable_mask(params)
