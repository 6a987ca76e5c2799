"""Model families as trainer tasks, looked up by `config.task`."""

from __future__ import annotations

import importlib

import ml_collections

from muraljax.tasks.base import Task

_TASKS = {
    "hinet": "muraljax.tasks.hinet:HINetTask",
    "diffumural": "muraljax.tasks.diffusion:DiffusionTask",
    "car": "muraljax.tasks.car:CARTask",
    "arin": "muraljax.tasks.arin:ARINTask",
}


def get_task(config: ml_collections.ConfigDict) -> Task:
  """Builds the task named by `config.task`; each family's modules are imported only when used."""
  if config.task not in _TASKS:
    raise ValueError(f"Unknown task {config.task!r}; choose one of {sorted(_TASKS)}.")
  module, name = _TASKS[config.task].split(":")
  return getattr(importlib.import_module(module), name)(config)
