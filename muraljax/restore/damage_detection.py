"""A damage-mask proposal for a photograph without a hand-drawn mask, for the user to check, edit and re-use.

Three cues, united:

* the blind model's residual (HINet, ARIN): the per-pixel largest RGB change, |restored - input|, the model makes
  when it restores the whole image. A model trained to remove damage changes damaged pixels and leaves paint
  alone, so its residual above `threshold` marks the damage it recognises (as well as it was trained to).
* exposed plaster: pale, nearly grey pixels much brighter than the paint around them, as flaked-off paint leaves
  on a wall: luminance more than 0.15 above the local median (a window ~5% of the shorter image side), luminance
  above 0.5 and RGB range (saturation) below 0.25, opened (3x3) to keep patches and drop thin lines. A pale
  ground between dark lines is its own surroundings and does not fire; white painted patches on dark paint do,
  which is one reason this is a proposal to edit.
* digital fills: pixels of pure black or pure white whose 3x3 neighbourhood is perfectly flat, the way damage is
  often blanked out in photographs and data sets. Photographed paint always has some grain, so this cue does not
  fire on it (blown-out highlights excepted, which are lost information too).

DiffuMural is not blind (it needs the mask), so with it only the image cues are available. The union is closed
(3x3) to join broken cracks, components smaller than `min_area` pixels are dropped, and the rest is grown by
`grow` pixels so the proposal covers the damage's edges, which a restoration should repaint too.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

THRESHOLD = 0.2
"""Default residual (intensity units, 1 = black to white) above which a pixel is proposed as damaged."""
_FLAT = 1.5 / 255.0  # largest 3x3 range that counts as a perfectly flat digital fill
_EXTREME = 8.0 / 255.0  # how close to black or white a digital fill is
_PLASTER_CONTRAST = 0.15  # luminance above the local median
_PLASTER_LUMINANCE = 0.5
_PLASTER_SATURATION = 0.25  # largest RGB range of a greyish pixel
_BACKGROUND_SIDE = 200  # shorter side of the copy the local median is taken on
_BACKGROUND_WINDOW = 9  # its window, in pixels of that copy
_GROW = 2
_SQUARE = np.ones((3, 3), bool)


def digital_fill(image: np.ndarray) -> np.ndarray:
  """bool [H, W]: pure black or white pixels with a perfectly flat 3x3 neighbourhood, in `image` float [H, W, 3]."""
  flat = np.all(ndimage.maximum_filter(image, size=(3, 3, 1)) - ndimage.minimum_filter(image, size=(3, 3, 1))
                <= _FLAT, axis=-1)
  extreme = np.all(image <= _EXTREME, axis=-1) | np.all(image >= 1.0 - _EXTREME, axis=-1)
  return flat & extreme


def _local_background(luminance: np.ndarray) -> np.ndarray:
  """float32 [H, W]: the median luminance over a window ~5% of the shorter side wide, computed on a copy whose
  shorter side is _BACKGROUND_SIDE pixels (so its cost does not grow with the photograph) and scaled back up."""
  height, width = luminance.shape
  scale = min(1.0, _BACKGROUND_SIDE / min(height, width))
  small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
  small = np.asarray(Image.fromarray(luminance).resize(small_size, Image.Resampling.BOX))
  background = ndimage.median_filter(small, size=_BACKGROUND_WINDOW, mode="reflect")
  return np.asarray(Image.fromarray(background).resize((width, height), Image.Resampling.BILINEAR))


def exposed_plaster(image: np.ndarray) -> np.ndarray:
  """bool [H, W]: pale greyish pixels much brighter than their surroundings in `image` float [H, W, 3]."""
  luminance = image.mean(axis=-1).astype(np.float32)
  saturation = image.max(axis=-1) - image.min(axis=-1)
  brighter = luminance - _local_background(luminance) > _PLASTER_CONTRAST
  spots = brighter & (luminance > _PLASTER_LUMINANCE) & (saturation < _PLASTER_SATURATION)
  return ndimage.binary_opening(spots, _SQUARE)


def residual(image: np.ndarray, restored: np.ndarray) -> np.ndarray:
  """float32 [H, W]: the largest RGB change per pixel between `image` and the blind model's `restored`."""
  return np.abs(restored - image).max(axis=-1).astype(np.float32)


def propose_mask(image: np.ndarray, restored: np.ndarray | None, threshold: float = THRESHOLD
                 ) -> tuple[np.ndarray, dict[str, object]]:
  """The proposal bool [H, W] (True = damaged) for `image` float32 [H, W, 3] in [0, 1], from the residual of
  `restored` (the blind model's output on the whole image; None without a blind model) and digital fills.

  Returns the mask and a record of the method and its parameters for the provenance file.
  """
  height, width = image.shape[:2]
  min_area = max(9, round(1e-5 * height * width))
  cues = digital_fill(image) | exposed_plaster(image)
  if restored is not None:
    cues |= residual(image, restored) > threshold
  mask = ndimage.binary_closing(cues, _SQUARE, border_value=0) | cues
  labels, count = ndimage.label(mask, _SQUARE)
  if count:
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, count + 1))
    mask = np.isin(labels, 1 + np.flatnonzero(areas >= min_area))
  mask = ndimage.binary_dilation(mask, _SQUARE, iterations=_GROW)
  method = {"cues": (["blind-model residual"] if restored is not None else []) +
                    ["exposed plaster", "digital black/white fills"],
            "residual_threshold": threshold if restored is not None else None, "closing": "3x3",
            "min_component_pixels": min_area, "grown_pixels": _GROW}
  return mask, method
