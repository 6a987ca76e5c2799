"""The damage mask: read from the user's file and checked that it is one, or made for detection and enhancement.

A mask is white = damaged on black = intact (transparent counts as black), drawn on the upright photograph.
Anti-aliased brushes and JPEG leave grey pixels along the strokes' edges; those are thresholded at
MASK_THRESHOLD, with a note. Three kinds of file are refused instead, because thresholding would silently restore
the wrong pixels: a coloured mask (a red stroke is darker than half white, so it would count as intact), a mask
whose only non-black value is dark (a 0/1 array saved without scaling: nothing would count as damaged), and one
with broad grey areas far from any black or white (a photograph or a soft probability map, not a drawn mask).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

from muraljax.restore.errors import RestoreError
from muraljax.restore.photo_files import ALPHA_MODES, GRAY_MODES, open_image, sha256_file, unreadable, upright_size

MASK_THRESHOLD = 0.5
"""Mask pixels at or above this fraction of full white count as damaged (anti-aliased or JPEG masks are thresholded)."""
COLOURED = 0.25
"""A mask pixel whose RGB channels differ by more than this fraction of full white is coloured (JPEG chroma noise
on a black-and-white mask stays far below it)."""
MID_GREY = (0.25, 0.75)
EXTREME = 0.1
"""Mask values within this of black or white are near-black or near-white."""
EDGE_REACH = 3
"""Anti-aliasing and JPEG ringing leave grey pixels at most this many pixels from a near-black or near-white one."""
SOFT_FRACTION = 0.01
"""A mask is refused as soft when its mid-grey pixels (within MID_GREY) farther than EDGE_REACH from any near-black or
near-white pixel are more than this fraction of the image."""


@dataclasses.dataclass(frozen=True)
class Mask:
  """`damaged` bool [H, W] (True = damaged) and how it was obtained."""

  damaged: np.ndarray
  source: dict[str, Any]
  notes: list[str]


def _decode(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
  """float32 [H, W] in [0, 1] (transparent pixels count as 0, intact) and, for images that can hold colour,
  bool [H, W] of the coloured pixels (None for grayscale modes)."""
  if image.mode in ("I", "I;16", "I;16B", "I;16L"):
    return np.clip(np.asarray(image, np.float32) / 65535.0, 0.0, 1.0), None
  if image.mode == "F":
    return np.clip(np.asarray(image, np.float32), 0.0, 1.0), None
  if image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
    black = Image.new("RGBA", image.size, (0, 0, 0, 255))
    image = Image.alpha_composite(black, image.convert("RGBA"))
  coloured = None
  if image.mode not in GRAY_MODES:
    rgb = np.asarray(image.convert("RGB"), np.float32) / 255.0
    coloured = rgb.max(axis=-1) - rgb.min(axis=-1) > COLOURED
  return np.asarray(image.convert("L"), np.float32) / 255.0, coloured


def _check_binary(path: str, values: np.ndarray, coloured: np.ndarray | None) -> None:
  """Raises RestoreError for a file that is not a black-and-white mask (see the module docstring)."""
  if coloured is not None and coloured.any():
    y, x = np.argwhere(coloured)[0]
    raise RestoreError(f"The mask {path!r} has {np.count_nonzero(coloured)} coloured pixels (the first at x={x}, "
                       f"y={y}) but a mask is white = damaged on black = intact; save it in black and white, e.g. as "
                       "a grayscale PNG.")
  levels = np.unique(values[values > 0])
  if len(levels) == 1 and levels[0] < MASK_THRESHOLD:
    raise RestoreError(f"The mask {path!r} holds only black and one dark value ({levels[0]:.2%} of white), as a 0/1 "
                       "array saved without scaling does, so no pixel would count as damaged; save damaged pixels "
                       "as white (multiply a 0/1 mask by 255).")
  extreme = ((values <= EXTREME) | (values >= 1.0 - EXTREME)).view(np.uint8)
  near_extreme = ndimage.maximum_filter(extreme, size=2 * EDGE_REACH + 1).astype(bool)
  soft = np.count_nonzero((values >= MID_GREY[0]) & (values <= MID_GREY[1]) & ~near_extreme)
  if soft > SOFT_FRACTION * values.size:
    raise RestoreError(f"The mask {path!r} is not black and white: {soft / values.size:.0%} of its pixels are grey "
                       "far from any black or white, as in a photograph or a soft map rather than a drawn mask; pass "
                       "a mask with white = damaged and black = intact (threshold a soft map yourself to choose the "
                       "cut-off).")


def read_mask(path: str, height: int, width: int, invert: bool = False) -> Mask:
  """The damage mask drawn for an upright height x width photograph: white = damaged, black or transparent = intact
  (the reverse with `invert`). Grey values are thresholded at MASK_THRESHOLD; the EXIF orientation is applied.
  Raises RestoreError for an unreadable file, another size or a file that is no black-and-white mask."""
  with open_image(path, "mask") as image:
    mask_width, mask_height = upright_size(image)  # compared before decoding: a tiny file can claim gigapixels
    if (mask_height, mask_width) != (height, width):
      raise RestoreError(f"The mask {path!r} is {mask_width}x{mask_height} but the upright image is {width}x{height} "
                         f"(width x height); draw the mask on the image itself or resize it to {width}x{height}.")
    try:
      values, coloured = _decode(ImageOps.exif_transpose(image))
    except Exception as error:  # pylint: disable=broad-except  # any decoder failure is a bad mask file
      raise unreadable(path, "mask", error) from None
  _check_binary(path, values, coloured)
  if invert:
    values = 1.0 - values
  damaged = values >= MASK_THRESHOLD
  grey = int(np.count_nonzero((values > 0.0) & (values < 1.0)))
  notes = []
  if grey:
    notes.append(f"The mask has {grey} grey pixels (neither black nor white); those at or above "
                 f"{MASK_THRESHOLD:.0%} white count as damaged.")
  if damaged.mean() > 0.5 and not invert:
    notes.append(f"The mask marks {damaged.mean():.0%} of the image as damaged; if it was drawn black = damaged, "
                 "re-run with --invert-mask.")
  source = {"kind": "file", "path": os.path.abspath(path), "sha256": sha256_file(path), "inverted": invert,
            "threshold": MASK_THRESHOLD, "grey_pixels": grey}
  return Mask(damaged, source, notes)
