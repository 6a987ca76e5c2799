"""Photographic corruptions of the damaged input: additive Gaussian noise and JPEG re-encoding.

They model the photograph of the mural, not the wall, so they apply to the whole damaged image (damaged and
intact pixels alike); the clean target and the mask are untouched. ARIN's robustness protocol evaluates with
Gaussian noise of sigma 8 and 16 (0-255 scale) and JPEG qualities 60 and 30.

With `corruption.probability` p, an example is corrupted by one of the configured corruptions (every noise sigma
and every JPEG quality counts as one choice), picked uniformly; otherwise it is left as it is. All randomness
comes from the example's generator, so the same generator state gives the same corrupted image. With nothing
configured the generator is not touched, so corruption-free pipelines see exactly the examples they saw before.
Images are float32 [H, W, 3] in [0, 1].
"""

from __future__ import annotations

import io
import math

import ml_collections
import numpy as np
from PIL import Image

from muraljax.data.errors import DataError

# PIL documents JPEG quality "on a scale from 0 (worst) to 95 (best)" and advises against values above 95, which
# switch off parts of the compression; libjpeg treats 0 as 1.
JPEG_QUALITY_RANGE = (1, 95)


def default_config() -> ml_collections.ConfigDict:
  """Corruption settings (`config.data.corruption`); the default corrupts nothing."""
  config = ml_collections.ConfigDict()
  # Standard deviations of additive Gaussian noise on the 0-255 scale (e.g. (8, 16)); each is one choice.
  config.noise_sigmas = ()
  # JPEG qualities (integers in JPEG_QUALITY_RANGE, e.g. (60, 30)) to re-encode with via PIL; each is one choice.
  config.jpeg_qualities = ()
  # Chance that an example is corrupted at all (when any corruption is configured); 1 corrupts every example,
  # as the robustness protocol's evaluation does.
  config.probability = 1.0
  return config


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises DataError when a corruption config cannot be used, saying which field to fix."""
  for sigma in config.noise_sigmas:
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
      raise DataError(f"corruption.noise_sigmas must be finite numbers >= 0 (0-255 scale), got {sigma!r}; fix it.")
  low, high = JPEG_QUALITY_RANGE
  for quality in config.jpeg_qualities:
    if isinstance(quality, bool) or not isinstance(quality, int) or not low <= quality <= high:
      raise DataError(f"corruption.jpeg_qualities must be integers from {low} to {high} (PIL's JPEG quality "
                      f"scale), got {quality!r}; pick one in that range.")
  if not 0.0 <= config.probability <= 1.0:
    raise DataError(f"corruption.probability must lie in [0, 1], got {config.probability}.")


def add_gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
  """image + N(0, (sigma / 255)^2) per pixel and channel, clipped to [0, 1]; float32 [H, W, C]."""
  noise = rng.normal(0.0, sigma / 255.0, image.shape).astype(np.float32)
  return np.clip(image + noise, 0.0, 1.0)


def jpeg_reencode(image: np.ndarray, quality: int) -> np.ndarray:
  """The image after an 8-bit JPEG save and load at `quality` (PIL's default 4:2:0 chroma subsampling)."""
  pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(quality))
  buffer.seek(0)
  with Image.open(buffer) as decoded:
    return np.asarray(decoded.convert("RGB"), np.float32) / 255.0


def corrupt(image: np.ndarray, rng: np.random.Generator, config: ml_collections.ConfigDict) -> np.ndarray:
  """Applies at most one configured corruption (see the module docstring) to a float32 [H, W, 3] image."""
  choices = [("noise", sigma) for sigma in config.noise_sigmas]
  choices += [("jpeg", quality) for quality in config.jpeg_qualities]
  if not choices:
    return image
  if config.probability < 1.0 and rng.random() >= config.probability:
    return image
  kind, value = choices[int(rng.integers(len(choices)))]
  if kind == "noise":
    return add_gaussian_noise(image, value, rng)
  return jpeg_reencode(image, value)
