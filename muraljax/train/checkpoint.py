"""Orbax checkpoints of the train state together with the data iterator's position.

A checkpoint holds two items: `state` (step, params, optimizer state, RNG key; restored directly onto the
current run's mesh and shardings, whatever mesh saved it) and `data` (the grain iterator state, one file per
host), so a resumed run continues with exactly the next batch.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from muraljax import runs
from muraljax.train.state import TrainState


def _state_items(state: TrainState) -> dict[str, Any]:
  items = {"step": state.step, "params": state.params, "opt_state": state.opt_state, "rng": state.rng}
  if state.ema_params is not None:
    items["ema_params"] = state.ema_params
  return items


class CheckpointSaveError(RuntimeError):
  """A checkpoint could not be saved (a full disk, most often); the message names the last good step."""


class Checkpointer:
  """Saves every `checkpoint_every` steps (asynchronously), keeps `max_to_keep`, restores the latest."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict):
    self.every = config.checkpoint_every
    self.workdir = workdir
    self.directory = runs.checkpoints_dir(workdir)  # the layout of muraljax.runs: items 'state' and 'data'
    options = ocp.CheckpointManagerOptions(max_to_keep=config.max_to_keep, create=True,
                                           enable_async_checkpointing=True)
    self.manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(), "data": grain.checkpoint.CheckpointHandler()})

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: TrainState, data_iterator: Any, force: bool = False) -> bool:
    """Starts a save of `state` (which is at `step`) when due or forced; returns whether one was started.

    The step comes from the host's count, so deciding costs no device synchronisation. Raises
    CheckpointSaveError when an earlier asynchronous save failed, or when the disk has less free space than the
    state takes, instead of training on without checkpoints.
    """
    self._raise_failed_saves()
    if (step % self.every and not force) or step in self.manager.all_steps():
      return False
    needed = sum(x.nbytes for x in jax.tree.leaves(_state_items(state)))
    free = shutil.disk_usage(self.directory).free
    if free < needed:
      raise CheckpointSaveError(self._failure(step, f"{free / 1e6:.0f} MB free on its disk, {needed / 1e6:.0f} MB "
                                                    "needed"))
    try:
      return self.manager.save(
          step,
          args=ocp.args.Composite(state=ocp.args.StandardSave(_state_items(state)),
                                  data=grain.checkpoint.CheckpointSave(data_iterator)),
          force=True)
    except OSError as error:
      raise CheckpointSaveError(self._failure(step, f"{type(error).__name__}: {error}")) from None

  def _raise_failed_saves(self) -> None:
    try:
      self.manager.check_for_errors()
    except Exception as error:  # pylint: disable=broad-except  # whatever the background save raised
      raise CheckpointSaveError(self._failure(None, f"{type(error).__name__}: {error}")) from None

  def _failure(self, step: int | None, reason: str) -> str:
    which = "A checkpoint" if step is None else f"The checkpoint of step {step}"
    return (f"{which} could not be saved in {self.directory} ({reason}); the last good one is step "
            f"{self.manager.latest_step()}: free space and run the command again to resume from it.")

  def restore(self, state: TrainState, data_iterator: Any, step: int | None = None) -> TrainState:
    """Restores `step` (default: latest) onto the shardings of `state` and rewinds `data_iterator` in place."""
    step = self.manager.latest_step() if step is None else step
    items = self._read_state(state, step)
    self.manager.restore(step, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(data_iterator)))
    return state.replace(**items)

  def _read_state(self, state: TrainState, step: int) -> dict[str, Any]:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _state_items(state))
    return self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]

  def step_folders(self) -> list[int]:
    """The steps that have a folder in checkpoints/, complete or not, newest first."""
    return sorted(set(runs.steps(self.workdir)) | set(self.manager.all_steps()), reverse=True)

  def restore_newest_intact(self, state: TrainState, data_iterator: Any) -> TrainState | None:
    """Restores the newest checkpoint whose state reads back (None when there is no checkpoint folder at all).

    A newer step folder that does not read back (truncated or missing files, an interrupted save) is renamed
    `<step>.damaged` (kept for inspection, out of the way of new saves) with a warning. Raises ValueError when
    no step folder reads back.
    """
    steps = self.step_folders()
    for step in steps:
      try:
        items = self._read_state(state, step)
      except Exception as error:  # pylint: disable=broad-except  # any reader failure means a damaged step
        self._set_aside(step, error)
        continue
      self.manager.reload()
      self.manager.restore(step, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(data_iterator)))
      return state.replace(**items)
    if steps:
      raise ValueError(f"No checkpoint in {self.directory} reads back (steps {', '.join(map(str, steps))} were "
                       "damaged and renamed <step>.damaged); start the run again in a new --workdir.")
    return None

  def _set_aside(self, step: int, error: Exception) -> None:
    folder = os.path.join(self.directory, str(step))
    aside = f"{folder}.damaged"
    suffix = 1
    while os.path.exists(aside):
      aside, suffix = f"{folder}.damaged{suffix}", suffix + 1
    if jax.process_index() == 0:
      os.rename(folder, aside)
    logging.warning("The checkpoint of step %d cannot be read (%s: %s); renamed it %s and trying the step before.",
                    step, type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "", aside)

  def wait(self) -> None:
    """Waits for the pending save; raises CheckpointSaveError when it failed."""
    try:
      self.manager.wait_until_finished()
    except Exception as error:  # pylint: disable=broad-except  # whatever the background save raised
      raise CheckpointSaveError(self._failure(None, f"{type(error).__name__}: {error}")) from None

  def finish(self, raise_errors: bool) -> None:
    """Waits for the pending save and closes; a failed save raises (or, while another error propagates, is
    logged so that it does not hide that one)."""
    try:
      self.wait()
    except CheckpointSaveError as error:
      if raise_errors:
        raise
      logging.error("%s", error)
    finally:
      self.manager.close()
