"""Input-pipeline throughput against the smoke HINet train step's consumption, and ArrayRecord build speed.

  python benchmarks/input_pipeline.py [--paintings 48] [--batches 30] [--config hinet:paper --no-step]

Writes a Dunhuang-like layout of random-texture paintings (500x800 JPEG, organisers' naming) to a temporary folder,
builds it with `muraljax.data.prepare` (paintings/s, MB/s of input), then times the grain training loader over it
at the batch and patch size of `--config` (examples/s with 0, 1 and 2 workers, and per host core busy with it; the
dataset's own masks, and synthetic damage) and that config's compiled train step on this machine (examples/s it
consumes; `--no-step` skips it, e.g. for paper sizes on a CPU, where the step is an accelerator's). Prints a table
and writes benchmarks/results/input_pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import common
import jax
import numpy as np
from PIL import Image

from muraljax.data import pipeline, prepare

PAINTING = (500, 800)  # height, width: the challenge's paintings are about this size


def write_layout(root: str, count: int) -> int:
  """`count` train paintings (and 4 test ones) as the organisers ship them; returns the bytes written."""
  rng = np.random.default_rng(0)
  total = 0
  for split, n in (("train", count), ("test", 4)):
    for folder in ("GT", "mask", "masked"):
      os.makedirs(f"{root}/{split}_{folder}", exist_ok=True)
    for i in range(1, n + 1):
      # Smooth colour fields plus grain: JPEG sizes near real photographs', unlike white noise.
      coarse = rng.integers(0, 256, (PAINTING[0] // 25, PAINTING[1] // 25, 3), dtype=np.uint8)
      painting = np.asarray(Image.fromarray(coarse).resize(PAINTING[::-1], Image.Resampling.BICUBIC), np.int16)
      painting = np.clip(painting + rng.integers(-12, 13, painting.shape), 0, 255).astype(np.uint8)
      mask = np.zeros(PAINTING, np.uint8)
      top = rng.integers(0, PAINTING[0] - 150)
      mask[top:top + 150, 200:500] = 255
      files = {f"{split}_GT/{i:03d}.jpg": painting, f"{split}_mask/{i:03d}_mask.jpg": mask,
               f"{split}_masked/{i:03d}_masked.jpg": np.where(mask[..., None] > 0, 0, painting).astype(np.uint8)}
      for name, pixels in files.items():
        Image.fromarray(pixels).save(f"{root}/{name}", quality=95)
        total += os.path.getsize(f"{root}/{name}")
  return total


def loader_rate(directory: str, mask_mode: str, workers: int, batches: int, batch_size: int, patch: int) -> float:
  """Examples/s of the training loader after its first batch (worker start-up excluded)."""
  config = pipeline.default_config()
  config.update(source="arrayrecord", dataset=directory, mask_mode=mask_mode, patch_size=patch, eval_images=0,
                num_workers=workers)
  iterator = iter(pipeline.train_loader(config, global_batch_size=batch_size, seed=0, shard_index=0, shard_count=1))
  next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--paintings", type=int, default=48, help="Train paintings in the generated layout.")
  parser.add_argument("--batches", type=int, default=30, help="Timed batches per loader case.")
  parser.add_argument("--config", default="hinet:smoke", help="NAME:VARIANT of configs/ whose batch and patch size "
                      "the loader produces.")
  parser.add_argument("--no-step", action="store_true", help="Do not time the config's train step here.")
  args = parser.parse_args()
  config = common.load_config(*args.config.split(":"))
  batch_size, patch = config.train.batch_size, config.data.patch_size
  results: dict = {"device": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(), "painting": PAINTING}
  with tempfile.TemporaryDirectory() as scratch:
    input_bytes = write_layout(f"{scratch}/manual", args.paintings)
    start = time.perf_counter()
    builder = prepare.build("dunhuang_challenge", f"{scratch}/manual", f"{scratch}/tfds")
    seconds = time.perf_counter() - start
    paintings = args.paintings + 4
    output_bytes = sum(info.num_bytes for info in builder.info.splits.values())
    results["build"] = {"paintings": paintings, "seconds": seconds, "paintings_per_s": paintings / seconds,
                        "input_mb_per_s": input_bytes / 2**20 / seconds, "input_mb": input_bytes / 2**20,
                        "output_mb": output_bytes / 2**20}
    directory = os.fspath(builder.data_dir)
    results["loader"] = {f"{mode}_masks_{workers}_workers": loader_rate(directory, mode, workers, args.batches,
                                                                          batch_size, patch)
                         for mode in ("dataset", "synthetic") for workers in (0, 1, 2)}
  if not args.no_step:
    step = common.bench_train_step(config, batch_size, patch, steps=10)[0]
    results["train_step"] = {"batch": batch_size, "patch": patch, "step_s": step["step_s"],
                             "examples_per_s": step["images_per_s"]}

  build = results["build"]
  print(f"ArrayRecord build on {results['device']} ({results['cpu_count']} CPUs): {build['paintings']} paintings "
        f"{PAINTING[1]}x{PAINTING[0]} in {build['seconds']:.1f} s = {build['paintings_per_s']:.1f} paintings/s "
        f"({build['input_mb_per_s']:.1f} MB/s of JPEG in, {build['output_mb']:.1f} MB out)")
  consumption = results["train_step"]["examples_per_s"] if "train_step" in results else float("nan")
  print(f"{'input pipeline, %s (batch %d, %d px)' % (args.config, batch_size, patch):<44}{'examples/s':>12}"
        f"{'per core':>10}{'x train step':>14}")
  for name, rate in results["loader"].items():
    cores = max(1, int(name.split("_")[2]))  # With 0 workers the main process does the work.
    print(f"{name:<44}{rate:>12.1f}{rate / cores:>10.1f}{rate / consumption:>14.2f}")
  if "train_step" in results:
    print(f"{args.config + ' train step consumes':<44}{consumption:>12.1f}{'':>10}{1:>14.2f}")
  out = common.ROOT / "benchmarks" / "results" / "input_pipeline.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(results, indent=2))
  print(f"Wrote {out}")


if __name__ == "__main__":
  main()
