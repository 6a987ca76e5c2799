"""Synthetic mural damage: masks of the kinds real murals show, and (damaged, mask, clean) training triplets.

Mask generators share one signature, `(rng, height, width, ...) -> bool [height, width]` (True = damaged):
`random_walk_mask` (the Dunhuang challenge recipe), `stroke_mask`, `box_mask` (the usual inpainting masks),
`crack_mask`, `flaking_mask`, `collapse_mask` (lost paint and plaster), `fading_mask` (regions whose damage is
colour loss rather than missing pixels) and `real_mask` (a random crop of a damage mask traced on a photograph,
from `mask_folder`). `degrade` combines a few kinds per image with the hole ratio held inside
the configured limits, fills missing pixels and fades faded ones, and labels the example with its damage type
(`data.damage_types`, the condition DiffuMural embeds). Images are float32 [H, W, 3] in [0, 1]; masks float32
[H, W, 1], 1 = damaged.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import ml_collections
import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from muraljax.data.damage_types import DAMAGE_TYPES, UNKNOWN_DAMAGE
from muraljax.data.errors import DataError
from muraljax.data.murals import PLASTER_RGB

KINDS = ("random_walk", "strokes", "boxes", "cracks", "flaking", "collapse", "fading", "real")
FILLS = ("black", "plaster", "noise", "white")
_STROKE_WIDTHS = {"thin": (0.01, 0.04), "medium": (0.04, 0.09), "thick": (0.09, 0.16)}  # fractions of the short side
_PLASTER = np.array(PLASTER_RGB, np.float32)
_MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_MAX_ROUNDS = 8  # rounds of adding masks before growing the damage to reach min_hole_ratio


def default_config() -> ml_collections.ConfigDict:
  """Degradation settings (`degrade`'s `config`)."""
  config = ml_collections.ConfigDict()
  # Relative probability of each damage kind being picked for an image; 0 disables a kind. The random walk is the
  # Dunhuang challenge's own mask; fading changes colours inside its mask instead of removing pixels.
  config.weights = ml_collections.ConfigDict({
      "random_walk": 3.0,
      "strokes": 2.0,
      "boxes": 0.5,
      "cracks": 1.5,
      "flaking": 1.5,
      "collapse": 1.0,
      "fading": 1.0,
      "real": 0.0,
  })
  # Folder of real damage masks (PNG/JPEG..., white = damaged, searched recursively) that the 'real' kind crops,
  # flips, turns and rescales; needed when weights.real > 0.
  config.mask_folder = ""
  # Each image combines a uniform number in [1, max_kinds] of different kinds.
  config.max_kinds = 2
  # Limits on the fraction of damaged pixels (missing or faded), always respected: small masks get more damage
  # added (then are grown outwards), large ones are cut back along a smooth random boundary.
  config.min_hole_ratio = 0.01
  config.max_hole_ratio = 0.5
  # What replaces missing pixels: 'black' (as in the Dunhuang challenge), 'plaster' (bare plaster colour with
  # grain, as on real walls), 'noise' (uniform random colours) or 'white'.
  config.fill = "black"
  return config


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises DataError when a degradation config cannot be used, saying which field to fix."""
  unknown = sorted(set(config.weights.keys()) - set(KINDS))
  if unknown:
    raise DataError(f"Unknown damage kind(s) {unknown} in degradation.weights; use only {list(KINDS)}.")
  weights = [float(config.weights.get(kind, 0.0)) for kind in KINDS]
  if min(weights) < 0 or sum(weights) <= 0:
    raise DataError(f"degradation.weights must be >= 0 with at least one positive, got {dict(zip(KINDS, weights))}.")
  if config.weights.get("real", 0.0) > 0:
    _real_mask_files(config.get("mask_folder", ""))
  if int(config.max_kinds) < 1:
    raise DataError(f"degradation.max_kinds must be >= 1, got {config.max_kinds}.")
  low, high = float(config.min_hole_ratio), float(config.max_hole_ratio)
  if not (0.0 <= low <= 1.0 and 0.0 <= high <= 1.0):
    raise DataError(f"Hole ratios must lie in [0, 1], got min_hole_ratio={low}, max_hole_ratio={high}.")
  if low > high:
    raise DataError(f"min_hole_ratio ({low}) is larger than max_hole_ratio ({high}); swap or fix them.")
  if config.fill not in FILLS:
    raise DataError(f"Unknown degradation.fill {config.fill!r}; use one of {list(FILLS)}.")


def degrade(clean: np.ndarray, rng: np.random.Generator, config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """Damages one image.

  Args:
    clean: [H, W, 3] uint8, or float in [0, 1].
    rng: source of all randomness: the same generator state gives the same triplet.
    config: `default_config()` or a modified copy.

  Returns:
    dict(damaged=float32 [H, W, 3], mask=float32 [H, W, 1] (1 = damaged), clean=float32 [H, W, 3],
    damage_type=int32 [] (an index into DAMAGE_TYPES: that of the kind covering most of the damage)). Outside the
    mask `damaged` equals `clean` exactly; inside, missing pixels hold the fill and faded ones a washed-out or
    discoloured version of the clean colours.
  """
  check_config(config)
  clean = as_float_image(clean)
  height, width = clean.shape[:2]
  missing, faded, main_kind = damage_masks(rng, height, width, config)
  damaged = clean.copy()
  if faded.any():
    damaged[faded] = _faded_colors(rng, clean, faded)
  if missing.any():
    damaged[missing] = _fill_colors(rng, config.fill, missing)
  mask = (missing | faded)[..., None].astype(np.float32)
  return {"damaged": damaged, "mask": mask, "clean": clean, "damage_type": damage_type(main_kind)}


def damage_type(kind: str) -> np.int32:
  """int32 []: the DAMAGE_TYPES index of a mask kind (KINDS); the generic kinds are 'unknown'."""
  return np.int32(DAMAGE_TYPES.index(kind) if kind in DAMAGE_TYPES else UNKNOWN_DAMAGE)


def as_float_image(image: np.ndarray) -> np.ndarray:
  """[H, W, 3] uint8 or float in [0, 1] -> float32 [H, W, 3] in [0, 1]."""
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise DataError(f"Expected an RGB image [H, W, 3], got shape {image.shape}; convert it to RGB first.")
  if image.dtype == np.uint8:
    return image.astype(np.float32) / 255.0
  if not np.issubdtype(image.dtype, np.floating):
    raise DataError(f"Expected a uint8 or float image, got dtype {image.dtype}; convert it to uint8 or float32.")
  if image.size and (image.min() < 0.0 or image.max() > 1.0):
    raise DataError(f"Float images must lie in [0, 1], got values in [{image.min()}, {image.max()}]; "
                    "divide 8-bit values by 255.")
  return image.astype(np.float32)


def damage_masks(rng: np.random.Generator, height: int, width: int,
                 config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray, str]:
  """Missing and faded pixels, bool [H, W] each, disjoint, their union's ratio within the configured limits, and
  the kind whose masks cover most of them.

  Picks kinds by weight, adds one mask of every kind per round until the union reaches min_hole_ratio (after
  `_MAX_ROUNDS` rounds it grows the damage outwards instead), and cuts a union larger than max_hole_ratio back to
  a ratio drawn from [max(min, max / 2), max]. When no whole pixel count fits the limits (min == max on a tiny
  image) the nearest count is used.
  """
  total_px = height * width
  low = math.ceil(config.min_hole_ratio * total_px - 1e-9)
  high = math.floor(config.max_hole_ratio * total_px + 1e-9)
  missing = np.zeros((height, width), bool)
  faded = np.zeros((height, width), bool)
  kinds = _pick_kinds(rng, config)
  by_kind = {kind: np.zeros((height, width), bool) for kind in kinds}
  for _ in range(_MAX_ROUNDS):
    for kind in kinds:
      if kind == "real":
        generated = real_mask(rng, height, width, config.mask_folder)
      else:
        generated = MASK_GENERATORS[kind](rng, height, width)
      by_kind[kind] |= generated
      target = faded if kind == "fading" else missing
      target |= generated
    if np.count_nonzero(missing | faded) >= low:
      break
  damaged = missing | faded
  count = np.count_nonzero(damaged)
  if count < low:
    grown = _grow(rng, damaged, low)
    (missing if missing.any() or not faded.any() else faded)[grown & ~damaged] = True
  elif count > high:
    keep = _smooth_subset(rng, damaged, int(rng.integers(min(max(low, high // 2), high), high + 1)))
    missing &= keep
    faded &= keep
  faded &= ~missing
  main_kind = max(kinds, key=lambda kind: np.count_nonzero(by_kind[kind] & (missing | faded)))
  return missing, faded, main_kind


def _pick_kinds(rng: np.random.Generator, config: ml_collections.ConfigDict) -> list[str]:
  weights = np.array([float(config.weights.get(kind, 0.0)) for kind in KINDS])
  count = min(int(rng.integers(1, int(config.max_kinds) + 1)), np.count_nonzero(weights))
  picks = rng.choice(len(KINDS), size=count, replace=False, p=weights / weights.sum())
  return [KINDS[i] for i in picks]


def _grow(rng: np.random.Generator, mask: np.ndarray, count: int) -> np.ndarray:
  """The `count` pixels nearest to the mask (all of the mask included), bool [H, W]; a seed box if it is empty."""
  if not mask.any():
    mask = box_mask(rng, *mask.shape, max_boxes=1)
  distance = ndimage.distance_transform_edt(~mask)
  return _smallest(distance + 1e-3 * rng.random(mask.shape), count)


def _smooth_subset(rng: np.random.Generator, mask: np.ndarray, count: int) -> np.ndarray:
  """`count` pixels of the mask where a smooth random field is lowest: the mask cut along soft curves."""
  priority = _smooth_noise(rng, *mask.shape, cells=4) + 1e-3 * rng.random(mask.shape)
  priority[~mask] = np.inf
  return _smallest(priority, count)


def _smallest(values: np.ndarray, count: int) -> np.ndarray:
  """Bool mask of the `count` smallest entries of `values` [H, W]."""
  keep = np.zeros(values.size, bool)
  if count > 0:
    keep[np.argpartition(values.ravel(), count - 1)[:count]] = True
  return keep.reshape(values.shape)


# ----------------------------------------------------------------------------------------------------------------
# Mask generators: (rng, height, width, ...) -> bool [height, width], True = damaged.


def random_walk_mask(rng: np.random.Generator, height: int, width: int, steps: int = 10_000, canvas: int = 256,
                     max_brush: int = 4) -> np.ndarray:
  """The Dunhuang challenge's deterioration: a `steps`-step 4-neighbour random walk on a canvas x canvas grid,
  reflected at the edges and painted with a round brush of radius 1..max_brush, resized to height x width."""
  moves = np.array([[0, 1], [0, -1], [1, 0], [-1, 0]])[rng.integers(0, 4, steps)]
  path = rng.integers(0, canvas, 2) + np.cumsum(moves, axis=0)
  period = 2 * (canvas - 1)
  path %= period
  path = np.where(path >= canvas, period - path, path)  # reflect at the edges
  grid = np.zeros((canvas, canvas), bool)
  grid[path[:, 0], path[:, 1]] = True
  return _resize_mask(_dilate(grid, int(rng.integers(1, max_brush + 1))), height, width)


def stroke_mask(rng: np.random.Generator, height: int, width: int, thickness: str | None = None,
                max_strokes: int = 4) -> np.ndarray:
  """Free-form brush strokes (the usual inpainting masks): 1..max_strokes polylines with round joints.

  `thickness` is 'thin', 'medium' or 'thick' (None picks one); widths are fractions of the shorter side.
  """
  side = min(height, width)
  low, high = _STROKE_WIDTHS[thickness or rng.choice(sorted(_STROKE_WIDTHS))]
  image = Image.new("L", (width, height))
  draw = ImageDraw.Draw(image)
  for _ in range(int(rng.integers(1, max_strokes + 1))):
    stroke_width = max(1, int(rng.uniform(low, high) * side))
    angle = rng.uniform(0, 2 * math.pi)
    point = rng.uniform(0, 1, 2) * (width, height)
    points = [tuple(point)]
    for _ in range(int(rng.integers(3, 10))):
      angle += rng.normal(0, 0.8)
      point = np.clip(point + rng.uniform(0.05, 0.2) * side * np.array([math.cos(angle), math.sin(angle)]), 0,
                      (width - 1, height - 1))
      points.append(tuple(point))
    _polyline(draw, points, stroke_width)
  return np.asarray(image) > 0


def box_mask(rng: np.random.Generator, height: int, width: int, max_boxes: int = 3) -> np.ndarray:
  """1..max_boxes axis-aligned rectangles, each side 10-40% of the image's."""
  mask = np.zeros((height, width), bool)
  for _ in range(int(rng.integers(1, max_boxes + 1))):
    box_h = max(1, int(rng.uniform(0.1, 0.4) * height))
    box_w = max(1, int(rng.uniform(0.1, 0.4) * width))
    top, left = int(rng.integers(0, height - box_h + 1)), int(rng.integers(0, width - box_w + 1))
    mask[top:top + box_h, left:left + box_w] = True
  return mask


def crack_mask(rng: np.random.Generator, height: int, width: int, max_cracks: int = 3) -> np.ndarray:
  """Thin branching cracks: wandering lines that fork, and sometimes a patch of craquelure (a net of cells)."""
  side = min(height, width)
  image = Image.new("L", (width, height))
  draw = ImageDraw.Draw(image)
  crack_width = max(1, round(side / 256))
  for _ in range(int(rng.integers(1, max_cracks + 1))):
    start = rng.uniform(0, 1, 2) * (width, height)
    _crack(rng, draw, start, rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 0.9) * side, crack_width, depth=0)
  if rng.random() < 0.35:
    _craquelure(rng, draw, height, width, crack_width)
  return np.asarray(image) > 0


def flaking_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """Irregular flakes of lost paint with ragged edges, clustered where the wall is weakest (3-20% of pixels)."""
  side = min(height, width)
  cluster = _smooth_noise(rng, height, width, cells=max(2, round(3 * width / side)))
  flakes = (_smooth_noise(rng, height, width, cells=max(4, width // 12)) +
            0.5 * _smooth_noise(rng, height, width, cells=max(8, width // 5)))
  return _top_fraction(1.2 * cluster + flakes, rng.uniform(0.03, 0.2))


def collapse_mask(rng: np.random.Generator, height: int, width: int, max_holes: int = 2) -> np.ndarray:
  """Large holes where the plaster has fallen away: 1..max_holes lobed blobs with rough edges."""
  side = min(height, width)
  rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
  roughness = _smooth_noise(rng, height, width, cells=max(4, width // 10)) - 0.5
  mask = np.zeros((height, width), bool)
  for _ in range(int(rng.integers(1, max_holes + 1))):
    cy, cx = rng.uniform(0, 1, 2) * (height, width)
    radius = rng.uniform(0.12, 0.32) * side
    dy, dx = rows - cy, cols - cx
    theta = np.arctan2(dy, dx)
    outline = np.ones_like(theta)
    for k in range(2, 6):
      outline += rng.uniform(0, 0.3 / k) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    mask |= np.sqrt(dx * dx + dy * dy) + 0.25 * radius * roughness < radius * outline
  return mask


def fading_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """Large soft-edged regions (15-50% of pixels) whose damage is faded or discoloured paint."""
  side = min(height, width)
  field = _smooth_noise(rng, height, width, cells=max(2, round(2 * width / side))) + 0.15 * _smooth_noise(
      rng, height, width, cells=max(4, width // 16))
  return _top_fraction(field, rng.uniform(0.15, 0.5))


def real_mask(rng: np.random.Generator, height: int, width: int, folder: str) -> np.ndarray:
  """A random mask file of `folder` (white = damaged), rescaled by 0.5-1.5x (at least to cover height x width),
  flipped or turned like a training patch, and cropped at a random place."""
  files = _real_mask_files(folder)
  with Image.open(files[int(rng.integers(len(files)))]) as image:
    mask = image.convert("L")
  turns = int(rng.integers(4))
  rows, cols = (width, height) if turns % 2 else (height, width)  # what the file must cover before turning
  scale = max(rng.uniform(0.5, 1.5), rows / mask.height, cols / mask.width)
  size = (max(cols, round(mask.width * scale)), max(rows, round(mask.height * scale)))
  mask = np.asarray(mask.resize(size, Image.Resampling.BILINEAR)) > 127
  mask = np.rot90(mask[:, ::-1] if rng.integers(2) else mask, k=turns)
  top, left = rng.integers(0, mask.shape[0] - height + 1), rng.integers(0, mask.shape[1] - width + 1)
  return np.ascontiguousarray(mask[top:top + height, left:left + width])


@functools.lru_cache(maxsize=8)
def _real_mask_files(folder: str) -> tuple[str, ...]:
  """The image files under `folder`, sorted; DataError when there are none."""
  files = sorted(str(path) for path in Path(folder).rglob("*")
                 if path.suffix.lower() in _MASK_EXTENSIONS and not path.name.startswith(".")) if folder else []
  if not files:
    raise DataError(f"degradation.weights.real > 0 needs degradation.mask_folder, a folder of damage mask images "
                    f"(white = damaged); {folder!r} holds none.")
  return tuple(files)


MASK_GENERATORS = {
    "random_walk": random_walk_mask,
    "strokes": stroke_mask,
    "boxes": box_mask,
    "cracks": crack_mask,
    "flaking": flaking_mask,
    "collapse": collapse_mask,
    "fading": fading_mask,
}


def _crack(rng: np.random.Generator, draw: ImageDraw.ImageDraw, start: np.ndarray, angle: float, length: float,
           width: int, depth: int) -> None:
  """Draws one wandering crack from `start` and, recursively, its thinner forks."""
  step = max(2.0, length / 20)
  point, points = np.asarray(start, float), [tuple(start)]
  for _ in range(int(length / step)):
    angle += rng.normal(0, 0.35)
    point = point + step * np.array([math.cos(angle), math.sin(angle)])
    points.append(tuple(point))
    if depth < 2 and rng.random() < 0.08:
      fork = angle + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2)
      _crack(rng, draw, point, fork, length * rng.uniform(0.2, 0.5), max(1, width - 1), depth + 1)
  draw.line(points, fill=255, width=width)


def _craquelure(rng: np.random.Generator, draw: ImageDraw.ImageDraw, height: int, width: int, line: int) -> None:
  """A patch of fine polygonal cracks: the edges of a jittered grid of cells around a random centre."""
  cell = rng.uniform(0.04, 0.1) * min(height, width)
  count = int(rng.integers(3, 7))
  centre = rng.uniform(0, 1, 2) * (width, height)
  nodes = (np.stack(np.meshgrid(np.arange(count + 1), np.arange(count + 1)), -1) - count / 2) * cell
  nodes = nodes + centre + rng.normal(0, 0.3 * cell, nodes.shape)
  for i in range(count + 1):
    for j in range(count + 1):
      if j < count and rng.random() < 0.85:
        draw.line([tuple(nodes[i, j]), tuple(nodes[i, j + 1])], fill=255, width=line)
      if i < count and rng.random() < 0.85:
        draw.line([tuple(nodes[i, j]), tuple(nodes[i + 1, j])], fill=255, width=line)


def _polyline(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], width: int) -> None:
  draw.line(points, fill=255, width=width, joint="curve")
  radius = width / 2
  for x, y in points:
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
  """Dilation of a bool mask [H, W] by a disk: an OR of shifted copies, faster than scipy for small disks."""
  height, width = mask.shape
  out = mask.copy()
  for dy in range(-radius, radius + 1):
    for dx in range(-radius, radius + 1):
      if (dy or dx) and dy * dy + dx * dx <= radius * radius:
        out[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] |= (
            mask[max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)])
  return out


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
  if mask.shape == (height, width):
    return mask
  image = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)
  return np.asarray(image) > 0


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
  """Smooth random field in about [0, 1], float32 [H, W], with about `cells` features across the width."""
  grid_w = max(2, cells)
  grid_h = max(2, round(cells * height / width))
  grid = Image.fromarray(rng.random((grid_h, grid_w), dtype=np.float32))
  return np.asarray(grid.resize((width, height), Image.Resampling.BICUBIC))


def _top_fraction(field: np.ndarray, fraction: float) -> np.ndarray:
  """Bool mask of the (about) `fraction` of pixels where `field` is highest."""
  return field >= np.quantile(field, 1.0 - fraction)


# ----------------------------------------------------------------------------------------------------------------
# Colours of damaged pixels.


def _fill_colors(rng: np.random.Generator, fill: str, missing: np.ndarray) -> np.ndarray:
  """Colours for the missing pixels, float32 [count, 3]."""
  count = int(np.count_nonzero(missing))
  if fill == "black":
    return np.zeros((count, 3), np.float32)
  if fill == "white":
    return np.ones((count, 3), np.float32)
  if fill == "noise":
    return rng.random((count, 3), dtype=np.float32)
  tone = _PLASTER * rng.uniform(0.85, 1.08) * rng.normal(1.0, 0.03, 3)
  shade = 1 + 0.12 * (_smooth_noise(rng, *missing.shape, cells=6)[missing] - 0.5) + rng.normal(0, 0.03, count)
  return np.clip(tone[None, :] * shade[:, None], 0, 1).astype(np.float32)


def _faded_colors(rng: np.random.Generator, clean: np.ndarray, faded: np.ndarray) -> np.ndarray:
  """Washed-out (pigment loss) or discoloured (darkened, browned) colours of the faded pixels, float32 [count, 3].

  The strength varies smoothly between 35% and 90% and ramps up from the region's edge, so it has no hard border.
  """
  pixels = clean[faded]
  luminance = pixels.mean(axis=-1, keepdims=True)
  if rng.random() < 0.6:
    target = 0.5 * (luminance + 0.25 * (pixels - luminance)) + 0.5 * _PLASTER
  else:
    target = 0.6 * pixels * np.array([0.85, 0.75, 0.6], np.float32) + 0.1 * luminance
  ramp = np.clip(ndimage.distance_transform_edt(faded)[faded] / (0.05 * min(faded.shape)), 0.1, 1.0)
  strength = (0.35 + 0.55 * _smooth_noise(rng, *faded.shape, cells=5)[faded]) * ramp
  strength = strength[:, None]
  return np.clip(pixels + strength * (target - pixels), 0, 1).astype(np.float32)
