"""Per-device memory and FLOPs of a config's train step at 1/8/64-way sharding, compiled ahead of time.

  python benchmarks/compile_memory.py [--config configs/diffumural.py:paper] [--devices 1,8,64]
      [--modes fsdp,data] [--per-device-batch 1] [--set train.remat=blocks ...]

Nothing runs and nothing is allocated: each case compiles the trainer's exact step (muraljax.train.aot) from
abstract shapes in a fresh process with that many simulated CPU devices, so a pod-sized layout can be checked
on a laptop. The global batch is `per-device-batch` x devices. 'fsdp' puts every device on the fsdp axis
(parameters and optimizer state split), 'data' on the data axis (replicated). Prints a table and adds the cases
to benchmarks/results/compile_memory.json (so slow ones can be compiled one invocation at a time). Memory is
XLA:CPU's buffer assignment; a GPU/TPU compiler schedules differently, so treat the figures as the layout's
trend, not a device's exact peak.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLUMNS = (("mode", "mode", "<6"), ("devices", "devices", ">8"), ("batch", "batch", ">7"),
           ("params", "params", ">14,"), ("argument_mb", "args MB/dev", ">13,.0f"),
           ("temp_mb", "temp MB/dev", ">13,.0f"), ("total_mb", "total MB/dev", ">14,.0f"),
           ("tflops", "TFLOP/dev", ">11.3f"), ("compile_s", "compile s", ">11.1f"))


def run_case(args, devices: int, mode: str) -> dict:
  from muraljax import config as config_lib  # pylint: disable=g-import-not-at-top
  from muraljax.train import aot  # pylint: disable=g-import-not-at-top

  config = config_lib.load(ROOT / args.config, args.set)
  config.mesh.shape = {"data": 1, "fsdp": -1} if mode == "fsdp" else {"data": -1, "fsdp": 1}
  config.mesh.num_devices = 0
  config.train.batch_size = args.per_device_batch * devices
  _, report = aot.compile_train_step(config)
  return {"mode": mode, "devices": devices, "batch": report.batch_size, "params": report.params,
          "argument_mb": report.argument_mb, "temp_mb": report.temp_mb, "total_mb": report.total_mb,
          "tflops": report.flops_per_device / 1e12, "compile_s": report.compile_s}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/diffumural.py:paper")
  parser.add_argument("--devices", default="1,8,64", help="Comma-separated device counts.")
  parser.add_argument("--modes", default="fsdp,data", help="Comma-separated subset of fsdp,data.")
  parser.add_argument("--per-device-batch", type=int, default=1)
  parser.add_argument("--set", action="append", default=[], help="Config override key.path=value (repeatable).")
  parser.add_argument("--one", help="Internal: compile one 'devices,mode' case in this process, print JSON.")
  args = parser.parse_args()
  if args.one:
    devices, mode = args.one.split(",")
    print(json.dumps(run_case(args, int(devices), mode)))
    return

  print(f"{args.config} train step compiled ahead of time, {args.per_device_batch} image(s) per device"
        + (f", {' '.join(args.set)}" if args.set else ""))
  print("".join(format(header, spec.split(",")[0].split(".")[0]) for _, header, spec in COLUMNS))
  results = []
  for mode in args.modes.split(","):
    for devices in map(int, args.devices.split(",")):
      env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", TF_CPP_MIN_LOG_LEVEL="3")
      command = [sys.executable, __file__, "--one", f"{devices},{mode}", "--config", args.config,
                 "--per-device-batch", str(args.per_device_batch), *(f"--set={s}" for s in args.set)]
      child = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
      if child.returncode:
        raise SystemExit(f"Case {devices},{mode} failed:\n{child.stderr[-3000:]}")
      result = json.loads(child.stdout.strip().splitlines()[-1])
      results.append(result)
      print("".join(format(result[key], spec) for key, _, spec in COLUMNS), flush=True)
  out = ROOT / "benchmarks" / "results" / "compile_memory.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  setting = {"config": args.config, "overrides": args.set, "per_device_batch": args.per_device_batch}
  out.write_text(json.dumps(merged_runs(out, setting, results), indent=2))
  print(f"Wrote {out}")


def merged_runs(path: pathlib.Path, setting: dict, results: list[dict]) -> list[dict]:
  """The runs recorded in `path` with `results` added: one record per setting (config, overrides, batch per
  device) holding one row per (mode, devices), the newest."""
  runs = json.loads(path.read_text()) if path.exists() else []
  runs = runs if isinstance(runs, list) else []  # An older single-run file is replaced.
  run = next((r for r in runs if all(r.get(k) == v for k, v in setting.items())), None)
  if run is None:
    run = {**setting, "results": []}
    runs.append(run)
  new_cases = {(r["mode"], r["devices"]) for r in results}
  run["results"] = sorted([r for r in run["results"] if (r["mode"], r["devices"]) not in new_cases] + results,
                          key=lambda r: (r["mode"], r["devices"]))
  return runs


if __name__ == "__main__":
  main()
