"""Weak scaling of the HINet train step over 1/2/4/8 devices, data-parallel and fsdp.

  python benchmarks/scaling.py [--devices 1,2,4,8] [--per-device-batch 2] [--steps 5] [--variant smoke]

The global batch grows with the device count (per-device batch fixed). Each case runs in a fresh process
(on CPU with that many host devices). Prints per-device memory (XLA's analysis of the compiled step:
arguments + temporaries), step time, images/s and weak-scaling efficiency (step time on 1 device / step time
on n devices); writes benchmarks/results/scaling.json. On a CPU host the "devices" share the same cores, so
efficiency there measures overheads, not real parallel speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_case(variant: str, devices: int, mode: str, per_device_batch: int, steps: int,
             patch: int) -> dict[str, float]:
  import common  # pylint: disable=g-import-not-at-top
  from muraljax.train import sharding  # pylint: disable=g-import-not-at-top

  config = common.load_config("hinet", variant)
  config.mesh.shape = {"data": -1, "fsdp": 1} if mode == "data" else {"data": 1, "fsdp": -1}
  config.mesh.fsdp_min_size = 1024
  side = patch or config.data.patch_size
  result, _ = common.bench_train_step(config, per_device_batch * devices, side, steps,
                                      mesh=sharding.make_mesh(config.mesh))
  return {"devices": devices, "mode": mode, "global_batch": result["batch"], "step_s": result["step_s"],
          "images_per_s": result["images_per_s"], "per_device_mb": result["xla_args_mb"] + result["xla_temp_mb"]}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--devices", default="1,2,4,8", help="Comma-separated device counts.")
  parser.add_argument("--modes", default="data,fsdp", help="Comma-separated subset of data,fsdp.")
  parser.add_argument("--per-device-batch", type=int, default=2)
  parser.add_argument("--steps", type=int, default=5, help="Timed steps per case, after one warm-up step.")
  parser.add_argument("--variant", default="smoke", help="configs/hinet.py variant.")
  parser.add_argument("--patch", type=int, default=0, help="Patch side (0 = the variant's).")
  parser.add_argument("--one", help="Internal: run one 'devices,mode' case in this process and print JSON.")
  args = parser.parse_args()
  if args.one:
    devices, mode = args.one.split(",")
    print(json.dumps(run_case(args.variant, int(devices), mode, args.per_device_batch, args.steps, args.patch)))
    return

  results = []
  print(f"HINet ({args.variant}, patch {args.patch or 'default'}) weak scaling, {args.per_device_batch} images "
        "per device")
  print(f"{'mode':<6}{'devices':>8}{'batch':>7}{'step s':>9}{'img/s':>9}{'MB/device':>11}{'efficiency':>12}")
  for mode in args.modes.split(","):
    base = None
    for devices in map(int, args.devices.split(",")):
      env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
      child = subprocess.run([sys.executable, __file__, "--one", f"{devices},{mode}", "--variant", args.variant,
                              "--per-device-batch", str(args.per_device_batch), "--steps", str(args.steps),
                              "--patch", str(args.patch)],
                             env=env, capture_output=True, text=True, check=True)
      r = json.loads(child.stdout.strip().splitlines()[-1])
      base = base or r["step_s"]
      r["efficiency"] = base / r["step_s"]
      results.append(r)
      print(f"{mode:<6}{devices:>8}{r['global_batch']:>7}{r['step_s']:>9.3f}{r['images_per_s']:>9.1f}"
            f"{r['per_device_mb']:>11.1f}{r['efficiency']:>12.2f}")
  out = ROOT / "benchmarks" / "results" / "scaling.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(results, indent=2))
  print(f"Wrote {out}")


if __name__ == "__main__":
  main()
