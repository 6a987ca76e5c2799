"""Train-step speed on CPU: muraljax (JAX, jit) against the PyTorch reference nets (eager), same threads.

  PYTHONPATH=. python benchmarks/compare_pytorch.py [--threads N] [--steps 3] [--cases hinet_smoke,arin_smoke]
  PYTHONPATH=. python benchmarks/compare_pytorch.py --check     # both train steps compute the same loss

JAX runs the trainer's own step (as `common.bench_train_step`: task loss, value_and_grad, clipping, Adam,
metrics, the state donated). PyTorch runs the porting tests' reference nets (muraljax.port.torch_reference: HINet,
CAR's `DSN` and EDSR) with the same loss (HINet's PSNR loss on both stages; for ARIN also the CAR loss, the
resampling op with the CUDA kernel's semantics and the soft-rounding quantiser, in PyTorch there too), the same
clipping, Adam, learning-rate schedule and metrics (gradient and parameter norms). `--check` ports seeded PyTorch
weights with muraljax.port and compares the two losses and gradient norms (smoke sizes, no timing).

Each framework runs in its own process, pinned (sched_setaffinity) to the first N CPUs, which sizes XLA's
intra-op pool to N, and with `torch.set_num_threads(N)`; the header prints the thread counts found in the
processes. Both processes build their step and warm up (JAX: compile, then one step), then take turns, one step
each (the order alternating), so both see the same load from anything else on the machine; each step is timed
alone (JAX: `block_until_ready`, PyTorch: `loss.item()`). If memory is short for both at once, they run one
after the other ("seq" in the mode column). img/s uses the median step; "best" is the ratio of the fastest
steps; "cpu s" the median CPU time of a step (all threads; over the step time: how many cores the framework
kept busy); "load" the highest 1-minute load average seen while timing. Above N, other processes shared the
cores and the times are noisy (PyTorch's OpenMP threads suffer most: with 2 threads on 2 busy cores its steps
can take several times longer); CPU times and `--threads 1` are steadier there. GFLOP/step is XLA's cost
analysis of the compiled step (the same model for both). Writes benchmarks/results/compare_pytorch.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

THREADS_ENV = "MURALJAX_COMPARE_THREADS"
CASES = {  # name: (config file, config argument, global batch, patch side)
    "hinet_smoke": ("hinet", "smoke", 4, 256),
    "hinet_paper": ("hinet", "paper", 4, 256),
    "arin_smoke": ("arin", "smoke,joint", 4, 128),
    "arin_paper": ("arin", "paper,joint", 4, 128),
}
FRAMEWORKS = ("jax", "torch")
_REPLY = "@compare@ "  # Prefix of the workers' protocol lines on stdout.


def pin_threads(threads: int | None = None) -> int:
  """Pins this process (and its future children) to the first `threads` usable CPUs (default: the count in
  $MURALJAX_COMPARE_THREADS, else all); XLA sizes its intra-op pool to them. Returns the count."""
  cpus = sorted(os.sched_getaffinity(0))
  threads = threads or int(os.environ.get(THREADS_ENV, len(cpus)))
  if not 1 <= threads <= len(cpus):
    raise SystemExit(f"--threads {threads} is not between 1 and the {len(cpus)} CPUs this process may use.")
  os.sched_setaffinity(0, cpus[:threads])
  os.environ[THREADS_ENV] = str(threads)
  return threads


THREADS = pin_threads()  # Before JAX or PyTorch start their thread pools.

import common  # noqa: E402  (imports JAX: after pinning)


# ---------------------------------------------------------------------------------------------------- JAX side


def jax_step(config, batch_size: int, side: int) -> tuple[Callable[[], Any], dict[str, Any]]:
  """The trainer's step on a synthetic batch, compiled: (run one step and wait, facts about it)."""
  import jax  # pylint: disable=g-import-not-at-top
  from muraljax.train import throughput  # pylint: disable=g-import-not-at-top
  from muraljax.train.step import assemble  # pylint: disable=g-import-not-at-top

  batch = common.synthetic_batch(batch_size, side)
  trainer = assemble(config, batch, ema=False, seed=0)
  state = trainer.state
  start = time.perf_counter()
  compiled = trainer.step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start

  def step():
    nonlocal state
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)

  return step, {"params": sum(x.size for x in jax.tree.leaves(state.params)), "compile_s": compile_s,
                "gflop_per_step": throughput.flops_per_device(compiled) / 1e9}


def xla_pool_threads() -> int:
  """Threads of XLA's intra-op (Eigen) pool in this process."""
  names = []
  for task in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{task}/comm") as f:
      names.append(f.read().strip())
  return sum(name.startswith("tf_XLAEigen") for name in names)


# ------------------------------------------------------------------------------------------------ PyTorch side


def _torch():
  import torch  # pylint: disable=g-import-not-at-top
  return torch


def torch_batch(batch_size: int, side: int):
  """(damaged, clean) [B, 3, side, side] as `common.synthetic_batch` draws them: uniform noise, 20% blacked out."""
  torch = _torch()
  generator = torch.Generator().manual_seed(1)
  clean = torch.rand(batch_size, 3, side, side, generator=generator)
  mask = (torch.rand(batch_size, 1, side, side, generator=generator) < 0.2).float()
  return clean * (1 - mask), clean


def torch_step(config, batch_size: int, side: int) -> tuple[Callable[[], Any], dict[str, Any]]:
  torch = _torch()
  from muraljax.port.torch_reference import training  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(THREADS)
  model, loss_fn = training.model_and_loss(config)
  train_step = training.train_step(config, model, loss_fn)
  damaged, clean = torch_batch(batch_size, side)
  return (lambda: train_step(damaged, clean)), {"params": sum(p.numel() for p in model.parameters()),
                                                "torch_version": torch.__version__}


# ------------------------------------------------------------------------------------------------------ workers


def serve(name: str) -> None:
  """Worker for `case/framework`: builds and warms up its step, then times one step per 'step' line on stdin;
  'done' answers with its thread count and peak RSS. Replies are JSON lines prefixed with _REPLY on stdout."""
  import resource  # pylint: disable=g-import-not-at-top
  case, framework = name.split("/")
  config_name, option, batch_size, side = CASES[case]
  step, facts = (jax_step if framework == "jax" else torch_step)(common.load_config(config_name, option),
                                                                  batch_size, side)
  step()  # Warm-up (PyTorch: Adam state and oneDNN primitives).
  reply = lambda message: print(_REPLY + json.dumps(message), flush=True)
  reply(facts | {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
  for line in sys.stdin:
    if line.strip() != "step":
      break
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    reply({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "load": os.getloadavg()[0]})
  threads = xla_pool_threads() if framework == "jax" else _torch().get_num_threads()
  reply({"threads": threads, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


class Worker:
  """A `serve` process; `ask(command)` sends one line and returns its reply."""

  def __init__(self, name: str):
    self.name = name
    self.stderr = tempfile.TemporaryFile(mode="w+")
    self.process = subprocess.Popen([sys.executable, __file__, "--serve", name], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=self.stderr, text=True)
    self.ready = self._reply()

  def ask(self, command: str) -> dict[str, Any]:
    self.process.stdin.write(command + "\n")
    self.process.stdin.flush()
    return self._reply()

  def close(self) -> dict[str, Any]:
    summary = self.ask("done")
    self.process.wait()
    return summary

  def _reply(self) -> dict[str, Any]:
    for line in self.process.stdout:
      if line.startswith(_REPLY):
        return json.loads(line[len(_REPLY):])
    self.process.wait()
    self.stderr.seek(0)
    raise SystemExit(f"{self.name} failed (exit {self.process.returncode}):\n{self.stderr.read()[-3000:]}")


def _available_mb() -> float:
  with open("/proc/meminfo") as f:
    return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable")) / 1024


def run_case(case: str, steps: int) -> dict[str, Any]:
  """Both frameworks on `case`, taking turns step by step: {'mode', 'jax': result, 'torch': result}.

  When memory is short for both processes at once (the first one's peak RSS as the guess for the second),
  the second starts after the first has finished its steps (mode 'seq').
  """
  first, second = FRAMEWORKS
  workers = {first: Worker(f"{case}/{first}")}
  times: dict[str, list[dict[str, float]]] = {framework: [] for framework in FRAMEWORKS}
  summaries = {}
  turns = _available_mb() > 1.5 * workers[first].ready["rss_mb"] + 1024
  if not turns:
    times[first] = [workers[first].ask("step") for _ in range(steps)]
    summaries[first] = workers[first].close()
  workers[second] = Worker(f"{case}/{second}")
  for i in range(steps):
    for framework in (FRAMEWORKS if i % 2 == 0 else FRAMEWORKS[::-1]) if turns else (second,):
      times[framework].append(workers[framework].ask("step"))
  for framework in FRAMEWORKS:
    summaries[framework] = summaries.get(framework) or workers[framework].close()

  batch_size = CASES[case][2]
  result = {"mode": "turns" if turns else "seq", "batch": batch_size, "side": CASES[case][3]}
  for framework in FRAMEWORKS:
    walls = [t["wall_s"] for t in times[framework]]
    result[framework] = workers[framework].ready | summaries[framework] | {
        "step_s": statistics.median(walls), "step_s_min": min(walls), "step_times_s": walls,
        "images_per_s": batch_size / statistics.median(walls),
        "cpu_s": statistics.median(t["cpu_s"] for t in times[framework]),
        "cores_busy": sum(t["cpu_s"] for t in times[framework]) / sum(walls),
        "load": max(t["load"] for t in times[framework])}
  result["jax_over_torch"] = result["jax"]["images_per_s"] / result["torch"]["images_per_s"]
  result["jax_over_torch_best"] = result["torch"]["step_s_min"] / result["jax"]["step_s_min"]
  return result


# ------------------------------------------------------------------------------------------------------- driver

COLUMNS = (  # Keys 'framework.key' read result[framework][key].
    common.Column("jax.params", "params", ">12,"), common.Column("batch", "batch", ">6"),
    common.Column("side", "side", ">5"), common.Column("jax.gflop_per_step", "GFLOP/step", ">11.1f"),
    common.Column("jax.compile_s", "compile s", ">10.1f"), common.Column("jax.step_s", "JAX s", ">8.3f"),
    common.Column("torch.step_s", "torch s", ">9.3f"), common.Column("jax.images_per_s", "JAX img/s", ">10.3f"),
    common.Column("torch.images_per_s", "torch img/s", ">12.3f"),
    common.Column("jax_over_torch", "JAX/torch", ">10.2f"), common.Column("jax_over_torch_best", "best", ">6.2f"),
    common.Column("jax.cpu_s", "JAX cpu s", ">10.3f"), common.Column("torch.cpu_s", "torch cpu s", ">12.3f"),
    common.Column("load", "load", ">6.1f"), common.Column("mode", "mode", ">6"),
)


def _value(result: dict[str, Any], key: str) -> Any:
  if key == "load":
    return max(result[framework]["load"] for framework in FRAMEWORKS)
  framework, _, field = key.partition(".")
  return result[framework][field] if field else result[key]


def _width(column: common.Column) -> int:
  return int("".join(ch for ch in column.format.split(".")[0] if ch.isdigit()))


def cpu_name() -> str:
  with open("/proc/cpuinfo") as f:
    return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown CPU")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--threads", type=int, help="Threads (CPUs) for each framework; default: every usable CPU.")
  parser.add_argument("--steps", type=int, default=3, help="Timed steps per framework and case, after a warm-up.")
  parser.add_argument("--cases", default=",".join(CASES), help=f"Comma-separated subset of {list(CASES)}.")
  parser.add_argument("--check", action="store_true", help="Compare the two losses and gradients; no timing.")
  parser.add_argument("--serve", help="Internal: run one 'case/framework' worker in this process.")
  args = parser.parse_args()
  if args.serve:
    serve(args.serve)
    return
  if args.check:
    check()
    return
  threads = pin_threads(args.threads)  # The workers inherit the pinning and the count.
  unknown = [case for case in args.cases.split(",") if case not in CASES]
  if unknown:
    raise SystemExit(f"Unknown cases {unknown}; choose from {list(CASES)}.")

  width = max(len(name) for name in CASES) + 2
  per_framework = f"{threads} thread{'s' * (threads > 1)}"
  print(f"Train step, JAX {_version('jax')} (jit) vs PyTorch {_version('torch')} (eager), {per_framework} each, "
        f"{cpu_name()}")
  print(f"{'case':<{width}}" + "".join(f"{c.header:>{_width(c)}}" for c in COLUMNS), flush=True)
  results = {}
  for case in args.cases.split(","):
    r = results[case] = run_case(case, args.steps)
    print(f"{case:<{width}}" + "".join(format(_value(r, c.key), c.format) for c in COLUMNS), flush=True)
  found = {f"{case}/{framework}": r[framework]["threads"] for case, r in results.items() for framework in FRAMEWORKS}
  listed = f"all {threads}" if set(found.values()) == {threads} else ", ".join(f"{k} {n}" for k, n in found.items())
  print(f"Threads found in the workers (XLA intra-op pool, torch.get_num_threads()): {listed}.")
  busiest = max(_value(r, "load") for r in results.values())
  if busiest > threads + 0.5:
    print(f"Note: the 1-minute load average reached {busiest:.1f} with {per_framework} per framework: other "
          "processes shared the cores, so step times are noisy; the turns keep the ratio fairer than the times.")
  out = common.ROOT / "benchmarks" / "results" / "compare_pytorch.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps({"cpu": cpu_name(), "threads": threads, "steps": args.steps, "results": results},
                            indent=2))
  print(f"Wrote {out}")


def _version(module: str) -> str:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  return metadata.version(module)


def check() -> None:
  """The two train steps' loss and gradient norm from the same (seeded, ported) weights on a small batch."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from muraljax import port, tasks  # pylint: disable=g-import-not-at-top
  from muraljax.models import car, edsr, hinet  # pylint: disable=g-import-not-at-top
  from muraljax.port.torch_reference import randomize_, training  # pylint: disable=g-import-not-at-top

  torch = _torch()
  hinet_module = lambda c: hinet.HINet(wf=c.wf, depth=c.depth, relu_slope=c.relu_slope,
                                       hin_levels=tuple(c.hin_levels))
  for case, (config_name, option, _, _) in CASES.items():
    if "paper" in case:
      continue  # The same code as smoke, only wider.
    config = common.load_config(config_name, option)
    model, loss_fn = training.model_and_loss(config)
    weights = {k: v.numpy() for k, v in randomize_(model).state_dict().items()}
    if config.task == "hinet":
      params = port.convert(weights, hinet_module(config.model))
    else:
      part = lambda prefix: {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
      c = config.model.car
      upscaler = edsr.EDSR(scale=c.scale, n_resblocks=c.n_resblocks, n_feats=c.n_feats)
      params = {"car": {"resampler": port.convert(part("resampler."), car.KernelGenerationNet(scale=c.scale)),
                        "upscaler": port.convert(part("upscaler."), upscaler)},
                "hinet": port.convert(part("hinet."), hinet_module(config.model.hinet))}
    damaged, clean = torch_batch(2, 32)
    batch = {"damaged": damaged.permute(0, 2, 3, 1).numpy(), "clean": clean.permute(0, 2, 3, 1).numpy()}
    (jax_loss, _), grads = jax.value_and_grad(tasks.get_task(config).loss, has_aux=True)(
        params, batch, jax.random.PRNGKey(0))
    jax_norm = float(np.sqrt(sum(np.sum(np.square(g)) for g in jax.tree.leaves(grads))))
    torch_loss = loss_fn(damaged, clean)
    torch_loss.backward()
    torch_norm = torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]).norm().item()
    print(f"{case}: loss JAX {float(jax_loss):.6f} PyTorch {torch_loss.item():.6f}; gradient norm JAX "
          f"{jax_norm:.6f} PyTorch {torch_norm:.6f}")
    if not (math.isclose(float(jax_loss), torch_loss.item(), rel_tol=1e-4, abs_tol=1e-5)
            and math.isclose(jax_norm, torch_norm, rel_tol=1e-3)):
      raise SystemExit(f"{case}: the PyTorch train step does not compute the task's loss and gradient.")
  print("The PyTorch train steps compute the tasks' losses and gradients.")


if __name__ == "__main__":
  main()
