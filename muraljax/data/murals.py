"""Procedural Dunhuang-style murals: the built-in training data, generated on the fly (no download).

A mural is flat pigment regions (earth reds, ochre, malachite, azurite, cinnabar, darkened lead white, black) with
dark contour lines: seated Buddhas with haloes and mandorlas, standing bodhisattvas with scarves, lotus rosettes,
clouds, repeated decorative bands, and "thousand Buddha" grids, painted over a plaster ground with grain,
low-frequency colour variation and mild wear. Every shape is a signed distance function evaluated on pixel
coordinates, so any window of a mural can be rendered on its own (`generate_mural_crop`) and equals the same
window of the whole mural exactly; the training pipeline renders only the patch it needs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np

from muraljax.data.errors import DataError

_Color = np.ndarray  # float32 [3], or [K, 3]: one colour per tile, chosen by tile index modulo K.
_LocalSdf = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (u, v) local units -> signed distance, local units.
_Box = tuple[float, float, float, float]  # (x0, y0, x1, y1)
_Paint = Callable[..., None]  # canvas.shape with its frame, box and clip bound: (sdf, fill, line, line_scale)

_PIGMENTS = {
    "earth_red": (0.60, 0.28, 0.17),
    "red_brown": (0.44, 0.21, 0.13),
    "ochre": (0.76, 0.55, 0.30),
    "yellow_ochre": (0.84, 0.70, 0.44),
    "cinnabar": (0.76, 0.27, 0.17),
    "malachite": (0.33, 0.57, 0.47),
    "pale_malachite": (0.56, 0.71, 0.59),
    "azurite": (0.28, 0.39, 0.60),
    "pale_azurite": (0.53, 0.58, 0.73),
    "lilac": (0.60, 0.56, 0.69),
    "lead_grey": (0.42, 0.38, 0.34),  # lead white that has darkened to grey-brown
    "dark_grey": (0.25, 0.23, 0.22),
    "black": (0.12, 0.10, 0.09),
    "white": (0.89, 0.86, 0.78),
    "flesh": (0.88, 0.72, 0.59),
}
_GROUNDS = ((0.79, 0.77, 0.67), (0.87, 0.80, 0.66), (0.64, 0.37, 0.23), (0.66, 0.69, 0.59), (0.80, 0.68, 0.52),
            (0.42, 0.23, 0.16), (0.33, 0.31, 0.27))
PLASTER_RGB = (0.80, 0.74, 0.63)  # bare lime plaster, float RGB
_ROBES = ("earth_red", "cinnabar", "malachite", "azurite", "lead_grey", "ochre", "red_brown")
_HALOES = ("malachite", "azurite", "ochre", "earth_red", "lilac", "pale_malachite", "yellow_ochre", "white")
_SKINS = ("flesh", "white", "lead_grey", "dark_grey")
_CONTOURS = ("black", "red_brown", "dark_grey")
_DETAIL_PIXELS = 90  # figures shorter than this many pixels skip details too small to see (eyes, hands, petals)


def mural_seed(seed: int, index: int) -> int:
  """Seed of image `index` of a mural collection with seed `seed` (a 32-bit hash of the pair)."""
  return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def generate_mural(seed: int, height: int, width: int) -> np.ndarray:
  """A procedural wall painting: uint8 [height, width, 3], the same for the same (seed, height, width)."""
  return generate_mural_crop(seed, height, width, 0, 0, height, width)


def generate_mural_crop(seed: int, height: int, width: int, top: int, left: int, crop_height: int,
                        crop_width: int) -> np.ndarray:
  """The window [top:top+crop_height, left:left+crop_width] of `generate_mural(seed, height, width)`.

  Returns uint8 [crop_height, crop_width, 3], identical to cropping the whole mural but cost proportional to the
  window's area.
  """
  if height < 8 or width < 8:
    raise DataError(f"Murals need height and width >= 8, got {height}x{width}; ask for a larger image.")
  if seed < 0:
    raise DataError(f"Mural seeds must be non-negative integers, got {seed}; use mural_seed() to derive one.")
  if not (0 <= top and 0 <= left and 0 < crop_height and 0 < crop_width and top + crop_height <= height
          and left + crop_width <= width):
    raise DataError(f"Crop {crop_height}x{crop_width} at ({top}, {left}) does not lie inside the {height}x{width} "
                    "mural; pass a window inside the image.")
  rng = np.random.default_rng(seed)
  canvas = _Canvas(rng, seed, height, width, top, left, crop_height, crop_width)
  _compose(canvas, rng)
  _age(canvas, rng)
  return np.clip(canvas.rgb * 255.0 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


class ProceduralMurals:
  """Random-access source of procedural murals for grain: item i is uint8 [height, width, 3].

  Item i is `generate_mural(mural_seed(seed, i), height, width)`, so a collection is fixed by its seed.
  """

  def __init__(self, num_images: int, height: int, width: int, seed: int = 0):
    if num_images < 1:
      raise DataError(f"ProceduralMurals needs num_images >= 1, got {num_images}; pass a positive count.")
    self.num_images, self.height, self.width, self.seed = num_images, height, width, seed

  def __len__(self) -> int:
    return self.num_images

  def __getitem__(self, index: int) -> np.ndarray:
    return self.crop(index, 0, 0, self.height, self.width)

  def crop(self, index: int, top: int, left: int, crop_height: int, crop_width: int) -> np.ndarray:
    """Window of item `index`, uint8 [crop_height, crop_width, 3], rendered without the rest of the image."""
    if not 0 <= index < self.num_images:
      raise IndexError(f"Mural index {index} is outside [0, {self.num_images}).")
    return generate_mural_crop(mural_seed(self.seed, int(index)), self.height, self.width, top, left, crop_height,
                               crop_width)

  def __repr__(self) -> str:
    return f"ProceduralMurals(num_images={self.num_images}, height={self.height}, width={self.width}, seed={self.seed})"


# ----------------------------------------------------------------------------------------------------------------
# Noise. Both kinds are evaluated per pixel from values that do not depend on the window, so windows agree exactly.


def _value_noise(rng: np.random.Generator, height: int, width: int, period: float, rows: np.ndarray,
                 cols: np.ndarray) -> np.ndarray:
  """Smooth value noise in [0, 1] with feature size `period` pixels at pixel centres rows x cols: float32 [h, w]."""
  grid = rng.random((int(height / period) + 3, int(width / period) + 3), dtype=np.float32)
  gy, gx = rows / period, cols / period
  iy, ix = gy.astype(np.int32), gx.astype(np.int32)
  fy, fx = _smoothstep(gy - iy), _smoothstep(gx - ix)
  along_rows = grid[iy] * (1 - fy)[:, None] + grid[iy + 1] * fy[:, None]
  return np.take(along_rows, ix, axis=1) * (1 - fx) + np.take(along_rows, ix + 1, axis=1) * fx


def _smoothstep(t: np.ndarray) -> np.ndarray:
  return t * t * (3 - 2 * t)


def _pixel_noise(seed: int, salt: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
  """White noise in [0, 1) from an integer hash of (seed, salt, row, col): float32 [h, w]."""
  with np.errstate(over="ignore"):
    row_hash = rows.astype(np.uint32)[:, None] * np.uint32(0x8DA6B343)
    col_hash = cols.astype(np.uint32)[None, :] * np.uint32(0xD8163841)
    h = row_hash ^ col_hash ^ np.uint32((seed * 0x9E3779B1 + salt * 0x85EBCA77) & 0xFFFFFFFF)
    for shift, mult in ((16, 0x7FEB352D), (15, 0x846CA68B)):
      h ^= h >> np.uint32(shift)
      h *= np.uint32(mult)
    h ^= h >> np.uint32(16)
  return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


# ----------------------------------------------------------------------------------------------------------------
# Canvas and drawing frames.


@dataclasses.dataclass(frozen=True)
class _Frame:
  """Maps canvas pixel coordinates to local drawing units, optionally tiled into a grid of repeats.

  Local u runs along the frame's angle, v across it (down for angle 0). With `tile` = (tw, th), the plane from the
  origin is cut into tiles[0] x tiles[1] tiles, and every tile has its own local origin at its bottom centre, so
  a shape drawn once is repeated in each tile; the tile index (column + row) picks colours from colour tables.
  """
  ox: float
  oy: float
  scale: float  # pixels per local unit
  angle: float = 0.0
  tile: tuple[float, float] | None = None
  tiles: tuple[int, int] = (1, 1)

  def local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | int]:
    dx, dy = (x - self.ox) / self.scale, (y - self.oy) / self.scale
    if self.angle:
      c, s = math.cos(self.angle), math.sin(self.angle)
      dx, dy = dx * c + dy * s, dy * c - dx * s
    if self.tile is None:
      return dx, dy, 0
    (tw, th), (nx, ny) = self.tile, self.tiles
    ix = np.clip(np.floor(dx / tw), 0, nx - 1)
    iy = np.clip(np.floor(dy / th), 0, ny - 1)
    return dx - (ix + 0.5) * tw, dy - (iy + 1) * th, (ix + iy).astype(np.int32)

  def spans(self, box: _Box, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Canvas x and y intervals [n, 2] that hold the local box, grown by `margin` pixels.

    Tiled frames at a multiple of a quarter turn give one interval per tile column and row, so a small part of a
    tile is not evaluated over the whole grid.
    """
    if self.tile is None or self.angle not in (0.0, math.pi / 2):
      x0, y0, x1, y1 = self.canvas_box(box)
      return np.array([[x0 - margin, x1 + margin]]), np.array([[y0 - margin, y1 + margin]])
    (tw, th), (nx, ny) = self.tile, self.tiles
    along = (np.arange(nx) + 0.5)[:, None] * tw + np.array([box[0], box[2]])
    across = (np.arange(ny) + 1.0)[:, None] * th + np.array([box[1], box[3]])

    def to_canvas(intervals: np.ndarray, origin: float, sign: float) -> np.ndarray:
      ends = origin + sign * self.scale * intervals
      return np.stack([ends.min(axis=1) - margin, ends.max(axis=1) + margin], axis=1)

    if self.angle == 0.0:
      return to_canvas(along, self.ox, 1.0), to_canvas(across, self.oy, 1.0)
    return to_canvas(across, self.ox, -1.0), to_canvas(along, self.oy, 1.0)  # u runs down, v to the left

  def canvas_box(self, box: _Box) -> _Box:
    """Canvas bounding box of a local box (of the whole grid, whatever the box, when tiled)."""
    if self.tile is not None:
      box = (0.0, 0.0, self.tile[0] * self.tiles[0], self.tile[1] * self.tiles[1])
    c, s = math.cos(self.angle), math.sin(self.angle)
    xs, ys = [], []
    for u in (box[0], box[2]):
      for v in (box[1], box[3]):
        xs.append(self.ox + (u * c - v * s) * self.scale)
        ys.append(self.oy + (u * s + v * c) * self.scale)
    return min(xs), min(ys), max(xs), max(ys)


@dataclasses.dataclass
class _LocalCoords:
  """Local coordinates u, v [h, w] of some canvas pixels in a frame, and their tile indices (0 when untiled)."""
  u: np.ndarray
  v: np.ndarray
  cell: np.ndarray | int

  def color(self, color: _Color, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """The colour at pixels [r0:r1, c0:c1], broadcastable to [3, r1 - r0, c1 - c0]; tables pick by tile."""
    if color.ndim == 1:
      return color[:, None, None]
    index = np.broadcast_to(self.cell, self.u.shape)[r0:r1, c0:c1] % len(color)
    return np.take(np.ascontiguousarray(color.T), index, axis=1)


class _Canvas:
  """A window of a mural being painted: float32 rgb [3, h, w] and warped pixel coordinates [h, w].

  Colour planes come first because numpy is slow on a trailing axis of 3.
  """

  def __init__(self, rng: np.random.Generator, seed: int, height: int, width: int, top: int, left: int,
               crop_height: int, crop_width: int):
    self.seed, self.height, self.width, self.top, self.left = seed, height, width, top, left
    self.unit = float(min(height, width))
    self.line = max(1.0, 0.0055 * self.unit)  # contour width in pixels
    self.rows = np.arange(top, top + crop_height, dtype=np.float32) + 0.5
    self.cols = np.arange(left, left + crop_width, dtype=np.float32) + 0.5
    # A smooth displacement makes every line wobble like a hand-painted one.
    self.wobble = 0.004 * self.unit
    period = 0.06 * self.unit
    self.x = self.cols[None, :] + self.wobble * (2 * self.noise(rng, period) - 1)
    self.y = self.rows[:, None] + self.wobble * (2 * self.noise(rng, period) - 1)
    self.rgb = np.empty((3, crop_height, crop_width), np.float32)
    self._tiled_cache: dict = {}
    self._indices = np.arange(max(crop_height, crop_width))

  def noise(self, rng: np.random.Generator, period: float) -> np.ndarray:
    return _value_noise(rng, self.height, self.width, period, self.rows, self.cols)

  def grain(self, salt: int) -> np.ndarray:
    _, height, width = self.rgb.shape
    rows, cols = np.arange(self.top, self.top + height), np.arange(self.left, self.left + width)
    return _pixel_noise(self.seed, salt, rows, cols)

  def shape(self, frame: _Frame, box: _Box, sdf: _LocalSdf, fill: _Color | None = None,
            line: _Color | None = None, line_scale: float = 1.0, clip: _Box | None = None) -> None:
    """Paints a shape: `fill` inside sdf < 0, then a contour of `line` along sdf = 0 (local box bounds sdf < 0).

    `clip` (canvas pixels) cuts the shape off sharply at the clip box's edges.
    """
    line_px = self.line * line_scale
    margin = self.wobble + line_px + 2
    bounds = _grow_box(frame.canvas_box(box), margin)
    if clip:
      bounds = (max(bounds[0], clip[0]), max(bounds[1], clip[1]), min(bounds[2], clip[2]), min(bounds[3], clip[3]))
    rows, cols = self._pixels(frame, box, margin, bounds, clip)
    if not rows.size or not cols.size:
      return
    local = self._local(frame, rows, cols, clip)
    d = sdf(local.u, local.v) * frame.scale
    reach = 0.5 * line_px + 0.5 if line is not None else 0.5
    touched = d < reach
    live_rows, live_cols = np.flatnonzero(touched.any(axis=1)), np.flatnonzero(touched.any(axis=0))
    if not live_rows.size:
      return
    r0, r1, c0, c1 = live_rows[0], live_rows[-1] + 1, live_cols[0], live_cols[-1] + 1
    d = d[r0:r1, c0:c1]
    pixels = _Pixels(self.rgb, rows[r0:r1], cols[c0:c1])
    rgb = pixels.get()
    if fill is not None:
      _lerp(rgb, np.clip(0.5 - d, 0, 1), local.color(fill, r0, r1, c0, c1))
    if line is not None:
      _lerp(rgb, np.clip(reach - np.abs(d), 0, 1), local.color(line, r0, r1, c0, c1))
    pixels.set(rgb)

  def _pixels(self, frame: _Frame, box: _Box, margin: float, bounds: _Box,
              clip: _Box | None) -> tuple[np.ndarray, np.ndarray]:
    """Window row and column indices a shape may touch (per tile for tiled frames)."""
    _, height, width = self.rgb.shape
    r0, r1 = _pixel_range(bounds[1], bounds[3], self.top, height)
    c0, c1 = _pixel_range(bounds[0], bounds[2], self.left, width)
    if frame.tile is None or r0 >= r1 or c0 >= c1:
      return self._indices[r0:r1], self._indices[c0:c1]
    xspans, yspans = frame.spans(box, margin)
    if clip:
      xspans, yspans = np.clip(xspans, clip[0], clip[2]), np.clip(yspans, clip[1], clip[3])
    return _pixels_in(yspans, self.top, height), _pixels_in(xspans, self.left, width)

  def _local(self, frame: _Frame, rows: np.ndarray, cols: np.ndarray, clip: _Box | None) -> _LocalCoords:
    if frame.tile is None:
      return _LocalCoords(*frame.local(_take(self.x, rows, cols), _take(self.y, rows, cols)))
    # A tiled frame paints many parts over scattered pixels: map its whole grid (as far as it is in the window and
    # the clip box, with room for the widest contour) once, then pick.
    key = (frame, clip)
    if key not in self._tiled_cache:
      box = _grow_box(frame.canvas_box((0, 0, 0, 0)), self.wobble + 2 * self.line + 2)
      if clip:
        box = (max(box[0], clip[0]), max(box[1], clip[1]), min(box[2], clip[2]), min(box[3], clip[3]))
      _, height, width = self.rgb.shape
      r0, r1 = _pixel_range(box[1], box[3], self.top, height)
      c0, c1 = _pixel_range(box[0], box[2], self.left, width)
      self._tiled_cache = {key: (r0, c0, *frame.local(self.x[r0:r1, c0:c1], self.y[r0:r1, c0:c1]))}
    r0, c0, u, v, cell = self._tiled_cache[key]
    rows, cols = rows - r0, cols - c0
    return _LocalCoords(_take(u, rows, cols), _take(v, rows, cols), _take(cell, rows, cols))


class _Pixels:
  """The rows x cols grid of a planar image [3, h, w], read and written as [3, len(rows), len(cols)]."""

  def __init__(self, planes: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    self.planes = planes
    if _is_range(rows) and _is_range(cols):
      self.view = planes[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    else:
      # Flat take/put: several times faster than numpy's open-mesh (np.ix_) indexing.
      self.view = None
      self.flat = _flat_index(rows, cols, planes.shape[2])

  def get(self) -> np.ndarray:
    """The pixels [3, n, m]: a view of the image when they form a block, so edits land in place."""
    if self.view is not None:
      return self.view
    return np.take(self.planes.reshape(3, -1), self.flat, axis=1)

  def set(self, rgb: np.ndarray) -> None:
    if self.view is not None:
      return
    for plane, values in zip(self.planes.reshape(3, -1), rgb):
      plane.put(self.flat, values)


def _lerp(rgb: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
  """rgb += alpha * (color - rgb), in place; rgb [3, h, w], alpha [h, w], color broadcastable to rgb."""
  change = color - rgb
  change *= alpha
  rgb += change


def _grow_box(box: _Box, margin: float) -> _Box:
  return box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin


def _pixel_range(low: float, high: float, offset: int, size: int) -> tuple[int, int]:
  """[start, stop) of the window pixels along one axis whose centres lie in the canvas interval [low, high]."""
  return max(math.ceil(low - 0.5) - offset, 0), max(min(math.floor(high - 0.5) - offset + 1, size), 0)


def _pixels_in(spans: np.ndarray, offset: int, size: int) -> np.ndarray:
  """Window indices along one axis of the pixels whose centres lie in any of the canvas spans [n, 2]."""
  # np.minimum/np.maximum: np.clip's overhead dominates on arrays this small.
  starts = np.minimum(np.maximum(np.ceil(spans[:, 0] - 0.5).astype(np.int64) - offset, 0), size)
  stops = np.minimum(np.maximum(np.floor(spans[:, 1] - 0.5).astype(np.int64) - offset + 1, starts), size)
  depth = np.cumsum(np.bincount(starts, minlength=size + 1) - np.bincount(stops, minlength=size + 1))
  return np.flatnonzero(depth[:size] > 0)


def _is_range(indices: np.ndarray) -> bool:
  return indices[-1] - indices[0] + 1 == indices.size


def _flat_index(rows: np.ndarray, cols: np.ndarray, width: int) -> np.ndarray:
  return rows[:, None] * width + cols[None, :]


def _take(array: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
  """array[rows][:, cols] of a [h, w] array: a view when both are contiguous ranges."""
  if _is_range(rows) and _is_range(cols):
    return array[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
  return np.take(array, _flat_index(rows, cols, array.shape[1]))


# ----------------------------------------------------------------------------------------------------------------
# Signed distance functions in local units (approximate where exactness does not show).


def _circle(cx: float, cy: float, r: float) -> _LocalSdf:
  return lambda u, v: _norm(u - cx, v - cy) - r


def _ellipse(cx: float, cy: float, a: float, b: float) -> _LocalSdf:
  """Ellipse with semi-axes a, b; the gradient-normalised implicit function keeps contours even on thin ones."""

  def sdf(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    du, dv = (u - cx) / a, (v - cy) / b
    k0 = _norm(du, dv)
    return k0 * (k0 - 1) / (_norm(du / a, dv / b) + 1e-6)

  return sdf


def _box(cx: float, cy: float, hw: float, hh: float) -> _LocalSdf:
  return lambda u, v: np.maximum(np.abs(u - cx) - hw, np.abs(v - cy) - hh)


def _vesica(cx: float, cy: float, hw: float, hh: float) -> _LocalSdf:
  """Pointed oval (two intersecting circles), half-width hw, half-height hh: petals, leaves, mandorlas."""
  radius = (hw * hw + hh * hh) / (2 * hw)
  offset = radius - hw
  return lambda u, v: np.maximum(_norm(u - cx + offset, v - cy), _norm(u - cx - offset, v - cy)) - radius


def _polygon(points: list[tuple[float, float]]) -> _LocalSdf:
  """Convex polygon; the max of the edges' signed distances (exact inside, rounded-off outside corners)."""
  cx, cy = np.mean(points, axis=0)
  edges = []
  for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
    length = math.hypot(x1 - x0, y1 - y0)
    nx, ny = (y1 - y0) / length, (x0 - x1) / length
    sign = -1.0 if (cx - x0) * nx + (cy - y0) * ny > 0 else 1.0  # make the normal point outwards
    edges.append((x0, y0, sign * nx, sign * ny))
  return lambda u, v: functools.reduce(np.maximum, [(u - x0) * nx + (v - y0) * ny for x0, y0, nx, ny in edges])


def _ribbon(length: float, amplitude: float, wavelength: float, phase: float, width: float,
            strands: int = 1, gap: float = 0.0) -> _LocalSdf:
  """A wavy band along u in [0, length] around v = amplitude * sin(2 pi u / wavelength + phase), tapering at the
  ends; with `strands` > 1, that many parallel copies `gap` apart (a bundle of streamers)."""
  k = 2 * math.pi / wavelength

  def sdf(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    arg = k * u + phase
    across = v - amplitude * np.sin(arg)
    if strands > 1:
      across -= gap * np.clip(np.round(across / gap), 0, strands - 1)
    slope = amplitude * k * np.cos(arg)
    t = u * (2 / length) - 1
    across = np.abs(across) / np.sqrt(1 + slope * slope) - width * (1 - 0.4 * t * t)
    return np.maximum(across, np.abs(t) * (length / 2) - length / 2)

  return sdf


def _rings(cx: float, cy: float, spacing: float, inside: _LocalSdf) -> _LocalSdf:
  """Concentric circles every `spacing` around (cx, cy), clipped to `inside`: robe folds, halo rings."""

  def sdf(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r = _norm(u - cx, v - cy)
    return np.maximum(np.abs(r - spacing * np.round(r / spacing)), inside(u, v))

  return sdf


def _rosette(cx: float, cy: float, radius: float, petals: int, rotation: float) -> _LocalSdf:
  """Lotus flower seen from above: `petals` rounded petals around (cx, cy)."""

  def sdf(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    theta = np.arctan2(v - cy, u - cx) + rotation
    petal = np.sqrt(np.abs(np.cos(petals * theta / 2)))  # round petals meeting in sharp notches
    return _norm(u - cx, v - cy) - radius * (0.45 + 0.55 * petal)

  return sdf


def _norm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return np.sqrt(a * a + b * b)  # several times faster than np.hypot


def _union(*sdfs: _LocalSdf) -> _LocalSdf:
  return lambda u, v: functools.reduce(np.minimum, [f(u, v) for f in sdfs])


# ----------------------------------------------------------------------------------------------------------------
# Motifs.


def _pigment(rng: np.random.Generator, names: tuple[str, ...] | str, count: int | None = None) -> _Color:
  """A pigment (or a table of `count` different ones) with a slight random tint, float32 [3] or [count, 3]."""
  if isinstance(names, str):
    names = (names,)
  if count is None:
    picks = [rng.integers(len(names))]
  else:  # different pigments while there are enough
    picks = rng.permutation(len(names))[:count] if count <= len(names) else rng.integers(0, len(names), count)
  colors = np.array([_PIGMENTS[names[i]] for i in picks], np.float32)
  colors = np.clip(colors * rng.normal(1.0, 0.05, colors.shape), 0, 1).astype(np.float32)
  return colors if count else colors[0]


def _figure_colors(rng: np.random.Generator, count: int | None = None) -> dict[str, _Color]:
  return {
      "mandorla": _pigment(rng, _HALOES, count),
      "mandorla_inner": _pigment(rng, _HALOES, count),
      "halo": _pigment(rng, _HALOES, count),
      "robe": _pigment(rng, _ROBES, count),
      "undercloth": _pigment(rng, _ROBES, count),
      "skin": _pigment(rng, _SKINS),
      "hair": _pigment(rng, ("black", "azurite", "dark_grey")),
      "line": _pigment(rng, _CONTOURS),
      "pedestal": _pigment(rng, ("white", "pale_malachite", "ochre", "pale_azurite", "yellow_ochre")),
  }


def _seated_buddha(canvas: _Canvas, frame: _Frame, colors: dict[str, _Color], with_mandorla: bool) -> None:
  """Seated figure 1 unit tall, local origin at the bottom centre of its lotus pedestal."""
  line = colors["line"]
  if with_mandorla:
    canvas.shape(frame, (-0.45, -1.0, 0.45, 0.0), _vesica(0, -0.5, 0.43, 0.5), colors["mandorla"], line)
    canvas.shape(frame, (-0.4, -0.95, 0.4, -0.05), _vesica(0, -0.5, 0.36, 0.43), colors["mandorla_inner"], line)
  detailed = frame.scale > _DETAIL_PIXELS
  canvas.shape(frame, (-0.2, -1.0, 0.2, -0.6), _circle(0, -0.8, 0.18), colors["halo"], line)
  if detailed:
    canvas.shape(frame, (-0.2, -1.0, 0.2, -0.6), _circle(0, -0.8, 0.13), None, line, 0.7)
  pedestal = _ellipse(0, -0.06, 0.4, 0.07)
  canvas.shape(frame, (-0.4, -0.13, 0.4, 0.01), pedestal, colors["pedestal"], line)
  if detailed:
    canvas.shape(frame, (-0.4, -0.13, 0.4, 0.01), _petal_lines(pedestal), None, line, 0.7)
  legs = _ellipse(0, -0.17, 0.31, 0.09)
  canvas.shape(frame, (-0.31, -0.26, 0.31, -0.08), legs, colors["undercloth"], line)
  arms = _polygon([(-0.16, -0.64), (0.16, -0.64), (0.3, -0.44), (0.28, -0.22), (-0.28, -0.22), (-0.3, -0.44)])
  canvas.shape(frame, (-0.3, -0.64, 0.3, -0.22), arms, colors["robe"], line)
  torso = _polygon([(-0.13, -0.64), (0.13, -0.64), (0.2, -0.22), (-0.2, -0.22)])
  canvas.shape(frame, (-0.2, -0.64, 0.2, -0.22), torso, colors["undercloth"], line)
  canvas.shape(frame, (-0.2, -0.64, 0.2, -0.22), _rings(0.05, -0.78, 0.07, torso), None, line, 0.6)
  if detailed:
    canvas.shape(frame, (-0.09, -0.29, 0.09, -0.21), _ellipse(0, -0.25, 0.09, 0.04), colors["skin"], line)
  _head(canvas, frame, colors, -0.77)


def _standing_bodhisattva(canvas: _Canvas, frame: _Frame, colors: dict[str, _Color], rng: np.random.Generator) -> None:
  """Standing figure 1 unit tall with scarves, local origin between its feet."""
  line = colors["line"]
  canvas.shape(frame, (-0.16, -1.0, 0.16, -0.68), _circle(0, -0.84, 0.15), colors["halo"], line)
  for side in (-1, 1):
    scarf = _Frame(frame.ox + side * 0.15 * frame.scale, frame.oy - 0.7 * frame.scale, frame.scale,
                   math.pi / 2 - side * 0.12)
    canvas.shape(scarf, (0, -0.1, 0.75, 0.1), _ribbon(0.72, 0.04, rng.uniform(0.3, 0.5), rng.uniform(0, 6), 0.025),
                 colors["mandorla"], line)
  robe = _polygon([(-0.12, -0.7), (0.12, -0.7), (0.18, -0.02), (-0.18, -0.02)])
  canvas.shape(frame, (-0.18, -0.7, 0.18, 0), robe, colors["robe"], line)
  skirt = _polygon([(-0.15, -0.38), (0.15, -0.38), (0.18, -0.02), (-0.18, -0.02)])
  canvas.shape(frame, (-0.18, -0.38, 0.18, 0), skirt, colors["undercloth"], line)
  canvas.shape(frame, (-0.18, -0.38, 0.18, 0), _rings(0.0, -1.6, 0.05, skirt), None, line, 0.6)
  canvas.shape(frame, (-0.08, -0.6, 0.08, -0.5), _ellipse(0, -0.55, 0.07, 0.035), colors["skin"], line)
  _head(canvas, frame, colors, -0.81, size=0.8)


def _head(canvas: _Canvas, frame: _Frame, colors: dict[str, _Color], cy: float, size: float = 1.0) -> None:
  """Head with ushnisha/topknot and eyes, centred at local (0, cy)."""
  line, s = colors["line"], size
  canvas.shape(frame, (-0.1, cy - 0.17, 0.1, cy + 0.1), _circle(0, cy - 0.1 * s, 0.05 * s), colors["hair"], line)
  canvas.shape(frame, (-0.1, cy - 0.1, 0.1, cy + 0.1), _ellipse(0, cy, 0.075 * s, 0.09 * s), colors["skin"], line)
  canvas.shape(frame, (-0.1, cy - 0.1, 0.1, cy + 0.1), _ellipse(0, cy - 0.06 * s, 0.075 * s, 0.035 * s),
               colors["hair"])
  if frame.scale < _DETAIL_PIXELS:
    return
  eyes = _union(_box(-0.03 * s, cy + 0.005, 0.017 * s, 0.003), _box(0.03 * s, cy + 0.005, 0.017 * s, 0.003))
  canvas.shape(frame, (-0.06, cy - 0.02, 0.06, cy + 0.02), eyes, line)


def _petal_lines(inside: _LocalSdf, period: float = 0.1) -> _LocalSdf:
  """Curved vertical petal separators every `period`, clipped to `inside`."""

  def sdf(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    bent = u * (1 + 2.5 * (v + 0.06))
    return np.maximum(np.abs(bent - period * np.round(bent / period)), inside(u, v))

  return sdf


def _lotus(canvas: _Canvas, rng: np.random.Generator, cx: float, cy: float, radius: float) -> None:
  """Lotus rosette seen from above, centre (cx, cy) and radius in pixels."""
  frame = _Frame(cx, cy, radius)
  line = _pigment(rng, _CONTOURS)
  petals = int(rng.integers(6, 13))
  box = (-1.0, -1.0, 1.0, 1.0)
  outer = _rosette(0, 0, 1.0, petals, 0.0)
  canvas.shape(frame, box, outer, _pigment(rng, _HALOES), line)
  canvas.shape(frame, box, _rays(petals, outer), None, line, 0.6)
  canvas.shape(frame, box, _rosette(0, 0, 0.7, petals, math.pi / petals), _pigment(rng, _HALOES), line)
  canvas.shape(frame, box, _circle(0, 0, 0.28), _pigment(rng, ("ochre", "earth_red", "black", "yellow_ochre")), line)
  seeds = _union(*[_circle(0.15 * math.cos(a), 0.15 * math.sin(a), 0.05) for a in np.linspace(0, 6.28, 6)[:-1]])
  canvas.shape(frame, (-0.25, -0.25, 0.25, 0.25), seeds, line)


def _rays(count: int, inside: _LocalSdf) -> _LocalSdf:
  """Lines from the origin along the petal axes of a `_rosette`, clipped to `inside` (vein lines)."""

  def sdf(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    theta = np.arctan2(v, u)
    step = 2 * math.pi / count
    off = theta - step * np.round(theta / step)
    return np.maximum(np.abs(np.sin(off)) * _norm(u, v), inside(u, v))

  return sdf


def _cloud(canvas: _Canvas, rng: np.random.Generator, cx: float, cy: float, size: float) -> None:
  """Scalloped cloud: a cluster of outlined puffs with curls, centre (cx, cy), size in pixels."""
  n = int(rng.integers(3, 7))
  puffs = [(float(i - (n - 1) / 2) * 0.5 + rng.normal(0, 0.08), rng.normal(0, 0.15) - 0.2 * (i % 2),
            rng.uniform(0.3, 0.45)) for i in range(n)]
  frame = _Frame(cx, cy, size)
  box = (-0.3 * n - 0.5, -1.0, 0.3 * n + 0.5, 1.0)
  fill, line = _pigment(rng, ("white", "pale_azurite", "pale_malachite", "yellow_ochre")), _pigment(rng, _CONTOURS)
  canvas.shape(frame, box, _union(*[_circle(x, y, r) for x, y, r in puffs]), fill, line)
  canvas.shape(frame, box, _union(*[_circle(x + 0.05, y, 0.5 * r) for x, y, r in puffs]), None, line, 0.7)


def _wave_lines(canvas: _Canvas, rng: np.random.Generator, fill: bool) -> None:
  """A long wavy scarf (filled) or a bundle of thin streamer lines across the picture."""
  start = (rng.uniform(0, canvas.width), rng.uniform(0, canvas.height))
  frame = _Frame(*start, canvas.unit, rng.uniform(0, 2 * math.pi))
  length, wavelength, phase = rng.uniform(0.5, 1.2), rng.uniform(0.25, 0.6), rng.uniform(0, 6.3)
  if fill:
    ribbon = _ribbon(length, rng.uniform(0.03, 0.1), wavelength, phase, rng.uniform(0.012, 0.03))
    canvas.shape(frame, (0.0, -0.15, length, 0.15), ribbon, _pigment(rng, _HALOES + _ROBES), _pigment(rng, _CONTOURS))
    return
  strands = int(rng.integers(2, 6))
  ribbon = _ribbon(length, 0.06, wavelength, phase, 0.0, strands, gap=0.02)
  color = _pigment(rng, ("earth_red", "cinnabar", "ochre", "red_brown"))
  canvas.shape(frame, (0.0, -0.1, length, 0.1 + 0.02 * strands), ribbon, None, color, 0.8)


def _scatter_dots(canvas: _Canvas, rng: np.random.Generator, count: int) -> None:
  """Small dark dots and four-petal flowers strewn over the ground, as in many cave ceilings."""
  color = _pigment(rng, ("black", "dark_grey", "earth_red", "malachite"))
  frame = _Frame(0.0, 0.0, canvas.unit)
  for _ in range(count):
    cx, cy = rng.uniform(0, canvas.width / canvas.unit), rng.uniform(0, canvas.height / canvas.unit)
    r = rng.uniform(0.008, 0.02)
    if rng.random() < 0.5:
      sdf = _circle(cx, cy, r)
    else:
      sdf = _union(_vesica(cx, cy - r, 0.5 * r, r), _vesica(cx, cy + r, 0.5 * r, r),
                   _vesica(cx - r, cy, r, 0.5 * r), _vesica(cx + r, cy, r, 0.5 * r))
    canvas.shape(frame, (cx - 2 * r, cy - 2 * r, cx + 2 * r, cy + 2 * r), sdf, color)


# ----------------------------------------------------------------------------------------------------------------
# Decorative bands.


def _band(canvas: _Canvas, rng: np.random.Generator, box: _Box) -> None:
  """A framing band of a repeated motif inside the canvas box; it runs along the box's longer side."""
  x0, y0, x1, y1 = box
  vertical = (y1 - y0) > (x1 - x0)
  thickness = (x1 - x0) if vertical else (y1 - y0)
  length = (y1 - y0) if vertical else (x1 - x0)
  period = rng.uniform(0.7, 1.6)
  tiles = (int(length / (period * thickness)) + 2, 1)
  # Vertical bands run downwards with local v pointing left, so the tile's bottom (v = 0) is the band's right edge.
  frame = (_Frame(x1, y0, thickness, math.pi / 2, (period, 1.0), tiles) if vertical else
           _Frame(x0, y0, thickness, 0.0, (period, 1.0), tiles))
  paint = functools.partial(canvas.shape, frame, (-period / 2, -1.0, period / 2, 0.0), clip=box)
  line = _pigment(rng, _CONTOURS)
  paint(lambda u, v: np.full_like(u, -1.0), _pigment(rng, _ROBES + _HALOES))  # the band's ground
  motif = _BAND_MOTIFS[rng.choice(sorted(_BAND_MOTIFS))]
  motif(paint, period, _pigment(rng, _HALOES + _ROBES, 2), line)
  paint(lambda u, v: 0.5 - np.abs(v + 0.5), None, line, 1.3)  # the band's two edges


def _band_pearls(paint: _Paint, period: float, colors: _Color, line: _Color) -> None:
  paint(_circle(0, -0.5, 0.28), colors, line)


def _band_petals(paint: _Paint, period: float, colors: _Color, line: _Color) -> None:
  paint(_vesica(0, -0.45, 0.42 * period, 0.42), colors, line)
  paint(_vesica(0, -0.4, 0.2 * period, 0.25), colors[::-1], line)


def _band_lattice(paint: _Paint, period: float, colors: _Color, line: _Color) -> None:
  paint(lambda u, v: np.abs(u) / period + np.abs(v + 0.5) - 0.45, colors, line)
  paint(_circle(0, -0.5, 0.1), line)


def _band_zigzag(paint: _Paint, period: float, colors: _Color, line: _Color) -> None:
  paint(lambda u, v: (v + 0.9 - 0.8 * (1 - 2 * np.abs(u) / period)) * 0.6, colors[0], line)


def _band_scroll(paint: _Paint, period: float, colors: _Color, line: _Color) -> None:
  paint(lambda u, v: np.abs(v + 0.5 - 0.22 * np.sin(2 * math.pi * u / period)) - 0.03, colors[0], line)
  paint(_union(_vesica(0.25 * period, -0.2, 0.16 * period, 0.1), _vesica(-0.25 * period, -0.8, 0.16 * period, 0.1)),
        colors[1], line)
  paint(_circle(0.25 * period, -0.72, 0.12), None, line)


def _band_stripes(paint: _Paint, period: float, colors: _Color, line: _Color) -> None:
  paint(lambda u, v: np.abs(v + 0.5) - 0.22, colors[0], line)
  paint(lambda u, v: np.abs(v + 0.5) - 0.08, colors[1], line)


_BAND_MOTIFS = {
    "pearls": _band_pearls,
    "petals": _band_petals,
    "lattice": _band_lattice,
    "zigzag": _band_zigzag,
    "scroll": _band_scroll,
    "stripes": _band_stripes,
}

# ----------------------------------------------------------------------------------------------------------------
# Composition.


def _compose(canvas: _Canvas, rng: np.random.Generator) -> None:
  """Paints the ground, decorative borders, and the field inside them in one of three layouts."""
  ground = np.array(_GROUNDS[rng.integers(len(_GROUNDS))], np.float32)
  variation = canvas.noise(rng, 0.25 * canvas.unit) - 0.5
  tint = np.array([1.0, 0.8, 0.6], np.float32)[:, None, None]  # variation warms and cools the colour
  canvas.rgb[...] = ground[:, None, None] * (1 + 0.12 * tint * variation)
  field = _borders(canvas, rng)
  layout = rng.choice(3, p=[0.55, 0.25, 0.2])
  (_figure_scene, _buddha_grid, _caisson)[layout](canvas, rng, field)


def _borders(canvas: _Canvas, rng: np.random.Generator) -> _Box:
  """Draws bands along some of the picture's edges; returns the field box left inside them."""
  w, h = float(canvas.width), float(canvas.height)
  x0, y0, x1, y1 = 0.0, 0.0, w, h
  for side in np.flatnonzero(rng.random(4) < 0.45):
    t = rng.uniform(0.06, 0.14) * canvas.unit
    if side == 0:
      _band(canvas, rng, (x0, y0, x1, y0 + t))
      y0 += t
    elif side == 1:
      _band(canvas, rng, (x0, y1 - t, x1, y1))
      y1 -= t
    elif side == 2:
      _band(canvas, rng, (x0, y0, x0 + t, y1))
      x0 += t
    else:
      _band(canvas, rng, (x1 - t, y0, x1, y1))
      x1 -= t
  return x0, y0, x1, y1


def _figure_scene(canvas: _Canvas, rng: np.random.Generator, field: _Box) -> None:
  """Figures with haloes among clouds, lotus flowers, scarves, streamers and strewn flowers."""
  x0, y0, x1, y1 = field
  if rng.random() < 0.3:
    _diaper(canvas, rng, field)
  for _ in range(rng.integers(1, 5)):
    _wave_lines(canvas, rng, fill=False)
  for _ in range(rng.integers(1, 7)):
    _cloud(canvas, rng, rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(0.05, 0.12) * canvas.unit)
  for _ in range(rng.integers(0, 4)):
    _lotus(canvas, rng, rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(0.06, 0.2) * canvas.unit)
  _scatter_dots(canvas, rng, int(rng.integers(4, 30)))
  for _ in range(rng.integers(1, 4)):
    size = rng.uniform(0.5, 1.0) * (y1 - y0)
    frame = _Frame(rng.uniform(x0, x1), rng.uniform(y0 + 0.7 * size, y1 + 0.2 * size), size)
    if rng.random() < 0.6:
      _seated_buddha(canvas, frame, _figure_colors(rng), with_mandorla=rng.random() < 0.7)
    else:
      _standing_bodhisattva(canvas, frame, _figure_colors(rng), rng)
  for _ in range(rng.integers(0, 3)):
    _wave_lines(canvas, rng, fill=True)


def _buddha_grid(canvas: _Canvas, rng: np.random.Generator, field: _Box) -> None:
  """"Thousand Buddhas": rows of small seated Buddhas whose colours repeat diagonally."""
  x0, y0, x1, y1 = field
  size = rng.uniform(0.12, 0.3) * canvas.unit
  tile = (rng.uniform(0.85, 1.05), rng.uniform(1.05, 1.25))
  tiles = (int((x1 - x0) / (tile[0] * size)) + 1, int((y1 - y0) / (tile[1] * size)) + 1)
  frame = _Frame(x0, y0, size, 0.0, tile, tiles)
  _seated_buddha(canvas, frame, _figure_colors(rng, count=int(rng.integers(2, 5))), with_mandorla=True)


def _diaper(canvas: _Canvas, rng: np.random.Generator, field: _Box) -> None:
  """All-over repeat on the field: small flowers in a diamond lattice, as on robes and cave walls."""
  x0, y0, x1, y1 = field
  size = rng.uniform(0.06, 0.14) * canvas.unit
  tiles = (int((x1 - x0) / size) + 1, int((y1 - y0) / size) + 1)
  frame = _Frame(x0, y0, size, 0.0, (1.0, 1.0), tiles)
  line = _pigment(rng, _CONTOURS + ("white", "ochre"))
  tile = (-0.5, -1.0, 0.5, 0.0)
  canvas.shape(frame, tile, lambda u, v: np.abs(np.abs(u) + np.abs(v + 0.5) - 0.5), None, line, clip=field)
  flower = _union(_vesica(0, -0.65, 0.07, 0.15), _vesica(0, -0.35, 0.07, 0.15), _vesica(-0.15, -0.5, 0.15, 0.07),
                  _vesica(0.15, -0.5, 0.15, 0.07))
  canvas.shape(frame, tile, flower, _pigment(rng, _HALOES + _ROBES, 2), line, 0.6, clip=field)


def _caisson(canvas: _Canvas, rng: np.random.Generator, field: _Box) -> None:
  """Caisson ceiling: concentric square frames of bands around a central lotus, clouds in the corners."""
  x0, y0, x1, y1 = field
  (_diaper if rng.random() < 0.5 else _buddha_grid)(canvas, rng, field)
  cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
  half = rng.uniform(0.35, 0.7) * canvas.unit
  for _ in range(int(rng.integers(2, 4))):
    t = rng.uniform(0.05, 0.1) * canvas.unit
    for box in ((cx - half, cy - half, cx + half, cy - half + t), (cx - half, cy + half - t, cx + half, cy + half),
                (cx - half, cy - half + t, cx - half + t, cy + half - t),
                (cx + half - t, cy - half + t, cx + half, cy + half - t)):
      _band(canvas, rng, box)
    half -= t
  canvas.shape(_Frame(cx, cy, half), (-1, -1, 1, 1), _box(0, 0, 1, 1), _pigment(rng, _ROBES + _HALOES))
  _lotus(canvas, rng, cx, cy, 0.85 * half)
  for sx, sy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
    _cloud(canvas, rng, cx + sx * 0.82 * half, cy + sy * 0.82 * half, 0.12 * half)


# ----------------------------------------------------------------------------------------------------------------
# Ageing.


def _age(canvas: _Canvas, rng: np.random.Generator) -> None:
  """Uneven pigment and stains, worn paint showing the plaster, desaturation, plaster grain and specks."""
  rgb = canvas.rgb
  unit = canvas.unit
  stain = canvas.noise(rng, 0.3 * unit) + 0.6 * canvas.noise(rng, 0.09 * unit)
  rgb *= 1 - rng.uniform(0.1, 0.25) * (stain - 0.8)
  wear = 0.6 * stain + 0.5 * canvas.noise(rng, 0.035 * unit) + 0.25 * canvas.noise(rng, 0.012 * unit)
  worn = np.clip((wear - rng.uniform(1.0, 1.25)) * 4, 0, 0.5)
  rgb += worn * (np.array(PLASTER_RGB, np.float32)[:, None, None] - rgb)
  rgb += rng.uniform(0.05, 0.3) * (rgb.mean(axis=0) - rgb)
  rgb *= 1 + rng.uniform(0.05, 0.12) * (canvas.grain(0) - 0.5)
  rgb += 0.025 * (canvas.grain(1) - 0.5)
  specks = canvas.grain(2)
  rgb *= np.where(specks > 0.9985, np.float32(0.4), np.float32(1))
  light = specks < 0.0015
  rgb[:, light] = 0.5 * rgb[:, light] + 0.45
