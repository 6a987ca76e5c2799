"""Cycle-consistency loss: the soft edge operator follows the contour condition; zero at the ground truth."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from muraljax.data import contours
from muraljax.diffusion import cycle

SIDE = 24


def painting() -> np.ndarray:
  """[1, SIDE, SIDE, 3] in [-1, 1]: a dark figure on a light ground, its vertical outline at x = 12, plus texture."""
  image = np.full((1, SIDE, SIDE, 3), 0.6, np.float32)
  image[:, :, :12] = -0.5
  image += 0.03 * np.random.default_rng(0).normal(size=image.shape).astype(np.float32)
  return image


def damage() -> np.ndarray:
  mask = np.zeros((1, SIDE, SIDE, 1), np.float32)
  mask[:, 8:16, 6:18] = 1.0
  return mask


def condition_contour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """contour_map of the damaged image: the damage faded to a low-contrast version of the painting."""
  unit = (image[0] + 1) / 2
  faded = np.where(mask[0] >= 0.5, 0.5 + 0.1 * (unit - 0.5), unit)
  return contours.contour_map(faded, mask[0])[None]


def loss(x0_hat, x0, mask, contour, **settings):
  return jax.jit(lambda *a: cycle.cycle_consistency_loss(*a, **settings))(x0_hat, x0, mask, contour)


def test_soft_edges_decide_like_the_contour_conditions_edge_test():
  unit = np.random.default_rng(1).random((SIDE, SIDE, 3)).astype(np.float32)
  unit[:, :10] *= 0.2  # a strong edge as well as random ones
  hard = contours.contour_map(unit, np.zeros((SIDE, SIDE)))[..., 0] > 0.5  # no damage: the Sobel edges alone
  magnitude = np.asarray(cycle.sobel_magnitude(jnp.asarray(unit)[None]))[0, ..., 0]
  soft = np.asarray(cycle.soft_edges(jnp.asarray(2 * unit - 1)[None]))[0, ..., 0]
  luminance = unit.mean(-1)
  reference = np.hypot(ndimage.sobel(luminance, 0, mode="nearest"), ndimage.sobel(luminance, 1, mode="nearest")) / 4
  np.testing.assert_allclose(magnitude, reference, atol=1e-5)
  clear = np.abs(magnitude - cycle.EDGE_THRESHOLD) > 1e-4
  np.testing.assert_array_equal((soft > 0.5)[clear], hard[clear])
  assert hard.any() and (~hard).any()


def test_zero_at_the_ground_truth():
  x0, mask = painting(), damage()
  contour = condition_contour(x0, mask)
  assert contour[mask >= 0.5].sum() > 0  # the faded outline was found inside the damage
  total, terms = loss(x0, x0, mask, contour)
  assert float(total) == 0.0 and all(float(v) == 0.0 for v in terms.values())


def test_removing_an_edge_in_the_damage_costs_and_contour_pixels_weigh_more():
  x0, mask = painting(), damage()
  contour = condition_contour(x0, mask)
  no_edge = np.where(mask >= 0.5, x0[mask[..., 0] >= 0.5].mean(axis=0), x0).astype(np.float32)
  _, terms = loss(no_edge, x0, mask, contour, emphasis=0.0)
  _, emphasised = loss(no_edge, x0, mask, contour, emphasis=4.0)
  assert float(terms["cycle_contour"]) > 0.05
  assert float(terms["cycle_known"]) == 0.0  # intact pixels untouched
  assert float(emphasised["cycle_contour"]) > float(terms["cycle_contour"])


def test_changing_intact_pixels_costs_and_the_weights_scale_the_terms():
  x0, mask = painting(), damage()
  contour = np.zeros_like(mask)
  changed = x0.copy()
  changed[:, :3] += 0.2  # far from the damage: its edges are outside the contour term's band
  total, terms = loss(changed, x0, mask, contour, contour_weight=2.0, known_weight=3.0)
  intact = np.broadcast_to(mask < 0.5, x0.shape)
  np.testing.assert_allclose(terms["cycle_known"], np.abs(changed - x0)[intact].mean(), rtol=1e-5)
  assert float(terms["cycle_contour"]) == 0.0
  np.testing.assert_allclose(total, 3.0 * terms["cycle_known"], rtol=1e-6)


def test_gradients_are_finite_even_on_flat_images():
  x0, mask = painting(), damage()
  contour = condition_contour(x0, mask)
  grad = jax.jit(jax.grad(lambda a, b: cycle.cycle_consistency_loss(a, b, mask, contour)[0]))
  for estimate, target in ((np.zeros_like(x0), x0), (x0, x0), (np.zeros_like(x0), np.zeros_like(x0))):
    assert np.all(np.isfinite(np.asarray(grad(jnp.asarray(estimate), jnp.asarray(target)))))
  assert np.any(np.asarray(grad(jnp.zeros_like(x0), jnp.asarray(x0))) != 0)


def test_bad_shapes_are_refused():
  x0, mask = painting(), damage()
  with pytest.raises(ValueError, match="one value per pixel"):
    cycle.cycle_consistency_loss(x0, x0, mask[:, :8], mask)
