"""Image files of results: floats to uint8, grids to look at (damaged | restored | ground truth), atomic PNG writing."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from PIL import Image

BORDER_GREY = 128
"""uint8 value of the padding between grid cells: mid grey, distinct from both black and white content."""


def to_uint8(x: np.ndarray | jax.Array) -> np.ndarray:
  """Maps float images in [0, 1] to uint8 [0, 255]: clipped, rounded to nearest; NaN becomes 0. Shape is kept."""
  x = np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0)
  return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _as_rgb_uint8(column: np.ndarray | jax.Array, index: int) -> np.ndarray:
  """[B, H, W, 1 or 3] floats in [0, 1] -> [B, H, W, 3] uint8 (grey repeated to three channels)."""
  column = to_uint8(column)
  if column.ndim != 4 or column.shape[-1] not in (1, 3):
    raise ValueError(
        f"image_grid column {index} must be a batch [B, H, W, C] with C = 1 or 3, got shape {column.shape}."
    )
  return np.repeat(column, 3, axis=-1) if column.shape[-1] == 1 else column


def image_grid(
    columns: Sequence[np.ndarray | jax.Array], max_rows: int | None = None, padding: int = 2
) -> np.ndarray:
  """Lays batches side by side: row b shows example b of every column (e.g. damaged | restored | ground truth).

  Args:
    columns: batches [B, H, W, C], C = 1 (shown grey) or 3, values in [0, 1] (clipped); all the same B, H, W.
    max_rows: show at most this many examples (the first ones); None shows the whole batch.
    padding: width in pixels of the grey border around and between cells.

  Returns:
    uint8 [rows * H + (rows + 1) * padding, len(columns) * W + (len(columns) + 1) * padding, 3].
  """
  if not columns:
    raise ValueError("image_grid needs at least one column of images.")
  cells = [_as_rgb_uint8(column, i) for i, column in enumerate(columns)]
  batch, height, width, _ = cells[0].shape
  for i, cell in enumerate(cells):
    if cell.shape[:3] != (batch, height, width):
      raise ValueError(
          f"image_grid columns must share [B, H, W]; column 0 is {(batch, height, width)} but column {i} is "
          f"{cell.shape[:3]}. Resize or slice them to match."
      )
  rows = batch if max_rows is None else min(batch, max_rows)
  grid = np.full(
      (rows * height + (rows + 1) * padding, len(cells) * width + (len(cells) + 1) * padding, 3),
      BORDER_GREY,
      dtype=np.uint8,
  )
  for row in range(rows):
    top = padding + row * (height + padding)
    for col, cell in enumerate(cells):
      left = padding + col * (width + padding)
      grid[top : top + height, left : left + width] = cell[row]
  return grid


def save_png(path: str | os.PathLike[str], image_uint8: np.ndarray) -> None:
  """Writes a uint8 [H, W], [H, W, 1] or [H, W, 3] image as PNG, creating parent directories.

  The file is written under a temporary name in the same directory and renamed into place, so readers (e.g.
  TensorBoard, a conservator refreshing a folder) never see a partial file.
  """
  image = np.asarray(image_uint8)
  if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3))):
    raise ValueError(
        f"save_png needs a uint8 [H, W] or [H, W, 1 or 3] image, got {image.dtype} {image.shape}; "
        "convert floats in [0, 1] with to_uint8."
    )
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  # A unique sibling name (not mkstemp, whose 0600 mode would survive the rename) keeps the rename atomic.
  tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
  try:
    with open(tmp_path, "xb") as tmp:
      Image.fromarray(image).save(tmp, format="PNG")
    os.replace(tmp_path, path)
  except BaseException:
    tmp_path.unlink(missing_ok=True)
    raise
