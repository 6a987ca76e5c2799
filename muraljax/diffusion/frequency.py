"""Frequency-amplitude loss on the x0 estimate (DiffuMural's FDP loss): penalises missing or spurious texture.

For images x [B, H, W, C], A(x) = |FFT2(x)| is the amplitude of the orthonormal 2D DFT over H and W
(norm='ortho', per channel), over the full spectrum (u, v) in [0, H) x [0, W). The loss is

  L = mean_b  w_b  mean_{u, v, c} | A(x0_hat)_b - A(x0)_b |,

or, with log_amplitude, the same on log(1 + A). Amplitudes ignore phase, i.e. where things are: the pixel
losses take care of that; this term asks the estimate to have the ground truth's amount of energy at every
frequency, which a blurred estimate lacks at the high ones. The orthonormal DFT keeps amplitudes on the pixels'
scale (sum of A^2 = sum of x^2), so the loss means the same at 256 and 1024 px. Natural images concentrate their
amplitude at low frequencies; the log variant compresses that range so that fine texture counts about as much
as coarse structure.

Amplitudes are computed as sqrt(Re^2 + Im^2 + eps^2), the same eps on both sides, so equal images give
exactly 0 and the gradient is finite where a coefficient is 0 (a flat image).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_EPS = 1e-6


def amplitude_spectrum(images: jax.Array, *, log_amplitude: bool = False) -> jax.Array:
  """float32 [B, H, W, C]: A(x) (or log(1 + A(x))) of images [B, H, W, C] (see the module docstring)."""
  spectrum = jnp.fft.fft2(images.astype(jnp.float32), axes=(1, 2), norm="ortho")
  amplitude = jnp.sqrt(jnp.square(spectrum.real) + jnp.square(spectrum.imag) + _EPS**2)
  return jnp.log1p(amplitude) if log_amplitude else amplitude


def frequency_amplitude_loss(x0_hat: jax.Array, x0: jax.Array, *, log_amplitude: bool = False,
                             weights: jax.Array | None = None) -> jax.Array:
  """Scalar L (see the module docstring).

  Args:
    x0_hat: the network's clean-image estimate [B, H, W, C] (in [-1, 1] for diffusion).
    x0: the ground truth, same shape.
    log_amplitude: compare log(1 + A) instead of A.
    weights: optional per-example weights w_b [B] (e.g. to discount the blurry estimates of very noisy
      timesteps); None = all 1.
  """
  if x0_hat.shape != x0.shape or x0.ndim != 4:
    raise ValueError(f"frequency_amplitude_loss needs two image batches [B, H, W, C] of one shape, got "
                     f"{x0_hat.shape} and {x0.shape}.")
  difference = jnp.abs(amplitude_spectrum(x0_hat, log_amplitude=log_amplitude) -
                       amplitude_spectrum(x0, log_amplitude=log_amplitude))
  per_example = jnp.mean(difference, axis=(1, 2, 3))
  if weights is not None:
    per_example = per_example * weights.reshape(per_example.shape)
  return jnp.mean(per_example)
