"""Tiles and blending of muraljax.restore: coverage, weights, equality with a single pass, and no seams, for the
tiling alone and through the whole tool."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_restore import tiny_hinet_config

from muraljax.data.murals import generate_mural
from muraljax.models.hinet import HINet
from muraljax.restore.model import untrained_model
from muraljax.restore.restoration import Restorer, Settings
from muraljax.data.tiles import tile_starts
from muraljax.restore.tiling import axis_profiles, make_tiling, run_tiles

HEIGHT, WIDTH, TILE, OVERLAP = 160, 224, 64, 16


def smooth_image(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
  """float32 [H, W, 3]: slowly varying colours, so a model's output has no edges of its own for seams to hide in."""
  y, x = np.mgrid[:height, :width] / 60.0
  return np.stack([0.5 + 0.3 * np.sin(y + 0.5 * x), 0.5 + 0.3 * np.cos(0.7 * x),
                   0.5 + 0.2 * np.sin(0.8 * y - 0.3 * x)], axis=-1).astype(np.float32)


def tile_border_energy_ratio(restored: np.ndarray, image: np.ndarray, rows: list[int], cols: list[int]) -> float:
  """Seam metric: mean gradient magnitude of the model's change (restored - image) across the given borders
  (a border at r lies between pixel rows r - 1 and r), divided by the same over every other row and column."""
  change = restored - image
  dy = np.abs(np.diff(change, axis=0)).mean(axis=(1, 2))
  dx = np.abs(np.diff(change, axis=1)).mean(axis=(0, 2))
  at_rows, at_cols = [r - 1 for r in rows], [c - 1 for c in cols]
  border = np.concatenate([dy[at_rows], dx[at_cols]]).mean()
  elsewhere = np.concatenate([np.delete(dy, at_rows), np.delete(dx, at_cols)]).mean()
  return float(border / elsewhere)


def tile_edges(tiling) -> tuple[list[int], list[int]]:
  """Rows and columns inside the image where some tile begins or ends."""
  top_lefts = np.array(tiling.boxes)
  th, tw = tiling.tile_shape
  rows = {int(r) for t in top_lefts[:, 0] for r in (t, t + th) if 0 < r < tiling.height}
  cols = {int(c) for t in top_lefts[:, 1] for c in (t, t + tw) if 0 < c < tiling.width}
  return sorted(rows), sorted(cols)


def hard_stitch(fn, image: np.ndarray, tiling) -> tuple[np.ndarray, list[int], list[int]]:
  """Each pixel from the one tile whose centre is nearest, no blending; with the rows and columns where the
  chosen tile changes."""
  th, tw = tiling.tile_shape
  tops, lefts = sorted({t for t, _ in tiling.boxes}), sorted({l for _, l in tiling.boxes})
  row_tile = np.argmin(np.abs(np.arange(tiling.height)[:, None] - (np.array(tops) + th / 2)), axis=1)
  col_tile = np.argmin(np.abs(np.arange(tiling.width)[:, None] - (np.array(lefts) + tw / 2)), axis=1)
  out = np.zeros_like(image)
  for i, (top, left) in enumerate(tiling.boxes):
    tile_out = np.asarray(fn(image[None, top:top + th, left:left + tw]))[0]
    rows = np.flatnonzero(row_tile == tops.index(top))
    cols = np.flatnonzero(col_tile == lefts.index(left))
    out[np.ix_(rows, cols)] = tile_out[np.ix_(rows - top, cols - left)]
  changes = lambda owner: [int(i) + 1 for i in np.flatnonzero(np.diff(owner))]
  return out, changes(row_tile), changes(col_tile)


def blended(fn, image: np.ndarray, tiling, batch: int = 4) -> np.ndarray:
  return run_tiles(lambda b, _: fn(b["damaged"]), {"damaged": image}, tiling, range(len(tiling.boxes)), batch)


def hinet(hin_levels: tuple[int, ...]):
  """A tiny random HINet's final stage as a jitted function of [B, H, W, 3]."""
  model = HINet(wf=4, depth=2, hin_levels=hin_levels)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))["params"]
  return jax.jit(lambda x: model.apply({"params": params}, x)[1])


@pytest.mark.parametrize("length, tile, overlap", [(100, 100, 10), (50, 64, 8), (101, 64, 16), (1000, 256, 32),
                                                   (257, 256, 32), (513, 256, 0)])
def test_tiles_cover_the_axis_with_at_least_the_overlap(length, tile, overlap):
  tile = min(tile, length)
  starts = tile_starts(length, tile, overlap)
  assert starts[0] == 0 and starts[-1] + tile == length
  assert all(overlap <= a + tile - b < tile for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("length, tile, overlap", [(224, 64, 16), (1000, 256, 32), (300, 256, 8)])
def test_blending_profiles_sum_to_one_and_fall_towards_inner_tile_edges(length, tile, overlap):
  starts = tile_starts(length, tile, overlap)
  total = np.zeros(length)
  for start, profile in zip(starts, axis_profiles(starts, tile)):
    total[start:start + tile] += profile
  np.testing.assert_allclose(total, 1.0, atol=1e-6)
  first, last = axis_profiles(starts, tile)[0], axis_profiles(starts, tile)[-1]
  assert first[0] == 1.0 and last[-1] == 1.0  # image edges keep full weight
  assert first[-1] < 0.01 and last[0] < 0.01  # inner tile edges hand over to the neighbour


@pytest.mark.parametrize("height, width, batch", [(HEIGHT, WIDTH, 4), (37, 301, 3), (20, 20, 2)])
def test_an_identity_model_gives_back_the_image_for_any_size_and_batch(height, width, batch):
  image = np.random.default_rng(0).random((height, width, 3), np.float32)
  tiling = make_tiling(height, width, TILE, OVERLAP)
  np.testing.assert_allclose(blended(lambda x: x, image, tiling, batch), image, atol=1e-6)


def test_tiled_restoration_equals_a_single_pass_without_instance_norm():
  """Without Half Instance Norm HINet is a plain convnet: tiles differ from the whole-image pass only through the
  zero padding their borders see, which the blending weights discount. (With HIN every tile normalises by its own
  statistics, so tiles legitimately differ from a whole-image pass; that case is checked for seams below.)"""
  image, fn = smooth_image(), hinet(hin_levels=())
  tiling = make_tiling(HEIGHT, WIDTH, TILE, OVERLAP)
  single = np.asarray(fn(image[None]))[0]
  tiled = blended(fn, image, tiling)
  change = np.abs(single - image).mean()
  assert np.abs(tiled - single).mean() < 0.02 * change
  assert np.abs(tiled - single).max() < 0.1


def test_blending_removes_the_seams_that_hard_stitching_shows():
  """A stand-in model that mixes each tile's mean colour into its output, as normalisation does: neighbouring
  tiles disagree, hard stitching shows it as seams, and the blended result does not."""
  image = smooth_image()
  tiling = make_tiling(HEIGHT, WIDTH, TILE, OVERLAP)
  fn = lambda x: 0.5 * x + 0.5 * np.asarray(x).mean(axis=(1, 2), keepdims=True)
  stitched, rows, cols = hard_stitch(fn, image, tiling)
  assert tile_border_energy_ratio(stitched, image, rows, cols) > 5.0
  assert tile_border_energy_ratio(blended(fn, image, tiling), image, *tile_edges(tiling)) <= 1.0


def test_hinet_with_instance_norm_shows_no_seams_at_tile_edges():
  image = smooth_image()
  tiling = make_tiling(HEIGHT, WIDTH, TILE, OVERLAP)
  restored = blended(hinet(hin_levels=(0, 1)), image, tiling)
  assert tile_border_energy_ratio(restored, image, *tile_edges(tiling)) <= 1.0


def restore_whole(model, pixels: np.ndarray, tile: int, overlap: int = OVERLAP) -> np.ndarray:
  """uint8 [H, W, 3]: the tool's restoration of every pixel (--enhance) with `tile` px tiles."""
  settings = Settings(tile=tile, overlap=overlap, batch=4, enhance=True)
  restorer = Restorer(model, settings, *pixels.shape[:2], lambda message: None)
  return restorer.restore(pixels, np.ones(pixels.shape[:2], bool)).restored


def test_the_tools_tiled_restoration_equals_its_single_pass():
  """Through the whole tool (tiles, batches, blending, 8-bit output): a mural larger than the tile restored in 15
  tiles equals its restoration in one pass, for a HINet without instance norm (see above)."""
  config = tiny_hinet_config()
  config.model.hin_levels = ()
  model = untrained_model(config)
  pixels = generate_mural(11, HEIGHT, WIDTH)
  tiled, single = restore_whole(model, pixels, TILE), restore_whole(model, pixels, max(HEIGHT, WIDTH))
  difference = np.abs(tiled.astype(int) - single.astype(int))
  change = np.abs(single.astype(int) - pixels.astype(int)).mean()
  assert change > 5  # the model does change the image
  assert difference.mean() < 0.02 * change and (difference == 0).mean() > 0.5 and difference.max() < 25
  assert 10 * np.log10(255 ** 2 / (difference ** 2).mean()) > 40  # PSNR of tiled against single pass, in dB


def test_the_tools_tiled_restoration_has_no_seams_with_instance_norm():
  model = untrained_model(tiny_hinet_config())
  assert model.config.model.hin_levels
  pixels = np.round(255 * smooth_image()).astype(np.uint8)
  restored = restore_whole(model, pixels, TILE).astype(np.float32)
  tiling = make_tiling(HEIGHT, WIDTH, TILE, OVERLAP)
  assert len(tiling.boxes) == 15
  assert tile_border_energy_ratio(restored, pixels.astype(np.float32), *tile_edges(tiling)) <= 1.0
