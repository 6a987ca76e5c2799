"""DiffuMural train-step throughput and DDIM inpainting time on this machine (synthetic data, crops of each
config's data.patch_size: the finest scale).

  python benchmarks/diffusion.py [--steps 3] [--sampling-steps 50] [--cases smoke_b8,single_b1]

Per case: parameter count (all scales), train-step compile time, seconds per step, images/s, FLOPs per step
(XLA's cost analysis of the compiled step), then inpainting of one image (collaborative over the config's
scales): compile time and seconds per image. Sampling time is linear in the number of steps (each is one pass of
every scale's U-Net + ControlNet in one compiled scan), so `--sampling-steps` below 50 times fewer steps and
scales the result to DDIM-50. `paper_b1` (three scales at 1024 px) is listed for accelerators; on CPUs one step
takes tens of minutes. Prints a table and writes benchmarks/results/diffusion.json.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax

import common

from muraljax.train import throughput
from muraljax.train.step import assemble

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASES = {  # name: (config variant, global batch)
    "smoke_b8": ("smoke", 8),
    "single_b1": ("single", 1),
    "paper_b1": ("paper", 1),
}
DEFAULT_CASES = ("smoke_b8", "single_b1")


def timed(fn, *args, repeats: int) -> float:
  """Seconds per call after one warm-up call."""
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats


def bench(variant: str, batch_size: int, steps: int, sampling_steps: int) -> dict[str, float]:
  config = common.load_config("diffumural", variant)
  config.sampling.steps = sampling_steps
  side = config.data.patch_size
  batch = common.synthetic_batch(batch_size, side, contour=True)
  trainer = assemble(config, batch, ema=False, seed=0)
  task, state = trainer.task, trainer.state

  start = time.perf_counter()
  compiled_step = trainer.step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start

  def train_step() -> dict[str, jax.Array]:
    nonlocal state
    state, metrics = compiled_step(state, batch)  # the state is donated, as in the trainer
    return metrics

  step_s = timed(train_step, repeats=steps)

  one_image = jax.tree.map(lambda x: x[:1], batch)
  start = time.perf_counter()
  compiled_predict = jax.jit(task.predict).lower(state.params, one_image).compile()
  sample_compile_s = time.perf_counter() - start
  sample_s = timed(compiled_predict, state.params, one_image, repeats=1)
  return {
      "params": sum(x.size for x in jax.tree.leaves(state.params)),
      "scales": [scale.side for scale in task.scales],
      "batch": batch_size, "side": side, "compile_s": compile_s, "step_s": step_s,
      "images_per_s": batch_size / step_s, "flops_per_step": throughput.flops_per_device(compiled_step),
      "sampling_steps_timed": sampling_steps, "sample_compile_s": sample_compile_s,
      "ddim50_s_per_image": sample_s * 50 / sampling_steps,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=3, help="Timed train steps per case (after one warm-up step).")
  parser.add_argument("--sampling-steps", type=int, default=50,
                      help="DDIM steps of the timed inpainting (the table scales the time to 50 steps).")
  parser.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"Comma-separated subset of {list(CASES)}.")
  parser.add_argument("--one", choices=list(CASES), help="Run one case in this process and print its JSON.")
  args = parser.parse_args()
  if args.one:
    print(json.dumps(bench(*CASES[args.one], steps=args.steps, sampling_steps=args.sampling_steps)))
    return

  results = {}
  print(f"DiffuMural on {jax.devices()[0].device_kind} x{jax.device_count()} (U-Net + ControlNet per scale)")
  print(f"{'case':<10}{'scales':>16}{'params':>13}{'batch':>6}{'compile s':>11}{'step s':>9}{'img/s':>8}"
        f"{'GFLOP/step':>12}{'GFLOP/s':>9}{'DDIM compile s':>16}{'DDIM-50 s/img':>15}")
  for name in args.cases.split(","):
    r = results[name] = common.run_in_child(name, ["--steps", str(args.steps), "--sampling-steps",
                                                   str(args.sampling_steps)])
    print(f"{name:<10}{'/'.join(map(str, r['scales'])):>16}{r['params']:>13,}{r['batch']:>6}"
          f"{r['compile_s']:>11.1f}{r['step_s']:>9.2f}{r['images_per_s']:>8.2f}{r['flops_per_step'] / 1e9:>12.1f}"
          f"{r['flops_per_step'] / r['step_s'] / 1e9:>9.1f}"
          f"{r['sample_compile_s']:>16.1f}{r['ddim50_s_per_image']:>15.1f}")
  out = common.results_file("diffusion")
  out.write_text(json.dumps({"device": jax.devices()[0].device_kind, "results": results}, indent=2))
  print(f"Wrote {out}")


if __name__ == "__main__":
  main()
