"""The small interface through which a model family plugs into the generic trainer."""

from __future__ import annotations

from typing import Any, Protocol

import jax

Batch = dict[str, jax.Array]  # 'damaged', 'clean' [B, H, W, 3] and 'mask' [B, H, W, 1], floats in [0, 1].
Params = Any


class Task(Protocol):
  """What the trainer needs from a model family; all methods are pure and jit-compatible."""

  blind: bool
  """True when the model restores from batch['damaged'] alone; False when it also reads batch['mask']."""

  def init(self, rng: jax.Array, batch: Batch, keep_axis_names: bool = False) -> Params:
    """Fresh parameters for inputs shaped like `batch`; with `keep_axis_names`, each leaf is boxed with its
    logical axis names (see muraljax.models.partitioning)."""

  def loss(self, params: Params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Scalar training loss (mean over the global batch) and scalar metrics to log."""

  def predict(self, params: Params, batch: Batch) -> jax.Array:
    """The restored images [B, H, W, 3] for evaluation and image grids."""

  # Optional: `trainable(params) -> pytree of bool`; parameters marked False are frozen by the optimizer.
