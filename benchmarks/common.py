"""Shared parts of the train-step benchmarks: configs, synthetic batches, one compiled and timed train step, and a
driver that runs every case in its own process (so its peak RSS is its own), prints a table and writes
benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from muraljax import config as config_lib
from muraljax.train import sharding
from muraljax.train.step import assemble

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Column(NamedTuple):
  key: str  # in the case's result dict
  header: str
  format: str  # format spec including the width, e.g. ">9.3f"


STEP_COLUMNS = (
    Column("params", "params", ">12,"), Column("batch", "batch", ">6"), Column("side", "side", ">6"),
    Column("compile_s", "compile s", ">11.1f"), Column("step_s", "step s", ">9.3f"),
    Column("images_per_s", "img/s", ">8.2f"), Column("xla_temp_mb", "XLA temp MB", ">13.0f"),
    Column("xla_args_mb", "args MB", ">9.0f"), Column("peak_rss_mb", "peak RSS MB", ">13.0f"),
)


def load_config(name: str, variant: str | None = None):
  """configs/<name>.py:<variant>, loaded as `--config` does."""
  return config_lib.load(ROOT / "configs" / f"{name}.py:{variant or ''}")


def synthetic_batch(batch: int, side: int, contour: bool = False) -> dict[str, jax.Array]:
  """Uniform-noise clean images with 20% of the pixels blacked out: [batch, side, side, C]; with `contour`, also a
  random 5% of the pixels as the line-art condition DiffuMural's ControlNet takes.
  """
  keys = jax.random.split(jax.random.PRNGKey(1), 3)
  clean = jax.random.uniform(keys[0], (batch, side, side, 3))
  mask = (jax.random.uniform(keys[1], (batch, side, side, 1)) < 0.2).astype(jnp.float32)
  images = {"clean": clean, "mask": mask, "damaged": clean * (1 - mask)}
  if contour:
    images["contour"] = (jax.random.uniform(keys[2], (batch, side, side, 1)) < 0.05).astype(jnp.float32)
  return images


def train_step_setup(config, batch_size: int, side: int, mesh: jax.sharding.Mesh | None = None,
                     ema: bool = False) -> tuple[Any, Any, dict[str, jax.Array]]:
  """The trainer's jitted step for `config` (state donated), a fresh train state and a synthetic batch of
  `batch_size` images [batch_size, side, side, 3] (with contours when config.data.contours).

  With a `mesh`, the batch and the state are laid out on it as the trainer does (`config.mesh` rules). With `ema`,
  the state keeps EMA params as the trainer does when config.train.ema_decay > 0.
  """
  batch = synthetic_batch(batch_size, side, contour=bool(config.data.get("contours", False)))
  if mesh is None:
    trainer = assemble(config, batch, ema=ema, seed=0)
  else:
    batch = jax.device_put(batch, sharding.batch_sharding(mesh))
    trainer = assemble(config, {k: v[:1] for k, v in batch.items()}, mesh=mesh, ema=ema, seed=0)
  return trainer.step, trainer.state, batch


def bench_train_step(config, batch_size: int, side: int, steps: int, mesh: jax.sharding.Mesh | None = None,
                     ema: bool = False) -> tuple[dict[str, float], Any]:
  """Compiles the trainer's step for `config` on a synthetic batch and times `steps` steps after one warm-up.

  With a `mesh`, the batch and the state are laid out on it as the trainer does (`config.mesh` rules); `ema` as
  in `train_step_setup`. Returns the STEP_COLUMNS measurements and the compiled step (for further analysis).
  """
  step, state, batch = train_step_setup(config, batch_size, side, mesh, ema)

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
  return {
      "params": sum(x.size for x in jax.tree.leaves(state.params)), "batch": batch_size, "side": side,
      "compile_s": compile_s, "step_s": seconds, "images_per_s": batch_size / seconds,
      "xla_temp_mb": memory.temp_size_in_bytes / 2**20, "xla_args_mb": memory.argument_size_in_bytes / 2**20,
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
  }, compiled


def main(*, description: str, title: str, cases: Sequence[str], run_case: Callable[[str, int], dict[str, Any]],
         result_name: str, default_steps: int = 5, columns: Sequence[Column] = STEP_COLUMNS,
         after_table: Callable[[dict[str, dict[str, Any]]], None] | None = None) -> None:
  """Command line: `--cases a,b` (default all) each run as `--one NAME` in a fresh process by `run_case(name,
  steps)` -> {column key: value, ...}; prints `title`, a table of `columns`, then `after_table(results)`, and writes
  benchmarks/results/<result_name>.json.
  """
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--steps", type=int, default=default_steps, help="Timed steps per case (after a warm-up).")
  parser.add_argument("--cases", default=",".join(cases), help=f"Comma-separated subset of {list(cases)}.")
  parser.add_argument("--one", choices=list(cases), help="Run one case in this process and print its JSON.")
  args = parser.parse_args()
  if args.one:
    print(json.dumps(run_case(args.one, args.steps)))
    return

  width = max(len(name) for name in cases) + 2
  print(f"{title} on {jax.devices()[0].device_kind} x{jax.device_count()}")
  print(f"{'case':<{width}}" + "".join(f"{c.header:>{column_width(c)}}" for c in columns))
  results = {}
  for name in args.cases.split(","):
    r = results[name] = run_in_child(name, ["--steps", str(args.steps)])
    print(f"{name:<{width}}" + "".join(format(r[c.key], c.format) for c in columns), flush=True)
  if after_table:
    after_table(results)
  out = results_file(result_name)
  out.write_text(json.dumps({"device": jax.devices()[0].device_kind, "results": results}, indent=2))
  print(f"Wrote {out}")


def run_in_child(name: str, args: Sequence[str] = ()) -> dict[str, Any]:
  """The JSON that this script prints last when run as `--one NAME ARGS` in a fresh process (so one case's compiled
  programs and memory do not slow the next); stops with the child's error output when the case fails."""
  child = subprocess.run([sys.executable, sys.argv[0], "--one", name, *args], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  if child.returncode:
    raise SystemExit(f"Case {name} failed:\n{child.stderr[-3000:]}")
  return json.loads(child.stdout.strip().splitlines()[-1])


def results_file(result_name: str) -> pathlib.Path:
  """benchmarks/results/<result_name>.json (its folder created)."""
  out = ROOT / "benchmarks" / "results" / f"{result_name}.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  return out


def column_width(column: Column) -> int:
  """The width in a Column's format spec, e.g. 9 for ">9.3f"."""
  return int("".join(ch for ch in column.format.split(".")[0] if ch.isdigit()))
