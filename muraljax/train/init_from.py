"""Starting a fresh run from the parameters of another run's checkpoint (`config.init_from`, documented in
muraljax/config.py).

Only the params are read (not the optimizer state, step or data position): a CAR run's checkpoint can start
ARIN's CAR (`into='car'`), a finished phase the next one. The trainer applies it when a run starts fresh, never
when it resumes from its own checkpoint. Every leaf of the target subtree must be in the checkpoint with the
same shape, and the checkpoint must hold nothing else; otherwise one error lists every difference.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import ml_collections
from absl import logging

from muraljax import runs
from muraljax.train.state import TrainState


class InitFromError(ValueError):
  """`init_from` names no usable checkpoint, or its params do not fit the model."""


def restore_params(checkpoint: str, target: Any) -> Any:
  """The params of `checkpoint` (a workdir, its checkpoints/ folder or one step folder), restored with the shapes,
  dtypes and shardings of the pytree `target`.

  Raises InitFromError listing every mismatched key when the saved params do not have exactly `target`'s keys
  and shapes.
  """
  try:
    step_dir = runs.resolve(checkpoint)
  except runs.NoCheckpoint:
    raise InitFromError(f"init_from.checkpoint={checkpoint!r} holds no muraljax checkpoint; point it at a "
                        "workdir, its checkpoints/ folder or one checkpoints/<step> folder.") from None
  try:
    return runs.load_params(step_dir, target)[0]
  except runs.ParamsMismatch as error:
    raise InitFromError(f"The params in {step_dir} do not fit the model ({len(error.differences)} differences: "
                        f"{'; '.join(error.differences)}); init from a checkpoint of the same architecture or fix "
                        "init_from.into.") from None


def initialise(state: TrainState, config: ml_collections.ConfigDict) -> TrainState:
  """`state` with `params[into]` (and its EMA) replaced by the params of `config.checkpoint`."""
  keys = [k for k in config.into.split("/") if k]
  subtree = state.params
  for depth, key in enumerate(keys):
    if not isinstance(subtree, dict) or key not in subtree:
      choices = sorted(subtree) if isinstance(subtree, dict) else []
      raise InitFromError(f"init_from.into={config.into!r} names no subtree of the model's params (no "
                          f"{'/'.join(keys[:depth + 1])!r}); pick the next key from {choices}.")
    subtree = subtree[key]
  loaded = restore_params(config.checkpoint, subtree)

  def replace(tree: Any, path: list[str]) -> Any:
    return loaded if not path else {**tree, path[0]: replace(tree[path[0]], path[1:])}

  params = replace(state.params, keys)
  logging.info("Initialised %s (%s parameters) from %s.", f"params[{config.into!r}]" if keys else "all params",
               f"{sum(math.prod(x.shape) for x in jax.tree.leaves(loaded)):,}", config.checkpoint)
  # The average gets buffers of its own: the train step donates both trees, and one buffer cannot be donated twice.
  ema_params = None if state.ema_params is None else jax.tree.map(lambda x: x.copy(), params)
  return state.replace(params=params, ema_params=ema_params)
