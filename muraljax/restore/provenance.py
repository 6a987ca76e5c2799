"""The provenance record (provenance.json) that documents a restoration and lets anyone repeat it.

Hashes are SHA-256 hex digests: of the input image file and mask file as stored (not as decoded), of every output
file, and of the checkpoint as `muraljax.restore.photo_files.sha256_folder` of its checkpoints/<step>/state folder.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

import jax
import numpy as np
from scipy import ndimage

from muraljax.restore import figures, masks, photo_files
from muraljax.restore.model import TrainedModel
from muraljax.restore.restoration import Result, Settings

PACKAGES = ("jax", "jaxlib", "flax", "orbax-checkpoint", "numpy", "pillow", "scipy", "ml-collections", "muraljax")
CHECKPOINT_HASH = ("SHA-256 over checkpoints/<step>/state: per file in sorted relative-path order, "
                   "'path\\0<file sha256>\\n'")

_WEIGHTS = {"params": "params (the checkpoint's weights; it holds no EMA)",
            "ema_params": "ema_params (the exponential moving average of the trained weights, as evaluated)"}

def now() -> str:
  """The current UTC time, ISO 8601 with seconds."""
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def _source_revision() -> dict[str, Any] | None:
  """The git commit of the muraljax source and whether it had uncommitted changes; None outside a git checkout."""
  source = Path(__file__).resolve().parents[2]
  if not (source / ".git").exists():
    return None
  try:
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True, timeout=10).stdout.strip()
    changed = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--", "muraljax", "configs"],
                             capture_output=True, text=True, check=True, timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return {"commit": commit, "uncommitted_changes": bool(changed)}


def software() -> dict[str, Any]:
  return {"python": platform.python_version(), "platform": platform.platform(),
          "packages": {name: _version(name) for name in PACKAGES}, "muraljax_source": _source_revision(),
          "jax_backend": jax.default_backend(), "devices": [str(d.device_kind) for d in jax.devices()]}


def mask_statistics(damaged: np.ndarray) -> dict[str, Any]:
  """Size, damaged pixel count and fraction, number of separate damaged regions (8-connected) and their bounding
  box [top, left, bottom, right) of the mask bool [H, W]."""
  count = int(np.count_nonzero(damaged))
  _, regions = ndimage.label(damaged, np.ones((3, 3), bool))
  box = None
  if count:
    rows, cols = np.flatnonzero(damaged.any(axis=1)), np.flatnonzero(damaged.any(axis=0))
    box = [int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1]
  return {"height": int(damaged.shape[0]), "width": int(damaged.shape[1]), "damaged_pixels": count,
          "damaged_fraction": count / damaged.size, "regions": int(regions), "bounding_box": box}


def record(*, command: list[str], started: str, seconds: float, photo: photo_files.Photograph, mask: masks.Mask,
           model: TrainedModel, settings: Settings, result: Result, compute_seconds: float,
           outputs: dict[str, str]) -> dict[str, Any]:
  """The provenance record of one restoration; `outputs` maps each output file (bar this record) to its hash."""
  uncertainty = None
  if result.uncertainty is not None:
    uncertainty = {"statistic": "per-pixel standard deviation over the samples, averaged over RGB, in [0, 1] units",
                   "png_scale": figures.UNCERTAINTY_SCALE, "max": float(result.uncertainty.max()),
                   "mean_over_damage": float(result.uncertainty[mask.damaged].mean())}
  return {
      "tool": "muraljax.restore",
      "command": command,
      "started": started,
      "finished": now(),
      "seconds": round(seconds, 3),
      "input": {"path": photo.path, "sha256": photo.sha256, **photo.description},
      "mask": {"source": mask.source, "statistics": mask_statistics(mask.damaged)},
      "model": {"name": model.name, "checkpoint": str(model.step_dir), "step": int(model.step_dir.name),
                "checkpoint_sha256": model.sha256, "checkpoint_hash": CHECKPOINT_HASH,
                "weights": _WEIGHTS[model.weights], "num_params": model.num_params,
                "config": model.config.to_dict()},
      "restoration": {"mode": "enhance" if settings.enhance else "inpaint", "seed": settings.seed,
                      "samples": settings.samples, "tile": settings.tile, "overlap": settings.overlap,
                      "batch": settings.batch,
                      **({"damage_type": settings.damage_type} if model.sampled else {"ensemble": settings.ensemble}),
                      **result.statistics, "compute_seconds": round(compute_seconds, 3)},
      "uncertainty": uncertainty,
      "outputs": outputs,
      "software": software(),
      "notes": [*model.notes, *photo.notes, *mask.notes, *result.notes],
  }
