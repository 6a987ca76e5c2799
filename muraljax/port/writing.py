"""Writing ported params as a muraljax Orbax checkpoint plus a JSON report, all or nothing.

Layout (the trainer's, so `config.init_from.checkpoint=OUT` loads it; see muraljax/train/init_from.py):

    OUT/checkpoints/0/state/     Orbax item {'params': params}
    OUT/port_report.json         what was read, inferred and mapped

Everything is written into a hidden sibling folder first and renamed to OUT at the end, so a failure leaves
no half-written OUT behind.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from muraljax import paths
from muraljax.port.errors import PortError

REPORT_FILE = "port_report.json"
STEP = 0


def check_output_free(out: str | pathlib.Path) -> pathlib.Path:
  """Raises PortError when `out` exists and is not an empty folder (nothing is ever overwritten)."""
  path = pathlib.Path(out).absolute()
  if path.exists() and (not path.is_dir() or any(path.iterdir())):
    raise PortError(f"{path} already exists; choose a new --out or delete it first.")
  reason = paths.unwritable_reason(path)
  if reason is not None:
    raise PortError(f"--out {path} cannot be written ({reason}); choose a folder you can write to.")
  return path


def write(out: str | pathlib.Path, params: Any, report: dict[str, Any]) -> pathlib.Path:
  """Writes `params` and `report` to `out` (a new or empty folder); returns its absolute path."""
  path = check_output_free(out)
  path.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
  try:
    write_params_checkpoint(staging / "checkpoints", params)
    (staging / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    if path.exists():
      path.rmdir()  # empty, checked above; os.replace needs the name free
    os.replace(staging, path)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return path


def write_params_checkpoint(directory: pathlib.Path, params: Any, step: int = STEP) -> None:
  """Writes `params` as the Orbax checkpoint `directory`/<step>/state holding {'params': params}, synchronously."""
  options = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False)
  with ocp.CheckpointManager(directory, options=options,
                             item_handlers={"state": ocp.StandardCheckpointHandler()}) as manager:
    state = {"params": jax.tree.map(jnp.asarray, params)}
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
    manager.wait_until_finished()
