"""The harmonic prefill against an exact NumPy reference, and what it promises exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muraljax.models.prefill import EMPTY_VALUE, harmonic_fill


def reference_harmonic_fill(image: np.ndarray, damaged: np.ndarray, sweeps: int = 20_000) -> np.ndarray:
  """Gauss-Seidel-free NumPy reference: Jacobi sweeps of the 4-neighbour mean (edge pixels mirrored) on the damaged
  pixels of one channel [H, W], from zero, run until converged."""
  x = np.where(damaged, 0.0, image).astype(np.float64)
  for _ in range(sweeps):
    p = np.pad(x, 1, mode="edge")
    updated = np.where(damaged, (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) / 4, x)
    if np.abs(updated - x).max() < 1e-9:
      return updated
    x = updated
  return x


def _box(height, width, top, left, bottom, right):
  mask = np.zeros((1, height, width, 1), np.float32)
  mask[0, top:bottom, left:right] = 1
  return mask


def test_matches_the_converged_numpy_harmonic_fill():
  rng = np.random.default_rng(0)
  rows, cols = np.mgrid[0:24, 0:20] / 20
  image = (0.5 + 0.3 * np.sin(3 * rows + 2 * cols) + 0.05 * rng.random((24, 20))).astype(np.float32)
  mask = _box(24, 20, 5, 4, 17, 15)
  mask[0, 2:4, 14:19] = 1  # a second hole at the border
  filled = np.asarray(harmonic_fill(jnp.asarray(image)[None, ..., None], jnp.asarray(mask), sweeps=64))[0, ..., 0]
  expected = reference_harmonic_fill(image, mask[0, ..., 0] > 0.5)
  np.testing.assert_allclose(filled, expected, atol=2e-3)


def test_reproduces_a_linear_ramp_exactly():
  rows, cols = np.mgrid[0:40, 0:56].astype(np.float32)
  ramp = np.stack([0.1 + 0.01 * cols + 0.004 * rows, 0.9 - 0.012 * rows, 0.3 + 0.002 * cols], -1)[None]
  mask = _box(40, 56, 8, 10, 32, 40)
  mask[0, 30:, 45:] = 1  # touching the corner: mirrored borders must not bend the ramp
  filled = harmonic_fill(jnp.asarray(ramp), jnp.asarray(mask), sweeps=2)
  np.testing.assert_allclose(np.asarray(filled), ramp, atol=1e-5)


def test_constant_image_stays_constant_and_intact_pixels_are_exact():
  rng = np.random.default_rng(1)
  image = rng.random((2, 33, 17, 3)).astype(np.float32)
  mask = (rng.random((2, 33, 17, 1)) < 0.3).astype(np.float32)
  filled = np.asarray(harmonic_fill(jnp.asarray(image), jnp.asarray(mask)))
  intact = np.broadcast_to(mask < 0.5, image.shape)
  np.testing.assert_array_equal(filled[intact], image[intact])
  box = _box(30, 30, 3, 3, 25, 25)
  constant_with_black_hole = np.where(box > 0.5, 0.0, np.full((1, 30, 30, 3), 0.37, np.float32))
  np.testing.assert_allclose(np.asarray(harmonic_fill(jnp.asarray(constant_with_black_hole), jnp.asarray(box))), 0.37,
                             atol=1e-6)


def test_all_intact_returns_the_input_and_all_damaged_the_documented_value():
  image = jnp.asarray(np.random.default_rng(2).random((1, 16, 16, 3)), jnp.float32)
  np.testing.assert_array_equal(np.asarray(harmonic_fill(image, jnp.zeros((1, 16, 16, 1)))), np.asarray(image))
  np.testing.assert_allclose(np.asarray(harmonic_fill(image, jnp.ones((1, 16, 16, 1)))), EMPTY_VALUE, atol=1e-6)


def test_fill_ignores_the_values_under_the_mask():
  rng = np.random.default_rng(3)
  image = rng.random((1, 32, 32, 3)).astype(np.float32)
  mask = jnp.asarray(_box(32, 32, 8, 8, 24, 24))
  other = np.where(np.asarray(mask) > 0.5, rng.random(image.shape), image).astype(np.float32)
  np.testing.assert_allclose(np.asarray(harmonic_fill(jnp.asarray(image), mask)),
                             np.asarray(harmonic_fill(jnp.asarray(other), mask)), atol=1e-6)


def test_is_differentiable_and_jit_compiles():
  mask = jnp.asarray(_box(16, 16, 4, 4, 12, 12))
  image = jnp.asarray(np.random.default_rng(4).random((1, 16, 16, 1)), jnp.float32)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(harmonic_fill(x, mask) * mask)))(image)
  assert np.all(np.isfinite(grad))
  assert float(jnp.sum(grad)) == pytest.approx(float(jnp.sum(mask)), rel=1e-3)  # holes are averages of the rim
  assert float(jnp.abs(grad * mask).max()) == 0.0  # nothing flows from the ignored hole values


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match=r"mask \[B, H, W, 1\]"):
    harmonic_fill(jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 3)))
  with pytest.raises(ValueError, match="Sweep counts"):
    harmonic_fill(jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 1)), sweeps=-1)
