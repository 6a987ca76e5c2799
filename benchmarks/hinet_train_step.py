"""HINet train-step throughput, compile time and memory on this machine (synthetic batches).

  python benchmarks/hinet_train_step.py [--steps 5] [--cases smoke,paper_b1,paper_b2]

Prints a table and writes benchmarks/results/hinet_train_step.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp

from muraljax import tasks
from muraljax.train.loop import make_train_step
from muraljax.train.state import create_train_state, learning_rate_schedule, make_optimizer

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASES = {  # name: (config variant, global batch, patch side)
    "smoke": ("smoke", 8, 64),
    "paper_b1": ("paper", 1, 256),
    "paper_b2": ("paper", 2, 256),
}


def load_config(variant: str):
  spec = importlib.util.spec_from_file_location("hinet_config", ROOT / "configs" / "hinet.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


def synthetic_batch(batch: int, side: int) -> dict[str, jax.Array]:
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  clean = jax.random.uniform(keys[0], (batch, side, side, 3))
  mask = (jax.random.uniform(keys[1], (batch, side, side, 1)) < 0.2).astype(jnp.float32)
  return {"clean": clean, "mask": mask, "damaged": clean * (1 - mask)}


def bench(variant: str, batch_size: int, side: int, steps: int) -> dict[str, float]:
  config = load_config(variant)
  task = tasks.get_task(config)
  batch = synthetic_batch(batch_size, side)
  tx = make_optimizer(config.optimizer, config.train.num_steps)
  state = create_train_state(task, tx, jax.random.PRNGKey(0), batch)
  step = jax.jit(make_train_step(task, learning_rate_schedule(config.optimizer, config.train.num_steps)),
                 donate_argnums=0)

  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  memory = compiled.memory_analysis()
  state, metrics = compiled(state, batch)  # Warm-up.
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - start) / steps
  params = sum(x.size for x in jax.tree.leaves(state.params))
  return {
      "params": params, "batch": batch_size, "side": side, "compile_s": compile_s, "step_s": seconds,
      "images_per_s": batch_size / seconds,
      "xla_temp_mb": memory.temp_size_in_bytes / 2**20,
      "xla_args_mb": memory.argument_size_in_bytes / 2**20,
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=5, help="Timed steps per case (after one warm-up step).")
  parser.add_argument("--cases", default=",".join(CASES), help=f"Comma-separated subset of {list(CASES)}.")
  parser.add_argument("--one", choices=list(CASES), help="Run one case in this process and print its JSON.")
  args = parser.parse_args()
  if args.one:
    print(json.dumps(bench(*CASES[args.one], steps=args.steps)))
    return

  results = {}
  header = f"{'case':<10}{'params':>12}{'batch':>6}{'side':>6}{'compile s':>11}{'step s':>9}{'img/s':>8}" \
           f"{'XLA temp MB':>13}{'args MB':>9}{'peak RSS MB':>13}"
  print(f"HINet train step on {jax.devices()[0].device_kind} x{jax.device_count()}")
  print(header)
  for name in args.cases.split(","):
    # A fresh process per case, so its peak RSS is its own.
    child = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps)],
                           capture_output=True, text=True, check=True)
    r = results[name] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"{name:<10}{r['params']:>12,}{r['batch']:>6}{r['side']:>6}{r['compile_s']:>11.1f}{r['step_s']:>9.3f}"
          f"{r['images_per_s']:>8.2f}{r['xla_temp_mb']:>13.0f}{r['xla_args_mb']:>9.0f}{r['peak_rss_mb']:>13.0f}")
  out = ROOT / "benchmarks" / "results" / "hinet_train_step.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps({"device": jax.devices()[0].device_kind, "results": results}, indent=2))
  print(f"Wrote {out}")


if __name__ == "__main__":
  main()
