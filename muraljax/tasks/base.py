"""The small interface through which a model family plugs into the trainer, evaluation and restoration."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from muraljax.data.contours import contour_map
from muraljax.data.damage_types import UNKNOWN_DAMAGE

Batch = dict[str, jax.Array]  # 'damaged', 'clean' [B, H, W, 3] and 'mask' [B, H, W, 1], floats in [0, 1].
Params = Any


class Task(Protocol):
  """What the tools need from a model family; all methods are pure and jit-compatible."""

  blind: bool
  """True when the model restores from batch['damaged'] alone; False when it also reads batch['mask']."""

  sampled: bool
  """True when `predict` draws its restoration with `rng` (draws differ); False when it is deterministic."""

  size_multiple: int
  """The sides of the images `predict` takes must be multiples of this (1: any size; the model pads itself)."""

  restores: bool
  """Whether muraljax.restore offers the model for photographs of walls."""

  def inputs(self, batch_size: int, height: int, width: int) -> dict[str, jax.ShapeDtypeStruct]:
    """The batch entries `predict` reads for `batch_size` images of height x width: 'damaged' [B, H, W, 3], 'mask'
    [B, H, W, 1] unless blind, and any the family adds (DiffuMural: 'contour', 'damage_type')."""

  def init(self, rng: jax.Array, batch: Batch, keep_axis_names: bool = False) -> Params:
    """Fresh parameters for inputs shaped like `batch`; with `keep_axis_names`, each leaf is boxed with its
    logical axis names (see muraljax.models.partitioning)."""

  def loss(self, params: Params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Scalar training loss (mean over the global batch) and scalar metrics to log."""

  def predict(self, params: Params, batch: Batch, rng: jax.Array | None = None) -> jax.Array:
    """The restored images [B, H, W, 3] for evaluation, image grids and restoration; a sampled task draws them with
    `rng` (None: its fixed evaluation seed), a deterministic one ignores it."""

  # Optional: `trainable(params) -> pytree of bool`; parameters marked False are frozen by the optimizer.


def image_inputs(batch_size: int, height: int, width: int, blind: bool) -> dict[str, jax.ShapeDtypeStruct]:
  """float32 'damaged' [B, H, W, 3] and, unless `blind`, 'mask' [B, H, W, 1]: what most tasks' `inputs` are."""
  channels = {"damaged": 3} | ({} if blind else {"mask": 1})
  return {name: jax.ShapeDtypeStruct((batch_size, height, width, c), jnp.float32) for name, c in channels.items()}


def complete_batch(names: Iterable[str], batch: dict[str, np.ndarray], damage_type: int = UNKNOWN_DAMAGE
                   ) -> dict[str, np.ndarray]:
  """The entries `names` (the keys of a task's `inputs`) of a host batch with 'damaged' [B, H, W, 3] and 'mask'
  [B, H, W, 1]; those it lacks are derived from them: 'contour' drawn from each image and mask
  (muraljax.data.contours), 'damage_type' int32 [B] set to `damage_type` (an index into DAMAGE_TYPES)."""
  derived = {
      "contour": lambda: np.stack([contour_map(d, m) for d, m in zip(batch["damaged"], batch["mask"])]),
      "damage_type": lambda: np.full(len(batch["damaged"]), damage_type, np.int32),
  }
  return {name: batch[name] if name in batch else derived[name]() for name in names}
