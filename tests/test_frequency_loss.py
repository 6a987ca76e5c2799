"""The frequency-amplitude loss: zero for equal images, growing with blur, phase-blind, finite gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from muraljax.diffusion import frequency

SHAPE = (2, 16, 12, 3)


def texture() -> np.ndarray:
  noise = np.random.default_rng(0).normal(size=SHAPE)
  return np.clip(ndimage.gaussian_filter(noise, sigma=(0, 0.6, 0.6, 0)), -1, 1).astype(np.float32)


def blurred(images: np.ndarray, sigma: float) -> np.ndarray:
  return ndimage.gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode="wrap").astype(np.float32)


@pytest.mark.parametrize("log_amplitude", [False, True])
def test_zero_for_equal_images_and_larger_for_more_blur(log_amplitude):
  loss = jax.jit(lambda a, b: frequency.frequency_amplitude_loss(a, b, log_amplitude=log_amplitude))
  x0 = texture()
  assert float(loss(x0, x0)) == 0.0
  mild, strong = float(loss(blurred(x0, 0.7), x0)), float(loss(blurred(x0, 2.0), x0))
  assert 0 < mild < strong


def test_amplitudes_ignore_a_shift():
  x0 = texture()
  shifted = np.roll(x0, (3, -5), axis=(1, 2))
  np.testing.assert_allclose(frequency.frequency_amplitude_loss(shifted, x0), 0.0, atol=1e-5)
  assert float(jnp.mean(jnp.abs(shifted - x0))) > 0.1


def test_orthonormal_amplitudes_keep_the_energy():
  x0 = texture()
  amplitude = frequency.amplitude_spectrum(x0)
  np.testing.assert_allclose(np.sum(np.square(amplitude), axis=(1, 2)), np.sum(np.square(x0), axis=(1, 2)),
                             rtol=1e-4)


def test_per_example_weights():
  x0 = texture()
  estimate = np.concatenate([x0[:1], blurred(x0[1:], 1.5)])
  unweighted = frequency.frequency_amplitude_loss(estimate, x0)
  np.testing.assert_allclose(frequency.frequency_amplitude_loss(estimate, x0, weights=jnp.array([5.0, 0.5])),
                             0.5 * unweighted, rtol=1e-5)


@pytest.mark.parametrize("log_amplitude", [False, True])
def test_gradients_are_finite_even_for_flat_images_and_at_the_optimum(log_amplitude):
  x0 = texture()
  grad = jax.grad(lambda a, b: frequency.frequency_amplitude_loss(a, b, log_amplitude=log_amplitude))
  for estimate, target in ((blurred(x0, 1.0), x0), (x0, x0), (np.zeros(SHAPE, np.float32), np.ones(SHAPE))):
    g = np.asarray(grad(jnp.asarray(estimate), jnp.asarray(target, jnp.float32)))
    assert np.all(np.isfinite(g))
  assert np.any(np.asarray(grad(jnp.asarray(blurred(x0, 1.0)), x0)) != 0)
  with pytest.raises(ValueError, match="one shape"):
    frequency.frequency_amplitude_loss(x0, x0[:, :8])
