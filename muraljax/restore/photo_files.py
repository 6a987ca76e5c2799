"""Reading the photograph, hashing files, and writing the output folder in one step.

The photograph is decoded by `muraljax.data.folder.load_image` (EXIF orientation applied, grayscale/palette to RGB,
transparency composited onto white, 16-bit samples scaled to 8 bits); every conversion is recorded as a note for
the provenance record. The restored image is compared with, and keeps, exactly these decoded pixels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from muraljax import paths
from muraljax.data.folder import load_image
from muraljax.restore.errors import RestoreError

GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_EXIF_ORIENTATION = 0x0112
MAX_MEGAPIXELS = 150.0
"""Default limit on the photograph's size (--max-megapixels): a file of a few kilobytes can claim gigapixels."""
GB_PER_MEGAPIXEL = 0.04
"""Peak memory of a restoration per megapixel of photograph (the decoded image, its float copy, the blended
output and the outputs being written), rounded up."""


def sha256_file(path: str | os.PathLike[str]) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def sha256_folder(path: str | os.PathLike[str]) -> str:
  """SHA-256 over every file under `path`: for each file in sorted relative-path order, its '/'-separated
  relative path, a NUL byte, the SHA-256 hex digest of its bytes and a newline."""
  root = Path(path)
  files = sorted(p for p in root.rglob("*") if p.is_file())
  digest = hashlib.sha256()
  for file in files:
    digest.update(f"{file.relative_to(root).as_posix()}\0{sha256_file(file)}\n".encode())
  return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Photograph:
  """A decoded photograph: `pixels` uint8 [H, W, 3], upright; `grayscale` when the file had no colour."""

  path: str
  pixels: np.ndarray
  sha256: str
  grayscale: bool
  description: dict[str, Any]
  notes: list[str]


def unreadable(path: str, what: str, error: BaseException) -> RestoreError:
  return RestoreError(f"The {what} {path!r} cannot be read as an image ({type(error).__name__}: {error}); pass a "
                      "readable JPEG, PNG or TIFF file.")


def open_image(path: str, what: str) -> Image.Image:
  """The image file at `path`, opened (header read) but not decoded."""
  if not os.path.isfile(path):
    raise RestoreError(f"The {what} {path!r} does not exist or is not a file; check the path.")
  try:
    return Image.open(path)
  except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
    raise unreadable(path, what, error) from None


def upright_size(header: Image.Image) -> tuple[int, int]:
  """(width, height) of an opened, undecoded image once its EXIF orientation is applied, read without decoding
  (Pillow's getexif decodes a PNG whose EXIF is not in its header; the header's is used, or none)."""
  if header.format == "PNG":
    exif = Image.Exif()
    if header.info.get("exif"):
      exif.load(header.info["exif"])
  else:
    exif = header.getexif()
  width, height = header.size
  return (height, width) if int(exif.get(_EXIF_ORIENTATION, 1)) in (5, 6, 7, 8) else (width, height)


def check_pixels(path: str, what: str, header: Image.Image, max_megapixels: float) -> None:
  """Raises RestoreError, before anything is decoded, for an image above `max_megapixels`."""
  width, height = header.size
  megapixels = width * height / 1e6
  if megapixels > max_megapixels:
    raise RestoreError(f"The {what} {path!r} is {width}x{height} ({megapixels:.0f} megapixels), above the limit of "
                       f"{max_megapixels:g}; restoring it needs about {megapixels * GB_PER_MEGAPIXEL:.0f} GB of "
                       f"memory (a 100-megapixel wall about {100 * GB_PER_MEGAPIXEL:.0f} GB): pass --max-megapixels "
                       f"{math.ceil(megapixels)} if this machine has that much.")


def _bits_per_sample(image: Image.Image) -> int:
  """16 when the decoder read 16-bit samples (16-bit grayscale, 48/64-bit PNG), else 8."""
  rawmodes = [tile.args if isinstance(tile.args, str) else str(tile.args) for tile in image.tile]
  return 16 if image.mode.startswith("I;16") or any(";16" in mode for mode in rawmodes) else 8


def _has_transparency(path: str) -> bool:
  with Image.open(path) as image:
    return image.convert("RGBA").getchannel("A").getextrema()[0] < 255


def read_photograph(path: str, max_megapixels: float = MAX_MEGAPIXELS) -> Photograph:
  """Decodes the photograph at `path`; raises RestoreError when it is missing, not an image, or above
  `max_megapixels` (checked on the header, before decoding)."""
  with open_image(path, "image") as header:
    check_pixels(path, "image", header, max_megapixels)
    mode, stored_size, file_format = header.mode, header.size, header.format
    bits = _bits_per_sample(header)
    orientation = int(header.getexif().get(_EXIF_ORIENTATION, 1))
  try:
    pixels = load_image(path)
  except Exception as error:  # pylint: disable=broad-except  # any decoder failure is a bad input file
    raise unreadable(path, "image", error) from None
  notes = []
  if orientation != 1:
    notes.append(f"EXIF orientation {orientation} applied: the stored {stored_size[0]}x{stored_size[1]} pixels were "
                 f"turned upright to {pixels.shape[1]}x{pixels.shape[0]} (width x height); every output is upright.")
  if bits == 16:
    notes.append("16-bit samples were scaled to 8 bits (the models work at 8 bits); the outputs are 8-bit.")
  if (mode in ALPHA_MODES or (mode == "P" and "transparency" in header.info)) and _has_transparency(path):
    notes.append("Transparent pixels were composited onto white; the outputs have no alpha channel.")
  grayscale = mode in GRAY_MODES
  if grayscale:
    notes.append("Grayscale input: the models see it as RGB with equal channels; the outputs are grayscale.")
  description = {"format": file_format, "mode": mode, "bits_per_sample": bits, "exif_orientation": orientation,
                 "stored_width": stored_size[0], "stored_height": stored_size[1], "width": pixels.shape[1],
                 "height": pixels.shape[0]}
  return Photograph(os.path.abspath(path), pixels, sha256_file(path), grayscale, description, notes)


def as_saved(pixels: np.ndarray, grayscale: bool) -> np.ndarray:
  """uint8 [H, W, 3] -> what is written: [H, W] luminance for a grayscale photograph (exact on equal channels)."""
  if not grayscale:
    return pixels
  return np.asarray(Image.fromarray(pixels).convert("L"))


def _is_within(path: Path, folder: Path) -> bool:
  return path == folder or folder in path.parents


class OutputFolder:
  """Writes the outputs into a hidden sibling of `path` and renames it to `path` on `commit`, so a failed or
  interrupted run leaves nothing half-written. An existing `path` is refused unless `overwrite`, and never
  replaced when it holds one of `protected` (the input image, mask or checkpoint)."""

  def __init__(self, path: str, overwrite: bool, protected: list[str]):
    self.path = Path(path).absolute()
    if self.path.exists() or self.path.is_symlink():
      if not self.path.is_dir() or self.path.is_symlink():
        raise RestoreError(f"--out {path!r} exists and is not a folder; choose a new folder name.")
      if not overwrite:
        raise RestoreError(f"The output folder {path!r} already exists; pass --overwrite to replace it or choose "
                           "another --out.")
    reason = paths.unwritable_reason(self.path.parent)
    if reason is not None:
      raise RestoreError(f"--out {path!r} cannot be written ({reason}); choose an output folder you can write to.")
    for item in protected:
      if _is_within(Path(item).resolve(), self.path.resolve()):
        raise RestoreError(f"--out {path!r} contains the input {item!r}, which must never be replaced; choose an "
                           "output folder elsewhere.")
    self.overwrite = overwrite
    self.staging = self.path.with_name(f".{self.path.name}.partial-{uuid.uuid4().hex[:8]}")

  def __enter__(self) -> OutputFolder:
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self.staging.mkdir()
    return self

  def __exit__(self, exc_type, exc, traceback) -> None:
    if self.staging.exists():
      shutil.rmtree(self.staging)

  def file(self, name: str) -> Path:
    """Where the output `name` (may contain '/') is written while the run lasts."""
    return self.staging / name

  def hashes(self) -> dict[str, str]:
    """{'/'-separated path: SHA-256} of every file written so far."""
    return {path.relative_to(self.staging).as_posix(): sha256_file(path)
            for path in sorted(self.staging.rglob("*")) if path.is_file()}

  def commit(self) -> None:
    """Moves the finished outputs to `path`, replacing the old folder when allowed."""
    replaced = None
    if self.path.exists():
      if not self.overwrite:
        raise RestoreError(f"The output folder {str(self.path)!r} appeared while restoring; pass --overwrite to "
                           "replace it or choose another --out.")
      replaced = self.path.with_name(f".{self.path.name}.replaced-{uuid.uuid4().hex[:8]}")
      os.rename(self.path, replaced)
    os.rename(self.staging, self.path)
    if replaced is not None:
      shutil.rmtree(replaced)
