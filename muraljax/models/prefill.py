"""Classical hole filling inside the model: a harmonic fill solved coarse to fine, in JAX, differentiable.

`harmonic_fill(image, mask)` replaces the damaged pixels by (an approximation of) the discrete harmonic
interpolant of the intact ones: each filled pixel is the mean of its 4 neighbours, the intact pixels are the
boundary values. A linear ramp and a constant image are harmonic, so a fill reproduces them; intact pixels are
returned bit for bit.

The least-squares plane through the intact pixels (per image and channel) is taken out first and added back
at the end: planes are harmonic, so a ramp or a constant is reproduced exactly (to rounding) whatever the sweep
counts, and only the remainder is filled. Jacobi sweeps alone would need O(hole width^2) sweeps, so the remainder
is filled as a cascadic multigrid:
  1. a pyramid halves the image down to a side of at most `_COARSEST_SIDE`; a coarse pixel is the mean of its
     intact children, and intact when any child is;
  2. the coarsest level starts its holes at the mean of its intact pixels and relaxes `coarsest_sweeps` times;
  3. each finer level starts its holes from the bilinear upsampling of the coarser solution and relaxes `sweeps`
     times.
Everything is fixed-shape array code (pooling, resizing, a `fori_loop` of stencil sweeps): it runs under `jit` on
CPU, GPU and TPU with no host round trip, and gradients flow to the intact pixels. Image borders act as
mirrors (Neumann boundary: the stencil replicates the edge pixel). A fully damaged image has no boundary values
and is filled with `EMPTY_VALUE`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

EMPTY_VALUE = 0.5
"""The fill of an image with no intact pixel (mid-grey in [0, 1])."""
CONVERGED_SWEEPS = 256
"""Sweeps per level at which the fill of 256 px images with box and stroke holes is within 0.001 (mean) of the
exact harmonic fill (16 sweeps: 0.005; benchmarks/prefill.py): the inpainting configs' count."""
_COARSEST_SIDE = 4
_RIDGE = 1e-6  # keeps the plane fit solvable when the intact pixels are too few or collinear


def harmonic_fill(image: jax.Array, mask: jax.Array, sweeps: int = 16, coarsest_sweeps: int = 64) -> jax.Array:
  """Fills the damaged pixels of `image` from the intact ones (see the module docstring).

  Args:
    image: [B, H, W, C] floats; the values of damaged pixels are ignored.
    mask: [B, H, W, 1], damaged where > 0.5.
    sweeps: Jacobi sweeps on every level but the coarsest (more: closer to the exact harmonic fill).
    coarsest_sweeps: Jacobi sweeps on the coarsest level.

  Returns:
    [B, H, W, C] in the dtype of `image`: intact pixels unchanged, damaged ones filled.
  """
  if image.ndim != 4 or mask.shape != (*image.shape[:3], 1):
    raise ValueError(f"harmonic_fill needs image [B, H, W, C] and mask [B, H, W, 1], got {image.shape} and "
                     f"{mask.shape}.")
  if sweeps < 0 or coarsest_sweeps < 0:
    raise ValueError(f"Sweep counts must be >= 0, got sweeps={sweeps}, coarsest_sweeps={coarsest_sweeps}.")
  height, width = image.shape[1:3]
  levels = max(0, math.ceil(math.log2(max(height, width) / _COARSEST_SIDE)))
  multiple = 2**levels
  pad = ((0, 0), (0, -height % multiple), (0, -width % multiple), (0, 0))
  plane = _plane_fit(image.astype(jnp.float32), mask <= 0.5)
  known = jnp.pad(mask <= 0.5, pad, mode="edge")
  values = jnp.pad(image.astype(jnp.float32) - plane, pad, mode="edge")

  pyramid = [(values, known)]
  for _ in range(levels):
    pyramid.append(_coarser(*pyramid[-1]))
  coarsest_values, coarsest_known = pyramid[-1]
  filled = _relax(jnp.where(coarsest_known, coarsest_values, _intact_mean(coarsest_values, coarsest_known)),
                  coarsest_known, coarsest_sweeps)
  for level_values, level_known in reversed(pyramid[:-1]):
    upsampled = jax.image.resize(filled, level_values.shape, "linear")
    filled = _relax(jnp.where(level_known, level_values, upsampled), level_known, sweeps)
  filled = filled[:, :height, :width] + plane
  return jnp.where(mask <= 0.5, image, filled.astype(image.dtype))


def _plane_fit(image: jax.Array, known: jax.Array) -> jax.Array:
  """[B, H, W, C]: per image and channel, the least-squares plane a + b*y + c*x through the intact pixels."""
  height, width = image.shape[1:3]
  rows, cols = jnp.meshgrid(jnp.linspace(-1, 1, height), jnp.linspace(-1, 1, width), indexing="ij")
  basis = jnp.stack([jnp.ones_like(rows), rows, cols], axis=-1)  # [H, W, 3]
  weight = known.astype(image.dtype)[..., 0]  # [B, H, W]
  gram = jnp.einsum("bhw,hwi,hwj->bij", weight, basis, basis) + _RIDGE * jnp.eye(3)
  moments = jnp.einsum("bhw,hwi,bhwc->bci", weight, basis, image)
  coefficients = jnp.linalg.solve(gram[:, None], moments[..., None])[..., 0]  # [B, C, 3]
  return jnp.einsum("hwi,bci->bhwc", basis, coefficients)


def _coarser(values: jax.Array, known: jax.Array) -> tuple[jax.Array, jax.Array]:
  """2x2 block means of `values` [B, H, W, C] and blocks whose 4 pixels are all `known` [B, H, W, 1]."""
  b, h, w, c = values.shape
  blocks = lambda x: x.reshape(b, h // 2, 2, w // 2, 2, x.shape[-1]).sum(axis=(2, 4))
  weight = known.astype(values.dtype)
  count = blocks(weight)
  return blocks(values * weight) / jnp.maximum(count, 1.0), count > 0


def _intact_mean(values: jax.Array, known: jax.Array) -> jax.Array:
  """[B, 1, 1, C]: the mean of each image's intact pixels, EMPTY_VALUE where it has none."""
  weight = known.astype(values.dtype)
  count = weight.sum(axis=(1, 2), keepdims=True)
  total = (values * weight).sum(axis=(1, 2), keepdims=True)
  return jnp.where(count > 0, total / jnp.maximum(count, 1.0), EMPTY_VALUE)


def _relax(values: jax.Array, known: jax.Array, sweeps: int) -> jax.Array:
  """`sweeps` Jacobi sweeps of the 4-neighbour Laplace equation on the pixels that are not `known`."""

  def sweep(_, x):
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    neighbours = (padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]) / 4
    return jnp.where(known, x, neighbours)

  return jax.lax.fori_loop(0, sweeps, sweep, values)
