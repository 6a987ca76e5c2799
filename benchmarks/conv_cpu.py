"""Convolution speed on this machine: XLA (jit) against PyTorch eager, forward and backward, same threads.

  python benchmarks/conv_cpu.py [--threads 2] [--channels 32,64,128] [--side 256] [--batch 4] [--steps 3]

A stack of four 3x3 same-padded convolutions with LeakyReLU (HINet's building block) and the gradient of a mean
square with respect to the shared kernel and, through the stack, every activation: the operation that dominates
the paper-width train steps `compare_pytorch.py` times. Both frameworks run in this process, each with `--threads`
intra-op threads. Prints GFLOP/s (3x the forward convolution FLOPs per step) and writes
benchmarks/results/conv_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = 4


def seconds_per_step(step, steps: int) -> float:
  step()  # Warm-up (and, for JAX, compilation).
  start = time.perf_counter()
  for _ in range(steps):
    step()
  return (time.perf_counter() - start) / steps


def jax_step(batch: int, side: int, channels: int):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  x = jnp.full((batch, side, side, channels), 0.5)
  kernel = jnp.full((3, 3, channels, channels), 1.0 / (9 * channels))

  def loss(kernel, x):
    for _ in range(LAYERS):
      x = jax.nn.leaky_relu(jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC")), 0.2)
    return jnp.mean(x ** 2)

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
  return lambda: jax.block_until_ready(grad(kernel, x))


def torch_step(batch: int, side: int, channels: int):
  import torch  # pylint: disable=g-import-not-at-top

  x = torch.full((batch, channels, side, side), 0.5, requires_grad=True)
  kernel = torch.full((channels, channels, 3, 3), 1.0 / (9 * channels), requires_grad=True)

  def step():
    y = x
    for _ in range(LAYERS):
      y = torch.nn.functional.leaky_relu(torch.nn.functional.conv2d(y, kernel, padding=1), 0.2)
    y.pow(2).mean().backward()
    x.grad, kernel.grad = None, None

  return step


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
  parser.add_argument("--channels", default="32,64,128", help="Comma-separated channel counts.")
  parser.add_argument("--side", type=int, default=256)
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()
  os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.threads])  # Sizes XLA's intra-op pool.
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(args.threads)

  print(f"{LAYERS} 3x3 convs + LeakyReLU, forward and backward, batch {args.batch} at {args.side} px, "
        f"{args.threads} threads")
  print(f"{'channels':>9}{'JAX s':>9}{'JAX GFLOP/s':>13}{'torch s':>9}{'torch GFLOP/s':>15}{'JAX / torch':>13}")
  results = []
  for channels in map(int, args.channels.split(",")):
    flops = 3 * LAYERS * 2 * args.batch * args.side ** 2 * channels ** 2 * 9
    jax_s = seconds_per_step(jax_step(args.batch, args.side, channels), args.steps)
    torch_s = seconds_per_step(torch_step(args.batch, args.side, channels), args.steps)
    results.append({"channels": channels, "jax_s": jax_s, "torch_s": torch_s, "jax_gflops": flops / jax_s / 1e9,
                    "torch_gflops": flops / torch_s / 1e9})
    r = results[-1]
    print(f"{channels:>9}{jax_s:>9.3f}{r['jax_gflops']:>13.1f}{torch_s:>9.3f}{r['torch_gflops']:>15.1f}"
          f"{torch_s / jax_s:>13.2f}", flush=True)
  out = ROOT / "benchmarks" / "results" / "conv_cpu.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps({"threads": args.threads, "batch": args.batch, "side": args.side, "results": results},
                            indent=2))
  print(f"Wrote {out}")


if __name__ == "__main__":
  main()
