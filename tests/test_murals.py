"""Procedural murals: deterministic, varied, painting-like (flat regions and strong contours), windowable."""

from __future__ import annotations

import numpy as np
import pytest

from muraljax.data import murals
from muraljax.data.errors import DataError


def test_dtype_shape_and_determinism():
  image = murals.generate_mural(3, 48, 64)
  assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
  np.testing.assert_array_equal(image, murals.generate_mural(3, 48, 64))


def test_different_seeds_differ():
  images = [murals.generate_mural(murals.mural_seed(0, i), 64, 64) for i in range(6)]
  for i in range(len(images)):
    for j in range(i + 1, len(images)):
      assert np.abs(images[i].astype(int) - images[j]).mean() > 5


def _neighbour_differences(image: np.ndarray) -> np.ndarray:
  return np.abs(np.diff(image.astype(np.int32), axis=1)).max(axis=-1)


def test_looks_like_a_painting_not_noise():
  # Flat pigment regions: most horizontal neighbours nearly equal (plaster grain aside); contours: some jump hard.
  # Uniform noise scores ~0.002 flat and ~0.9 edges.
  for i in range(20):
    diffs = _neighbour_differences(murals.generate_mural(murals.mural_seed(7, i), 96, 96))
    assert (diffs < 16).mean() > 0.25, i
    assert 0.01 < (diffs > 60).mean() < 0.5, i


def test_crop_equals_window_of_whole_mural():
  for i in range(5):
    seed = murals.mural_seed(5, i)
    whole = murals.generate_mural(seed, 80, 72)
    np.testing.assert_array_equal(murals.generate_mural_crop(seed, 80, 72, 11, 7, 40, 50), whole[11:51, 7:57])


def test_procedural_source():
  source = murals.ProceduralMurals(num_images=4, height=32, width=40, seed=1)
  assert len(source) == 4
  np.testing.assert_array_equal(source[2], murals.generate_mural(murals.mural_seed(1, 2), 32, 40))
  np.testing.assert_array_equal(source.crop(2, 4, 5, 10, 12), source[2][4:14, 5:17])
  assert not np.array_equal(source[0], murals.ProceduralMurals(4, 32, 40, seed=2)[0])
  with pytest.raises(IndexError):
    source[4]


def test_bad_arguments_raise_data_error():
  with pytest.raises(DataError, match="inside"):
    murals.generate_mural_crop(0, 32, 32, 20, 0, 16, 16)
  with pytest.raises(DataError, match=">= 8"):
    murals.generate_mural(0, 4, 32)
  with pytest.raises(DataError, match="num_images"):
    murals.ProceduralMurals(0, 32, 32)
