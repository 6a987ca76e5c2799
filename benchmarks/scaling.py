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
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_config(variant: str):
  spec = importlib.util.spec_from_file_location("hinet_config", ROOT / "configs" / "hinet.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


def run_case(variant: str, devices: int, mode: str, per_device_batch: int, steps: int,
             patch: int) -> dict[str, float]:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from muraljax import tasks  # pylint: disable=g-import-not-at-top
  from muraljax.train import sharding  # pylint: disable=g-import-not-at-top
  from muraljax.train.loop import make_train_step  # pylint: disable=g-import-not-at-top
  from muraljax.train.state import create_train_state, learning_rate_schedule, make_optimizer  # pylint: disable=g-import-not-at-top

  config = load_config(variant)
  config.mesh.shape = {"data": -1, "fsdp": 1} if mode == "data" else {"data": 1, "fsdp": -1}
  config.mesh.fsdp_min_size = 1024
  config.data.patch_size = patch or config.data.patch_size
  mesh = sharding.make_mesh(config.mesh)
  task = tasks.get_task(config)
  side = config.data.patch_size
  batch_size = per_device_batch * devices
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  clean = jax.random.uniform(keys[0], (batch_size, side, side, 3))
  mask = (jax.random.uniform(keys[1], (batch_size, side, side, 1)) < 0.2).astype(jnp.float32)
  batch = jax.device_put({"clean": clean, "mask": mask, "damaged": clean * (1 - mask)},
                         sharding.batch_sharding(mesh))
  tx = make_optimizer(config.optimizer, config.train.num_steps)
  state = create_train_state(task, tx, jax.random.PRNGKey(0), {k: v[:1] for k, v in batch.items()},
                             lambda abstract: sharding.state_shardings(abstract, mesh, config.mesh.fsdp_min_size))
  state_shardings = jax.tree.map(lambda x: x.sharding, state)
  step = jax.jit(make_train_step(task, learning_rate_schedule(config.optimizer, config.train.num_steps)),
                 in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
                 out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=0)
  compiled = step.lower(state, batch).compile()
  memory = compiled.memory_analysis()
  state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - start) / steps
  return {"devices": devices, "mode": mode, "global_batch": batch_size, "step_s": seconds,
          "images_per_s": batch_size / seconds,
          "per_device_mb": (memory.argument_size_in_bytes + memory.temp_size_in_bytes) / 2**20}


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
