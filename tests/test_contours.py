"""Contour conditions: two-means outlines inside faded damage, intact edges, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from muraljax.data.contours import contour_map

OCHRE, LAPIS, PLASTER = np.array([0.8, 0.6, 0.3]), np.array([0.3, 0.4, 0.7]), np.array([0.85, 0.8, 0.7])


def two_colour_mural(fade: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
  """32x32: ochre left of column 16, lapis right of it; the centre square is damaged and faded towards plaster,
  so inside it the boundary is faint (10% of its intact contrast at fade 0.9)."""
  image = np.zeros((32, 32, 3), np.float32)
  image[:, :16], image[:, 16:] = OCHRE, LAPIS
  mask = np.zeros((32, 32, 1), np.float32)
  mask[8:24, 8:24] = 1
  image[8:24, 8:24] = fade * PLASTER + (1 - fade) * image[8:24, 8:24]
  return image, mask


def test_two_means_recovers_a_faint_boundary_inside_the_damage():
  image, mask = two_colour_mural()
  contour = contour_map(image, mask)[..., 0]
  assert contour.shape == (32, 32) and contour.dtype == np.float32
  inside = contour[8:24, 8:24]
  np.testing.assert_array_equal(inside[:, 7], 1)  # column 15, the last ochre one, on every damaged row
  assert inside.sum() == 16  # and nothing else inside the damage
  # The band around the damage continues the outline up to its edge; the damage's own edge is no contour.
  np.testing.assert_array_equal(contour[5:8, 15], 1)
  np.testing.assert_array_equal(contour[24:27, 15], 1)
  assert contour.sum() == 16 + 6


def test_contours_are_deterministic_and_binary():
  rng = np.random.default_rng(0)
  image = np.clip(two_colour_mural(fade=0.7)[0] + rng.normal(0, 0.01, (32, 32, 3)), 0, 1).astype(np.float32)
  mask = two_colour_mural()[1]
  first, second = contour_map(image, mask), contour_map(image.copy(), mask.copy())
  np.testing.assert_array_equal(first, second)
  assert set(np.unique(first)) <= {0.0, 1.0}


def test_flat_fill_and_texture_add_no_contours_but_intact_edges_count():
  image, mask = two_colour_mural()
  image[8:24, 8:24] = 0.0  # a black hole: one cluster, no outline
  assert contour_map(image, mask)[8:24, 8:24].sum() == 0
  image[8:24, 8:24] = np.random.default_rng(1).random((16, 16, 3))  # noise: clusters not apart
  assert contour_map(image, mask)[8:24, 8:24].sum() == 0
  # A strong intact step (black to white) is a Sobel edge away from the damage.
  step = np.zeros((32, 32, 3), np.float32)
  step[:, 16:] = 1.0
  edges = contour_map(step, np.zeros((32, 32, 1)))[..., 0]
  assert edges[:, 15:17].all() and edges[:, :14].sum() == 0 and edges[:, 18:].sum() == 0


def test_a_mask_of_another_size_is_refused():
  image, _ = two_colour_mural()
  with pytest.raises(ValueError, match="does not match the image"):
    contour_map(image, np.zeros((16, 16, 1)))
