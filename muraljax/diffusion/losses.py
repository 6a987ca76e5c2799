"""The denoising training loss: MSE on the prediction target, optionally min-SNR-gamma weighted.

Min-SNR-gamma (Hang et al., ICCV 2023) weights each example so that its loss counts like the x0 loss
weighted by min(SNR_t, gamma): low-noise timesteps, which are easy and dominate the gradients otherwise, are
capped. In terms of the target actually regressed that is min(SNR, gamma) / SNR for epsilon and
min(SNR, gamma) / (SNR + 1) for v.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from muraljax.diffusion import schedules


def min_snr_weights(prediction: str, alpha_bar: jax.Array, gamma: float) -> jax.Array:
  """Per-example weights [B] for alpha_bar [B]; all ones when gamma is 0 (no weighting)."""
  schedules.check_prediction(prediction)
  if not gamma:
    return jnp.ones_like(alpha_bar)
  signal_to_noise = schedules.snr(alpha_bar)
  if prediction == "epsilon":
    return jnp.minimum(1.0, gamma / signal_to_noise)  # = min(SNR, gamma) / SNR, finite at SNR = 0.
  return jnp.minimum(signal_to_noise, gamma) / (signal_to_noise + 1.0)


def denoising_loss(output: jax.Array, target: jax.Array, alpha_bar: jax.Array, *, prediction: str,
                   min_snr_gamma: float = 0.0) -> jax.Array:
  """Scalar loss: the mean over examples of weight_b * mean_{h, w, c} (output - target)^2.

  Args:
    output, target: [B, H, W, C]; the target comes from `schedules.prediction_target`.
    alpha_bar: [B] (or [B, 1, 1, 1]), the noise level of each example.
    prediction: 'epsilon' or 'v', what `output` predicts.
    min_snr_gamma: gamma of the min-SNR weighting; 0 = unweighted.
  """
  per_example = jnp.mean(jnp.square(output.astype(jnp.float32) - target), axis=tuple(range(1, output.ndim)))
  weights = min_snr_weights(prediction, alpha_bar.reshape(alpha_bar.shape[0]), min_snr_gamma)
  return jnp.mean(weights * per_example)
