"""The on-disk layout of a run, in one place: what the trainer writes and the port, the shipped models, evaluation,
restoration and `init_from` read.

    RUN/config.json                 the run's full config (tools rebuild the model from it)
    RUN/checkpoints/<step>/state    Orbax item: the trainer's {'step', 'params', 'opt_state', 'rng'(, 'ema_params')},
                                    or {'params'} alone (ported weights, shipped models)
    RUN/checkpoints/<step>/data     the trainer's data iterator position (one file per host)

A checkpoint is named by the run folder (its newest step), its checkpoints/ folder or one checkpoints/<step>
folder; `resolve` turns any of them into the absolute step folder once, and everything else takes that. Errors
are typed and carry the facts as attributes; each tool words its own sentence.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from muraljax import tasks
from muraljax.config import base_config
from muraljax.data import pipeline

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
STATE_ITEM = "state"


class RunError(ValueError):
  """A folder that cannot be used as a run or checkpoint; the attributes say why."""


class NoCheckpoint(RunError):
  """`path` holds no checkpoints/<step>/state folder."""

  def __init__(self, path: str | os.PathLike):
    super().__init__(f"{path} holds no muraljax checkpoint")
    self.path = path


class NoConfig(RunError):
  """No config.json next to the checkpoint `step_dir` (in it, in checkpoints/ or in the run folder)."""

  def __init__(self, step_dir: Path):
    super().__init__(f"No config.json next to the checkpoint {str(step_dir)!r}")
    self.step_dir = step_dir


class UnreadableConfig(RunError):
  """The config.json at `path` is not valid JSON (`reason` says where)."""

  def __init__(self, path: Path, reason: str):
    super().__init__(f"{str(path)!r} is not valid JSON ({reason})")
    self.path, self.reason = path, reason


class ParamsMismatch(RunError):
  """The params saved in `step_dir` do not have the target's keys and shapes; `differences` lists each one."""

  def __init__(self, step_dir: Path, differences: list[str]):
    super().__init__(f"The params in {step_dir} do not fit the model ({len(differences)} differences)")
    self.step_dir, self.differences = step_dir, differences


def checkpoints_dir(run: str | os.PathLike) -> Path:
  """The absolute checkpoints/ folder of the run folder `run`."""
  return Path(run).absolute() / CHECKPOINTS


def config_file(run: str | os.PathLike) -> Path:
  return Path(run) / CONFIG_FILE


def steps(run: str | os.PathLike) -> list[int]:
  """The steps that have a folder in the run's checkpoints/, complete or not, newest first."""
  folder = checkpoints_dir(run)
  names = os.listdir(folder) if folder.is_dir() else []
  return sorted((int(name) for name in names if name.isdigit()), reverse=True)


def resolve(path: str | os.PathLike) -> Path:
  """The absolute checkpoints/<step> folder `path` names: a run folder or its checkpoints/ folder (the newest
  step) or one step folder. Raises NoCheckpoint when there is none."""
  folder = Path(path).absolute()  # Orbax reads absolute paths only
  if (folder / CHECKPOINTS).is_dir():
    folder = folder / CHECKPOINTS
  numbered = [p for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
  if numbered:
    folder = max(numbered, key=lambda p: int(p.name))
  if not (folder / STATE_ITEM).is_dir():
    raise NoCheckpoint(path)
  return folder


def run_folder(step_dir: Path) -> Path:
  """The run folder of a checkpoints/<step> folder."""
  return step_dir.parent.parent


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """A run's config.json, with today's defaults for the shared fields it predates (`filled`, dotted names)."""

  config: ml_collections.ConfigDict
  path: Path
  filled: tuple[str, ...] = ()

  @property
  def note(self) -> str | None:
    """The sentence that says which fields were filled, or None."""
    if not self.filled:
      return None
    return (f"The run's config.json predates the config fields {', '.join(self.filled)}; their current defaults "
            "were used (they do not change the architecture).")


def read_config(step_dir: Path) -> RunConfig:
  """The config of the run that wrote `step_dir` (its config.json: in the run folder two levels up, or beside).

  A run trained before muraljax gained a field of the sections that do not define the architecture (trainer,
  optimizer, mesh, init_from, data) gets today's default for it, with a logged note. Raises NoConfig or
  UnreadableConfig.
  """
  for folder in (step_dir, *step_dir.parents[:2]):
    if config_file(folder).is_file():
      path = config_file(folder)
      break
  else:
    raise NoConfig(step_dir)
  try:
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
  except json.JSONDecodeError as error:
    raise UnreadableConfig(path, str(error)) from None
  run = RunConfig(config, path, tuple(_add_defaults(config, _shared_defaults(config.get("task")))))
  if run.note:
    logging.warning("%s", run.note)
  return run


def _shared_defaults(task: str) -> ml_collections.ConfigDict:
  """Today's defaults of the config sections that do not define the architecture."""
  defaults = base_config(task)
  defaults.data = pipeline.default_config()
  return defaults


def _add_defaults(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict, prefix: str = ""
                  ) -> list[str]:
  """Adds to `config`, in place, every field of `defaults` it lacks (recursing into sections both have); returns
  the dotted names of the added fields."""
  added = []
  for key, value in defaults.items():
    if key not in config:
      config[key] = copy.deepcopy(value)
      added.append(prefix + key)
    elif isinstance(value, ml_collections.ConfigDict) and isinstance(config[key], ml_collections.ConfigDict):
      added += _add_defaults(config[key], value, f"{prefix}{key}.")
  return added


def write_config(run: str | os.PathLike, text: str) -> None:
  """Writes the run's config.json: to a temporary file renamed into place, so an interruption never leaves a
  truncated record."""
  path = config_file(run)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


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


def load_params(step_dir: Path, target: Any, prefer_ema: bool = False) -> tuple[Any, str]:
  """(params, the item they came from: 'params' or 'ema_params') of the checkpoint `step_dir`, restored with the
  shapes, dtypes and shardings of the pytree `target`; with `prefer_ema`, its EMA params when it kept them (what
  the trainer evaluates).

  Raises ParamsMismatch when the saved params do not have exactly `target`'s keys and shapes; Orbax's own errors
  when the checkpoint cannot be read.
  """
  handler = ocp.PyTreeCheckpointHandler()
  try:
    items = handler.metadata(step_dir / STATE_ITEM).tree
    item = "ema_params" if prefer_ema and "ema_params" in items else "params"
    differences = _mismatches(items.get(item, {}), target)
    if differences:
      raise ParamsMismatch(step_dir, differences)
    abstract = {item: jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), target)}
    restored = handler.restore(step_dir / STATE_ITEM, args=ocp.args.PyTreeRestore(
        item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract), partial_restore=True))
  finally:
    handler.close()
  return restored[item], item


def load_task_params(step_dir: Path, task: tasks.Task, config: ml_collections.ConfigDict) -> tuple[Any, str]:
  """`load_params` of `task`'s whole params (built as `config` describes), EMA params when the run kept them."""
  target = jax.eval_shape(task.init, jax.random.PRNGKey(0), tasks.example_batch(task, config))
  return load_params(step_dir, target, prefer_ema=True)


def write_params(run: str | os.PathLike, params: Any, step: int) -> Path:
  """Writes `params` as the params-only checkpoint RUN/checkpoints/<step>/state (synchronously); returns the step
  folder."""
  options = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False)
  with ocp.CheckpointManager(checkpoints_dir(run), options=options,
                             item_handlers={STATE_ITEM: ocp.StandardCheckpointHandler()}) as manager:
    state = {"params": jax.tree.map(jnp.asarray, params)}
    manager.save(step, args=ocp.args.Composite(**{STATE_ITEM: ocp.args.StandardSave(state)}))
    manager.wait_until_finished()
  return checkpoints_dir(run) / str(step)
