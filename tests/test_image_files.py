"""Image grids and atomic PNG writing."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from muraljax.metrics import image_files


def test_to_uint8_rounds_and_clips():
  x = np.array([-0.5, 0.0, 0.5 / 255.0 + 1e-4, 0.5, 1.0, 3.0, np.nan], np.float32)
  np.testing.assert_array_equal(image_files.to_uint8(x), [0, 0, 1, 128, 255, 255, 0])
  assert image_files.to_uint8(jnp.zeros((2, 3), jnp.bfloat16)).dtype == np.uint8


def test_grid_shape_arithmetic():
  columns = [np.zeros((4, 5, 7, 3), np.float32)] * 3
  assert image_files.image_grid(columns, padding=2).shape == (4 * 5 + 5 * 2, 3 * 7 + 4 * 2, 3)
  assert image_files.image_grid(columns, max_rows=2, padding=3).shape == (2 * 5 + 3 * 3, 3 * 7 + 4 * 3, 3)
  assert image_files.image_grid(columns, max_rows=10, padding=0).shape == (4 * 5, 3 * 7, 3)


def test_grid_places_each_example_in_its_cell_with_grey_border():
  batch, height, width, padding = 3, 4, 6, 2
  # Example b of column c is the constant (10 * c + b) / 255, so each cell's uint8 value names its place.
  columns = [
      np.stack([np.full((height, width, 3), (10 * c + b) / 255.0, np.float32) for b in range(batch)])
      for c in range(3)
  ]
  grid = image_files.image_grid(columns, padding=padding)
  for b in range(batch):
    for c in range(3):
      top, left = padding + b * (height + padding), padding + c * (width + padding)
      np.testing.assert_array_equal(grid[top : top + height, left : left + width], 10 * c + b)
  assert np.all(grid[:padding] == image_files.BORDER_GREY)
  assert np.all(grid[:, :padding] == image_files.BORDER_GREY)
  assert np.all(grid[padding + height : 2 * padding + height] == image_files.BORDER_GREY)
  assert np.all(grid[-padding:] == image_files.BORDER_GREY)


def test_grid_shows_single_channel_columns_as_grey_and_clips():
  damaged = np.full((1, 3, 3, 1), 0.2, np.float32)
  restored = jnp.full((1, 3, 3, 3), 2.0)  # out of range: clipped to white
  truth = np.full((1, 3, 3, 3), -1.0, np.float32)  # out of range: clipped to black
  grid = image_files.image_grid([damaged, restored, truth], padding=1)
  np.testing.assert_array_equal(grid[1:4, 1:4], 51)
  np.testing.assert_array_equal(grid[1:4, 5:8], 255)
  np.testing.assert_array_equal(grid[1:4, 9:12], 0)


def test_grid_rejects_mismatched_columns():
  with pytest.raises(ValueError, match="share"):
    image_files.image_grid([np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 5, 3))])
  with pytest.raises(ValueError, match="C = 1 or 3"):
    image_files.image_grid([np.zeros((2, 4, 4, 2))])


def test_save_png_round_trips_and_creates_directories(tmp_path):
  image = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
  path = tmp_path / "nested" / "dir" / "grid.png"
  image_files.save_png(path, image)
  np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
  grey = image[..., :1]
  image_files.save_png(path, grey)  # overwrites in place
  np.testing.assert_array_equal(np.asarray(Image.open(path)), grey[..., 0])
  assert [p.name for p in path.parent.iterdir()] == ["grid.png"]  # no temporary files left behind


def test_save_png_rejects_floats_and_leaves_nothing(tmp_path):
  with pytest.raises(ValueError, match="to_uint8"):
    image_files.save_png(tmp_path / "x.png", np.zeros((4, 4, 3), np.float32))
  assert not (tmp_path / "x.png").exists()
