"""Measures every model family on whatever accelerator is present, in one command that keeps to a time limit.

  python benchmarks/accelerator_check.py [--cases hinet,car,...] [--budget-s S] [--total-s S] [--out PATH]
  python benchmarks/accelerator_check.py --tiny     # the same code paths at toy sizes: ~1.5 minutes on 2 CPU cores

Cases, each in a process of its own with a time budget (a case that raises, runs out of memory or runs out of
time is reported in its row with the reason, and the others still run):

  hinet, car, arin, diffumural_single, diffumural_paper
      the trainer's train step (`common.bench_train_step`, EMA included) of configs/hinet.py:paper at 256 px,
      configs/car.py:x4 and configs/arin.py:joint at 128 px, configs/diffumural.py:single at 256 px and the paper's
      three scales on 1024 px crops (remat, always bf16): compile s, step s, img/s, TFLOP/s per device (XLA's cost
      analysis of the compiled step; with remat it counts the recomputation too), MFU against the device's dense
      bf16 peak (muraljax.train.throughput; blank when unknown) and peak device memory, at the largest candidate
      batch that fits. The first candidate is tried first; after a success the largest larger one that the
      measured memory predicts to fit, after an out-of-memory error the largest smaller one, while the budget lasts.
  ddim, collaborative
      inpainting one image with task.predict: DDIM-50 with configs/diffumural.py:single at 256 px, and the three
      scales sampling together (muraljax/diffusion/collaborative.py) at 1024 px: compile s and s/img.
  car_op
      CAR's resampling op (benchmarks/resample_op.py, x4) forward+backward against a dense 3x3 conv with the same
      output size: their times and the ratio.
  numerics
      HINet train steps from the same init on the same batch in bfloat16 and float32: max relative loss difference.
  pytorch
      the PyTorch reference HINet train step (muraljax.port.torch_reference, as benchmarks/compare_pytorch.py
      runs it) on the same GPU, at the batch the hinet case found (bf16 autocast when JAX ran bf16): img/s and
      JAX / PyTorch. Skipped without PyTorch CUDA.

Every case runs on the first device. Compute dtype: `--dtype auto` is bfloat16 on accelerators and float32 on
CPUs. Each case has a budget (its own, or `--budget-s`), cut so that the run ends within `--total-s` (default
470 s); cases left when it is spent are skipped. The children get XLA_PYTHON_CLIENT_MEM_FRACTION=0.92 unless it is
set (JAX takes 75% of a GPU by default). Prints a table and writes benchmarks/results/accelerator_check.json
(`--tiny`: accelerator_check_tiny.json); exits 1 when a case failed or timed out.

`--tiny` runs the smoke configs shrunk further (one- or two-level networks, 16-32 px, batches 1-2, 2 DDIM steps;
diffumural_paper trains one scale, collaborative samples two), two cases at a time, compiled with little XLA
optimisation: a check of this script before a lent accelerator's minutes are spent, not a measurement.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import gc
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
_LINE = "@accelerator_check@ "  # Prefix of the child processes' protocol lines on stdout.


@dataclasses.dataclass(frozen=True)
class Case:
  """What one case measures, at one size."""

  kind: str  # 'train', 'sample', 'resample_op', 'numerics' or 'pytorch'
  config: str = ""  # configs/<name>.py:<variant> as 'name:variant'
  overrides: tuple[str, ...] = ()  # Config assignments 'a.b=value', as --config.a.b=value.
  side: int = 0  # Image side; 0 = the config's data.patch_size.
  batches: tuple[int, ...] = (1,)  # Candidate batches; the first is tried first.
  budget_s: float = 60.0  # Default time budget of the case's process.
  dtype: str = ""  # Compute dtype of the case regardless of --dtype ('' = --dtype).


# --tiny: the smoke configs made smaller still (fewer levels: compile time grows with the number of layers).
_TINY_HINET = ("model.depth=2",)
# One level, with attention and FDP blocks: even that takes ~20 s to initialise and compile on 2 CPU cores.
_TINY_UNET = ("model.block_out_channels=(8,)", "model.down_block_types=('AttnDownBlock2D',)",
              "model.up_block_types=('AttnUpBlock2D',)", "model.fdp_levels=(0,)", "model.norm_num_groups=4",
              "model.attention_head_dim=8", "model.controlnet_conditioning_channels=(4, 8)")
_TINY_SINGLE = _TINY_UNET + ("model.scales=(16,)", "diffusion.scale_loss_weights=(1.0,)", "data.patch_size=16",
                             "data.eval_size=16")
# Two scales take the multi-scale sampling path (coarse conditioning, fusion) as three do.
_TINY_MULTI = _TINY_UNET + ("model.scales=(8, 16)", "diffusion.scale_loss_weights=(1.0, 1.0)", "data.patch_size=16",
                            "data.eval_size=16")
# Run in this order: the heaviest last, where the --total-s limit bites first.
CASES: dict[str, tuple[Case, Case]] = {  # name: (accelerator case, --tiny case)
    "hinet": (Case("train", "hinet:paper", side=256, batches=(8, 16, 32, 64, 128), budget_s=70),
              Case("train", "hinet:smoke", _TINY_HINET, 32, (1, 2))),
    "pytorch": (Case("pytorch", "hinet:paper", side=256, batches=(8,), budget_s=45),
                Case("pytorch", "hinet:smoke", _TINY_HINET, 32, (2,))),
    "car": (Case("train", "car:x4", batches=(16, 32, 64, 128, 256), budget_s=60),
            Case("train", "car:smoke", side=32)),
    "arin": (Case("train", "arin:paper,joint", batches=(8, 16, 32, 64), budget_s=75),
             Case("train", "arin:smoke,joint", ("model.hinet.depth=2",), 32)),
    "car_op": (Case("resample_op", side=512, batches=(8,), budget_s=30),
               Case("resample_op", side=32, batches=(1,))),
    "numerics": (Case("numerics", "hinet:paper", side=128, batches=(4,), budget_s=50),
                 Case("numerics", "hinet:smoke", _TINY_HINET, 32)),
    "diffumural_single": (Case("train", "diffumural:single", batches=(8, 16, 32, 64), budget_s=80),
                          Case("train", "diffumural:smoke", _TINY_SINGLE)),
    "ddim": (Case("sample", "diffumural:single", batches=(1,), budget_s=50),
             Case("sample", "diffumural:smoke", _TINY_SINGLE)),
    "diffumural_paper": (Case("train", "diffumural:paper", batches=(4, 8, 16, 32), budget_s=150, dtype="bfloat16"),
                         # One scale in --tiny: two take ~50 s to initialise and compile on 2 CPU cores.
                         Case("train", "diffumural:smoke", _TINY_SINGLE + ("train.remat=blocks",), dtype="bfloat16")),
    "collaborative": (Case("sample", "diffumural:paper", batches=(1,), budget_s=100, dtype="bfloat16"),
                      Case("sample", "diffumural:smoke", _TINY_MULTI)),
}

# ------------------------------------------------------------------------------------------ batch search


def is_out_of_memory(error: BaseException) -> bool:
  """XLA's RESOURCE_EXHAUSTED (at compile or run time) or PyTorch's CUDA out-of-memory error."""
  text = f"{type(error).__name__}: {error}"
  lower = text.lower()
  return "RESOURCE_EXHAUSTED" in text or "OutOfMemoryError" in text or "out of memory" in lower or (
      "failed to allocate" in lower)


def largest_batch(candidates: Sequence[int], measure: Callable[[int], dict[str, Any]], deadline: float,
                  memory_limit: float | None = None, report: Callable[[dict[str, Any]], None] = lambda _: None,
                  clock: Callable[[], float] = time.monotonic) -> tuple[dict[str, Any], list[dict[str, Any]]]:
  """The measurement at the largest candidate batch that fits in memory and in time: (result, attempts).

  `measure(batch)` returns a dict; with 'peak_bytes' (device peak) and 'fixed_bytes' (what does not grow with
  the batch) and a `memory_limit` in bytes, larger batches' memory is predicted linearly and those over 95% of
  the limit are not tried; with 'run_s' (the part of the attempt that grows with the batch), so is their time.
  The first candidate is tried first; after a success, the largest larger candidate predicted to fit (without
  a prediction, the next larger); after an out-of-memory error, the largest smaller one above the best so far.
  A batch predicted to end after `deadline` (a `clock` time) is not tried. Raises MemoryError when no batch
  fits, and any other error of `measure` at once.
  """
  remaining, best, attempts, batch, error = sorted(set(candidates)), None, [], candidates[0], None
  while batch is not None:
    if best is not None:
      estimate = best["attempt_s"] + best.get("run_s", 0.0) * (batch / best["batch"] - 1)
      if clock() + estimate > deadline:
        attempts.append({"batch": batch, "outcome": f"not tried: ~{estimate:.0f} s left no time"})
        break
    report({"stage": f"batch {batch}"})
    start = clock()
    try:
      result = measure(batch) | {"batch": batch, "attempt_s": clock() - start}
    except Exception as e:  # pylint: disable=broad-except
      if not is_out_of_memory(e):
        raise
      error = f"out of memory at batch {batch}: {(str(e).splitlines() or [''])[0][:160]}"
      attempts.append({"batch": batch, "outcome": "out of memory"})
      report({"attempt": attempts[-1]})
      del e
      gc.collect()  # The traceback's frames held the failed attempt's buffers.
      remaining = [b for b in remaining if b < batch and (best is None or b > best["batch"])]
      batch = remaining[-1] if remaining else None
      continue
    best = result
    attempts.append({"batch": batch, "outcome": "ok"})
    report({"attempt": attempts[-1], "best": best})
    remaining = [b for b in remaining if b > batch]
    fits = [b for b in remaining if _predicted_bytes(best, b) <= 0.95 * (memory_limit or float("inf"))]
    for b in remaining[len(fits):]:
      attempts.append({"batch": b, "outcome": f"not tried: predicted {_predicted_bytes(best, b) / 2**30:.1f} GiB"})
    remaining = fits
    batch = (fits[-1] if "peak_bytes" in best and memory_limit else fits[0]) if fits else None
  if best is None:
    raise MemoryError(error)
  return best, attempts


def _predicted_bytes(result: dict[str, Any], batch: int) -> float:
  if "peak_bytes" not in result:
    return 0.0
  fixed = result.get("fixed_bytes", 0.0)
  return fixed + (result["peak_bytes"] - fixed) * batch / result["batch"]

# ------------------------------------------------------------------------------------------- the cases
# Run in the child process: JAX, muraljax and the benchmark modules are imported there.


@dataclasses.dataclass
class Run:
  """What a case's process was asked for."""

  case: Case
  dtype: str
  steps: int
  sampling_steps: int
  deadline: float  # time.monotonic() at which the budget ends
  batch: int = 0  # pytorch: the batch of the hinet case (0 = the case's own)
  report: Callable[[dict[str, Any]], None] = lambda _: None


def _config(run: Run):
  import common
  from muraljax import config as config_lib
  name, _, variant = run.case.config.partition(":")
  config = common.load_config(name, variant)
  for assignment in run.case.overrides:
    config_lib.set_field(config, assignment)
  config.train.compute_dtype = run.case.dtype or run.dtype
  return config, run.case.side or config.data.patch_size


def _device_memory() -> tuple[float | None, float | None]:
  """(peak bytes in use so far, bytes the allocator may use) of the first device; None where not reported."""
  import jax
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use"), stats.get("bytes_limit")


def _utilisation(flops: float, seconds: float) -> dict[str, float | None]:
  import jax
  from muraljax.train import throughput
  perf = throughput.utilisation(flops, 1 / seconds, jax.devices()[0].device_kind)
  return {"tflops_per_device": perf["perf/tflops_per_device"], "mfu": perf.get("perf/mfu")}


def train_case(run: Run) -> dict[str, Any]:
  import common
  from muraljax.train import throughput
  config, side = _config(run)

  def measure(batch: int) -> dict[str, Any]:
    result, compiled = common.bench_train_step(config, batch, side, run.steps, ema=True)
    flops = throughput.flops_per_device(compiled)
    del compiled
    peak, _ = _device_memory()
    xla_bytes = (result["xla_temp_mb"] + result["xla_args_mb"]) * 2**20
    memory = {"peak_bytes": peak, "fixed_bytes": result["xla_args_mb"] * 2**20} if peak else {}
    return result | memory | {"flops_per_step": flops, "peak_mb": (peak or xla_bytes) / 2**20,
                              "peak_source": "device" if peak else "XLA temp + args",
                              "run_s": (run.steps + 1) * result["step_s"]}

  best, attempts = largest_batch(run.case.batches, measure, run.deadline, _device_memory()[1], run.report)
  best |= _utilisation(best["flops_per_step"], best["step_s"])
  return best | {"attempts": attempts, "config": run.case.config, "dtype": config.train.compute_dtype,
                 "remat": config.train.remat}


def _random_params(task, batch) -> Any:
  """Params shaped as `task.init` makes them, drawn with NumPy: sampling time does not depend on their values, and
  compiling the init costs tens of seconds on CPUs."""
  import jax
  import numpy as np
  rng = np.random.default_rng(0)
  return jax.tree.map(lambda leaf: jax.numpy.asarray(0.02 * rng.standard_normal(leaf.shape, np.float32), leaf.dtype),
                      jax.eval_shape(task.init, jax.random.PRNGKey(0), batch))


def sample_case(run: Run) -> dict[str, Any]:
  import diffusion  # benchmarks/diffusion.py
  import jax
  import common
  from muraljax import tasks
  config, side = _config(run)
  config.sampling.steps = run.sampling_steps
  task = tasks.get_task(config)
  batch = common.synthetic_batch(run.case.batches[0], side, contour=config.data.contours)
  params = _random_params(task, batch)
  run.report({"stage": "compiling the sampler"})
  start = time.perf_counter()
  compiled = jax.jit(task.predict).lower(params, batch).compile()
  compile_s = time.perf_counter() - start
  run.report({"stage": f"sampling ({run.sampling_steps} steps, twice)"})
  seconds = diffusion.timed(compiled, params, batch, repeats=1) / run.case.batches[0]
  peak, _ = _device_memory()
  # Each step is one pass of every scale's U-Net + ControlNet in one compiled scan, so the time scales linearly.
  per_image = seconds * 50 / run.sampling_steps
  return {"config": run.case.config, "dtype": config.train.compute_dtype, "batch": run.case.batches[0],
          "side": side, "scales": [scale.side for scale in task.scales], "sampling_steps": run.sampling_steps,
          "compile_s": compile_s, "ddim50_s_per_image": per_image, "images_per_s": 1 / per_image,
          "peak_mb": peak / 2**20 if peak else None}


def resample_op_case(run: Run) -> dict[str, Any]:
  import jax
  import resample_op  # benchmarks/resample_op.py
  batch, side, scale, repeats = run.case.batches[0], run.case.side, 4, max(3, run.steps)
  inputs = resample_op._inputs(batch, side, 3, scale)  # pylint: disable=protected-access
  lr = side // scale
  # resample_op.py's yardstick: a 16 -> 16 channel 3x3 conv at the output size, about the op's FLOPs at x4.
  conv_in = jax.random.normal(jax.random.key(1), (batch, lr, lr, 16))
  conv_kernel = jax.random.normal(jax.random.key(2), (3, 3, 16, 16)) * 0.1
  conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  op = lambda *a: resample_op.resample(*a, scale)
  measure, forward_backward = resample_op._measure, resample_op._forward_backward  # pylint: disable=protected-access
  timed = {name: {"forward": measure(fn, args, repeats),
                  "forward_backward": measure(forward_backward(fn), args, repeats)}
           for name, fn, args in (("resample", op, inputs), ("conv", conv, (conv_in, conv_kernel)))}
  resample_ms, conv_ms = timed["resample"]["forward_backward"]["ms"], timed["conv"]["forward_backward"]["ms"]
  return {"batch": batch, "side": side, "scale": scale, "output_side": lr, "repeats": repeats, **timed,
          "resample_fb_ms": resample_ms, "conv_fb_ms": conv_ms, "ratio": resample_ms / conv_ms}


def numerics_case(run: Run) -> dict[str, Any]:
  import jax
  import jax.numpy as jnp
  import common
  losses = {}
  state = None
  for dtype in ("float32", "bfloat16"):
    config, side = _config(dataclasses.replace(run, case=dataclasses.replace(run.case, dtype=dtype)))
    run.report({"stage": f"{dtype} steps"})
    step, fresh, batch = common.train_step_setup(config, run.case.batches[0], side)
    state = fresh if state is None else state  # The float32 run's init, kept for the bfloat16 run.
    current, losses[dtype] = jax.tree.map(jnp.copy, state), []
    for _ in range(run.steps):
      current, metrics = step(current, batch)
      losses[dtype].append(float(metrics["loss"]))
    del current, fresh
  relative = [abs(b - f) / max(abs(f), 1e-12) for f, b in zip(losses["float32"], losses["bfloat16"])]
  # float32 runs at JAX's default matmul precision, as the trainer does (TF32 on recent NVIDIA GPUs).
  return {"config": run.case.config, "batch": run.case.batches[0], "side": side, "steps": run.steps,
          "losses": losses, "max_relative_loss_difference": max(relative)}


def pytorch_case(run: Run) -> dict[str, Any]:
  try:
    import torch
  except ImportError:
    return {"skipped": "no PyTorch"}
  if not torch.cuda.is_available():
    return {"skipped": "no PyTorch CUDA"}
  import compare_pytorch  # benchmarks/compare_pytorch.py
  config, side = _config(run)
  bf16 = config.train.compute_dtype == "bfloat16"
  torch.backends.cudnn.benchmark = True
  batch = run.batch or run.case.batches[0]
  while True:
    try:
      return _torch_steps(torch, compare_pytorch, config, batch, side, bf16, run.steps) | {"config": run.case.config}
    except torch.cuda.OutOfMemoryError:
      if batch == 1:
        raise
      batch //= 2
      torch.cuda.empty_cache()


def _torch_steps(torch, compare_pytorch, config, batch: int, side: int, bf16: bool, steps: int) -> dict[str, Any]:
  from muraljax.port.torch_reference import training
  model, loss_fn = training.model_and_loss(config)
  model.cuda()

  def loss(damaged, clean):
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
      return loss_fn(damaged, clean)

  step = training.train_step(config, model, loss)
  damaged, clean = (t.cuda() for t in compare_pytorch.torch_batch(batch, side))
  torch.cuda.reset_peak_memory_stats()
  for _ in range(2):  # Warm-up: cuDNN's algorithm search, Adam's state.
    step(damaged, clean)
  torch.cuda.synchronize()
  start = time.perf_counter()
  for _ in range(steps):
    step(damaged, clean)  # Waits for the step: its metrics are read with .item().
  seconds = (time.perf_counter() - start) / steps
  return {"batch": batch, "side": side, "step_s": seconds, "images_per_s": batch / seconds,
          "autocast": "bfloat16" if bf16 else "none", "torch_version": torch.__version__,
          "peak_mb": torch.cuda.max_memory_allocated() / 2**20}


KINDS = {"train": train_case, "sample": sample_case, "resample_op": resample_op_case, "numerics": numerics_case,
         "pytorch": pytorch_case}


def child(name: str, args: argparse.Namespace) -> None:
  """Runs one case in this process; prints protocol lines (progress, then 'result' or 'error') on stdout."""
  deadline = time.monotonic() + args.budget_s
  reply = lambda message: print(_LINE + json.dumps(message), flush=True)
  case = CASES[name][bool(args.tiny)]
  try:
    if name == args.fail_case:
      raise RuntimeError(f"failure injected by --fail-case {name}")
    dtype = args.dtype
    if case.kind != "pytorch":
      import jax
      reply({"device": {"kind": jax.devices()[0].device_kind, "backend": jax.default_backend(),
                        "count": jax.device_count(), "jax": jax.__version__}})
      if dtype == "auto":
        dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    elif dtype == "auto":
      dtype = "bfloat16"  # Only measured on GPUs.
    run = Run(case, dtype, args.steps, args.sampling_steps, deadline, args.batch, reply)
    result = KINDS[case.kind](run)
  except Exception as e:  # pylint: disable=broad-except
    message = (str(e).strip().splitlines() or [""])[0]
    reply({"error": f"{type(e).__name__}: {message}"[:300]})
    raise
  reply({"result": result})

# ---------------------------------------------------------------------------------------------- driver


def run_child(name: str, budget_s: float, args: argparse.Namespace, batch: int = 0) -> dict[str, Any]:
  """One case in a fresh process, killed after `budget_s` (the row keeps what it reported by then): its row."""
  command = [sys.executable, __file__, "--child", name, "--budget-s", str(budget_s), "--dtype", args.dtype,
             "--steps", str(args.steps), "--sampling-steps", str(args.sampling_steps), "--batch", str(batch)]
  command += ["--tiny"] * args.tiny + (["--fail-case", args.fail_case] if args.fail_case else [])
  env = os.environ.copy()
  # JAX reserves 75% of a GPU by default; the batch search may use more (one case per process, nothing else).
  env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.92")
  if args.tiny:  # Toy sizes exercise the code paths: compile fast (about half the time on CPUs), run slower.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # --jobs share a GPU.
    env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), "--xla_backend_optimization_level=0",
                                              "--xla_llvm_disable_expensive_passes=true"]))
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), str(ROOT), env.get("PYTHONPATH")]))
  start = time.monotonic()
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env)
    try:
      returncode = process.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()
      returncode = None
    out.seek(0)
    err.seek(0)
    lines = [json.loads(line[len(_LINE):]) for line in out if line.startswith(_LINE)]
    stderr = err.read()
  row = {"seconds": time.monotonic() - start}
  for line in lines:
    row.update({k: v for k, v in line.items() if k in ("device", "best")})
    row.setdefault("attempts", []).extend([line["attempt"]] if "attempt" in line else [])
  row |= row.pop("best", {})
  if not row["attempts"]:
    del row["attempts"]
  stage = next((line["stage"] for line in reversed(lines) if "stage" in line), "starting")
  result = next((line["result"] for line in lines if "result" in line), None)
  error = next((line["error"] for line in lines if "error" in line), None)
  if result is not None and "skipped" in result:
    return row | {"status": "skipped", "reason": result["skipped"]}
  if result is not None:
    return row | result | {"status": "ok"}
  if returncode is None:
    measured = f"; batch {row['batch']} measured" if "batch" in row else ""
    return row | {"status": "timeout", "reason": f"timed out after {budget_s:.0f} s at {stage}{measured}"}
  tail = [line for line in stderr.strip().splitlines() if line.strip()][-1:] or [f"exit status {returncode}"]
  return row | {"status": "failed", "reason": error or f"exit status {returncode} at {stage}: {tail[0][:200]}"}


def case_row(name: str, args: argparse.Namespace, end: float,
             hinet: concurrent.futures.Future | None = None) -> dict[str, Any]:
  """The row of case `name`, run with the case's budget cut to end by `end` (a time.monotonic() time); the pytorch
  case runs at the batch of the `hinet` case's row, once it is there, and compares their speeds."""
  hinet_row = hinet.result() if hinet else {}
  if hinet_row.get("status") != "ok":
    hinet_row = {}
  budget = min(args.budget_s or CASES[name][args.tiny].budget_s, end - time.monotonic())
  if budget < 5:
    return {"status": "skipped", "reason": "the --total-s limit was reached"}
  row = run_child(name, budget, args, hinet_row.get("batch", 0))
  if hinet_row and row["status"] == "ok":
    row["jax_over_torch"] = hinet_row["images_per_s"] / row["images_per_s"]
  return row


def _columns():
  from common import Column
  return (Column("batch", "batch", ">6"), Column("side", "side", ">6"), Column("compile_s", "compile s", ">10.1f"),
          Column("step_s", "step s", ">9.3f"), Column("images_per_s", "img/s", ">9.1f"),
          Column("tflops_per_device", "TFLOP/s", ">9.1f"), Column("mfu", "MFU", ">7.1%"),
          Column("peak_mb", "peak MB", ">9,.0f"))


def notes(row: dict[str, Any]) -> str:
  """The table's last column: what the row's numbers mean or why there are none."""
  if row["status"] != "ok":
    return f"{row['status'].upper()}: {row['reason']}"
  if "ddim50_s_per_image" in row:
    return f"DDIM-50 {row['ddim50_s_per_image']:.2f} s/img ({'/'.join(map(str, row['scales']))} px)"
  if "ratio" in row:
    return (f"resample x{row['scale']} f+b {row['resample_fb_ms']:.2f} ms vs 3x3 conv {row['conv_fb_ms']:.2f} ms: "
            f"{row['ratio']:.1f}x")
  if "max_relative_loss_difference" in row:
    return f"bf16 vs fp32 loss: max rel diff {row['max_relative_loss_difference']:.1e} over {row['steps']} steps"
  if "torch_version" in row:
    ratio = row.get("jax_over_torch")
    return f"PyTorch {row['torch_version']}" + (f", JAX/PyTorch {ratio:.2f}x" if ratio else "")
  remat = f" remat {row['remat']}" if row.get("remat", "none") != "none" else ""
  tried = ", ".join(f"{a['batch']} {'OOM' if a['outcome'] == 'out of memory' else a['outcome'].split(':')[0]}"
                    for a in row.get("attempts", []))
  return f"{row['config']} {row['dtype']}{remat}; batches: {tried}"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cases", default=",".join(CASES), help=f"Comma-separated subset of {list(CASES)}.")
  parser.add_argument("--tiny", action="store_true", help="Toy sizes, 2 cases at a time: ~1.5 minutes on 2 CPU cores.")
  parser.add_argument("--budget-s", type=float, help="Time budget of every case (default: each case's own).")
  parser.add_argument("--total-s", type=float, help="Time limit of the whole run; cases left after it are "
                      "skipped and the last one's budget is cut to fit (default 470, --tiny 170).")
  parser.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float32"),
                      help="Compute dtype of the train steps and samplers (auto: bfloat16 unless on CPU).")
  parser.add_argument("--steps", type=int, help="Timed train steps after a warm-up (default 5, --tiny 2).")
  parser.add_argument("--sampling-steps", type=int,
                      help="DDIM steps of the timed inpainting; the time is scaled to 50 (default 50, --tiny 2).")
  parser.add_argument("--out", help="JSON path (default benchmarks/results/accelerator_check[_tiny].json).")
  parser.add_argument("--jobs", type=int, help="Cases run at once (default 1; --tiny: 2). Only for CPUs: on an "
                      "accelerator each case needs the whole device.")
  parser.add_argument("--fail-case", help="For testing this driver: make the named case raise.")
  parser.add_argument("--child", choices=list(CASES), help="Internal: run one case in this process.")
  parser.add_argument("--batch", type=int, default=0, help="Internal: the pytorch case's batch.")
  args = parser.parse_args()
  args.steps = args.steps or (2 if args.tiny else 5)
  args.sampling_steps = args.sampling_steps or (2 if args.tiny else 50)
  args.jobs = args.jobs or (2 if args.tiny else 1)
  if args.child:
    child(args.child, args)
    return

  names = [name for name in args.cases.split(",") if name]
  unknown = [name for name in dict.fromkeys(names + [args.fail_case or names[0]]) if name not in CASES]
  if unknown:
    raise SystemExit(f"Unknown cases {unknown}; choose from {list(CASES)}.")
  columns = _columns()
  from common import column_width
  width = max(map(len, names)) + 2
  total_s = args.total_s or (170 if args.tiny else 470)
  print(f"Accelerator check{' (--tiny)' * args.tiny}: each case in its own process; limit {total_s:.0f} s in all")
  print(f"{'case':<{width}}" + "".join(f"{c.header:>{column_width(c)}}" for c in columns) + "  notes", flush=True)
  start, futures, rows = time.monotonic(), {}, {}
  with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
    for name in names:
      hinet = futures.get("hinet") if name == "pytorch" else None  # Only when it runs first.
      futures[name] = pool.submit(case_row, name, args, start + total_s, hinet)
    for name, future in futures.items():
      row = rows[name] = future.result()
      print(f"{name:<{width}}" + "".join(_cell(c, row.get(c.key), column_width(c)) for c in columns)
            + f"  {notes(row)}", flush=True)

  device = [row.pop("device") for row in rows.values() if "device" in row][:1] or [{}]
  device = device[0]
  total = time.monotonic() - start
  print(f"Device: {device.get('kind', 'unknown')} x{device.get('count', '?')} ({device.get('backend', '?')}, "
        f"JAX {device.get('jax', '?')}); {total:.0f} s in all")
  out = pathlib.Path(args.out or ROOT / "benchmarks" / "results" /
                     f"accelerator_check{'_tiny' * args.tiny}.json")
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps({"device": device.get("kind"), "device_info": device, "tiny": args.tiny,
                             "total_s": total, "results": rows}, indent=2))
  print(f"Wrote {out}")
  if any(row["status"] in ("failed", "timeout") for row in rows.values()):
    raise SystemExit(1)


def _cell(column, value, width: int) -> str:
  return " " * width if value is None else format(value, column.format)


if __name__ == "__main__":
  main()
