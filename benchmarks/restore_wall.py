"""Time to restore a whole-wall photograph with the conservator's tool (python -m muraljax.restore).

  python benchmarks/restore_wall.py --checkpoint runs/hinet-smoke [--size 2000x1500] [--cases hinet_smoke_mask,...]

Paints a procedural mural of --size (width x height), damages it as the checkpoint's training data was damaged
(8% of the pixels in cracks, flakes and holes at 2000x1500) and times each case in its own process:

  hinet_smoke_mask    the whole command with the smoke-trained checkpoint and the drawn mask: read, restore the
                      tiles that hold damage, write the PNGs and provenance.json
  hinet_smoke_detect  the whole command with --detect-damage: every tile once through the model, then the proposal
  <model>_enhance     every tile through the model (--enhance, the blind models' worst case): hinet_smoke with the
                      checkpoint; hinet_paper, arin_smoke and arin_paper with fresh params (as costly as trained ones)
  hinet_smoke_single  the checkpoint on the whole photograph in one pass, against its tiled restoration: how closely
                      the tiles reproduce a single pass for a model with instance norm, and the time of each
  shipped_mask        the whole command with no --checkpoint (the default shipped model) and the drawn mask,
                      damaged as that model's training data was
  shipped_every_tile  as shipped_mask with a 2 px grid of scratches every 128 px added, so every tile holds damage
                      (the worst case of a drawn mask)

Columns: tiles restored/all, model compile seconds, model seconds (compile excluded), seconds per tile, total
seconds of the case (for the commands: from start to the written folder; for enhance: building the model too) and
peak RSS. Prints a table and writes benchmarks/results/restore_wall.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import re
import resource
import sys
import tempfile
import time
from typing import Any

import jax
import numpy as np

import common

from muraljax.data import degrade
from muraljax.data.murals import generate_mural
from muraljax.metrics.image_files import save_png, to_uint8
from muraljax.restore import __main__ as command
from muraljax.restore import shipped
from muraljax.restore.model import TrainedModel, load_model, read_run, untrained_model
from muraljax.restore.restoration import Restorer, Settings

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASES = ("hinet_smoke_mask", "hinet_smoke_detect", "hinet_smoke_enhance", "hinet_paper_enhance", "arin_smoke_enhance",
         "arin_paper_enhance", "hinet_smoke_single", "shipped_mask", "shipped_every_tile")
COLUMNS = (("params", "params", ">12,"), ("tiles", "tiles", ">7"), ("compile_s", "compile s", ">11.1f"),
           ("model_s", "model s", ">9.1f"), ("s_per_tile", "s/tile", ">8.2f"), ("total_s", "total s", ">9.1f"),
           ("peak_rss_mb", "peak RSS MB", ">13.0f"))
SEED = 2024


def wall(checkpoint: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The clean mural, the damaged photograph (uint8 [H, W, 3]) and the damage bool [H, W], damaged with the run's
  synthetic mask kinds."""
  clean = generate_mural(SEED, height, width)
  damage = read_run(checkpoint)[1].data.degradation
  if "real" in damage.weights:
    damage.weights.real = 0.0  # the training machine's folder of real masks is not shipped
  example = degrade.degrade(clean, np.random.default_rng(SEED), damage)
  return clean, to_uint8(example["damaged"]), example["mask"][..., 0] >= 0.5


def psnr(a: np.ndarray, b: np.ndarray) -> float:
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def run_command(args: argparse.Namespace, option: list[str], shipped_model: bool = False,
                every_tile: bool = False) -> dict[str, Any]:
  """The whole command line on the damaged wall; `option` is ["--mask", <file>] or ["--detect-damage"]. With
  `shipped_model` the command gets no --checkpoint; `every_tile` adds a grid of scratches that reaches every tile."""
  checkpoint = shipped.resolve(None)[0] if shipped_model else args.checkpoint
  _, photo, damaged = wall(checkpoint, args.width, args.height)
  if every_tile:
    damaged = damaged.copy()
    damaged[::128] = damaged[1::128] = damaged[:, ::128] = damaged[:, 1::128] = True
    photo = np.where(damaged[..., None], 0, photo).astype(np.uint8)
  with tempfile.TemporaryDirectory() as folder:
    save_png(f"{folder}/wall.png", photo)
    save_png(f"{folder}/mask.png", np.where(damaged, 255, 0).astype(np.uint8))
    option = [f"{folder}/mask.png" if a == "MASK" else a for a in option]
    log = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stderr(log):
      model = [] if shipped_model else ["--checkpoint", args.checkpoint]
      out = command.run([*model, "--image", f"{folder}/wall.png", *option, "--out",
                         f"{folder}/out", "--tile", str(args.tile), "--overlap", str(args.overlap), "--batch",
                         str(args.batch)])
    total = time.perf_counter() - started
    record = json.loads(pathlib.Path(out, "provenance.json").read_text())
  compile_s = float(re.search(r"Compiled .* in ([\d.]+) s", log.getvalue()).group(1))
  restoration = record["restoration"]
  return {"params": record["model"]["num_params"], "tiles_restored": restoration["tiles_restored"],
          "tiles_all": restoration["tiles"], "compile_s": compile_s,
          "model_s": restoration["compute_seconds"] - compile_s, "total_s": total,
          "damaged_fraction": record["mask"]["statistics"]["damaged_fraction"]}


def restore_every_tile(model: TrainedModel, photo: np.ndarray, tile: int, args: argparse.Namespace
                       ) -> tuple[np.ndarray, Restorer]:
  settings = Settings(tile=tile, overlap=args.overlap, batch=args.batch, enhance=True)
  restorer = Restorer(model, settings, *photo.shape[:2], lambda message: None)
  restorer.predictor  # pylint: disable=pointless-statement  # compiles now, outside the model time
  return restorer.restore(photo, np.ones(photo.shape[:2], bool)).restored, restorer


def run_enhance(args: argparse.Namespace, name: str) -> dict[str, Any]:
  started = time.perf_counter()
  family, variant = name.split("_")[:2]
  if name == "hinet_smoke_enhance":
    model = load_model(args.checkpoint, "hinet")
  else:
    model = untrained_model(common.load_config(family, variant))
  _, photo, _ = wall(args.checkpoint, args.width, args.height)
  _, restorer = restore_every_tile(model, photo, args.tile, args)
  return {"params": model.num_params, "tiles_restored": len(restorer.tiling.boxes),
          "tiles_all": len(restorer.tiling.boxes), "compile_s": restorer.predictor.compile_seconds,
          "model_s": restorer.compute_seconds, "total_s": time.perf_counter() - started}


def run_single(args: argparse.Namespace) -> dict[str, Any]:
  """One pass over the whole photograph against the tiled restoration, with the smoke-trained checkpoint."""
  started = time.perf_counter()
  model = load_model(args.checkpoint, "hinet")
  clean, photo, damaged = wall(args.checkpoint, args.width, args.height)
  single, one_pass = restore_every_tile(model, photo, max(args.width, args.height), args)
  tiled, tiles = restore_every_tile(model, photo, args.tile, args)
  difference = np.abs(single.astype(int) - tiled.astype(int))
  return {"params": model.num_params, "tiles_restored": 1, "tiles_all": 1,
          "compile_s": one_pass.predictor.compile_seconds, "model_s": one_pass.compute_seconds,
          "total_s": time.perf_counter() - started, "tiled_model_s": tiles.compute_seconds,
          "tiled_vs_single_psnr_db": psnr(tiled, single),
          "tiled_vs_single_mean_abs": float(difference.mean()), "tiled_vs_single_max_abs": int(difference.max()),
          "damage_psnr_db": {"photograph": psnr(photo[damaged], clean[damaged]),
                             "single": psnr(np.where(damaged[..., None], single, photo)[damaged], clean[damaged]),
                             "tiled": psnr(np.where(damaged[..., None], tiled, photo)[damaged], clean[damaged])}}


def run_case(args: argparse.Namespace, name: str) -> dict[str, Any]:
  if name == "hinet_smoke_mask":
    result = run_command(args, ["--mask", "MASK"])
  elif name == "hinet_smoke_detect":
    result = run_command(args, ["--detect-damage"])
  elif name == "hinet_smoke_single":
    result = run_single(args)
  elif name.startswith("shipped"):
    result = run_command(args, ["--mask", "MASK"], shipped_model=True, every_tile=name == "shipped_every_tile")
  else:
    result = run_enhance(args, name)
  result["tiles"] = f"{result['tiles_restored']}/{result['tiles_all']}"
  result["s_per_tile"] = result["model_s"] / result["tiles_restored"]
  result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", default=str(ROOT / "runs" / "hinet-smoke"),
                      help="a smoke HINet training workdir (python -m muraljax.main --config configs/hinet.py:smoke "
                      "--workdir runs/hinet-smoke)")
  parser.add_argument("--size", default="2000x1500", help="width x height of the photograph")
  parser.add_argument("--tile", type=int, default=256)
  parser.add_argument("--overlap", type=int, default=32)
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {list(CASES)}")
  parser.add_argument("--one", choices=CASES, help="run one case in this process and print its JSON")
  args = parser.parse_args()
  args.width, args.height = (int(side) for side in args.size.lower().split("x"))
  if any(not name.startswith("shipped") for name in args.cases.split(",")):
    read_run(args.checkpoint)  # a clear error now rather than in every case
  if args.one:
    print(json.dumps(run_case(args, args.one)))
    return

  print(f"Restoring a {args.width}x{args.height} photograph ({args.width * args.height / 1e6:.1f} MP), tiles of "
        f"{args.tile} px overlapping by >= {args.overlap}, {args.batch} per call, on {jax.devices()[0].device_kind} "
        f"({os.cpu_count()} CPU cores)")
  print(f"{'case':<22}" + "".join(f"{header:>{int(fmt[1:].split('.')[0].rstrip(','))}}"
                                   for _, header, fmt in COLUMNS))
  results = {}
  for name in args.cases.split(","):
    r = results[name] = common.run_in_child(name, sys.argv[1:])
    print(f"{name:<22}" + "".join(format(r[key], fmt) for key, _, fmt in COLUMNS), flush=True)
  if "hinet_smoke_single" in results:
    r = results["hinet_smoke_single"]
    print(f"hinet_smoke_single: tiled vs one pass {r['tiled_vs_single_psnr_db']:.1f} dB PSNR (mean |difference| "
          f"{r['tiled_vs_single_mean_abs']:.2f}, max {r['tiled_vs_single_max_abs']} of 255); in the damage against "
          f"the clean mural: photograph {r['damage_psnr_db']['photograph']:.2f} dB, one pass "
          f"{r['damage_psnr_db']['single']:.2f} dB, tiled {r['damage_psnr_db']['tiled']:.2f} dB")
  out = common.results_file("restore_wall")
  settings = {"device": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(), "width": args.width,
              "height": args.height, "tile": args.tile, "overlap": args.overlap, "batch": args.batch,
              "checkpoint": args.checkpoint}
  earlier = json.loads(out.read_text()) if out.exists() else {}
  if {key: earlier.get(key) for key in settings} == settings:  # the same setting: keep the cases not rerun
    results = earlier["results"] | results
  out.write_text(json.dumps(settings | {"results": results}, indent=2))
  print(f"Wrote {out}")


if __name__ == "__main__":
  main()
