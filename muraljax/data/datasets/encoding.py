"""Turning one example's files into the images a dataset record stores, with the build's checks.

Pixels are decoded once, with the project's rules (`muraljax.data.folder.load_image`: EXIF rotation, any mode
to RGB, 16-bit scaled), and stored losslessly: as PNG, or as the file's own bytes when it is a plain RGB JPEG
that needs no change (so a record decodes to exactly what PIL decodes from the file, at a fraction of a PNG's
size). Masks are binarised (any channel above 127 = damaged, white on black as the Dunhuang challenge draws
them) and stored as single-channel PNG, 255 = damaged.

A mask or deteriorated image of another size than its painting is resized to it when the aspect ratios agree
within `ASPECT_TOLERANCE` (masks nearest-neighbour so they stay binary, images bicubic), e.g. the 512x512 masks
that come with 720x720 paintings; with another aspect ratio it cannot belong to the painting and the example is
skipped with a `SizeMismatch`.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from muraljax.data.folder import load_image

ASPECT_TOLERANCE = 0.02
"""Largest relative difference of height/width ratios for which a mask is resized rather than rejected."""
_PNG_LEVEL = 1  # zlib level: fast to write, a few percent larger than the default 6, decoded as fast


class SizeMismatch(ValueError):
  """A mask or deteriorated image whose aspect ratio differs from its painting's."""


def png_bytes(pixels: np.ndarray) -> bytes:
  """Lossless PNG of uint8 [H, W, 3] or [H, W] pixels."""
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG", compress_level=_PNG_LEVEL)
  return buffer.getvalue()


def image_bytes(path: str, pixels: np.ndarray) -> bytes:
  """What a record stores for the RGB image `pixels` decoded from `path`: the file itself when PIL decodes it
  to those very pixels (a plain RGB JPEG), else PNG of the pixels."""
  with Image.open(path) as image:
    plain = image.format == "JPEG" and image.mode == "RGB" and image.getexif().get(0x0112, 1) == 1
    same_size = image.size == (pixels.shape[1], pixels.shape[0])
  if plain and same_size:
    with open(path, "rb") as file:
      return file.read()
  return png_bytes(pixels)


def load_mask(path: str, height: int, width: int) -> tuple[np.ndarray, bool]:
  """The binary mask of `path` as uint8 [height, width] (255 = damaged), and whether it had to be resized."""
  mask = np.where(load_image(path).max(axis=-1) > 127, 255, 0).astype(np.uint8)
  resized = mask.shape != (height, width)
  if resized:
    mask = np.asarray(_resized(Image.fromarray(mask), height, width, Image.Resampling.NEAREST))
  return mask, resized


def load_damaged(path: str, height: int, width: int) -> np.ndarray:
  """The deteriorated image of `path` as uint8 [height, width, 3], resized (bicubic) when it has another size."""
  pixels = load_image(path)
  if pixels.shape[:2] == (height, width):
    return pixels
  return np.asarray(_resized(Image.fromarray(pixels), height, width, Image.Resampling.BICUBIC))


def _resized(image: Image.Image, height: int, width: int, resample: Image.Resampling) -> Image.Image:
  own_ratio, ratio = image.height / image.width, height / width
  if abs(own_ratio - ratio) > ASPECT_TOLERANCE * ratio:
    raise SizeMismatch(f"{image.width}x{image.height} does not have the painting's aspect ratio ({width}x{height})")
  return image.resize((width, height), resample)
