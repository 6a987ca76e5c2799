"""Periodic evaluation on the fixed held-out set: restoration quality against the damaged-input baseline.

Per image, restored and damaged input alike: PSNR and SSIM over the whole image and inside the damage mask
(muraljax.metrics.psnr_ssim), and CCON, TCON and ECON, the colour, texture and edge consistency of the damaged
region with its surroundings, in [0, 1] (muraljax.metrics.consistency defines them; no ground truth needed).
The ground truth's own consistency scores (`eval/clean_*`) say how consistent the real painting is there.
Means skip images a metric cannot score (no damage, or nothing around it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np

from muraljax.metrics import consistency, psnr_ssim
from muraljax.tasks.base import Batch

QUALITY = ("psnr", "ssim", "psnr_masked", "ssim_masked")
"""The muraljax.metrics.psnr_ssim values logged for the restored and the damaged input."""


def _quality(pred: jax.Array, batch: Batch) -> dict[str, jax.Array]:
  """Per-image PSNR / SSIM over the whole image and inside the damage mask, each [B]."""
  values = psnr_ssim.whole_and_masked(pred, batch["clean"], batch["mask"])
  return {name: values[name] for name in QUALITY}


def make_eval_fn(predict: Callable[..., jax.Array]) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
  """jit(params, batch) -> (restored [B, H, W, 3], {metric: [B]}) for the restored and the damaged input."""

  @jax.jit
  def eval_fn(params, batch):
    restored = predict(params, batch)
    restored_quality = _quality(restored, batch)
    damaged_quality = _quality(batch["damaged"], batch)
    per_image = {f"eval/{k}": v for k, v in restored_quality.items()}
    per_image |= {f"eval/damaged_{k}": v for k, v in damaged_quality.items()}
    per_image |= {f"scored/{name}": counted for name, counted in psnr_ssim.scored(batch["mask"]).items()
                  if name in QUALITY}
    return restored, per_image

  return eval_fn


def _consistency(restored: np.ndarray, batch: Batch) -> dict[str, np.ndarray]:
  """CCON / TCON / ECON per image [B] (NaN where nothing can be scored) of the restored, damaged and clean
  images, computed on the host."""
  mask = np.asarray(batch["mask"])
  scores = {}
  for prefix, images in (("", restored), ("damaged_", batch["damaged"]), ("clean_", batch["clean"])):
    scores |= {f"eval/{prefix}{name}": value for name, value in consistency.score_batch(images, mask).items()}
  return scores


def evaluate(eval_fn: Callable, params, batches: Sequence[Batch]) -> tuple[dict[str, float], jax.Array]:
  """Mean metrics over every held-out image (masked and consistency metrics over the images they can score) and
  the first batch's restorations, for the image grid."""
  per_image: dict[str, list[np.ndarray]] = {}
  first_restored = None
  for batch in batches:
    restored, values = eval_fn(params, batch)
    first_restored = restored if first_restored is None else first_restored
    values = jax.device_get(values) | _consistency(np.asarray(jax.device_get(restored)), jax.device_get(batch))
    for key, value in values.items():
      per_image.setdefault(key, []).append(np.asarray(value))
  stacked = {k: np.concatenate(v) for k, v in per_image.items()}
  means = {}
  for key, values in stacked.items():
    if key.startswith("eval/"):
      metric = key.removeprefix("eval/").removeprefix("damaged_")
      scored = stacked.get(f"scored/{metric}", ~np.isnan(values))
      means[key] = float(np.mean(values[scored])) if scored.any() else float("nan")
  return means, first_restored
