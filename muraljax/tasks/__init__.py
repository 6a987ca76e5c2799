"""Model families as trainer tasks, looked up by `config.task`."""

from __future__ import annotations

import importlib

import jax.numpy as jnp
import ml_collections

from muraljax.tasks.base import Batch, Task, complete_batch

_TASKS = {
    "hinet": "muraljax.tasks.hinet:HINetTask",
    "car": "muraljax.tasks.car:CARTask",
    "arin": "muraljax.tasks.arin:ARINTask",
    "diffumural": "muraljax.tasks.diffumural:DiffuMuralTask",
}


def names() -> list[str]:
  """The registered tasks (`config.task` values)."""
  return list(_TASKS)


def task_type(name: str) -> type[Task]:
  """The class of the task `name`; its family's modules are imported only now."""
  if name not in _TASKS:
    raise ValueError(f"Unknown task {name!r}; choose one of {sorted(_TASKS)}.")
  module, attribute = _TASKS[name].split(":")
  return getattr(importlib.import_module(module), attribute)


def get_task(config: ml_collections.ConfigDict) -> Task:
  """Builds the task named by `config.task`."""
  return task_type(config.task)(config)


def example_batch(task: Task, config: ml_collections.ConfigDict) -> Batch:
  """Zeros shaped like the inputs of one training patch (`config.data.patch_size`): what params are initialised
  from."""
  side = config.data.patch_size
  return {name: jnp.zeros(spec.shape, spec.dtype) for name, spec in task.inputs(1, side, side).items()}
