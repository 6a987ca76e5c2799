"""Per-pixel fusion weights of the diffusion scales, from the damage geometry.

Collaborative multi-scale sampling (muraljax.diffusion.collaborative) mixes the x0 estimates of S scales per
pixel of the finest image. How much each scale contributes depends on how deep inside the damage a pixel lies:

  d(p)    the Euclidean distance (in pixels of the mask) from damaged pixel p to the nearest intact pixel,
          exact (`distance_transform`, equal to scipy.ndimage.distance_transform_edt of the damage);
  f_s     the size of one pixel of scale s in mask pixels (e.g. 4, 2, 1 for 256, 512, 1024 with a 1024 mask),
          so d(p) / f_s is the depth in scale s's own pixels: a hole of radius r at 1024 has radius r / 4 at 256;
  L       the characteristic length: the depth, in its own pixels, that a scale fills best from context.

  w_s(p) = softmax_s( -(log2(d(p) / (f_s L)))^2 / (2 tau^2) )  on damaged pixels,  0 on intact ones.

Scale s is preferred where the hole is about L of its own pixels deep, and the preference moves one scale
coarser each time the depth doubles: with L = 8 and scales 256/512/1024, the finest scale dominates up to
d ~ 11 px (cracks up to ~20 px wide at 1024), 512 from 11 to 23 px, 256 beyond. tau (in octaves of depth) sets
how sharp the hand-over is: the weight ratio of two neighbouring scales is exp((log2 d - crossover) / tau^2).
Weights sum to 1 on damaged pixels; intact pixels get no generated content (they keep the known image).

`cascade=True` gives the plain coarse-to-fine ablation: the finest scale takes every damaged pixel, coarser
scales only condition it.

Masks are NHWC [B, H, W, 1]; values >= 0.5 are damaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

CHARACTERISTIC_LENGTH = 8.0
TEMPERATURE = 0.5

# Squared distance of a pixel with no intact pixel in its row (pass 1) or anywhere (pass 2). Plus the largest
# squared offset (< 2^22 for sides up to 2048) it stays far inside int32.
_FAR = 2**30


def _damaged(mask: jax.Array) -> jax.Array:
  if mask.ndim != 4 or mask.shape[-1] != 1:
    raise ValueError(f"Damage masks must be [B, H, W, 1], got shape {mask.shape}; add the channel axis.")
  return mask[..., 0] >= 0.5


def _row_squared_distances(intact: jax.Array) -> jax.Array:
  """int32 [B, H, W]: squared distance along each row to the nearest intact pixel, _FAR where the row has none."""
  width = intact.shape[-1]
  x = jnp.arange(width, dtype=jnp.int32)
  left = jax.lax.cummax(jnp.where(intact, x, -_FAR), axis=2)
  right = jax.lax.cummin(jnp.where(intact, x, _FAR), axis=2, reverse=True)
  g = jnp.minimum(x - left, right - x)
  return jnp.where(g > width, _FAR, g * g)


def _column_min_plus(g2: jax.Array) -> jax.Array:
  """int32 [B, H, W]: min over rows y' of g2[y', x] + (y - y')^2 (the exact second pass).

  A loop over y' with one [B, H, W] min-update each: O(H^2 W) simple vector work and no data-dependent steps.
  Measured at 1024 x 1024 on 2 CPU cores: 0.12 s, against 0.38 s for Felzenszwalb's O(H W) lower envelope (a
  scan over rows with a while loop of pops, vectorised over columns) and 1.2 s for the same min-plus product as
  a chunked broadcast-and-reduce; on accelerators it is one small elementwise kernel per row.
  """
  height = g2.shape[1]
  y = jnp.arange(height, dtype=jnp.int32)[None, :, None]

  def update(row, best):
    candidate = jax.lax.dynamic_slice_in_dim(g2, row, 1, axis=1) + jnp.square(y - row)
    return jnp.minimum(best, candidate)

  return jax.lax.fori_loop(0, height, update, jnp.full_like(g2, _FAR))


def squared_distance_transform(mask: jax.Array) -> jax.Array:
  """Exact squared Euclidean distance from each damaged pixel to the nearest intact one, int32 [B, H, W, 1].

  Intact pixels get 0. A mask without any intact pixel gets H^2 + W^2 everywhere (farther than any pixel).
  Two exact separable passes (Rosenfeld & Pfaltz's decomposition): along rows by cumulative max / min of the
  intact positions, then along columns as a min-plus product with (y - y')^2, run over the shorter side.
  All integer arithmetic, so the result is exact. jit-able; shapes static.
  """
  damaged = _damaged(mask)
  height, width = damaged.shape[1:]
  transposed = height > width
  if transposed:  # the quadratic pass runs along the columns: make them the shorter side.
    damaged = damaged.transpose(0, 2, 1)
  d2 = _column_min_plus(_row_squared_distances(~damaged))
  if transposed:
    d2 = d2.transpose(0, 2, 1)
  return jnp.where(d2 >= _FAR, height**2 + width**2, d2)[..., None]


def distance_transform(mask: jax.Array) -> jax.Array:
  """float32 [B, H, W, 1]: the distance from each damaged pixel to the nearest intact pixel (0 on intact ones),
  the square root of the exact integer `squared_distance_transform` (so correctly rounded)."""
  return jnp.sqrt(squared_distance_transform(mask).astype(jnp.float32))


def _check_factors(factors: Sequence[float]) -> tuple[float, ...]:
  factors = tuple(float(f) for f in factors)
  if not factors or any(f <= 0 for f in factors) or any(a <= b for a, b in zip(factors, factors[1:])):
    raise ValueError(f"Scale factors {factors} must be positive and strictly decreasing, coarse to fine: the size "
                     "of one pixel of each scale in mask pixels, e.g. (4, 2, 1) for 256/512/1024 and a 1024 mask.")
  return factors


def fusion_weights(mask: jax.Array, factors: Sequence[float], *,
                   characteristic_length: float = CHARACTERISTIC_LENGTH, temperature: float = TEMPERATURE,
                   cascade: bool = False) -> jax.Array:
  """Per-pixel weights of the scales (see the module docstring).

  Args:
    mask: [B, H, W, 1] damage mask at the resolution the scales are fused at (normally the finest);
      >= 0.5 = damaged.
    factors: per scale, coarse to fine, the size of its pixel in mask pixels, e.g. (4, 2, 1).
    characteristic_length: L, in each scale's own pixels.
    temperature: tau, the width of the hand-over between neighbouring scales in octaves of depth.
    cascade: the coarse-to-fine ablation: all weight on the finest scale.

  Returns:
    float32 [B, H, W, S], S = len(factors), coarse to fine: summing to 1 on damaged pixels, 0 on intact ones.
  """
  factors = _check_factors(factors)
  if characteristic_length <= 0 or temperature <= 0:
    raise ValueError(f"characteristic_length ({characteristic_length}) and temperature ({temperature}) must be "
                     "positive.")
  damaged = _damaged(mask)[..., None]
  if cascade:
    finest = jnp.arange(len(factors)) == len(factors) - 1
    return jnp.where(damaged, finest, False).astype(jnp.float32)
  # Intact pixels (d = 0) are zeroed below; give them a finite logarithm on the way.
  depth = jnp.log2(jnp.where(damaged, distance_transform(mask), 1.0))
  centres = jnp.log2(jnp.asarray(factors, jnp.float32) * characteristic_length)
  logits = -jnp.square(depth - centres) / (2.0 * temperature**2)
  return jnp.where(damaged, jax.nn.softmax(logits, axis=-1), 0.0)
