"""Restoring an image of any size: overlapping tiles, run through a model in fixed-size batches, blended smoothly.

Along each axis the tiles start at evenly spread positions from 0 to `length - tile` (one tile when the image is
no longer than a tile), as few as keep every overlap at least `overlap` pixels. A tile's blending weight is the
product of two 1-D profiles; along an axis the profile is 1 except where the tile overlaps its neighbour, where it
rises as sin^2 from ~0 at the tile's edge to 1 at the neighbour's edge, so the two profiles sum to 1 across the
overlap. The blended image, sum(weight * tile output) / sum(weight), therefore has no seams: every tile hands
over continuously, and the pixels next to a tile's edge (where convolutions see padding) count least. Image
edges get full weight.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

import numpy as np

from muraljax.data.tiles import tile_starts

TileFn = Callable[[dict[str, np.ndarray], np.ndarray], object]
"""(batch {name: [B, th, tw, C]}, tile indices int [B]) -> restored tiles [B, th, tw, 3] (NumPy or JAX)."""


def axis_profiles(starts: Sequence[int], tile: int) -> list[np.ndarray]:
  """The blending profile float32 [tile] of each tile along an axis (see the module docstring)."""
  profiles = []
  for i, start in enumerate(starts):
    profile = np.ones(tile, np.float32)
    position = np.arange(tile, dtype=np.float32)
    if i > 0:
      ramp = starts[i - 1] + tile - start  # overlap with the previous tile: positions [0, ramp)
      profile *= np.where(position < ramp, np.sin(0.5 * np.pi * (position + 0.5) / ramp) ** 2, 1.0)
    if i + 1 < len(starts):
      ramp = start + tile - starts[i + 1]  # overlap with the next tile: positions [tile - ramp, tile)
      tail = tile - position
      profile *= np.where(tail <= ramp, np.sin(0.5 * np.pi * (tail - 0.5) / ramp) ** 2, 1.0)
    profiles.append(profile)
  return profiles


@dataclasses.dataclass(frozen=True)
class Tiling:
  """Overlapping tiles of shape `tile_shape` covering a `height` x `width` image; tile i is `boxes[i]`."""

  height: int
  width: int
  tile_shape: tuple[int, int]
  boxes: list[tuple[int, int]]  # (top, left) of every tile, row by row
  row_profiles: dict[int, np.ndarray]  # top -> [tile height]
  col_profiles: dict[int, np.ndarray]  # left -> [tile width]

  def weight(self, index: int) -> np.ndarray:
    """Blending weight float32 [tile height, tile width] of tile `index`."""
    top, left = self.boxes[index]
    return np.outer(self.row_profiles[top], self.col_profiles[left])

  def window(self, index: int) -> tuple[slice, slice]:
    top, left = self.boxes[index]
    return slice(top, top + self.tile_shape[0]), slice(left, left + self.tile_shape[1])

  def touching(self, damaged: np.ndarray) -> list[int]:
    """Indices of the tiles holding at least one damaged pixel of `damaged` bool [H, W]."""
    return [i for i in range(len(self.boxes)) if damaged[self.window(i)].any()]


def make_tiling(height: int, width: int, tile: int, overlap: int) -> Tiling:
  """Tiles of `tile` x `tile` pixels (shorter sides where the image is smaller) overlapping by >= `overlap`."""
  tile_h, tile_w = min(tile, height), min(tile, width)
  rows, cols = tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap)
  return Tiling(height, width, (tile_h, tile_w), [(top, left) for top in rows for left in cols],
                dict(zip(rows, axis_profiles(rows, tile_h))), dict(zip(cols, axis_profiles(cols, tile_w))))


class ProgressBar:
  """A one-line progress bar with elapsed time and an estimate of the time left, on stderr."""

  def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 30):
    self.total, self.label, self.width = total, label, width
    self.stream = stream or sys.stderr
    self.done = 0
    self.start = time.perf_counter()
    self._interactive = getattr(self.stream, "isatty", lambda: False)()
    self._last_decile = -1
    self._draw()

  def update(self, count: int) -> None:
    self.done = min(self.total, self.done + count)
    self._draw()

  def _draw(self) -> None:
    fraction = self.done / self.total if self.total else 1.0
    decile = int(fraction * 10)
    if not self._interactive and decile == self._last_decile:
      return  # in a log file, one line per 10%
    self._last_decile = decile
    elapsed = time.perf_counter() - self.start
    left = f", ~{elapsed * (1 - fraction) / fraction:.0f} s left" if 0 < fraction < 1 else ""
    filled = round(fraction * self.width)
    line = (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
            f"{fraction:4.0%} {elapsed:.0f} s{left}")
    self.stream.write(f"\r{line}\033[K" if self._interactive else f"{line}\n")
    if self._interactive and self.done == self.total:
      self.stream.write("\n")
    self.stream.flush()


def run_tiles(fn: TileFn, images: dict[str, np.ndarray], tiling: Tiling, indices: Sequence[int], batch_size: int,
              progress: ProgressBar | None = None,
              on_batch: Callable[[int, float], None] | None = None) -> np.ndarray:
  """Blends the outputs of `fn` on the tiles `indices` of `images` ({name: [H, W, C]}).

  Tiles go to `fn` in batches of exactly `batch_size` (the last one padded with repeats, so `fn` sees one shape);
  the next batch is dispatched before the previous one is read back. `on_batch(batch number, seconds)` is called
  as each batch finishes. Returns float32 [H, W, 3]: the blended restoration where a tile in `indices` covers the
  pixel, 0 elsewhere.
  """
  total = np.zeros((tiling.height, tiling.width, 3), np.float32)
  weights = np.zeros((tiling.height, tiling.width, 1), np.float32)

  def accumulate(batch_indices: Sequence[int], outputs: object, number: int, started: float) -> None:
    outputs = np.asarray(outputs, np.float32)
    for index, output in zip(batch_indices, outputs):
      window, weight = tiling.window(index), tiling.weight(index)[..., None]
      total[window] += weight * output
      weights[window] += weight
    if on_batch is not None:
      on_batch(number, time.perf_counter() - started)
    if progress is not None:
      progress.update(len(batch_indices))

  pending = None
  for number, first in enumerate(range(0, len(indices), batch_size)):
    batch_indices = list(indices[first:first + batch_size])
    padded = batch_indices + [batch_indices[-1]] * (batch_size - len(batch_indices))
    batch = {name: np.stack([image[tiling.window(i)] for i in padded]) for name, image in images.items()}
    started = time.perf_counter()
    outputs = fn(batch, np.asarray(padded))
    if pending is not None:
      accumulate(*pending)
    pending = (batch_indices, outputs, number, started)
  if pending is not None:
    accumulate(*pending)
  return np.divide(total, weights, out=np.zeros_like(total), where=weights > 0)
