"""A folder of photographs as a grain random-access source of RGB uint8 images [H, W, 3].

Files are found by extension (.jpg .jpeg .png .bmp .tif .tiff .webp, any case) under the root, recursively, in
sorted path order; hidden files and folders (names starting with '.') are left out. Only the listing happens at
construction: images are decoded when read, so folders of thousands of large photographs open instantly.
"""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np
from absl import logging
from PIL import Image, ImageOps

from muraljax.data.errors import DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_WHITE = (255, 255, 255, 255)


def load_image(path: str, min_side: int = 0, max_megapixels: float | None = None) -> np.ndarray:
  """Decodes one image file to RGB uint8 [H, W, 3].

  The EXIF orientation is applied. Grayscale, palette, CMYK and other modes are converted to RGB; transparent
  images (RGBA, LA, palette with transparency) are composited onto white, the colour of bare paper, since a
  cut-out's transparent surround carries no mural. 16-bit data (I;16 grayscale, 48-bit RGB PNG) is scaled to
  8 bits, not clipped. An image whose shorter side is below `min_side` is upscaled (bicubic, aspect kept) so
  that its shorter side is `min_side`. Raises whatever the decoder raises on a corrupt or truncated file, and
  DataError, before decoding, for an image above `max_megapixels` (a file of a few kilobytes can claim gigapixels).
  """
  with warnings.catch_warnings():
    if max_megapixels is not None:  # the limit below replaces Pillow's decompression-bomb warning
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    image = Image.open(path)
  with image:
    megapixels = image.width * image.height / 1e6
    if max_megapixels is not None and megapixels > max_megapixels:
      raise DataError(f"{path} is {image.width}x{image.height} ({megapixels:.0f} megapixels), above the limit of "
                      f"{max_megapixels:g} (data.max_megapixels); downscale it or raise the limit.")
    image.load()
    image = _to_rgb(ImageOps.exif_transpose(image))
  width, height = image.size
  if min(width, height) < min_side:
    scale = min_side / min(width, height)
    size = (max(min_side, round(width * scale)), max(min_side, round(height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
  return np.asarray(image, dtype=np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
  if image.mode.startswith("I") or image.mode == "F":
    # 32-bit and 16-bit integer modes hold 16-bit samples; PIL's own conversion would clip them at 255.
    values = np.asarray(image, dtype=np.float32)
    if image.mode != "F":
      values = values / 257.0
    gray = np.clip(values + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=-1))
  if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
    background = Image.new("RGBA", image.size, _WHITE)
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
  return image.convert("RGB")


def _scan(root: str) -> list[str]:
  if not os.path.exists(root):
    raise DataError(f"Image folder {root!r} does not exist; pass the directory that holds your mural photos.")
  if not os.path.isdir(root):
    raise DataError(f"{root!r} is a file, not a directory; pass the folder that contains the images.")
  paths = []
  for directory, subdirs, files in os.walk(root):
    subdirs[:] = [name for name in subdirs if not name.startswith(".")]
    paths.extend(os.path.join(directory, name) for name in files
                 if not name.startswith(".") and name.lower().endswith(EXTENSIONS))
  if not paths:
    raise DataError(f"No images ({' '.join(EXTENSIONS)}) found under {root!r}; put mural photos there or point the "
                    "folder setting at the directory that holds them.")
  return sorted(paths)


class ImageFolder:
  """Random-access source over the images under `root`; item i is RGB uint8 [H, W, 3] (see `load_image`).

  A file that cannot be decoded (corrupt, truncated, not really an image) does not stop training: it is logged
  as a warning once, added to `skipped`, and item i falls back to the next readable file in order (wrapping
  around), so every index stays valid and the same files always give the same items. `skipped` holds what this
  process has met; grain worker processes each keep their own. Only when no file is readable does it raise.
  """

  def __init__(self, root: str | os.PathLike, min_side: int = 0, max_megapixels: float | None = None):
    root = os.fspath(root)
    self._setup(root, _scan(root), min_side, max_megapixels)

  def _setup(self, root: str, paths: list[str], min_side: int, max_megapixels: float | None) -> None:
    self.root, self.paths, self.min_side, self.max_megapixels = root, paths, min_side, max_megapixels
    self._unreadable: set[int] = set()
    self._lock = threading.Lock()  # grain reads records in several threads; each skipped file is warned once

  def __getstate__(self) -> dict:  # grain's worker processes get a pickled copy; a lock does not pickle
    return {key: value for key, value in self.__dict__.items() if key != "_lock"}

  def __setstate__(self, state: dict) -> None:
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def subset(self, indices: list[int] | np.ndarray) -> ImageFolder:
    """A source over the files at `indices` (in that order); fallbacks for unreadable files stay inside it."""
    other = object.__new__(ImageFolder)
    other._setup(self.root, [self.paths[int(i)] for i in indices], self.min_side, self.max_megapixels)
    return other

  @property
  def skipped(self) -> list[str]:
    """Paths found unreadable so far, sorted."""
    return sorted(self.paths[i] for i in self._unreadable)

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> np.ndarray:
    count = len(self.paths)
    if not -count <= index < count:
      raise IndexError(f"Image index {index} is outside [0, {count}).")
    for offset in range(count):
      candidate = (int(index) + offset) % count
      if candidate in self._unreadable:
        continue
      try:
        return load_image(self.paths[candidate], self.min_side, self.max_megapixels)
      except Exception as error:  # pylint: disable=broad-except  # any decoder failure means "skip this file"
        with self._lock:
          first = candidate not in self._unreadable
          self._unreadable.add(candidate)
        if first:
          logging.warning("Skipping unreadable image %s (%s: %s); %d skipped so far.", self.paths[candidate],
                          type(error).__name__, error, len(self._unreadable))
    raise DataError(f"None of the {count} images of {self.root!r} read here could be decoded (see the warnings "
                    "above); replace the corrupt files.")

  def __repr__(self) -> str:
    return f"ImageFolder(root={self.root!r}, images={len(self.paths)}, min_side={self.min_side})"
