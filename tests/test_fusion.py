"""Fusion weights of the diffusion scales: exact distance transform, weights on constructed masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from muraljax.diffusion import fusion

FACTORS = (4, 2, 1)  # 256, 512, 1024 fused at 1024; the tests' masks are smaller stand-ins.
COARSE, MIDDLE, FINE = range(3)
weights_of = jax.jit(fusion.fusion_weights, static_argnames=("factors", "characteristic_length", "cascade"))


def as_mask(damaged: np.ndarray) -> jax.Array:
  return jnp.asarray(damaged, jnp.float32)[..., None]


@pytest.mark.parametrize("shape, density", [((3, 37, 53), 0.5), ((2, 64, 40), 0.97), ((1, 48, 48), 0.05)])
def test_distance_transform_is_scipys_exactly(shape, density):
  damaged = np.random.default_rng(sum(shape)).random(shape) < density
  squared = np.asarray(jax.jit(fusion.squared_distance_transform)(as_mask(damaged)))[..., 0]
  distances = np.asarray(jax.jit(fusion.distance_transform)(as_mask(damaged)))[..., 0]
  for b in range(shape[0]):
    reference = ndimage.distance_transform_edt(damaged[b])
    np.testing.assert_array_equal(squared[b], np.round(reference**2).astype(np.int64))
    np.testing.assert_allclose(distances[b], reference, rtol=1e-7)


def test_distance_transform_of_a_large_hole_and_of_no_intact_pixel():
  damaged = np.zeros((2, 96, 80), bool)
  damaged[0, 10:90, 5:70] = True
  damaged[1] = True
  squared = np.asarray(jax.jit(fusion.squared_distance_transform)(as_mask(damaged)))[..., 0]
  np.testing.assert_array_equal(squared[0], np.round(ndimage.distance_transform_edt(damaged[0]) ** 2))
  assert np.all(squared[1] == 96**2 + 80**2)


def crack_and_hole(side: int = 256) -> np.ndarray:
  """A 3 px wide vertical crack at x = 20..22 and a disk of radius 80 centred at (128, 150)."""
  y, x = np.mgrid[:side, :side]
  damaged = (x >= 20) & (x <= 22)
  damaged |= (y - 128) ** 2 + (x - 150) ** 2 <= 80**2
  return damaged[None]


def test_weights_sum_to_one_in_the_damage_and_vanish_on_intact_pixels():
  damaged = crack_and_hole()
  for cascade in (False, True):
    weights = np.asarray(weights_of(as_mask(damaged), FACTORS, cascade=cascade))
    assert weights.shape == damaged.shape + (3,)
    assert np.all(weights[~damaged] == 0)
    np.testing.assert_allclose(weights[damaged].sum(-1), 1.0, rtol=1e-6)
    assert np.all(weights >= 0)


def test_coarse_scale_dominates_a_large_hole_and_fine_scale_a_thin_crack():
  weights = np.asarray(weights_of(as_mask(crack_and_hole()), FACTORS))[0]
  centre, crack = weights[128, 150], weights[128, 21]
  assert centre[COARSE] > 0.9 and centre.argmax() == COARSE
  assert crack[FINE] > 0.9 and crack.argmax() == FINE
  # Going from the rim of the hole to its centre hands over from fine to coarse, monotonically.
  along = weights[128, 70:151]
  assert along[0].argmax() == FINE
  assert np.all(np.diff(along[:, COARSE]) >= -1e-6) and np.all(np.diff(along[:, FINE]) <= 1e-6)


def test_weights_depend_on_the_depth_in_each_scales_own_pixels():
  """A hole 4 times as large seen with pixels 4 times as large: the same weights at its centre."""
  def centre_weights(side, radius, factors):
    y, x = np.mgrid[:side, :side]
    damaged = ((y - side / 2 + 0.5) ** 2 + (x - side / 2 + 0.5) ** 2 <= radius**2)[None]
    return np.asarray(weights_of(as_mask(damaged), factors))[0, side // 2, side // 2]

  np.testing.assert_allclose(centre_weights(256, 48, (4, 2, 1)), centre_weights(64, 12, (1, 0.5, 0.25)),
                             atol=0.02)


def test_cascade_gives_the_finest_scale_everything():
  damaged = crack_and_hole()
  weights = np.asarray(weights_of(as_mask(damaged), FACTORS, cascade=True))[0]
  np.testing.assert_array_equal(weights[damaged[0]], np.tile([0.0, 0.0, 1.0], (damaged.sum(), 1)))


def test_bad_factors_and_masks_are_refused():
  mask = jnp.zeros((1, 8, 8, 1))
  with pytest.raises(ValueError, match="strictly decreasing"):
    fusion.fusion_weights(mask, (1, 2, 4))
  with pytest.raises(ValueError, match=r"\[B, H, W, 1\]"):
    fusion.fusion_weights(mask[..., 0], FACTORS)
