"""Pixel-space cycle consistency: the one-step x0 estimate must give back the contours and the intact pixels.

From the x0 estimate x0_hat (in [-1, 1], like every diffusion image) the contours are re-extracted with a
differentiable edge operator, the soft version of the intact-area rule of the contour condition
(muraljax.data.contours): a pixel is an edge where the Sobel gradient magnitude of the luminance (mean of R, G,
B in [0, 1], edge-replicated borders, divided by 4 so a black-to-white step gives 1) exceeds `threshold`:

  E(x) = sigmoid((|Sobel(lum(x))| - threshold) / temperature),   E(x) > 1/2  <=>  contour_map's edge test.

Two terms, per example b, then averaged over the batch with optional weights w_b:

  contour = sum_p r_p |E(x0_hat) - E(x0)|_p / sum_p r_p,   r = near(M) (1 + emphasis C),
  known   = sum_p (1 - M_p) |x0_hat - x0|_p / (channels sum_p (1 - M_p)),
  loss    = contour_weight contour + known_weight known,

with M the damage mask (>= 0.5 = damaged), near(M) the damage grown by `band` pixels (chessboard, as the band
contour_map clusters) and C the condition contour. The re-extracted contours are compared with those of the
ground truth x0 under the same operator, not with C itself: C is a binary map drawn from the damaged image
(two-means region boundaries marked on one side only, inside the damage from faded paint), which the clean
image's edges do not reproduce exactly, so a direct comparison would penalise the ground truth. Comparing with
E(x0) makes the loss exactly 0 when x0_hat = x0, while C still says where the lines the model was asked to
draw run: those pixels count (1 + emphasis) times. The known term asks the estimate to keep the intact pixels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from muraljax.diffusion import schedules

EDGE_THRESHOLD = 0.15  # muraljax.data.contours.contour_map's default edge_threshold.
TEMPERATURE = 0.05
BAND = 3  # muraljax.data.contours.contour_map's default band.


def sobel_magnitude(images: jax.Array) -> jax.Array:
  """float32 [B, H, W, 1]: Sobel gradient magnitude of the luminance of images [B, H, W, C] in [0, 1], as
  muraljax.data.contours computes it (scipy.ndimage.sobel, mode 'nearest', / 4). Gradient 0 at flat pixels."""
  luminance = jnp.mean(images.astype(jnp.float32), axis=-1)
  padded = jnp.pad(luminance, ((0, 0), (1, 1), (1, 1)), mode="edge")
  dy = padded[:, 2:, :] - padded[:, :-2, :]
  dx = padded[:, :, 2:] - padded[:, :, :-2]
  gy = dy[:, :, :-2] + 2.0 * dy[:, :, 1:-1] + dy[:, :, 2:]
  gx = dx[:, :-2, :] + 2.0 * dx[:, 1:-1, :] + dx[:, 2:, :]
  squared = jnp.square(gx) + jnp.square(gy)
  positive = squared > 0
  # sqrt's derivative is infinite at 0: route flat pixels around it.
  magnitude = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0) / 4.0
  return magnitude[..., None]


def soft_edges(images: jax.Array, *, threshold: float = EDGE_THRESHOLD,
               temperature: float = TEMPERATURE) -> jax.Array:
  """float32 [B, H, W, 1] in (0, 1): E(x) of images [B, H, W, C] in [-1, 1] (see the module docstring)."""
  magnitude = sobel_magnitude(schedules.to_unit_range(images))
  return jax.nn.sigmoid((magnitude - threshold) / temperature)


def _grow(damaged: jax.Array, band: int) -> jax.Array:
  """[B, H, W, 1] float: 1 within `band` pixels (chessboard distance) of a damaged pixel."""
  if band == 0:
    return damaged
  window = (1, 2 * band + 1, 2 * band + 1, 1)
  return jax.lax.reduce_window(damaged, -jnp.inf, jax.lax.max, window, (1, 1, 1, 1), "SAME")


def _masked_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  """[B]: sum of weights * values over H, W, C divided by the weights' sum (0 where that sum is 0)."""
  axes = tuple(range(1, values.ndim))
  total = jnp.sum(jnp.broadcast_to(weights, values.shape), axis=axes)
  return jnp.sum(weights * values, axis=axes) / jnp.maximum(total, 1e-8)


def cycle_consistency_loss(x0_hat: jax.Array, x0: jax.Array, mask: jax.Array, contour: jax.Array, *,
                           contour_weight: float = 1.0, known_weight: float = 1.0, emphasis: float = 1.0,
                           band: int = BAND, threshold: float = EDGE_THRESHOLD, temperature: float = TEMPERATURE,
                           weights: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The cycle-consistency loss (see the module docstring).

  Args:
    x0_hat: the one-step clean-image estimate [B, H, W, C] in [-1, 1].
    x0: the ground truth, same shape and range.
    mask: [B, H, W, 1], >= 0.5 = damaged.
    contour: the condition contour [B, H, W, 1] in [0, 1] (muraljax.data.contours.contour_map); zeros to weigh
      every pixel near the damage alike.
    contour_weight, known_weight: the weights of the two terms.
    emphasis: extra weight of condition-contour pixels in the contour term.
    band: how far around the damage (pixels) the contour term looks.
    threshold, temperature: the soft edge operator E.
    weights: optional per-example weights [B] (e.g. to discount very noisy timesteps); None = all 1.

  Returns:
    (scalar loss, {'cycle_contour': scalar, 'cycle_known': scalar}), the terms unweighted by contour_weight
    and known_weight but with the per-example weights.
  """
  if x0_hat.shape != x0.shape or x0.ndim != 4:
    raise ValueError(f"cycle_consistency_loss needs x0_hat and x0 [B, H, W, C] of one shape, got {x0_hat.shape} "
                     f"and {x0.shape}.")
  if mask.shape != x0.shape[:3] + (1,) or contour.shape != mask.shape:
    raise ValueError(f"mask {mask.shape} and contour {contour.shape} must both be {x0.shape[:3] + (1,)}, one "
                     "value per pixel of the images.")
  damaged = (mask >= 0.5).astype(jnp.float32)
  region = _grow(damaged, band) * (1.0 + emphasis * contour.astype(jnp.float32))
  edges = soft_edges(x0_hat, threshold=threshold, temperature=temperature)
  target_edges = soft_edges(x0, threshold=threshold, temperature=temperature)
  per_example = {
      "cycle_contour": _masked_mean(jnp.abs(edges - target_edges), region),
      "cycle_known": _masked_mean(jnp.abs(x0_hat.astype(jnp.float32) - x0.astype(jnp.float32)), 1.0 - damaged),
  }
  if weights is not None:
    per_example = {name: value * weights.reshape(value.shape) for name, value in per_example.items()}
  terms = {name: jnp.mean(value) for name, value in per_example.items()}
  return contour_weight * terms["cycle_contour"] + known_weight * terms["cycle_known"], terms
