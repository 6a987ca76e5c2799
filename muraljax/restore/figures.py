"""The images that show a restoration: the side-by-side comparison and the uncertainty map."""

from __future__ import annotations

import numpy as np
from PIL import Image

from muraljax.metrics.image_files import image_grid, to_uint8

COMPARISON_SIDE = 1024
"""Each panel of comparison.png is scaled down so that its longer side is at most this many pixels."""
UNCERTAINTY_SCALE = 4.0
"""uncertainty.png shows min(1, UNCERTAINTY_SCALE * standard deviation): a spread of 0.25 (in [0, 1] units) is white."""
_DAMAGE_RED = np.array([230, 30, 30], np.float32)


def uncertainty_image(spread: np.ndarray) -> np.ndarray:
  """uint8 [H, W] view of the per-pixel standard deviation float [H, W] (see UNCERTAINTY_SCALE)."""
  return to_uint8(UNCERTAINTY_SCALE * spread)


def damage_overlay(pixels: np.ndarray, damaged: np.ndarray) -> np.ndarray:
  """uint8 [H, W, 3]: the photograph with its damaged pixels tinted red (half opacity)."""
  tinted = 0.5 * pixels.astype(np.float32) + 0.5 * _DAMAGE_RED
  return np.where(damaged[..., None], np.round(tinted), pixels).astype(np.uint8)


def _panel(image: np.ndarray) -> np.ndarray:
  """uint8 [h, w, 3], scaled down (area average) to fit COMPARISON_SIDE."""
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  height, width = image.shape[:2]
  scale = min(1.0, COMPARISON_SIDE / max(height, width))
  if scale < 1.0:
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
  return image


def comparison(pixels: np.ndarray, damaged: np.ndarray, restored: np.ndarray,
               spread: np.ndarray | None = None) -> np.ndarray:
  """uint8 side by side: input | damage in red | restored (| uncertainty), each panel at most COMPARISON_SIDE."""
  panels = [pixels, damage_overlay(pixels, damaged), restored]
  if spread is not None:
    panels.append(uncertainty_image(spread))
  return image_grid([_panel(p)[None].astype(np.float32) / 255.0 for p in panels])
