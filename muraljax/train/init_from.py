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
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from muraljax.train.state import TrainState


class InitFromError(ValueError):
  """`init_from` names no usable checkpoint, or its params do not fit the model."""


def state_item_dir(checkpoint: str) -> epath.Path:
  """The Orbax `state` item folder of the checkpoint a workdir, checkpoints/ folder or step folder designates."""
  path = epath.Path(checkpoint)
  if (path / "checkpoints").is_dir():
    path = path / "checkpoints"
  steps = [p for p in path.iterdir() if p.name.isdigit()] if path.is_dir() else []
  if steps:
    path = max(steps, key=lambda p: int(p.name))
  if not (path / "state").is_dir():
    raise InitFromError(f"init_from.checkpoint={checkpoint!r} holds no muraljax checkpoint; point it at a "
                        "workdir, its checkpoints/ folder or one checkpoints/<step> folder.")
  return path / "state"


def _leaves_by_path(tree: Any) -> dict[str, Any]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {"/".join(str(getattr(k, "key", k)) for k in path): leaf for path, leaf in flat}


def _mismatches(saved: Any, target: Any) -> list[str]:
  """Every key missing from, unexpected in, or shaped differently in `saved` compared with `target`."""
  saved, target = _leaves_by_path(saved), _leaves_by_path(target)
  problems = [f"missing {k} {tuple(target[k].shape)}" for k in sorted(target.keys() - saved.keys())]
  problems += [f"unexpected {k} {tuple(saved[k].shape)}" for k in sorted(saved.keys() - target.keys())]
  problems += [f"{k}: checkpoint {tuple(saved[k].shape)} vs model {tuple(target[k].shape)}"
               for k in sorted(saved.keys() & target.keys()) if tuple(saved[k].shape) != tuple(target[k].shape)]
  return problems


def saved_items(checkpoint: str) -> set[str]:
  """The top-level items of the checkpoint's state ('params', 'ema_params', 'opt_state', ...)."""
  handler = ocp.PyTreeCheckpointHandler()
  try:
    return set(handler.metadata(state_item_dir(checkpoint)).tree)
  finally:
    handler.close()


def restore_params(checkpoint: str, target: Any, prefer_ema: bool = False) -> Any:
  """The params of `checkpoint`, restored with the shapes, dtypes and shardings of the pytree `target`; with
  `prefer_ema`, its EMA params when it has them (what the trainer evaluates).

  Raises InitFromError listing every mismatched key when the saved params do not have exactly `target`'s keys
  and shapes.
  """
  directory = state_item_dir(checkpoint)
  handler = ocp.PyTreeCheckpointHandler()
  try:
    items = handler.metadata(directory).tree
    item = "ema_params" if prefer_ema and "ema_params" in items else "params"
    saved = items.get(item, {})
    problems = _mismatches(saved, target)
    if problems:
      raise InitFromError(f"The params in {directory.parent} do not fit the model ({len(problems)} differences: "
                          f"{'; '.join(problems)}); init from a checkpoint of the same architecture or fix "
                          "init_from.into.")
    abstract = {item: jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), target)}
    restored = handler.restore(directory, args=ocp.args.PyTreeRestore(
        item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract), partial_restore=True))
  finally:
    handler.close()
  return restored[item]


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
