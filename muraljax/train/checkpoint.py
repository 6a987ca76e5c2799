"""Orbax checkpoints of the train state together with the data iterator's position.

A checkpoint holds two items: `state` (step, params, optimizer state, RNG key; restored directly onto the
current run's mesh and shardings, whatever mesh saved it) and `data` (the grain iterator state, one file per
host), so a resumed run continues with exactly the next batch.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp

from muraljax.train.state import TrainState


def _state_items(state: TrainState) -> dict[str, Any]:
  items = {"step": state.step, "params": state.params, "opt_state": state.opt_state, "rng": state.rng}
  if state.ema_params is not None:
    items["ema_params"] = state.ema_params
  return items


class Checkpointer:
  """Saves every `checkpoint_every` steps (asynchronously), keeps `max_to_keep`, restores the latest."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict):
    self.every = config.checkpoint_every
    options = ocp.CheckpointManagerOptions(max_to_keep=config.max_to_keep, create=True,
                                           enable_async_checkpointing=True)
    self.manager = ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), "checkpoints"), options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(), "data": grain.checkpoint.CheckpointHandler()})

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: TrainState, data_iterator: Any, force: bool = False) -> bool:
    """Starts a save of `state` (which is at `step`) when due or forced; returns whether one was started.

    The step comes from the host's count, so deciding costs no device synchronisation.
    """
    if (step % self.every and not force) or step in self.manager.all_steps():
      return False
    return self.manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(_state_items(state)),
                                data=grain.checkpoint.CheckpointSave(data_iterator)),
        force=True)

  def restore(self, state: TrainState, data_iterator: Any, step: int | None = None) -> TrainState:
    """Restores `step` (default: latest) onto the shardings of `state` and rewinds `data_iterator` in place."""
    step = self.manager.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _state_items(state))
    restored = self.manager.restore(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                data=grain.checkpoint.CheckpointRestore(data_iterator)))
    items = restored["state"]
    return state.replace(**items)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
