"""Writing ported params as a muraljax Orbax checkpoint plus a JSON report, all or nothing.

Layout (a run's, muraljax.runs, so `config.init_from.checkpoint=OUT` loads it):

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

from muraljax import paths, runs
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
    runs.write_params(staging, params, STEP)
    (staging / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    if path.exists():
      path.rmdir()  # empty, checked above; os.replace needs the name free
    os.replace(staging, path)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return path

