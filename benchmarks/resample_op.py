"""Times CAR's resampling op, forward and forward+backward, next to a dense 3x3 conv yardstick.

Compares formulations of the same op (all exact; each is checked against the library's):

* scan_rows:       the library's `resample`: lax.scan over the k kernel rows, checkpointed; each step
                   gathers the 4 bilinear corners of k taps and reduces them with the kernel.
* gather_corners:  the same gathers for all k*k taps at once, then one kernel-weighted reduction.
* gather_folded:   kernel folded into the 4 bilinear weights, one gather of [B, h, w, k*k*4] C-vectors,
                   one weighted reduction.
* gather_channels: as gather_folded, but a scalar gather from channels-first planes [B, C, Hp*Wp].

Peak memory is XLA's estimate for the compiled program (`memory_analysis()`: arguments + outputs + temporaries
- aliased; on CPU `peak_memory_in_bytes` counts arguments only). Times are the median of `--repeats` runs after
compilation. Prints a table and writes JSON.

  PYTHONPATH=. python benchmarks/resample_op.py                       # x4, batch 4, 512x512 -> 128x128, C=3
  PYTHONPATH=. python benchmarks/resample_op.py --size 64 --batch 1   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from muraljax.models.resample import axis_corners, bilinear_samples, kernel_size, resample

_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "resample_op.json")


def _all_taps(image, kernels, offsets_h, offsets_v, scale):
  """Reflect-padded image and the corners of all k*k taps along each axis."""
  k = kernel_size(scale)
  padded = jnp.pad(image, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)), mode="reflect")
  _, padded_h, padded_w, _ = padded.shape
  _, lr_h, lr_w, taps = kernels.shape
  tap_y, tap_x = jnp.divmod(jnp.arange(taps), k)
  rows = axis_corners(offsets_v, jnp.arange(lr_h)[:, None, None], tap_y, scale, padded_h)
  cols = axis_corners(offsets_h, jnp.arange(lr_w)[:, None], tap_x, scale, padded_w)
  return padded, rows, cols


def gather_corners(image, kernels, offsets_h, offsets_v, scale):
  padded, rows, cols = _all_taps(image, kernels, offsets_h, offsets_v, scale)
  return jnp.einsum("bhwn,bhwnc->bhwc", kernels, bilinear_samples(padded, rows, cols))


def _folded(image, kernels, offsets_h, offsets_v, scale):
  """Flat corner indices and kernel-folded bilinear weights, [B, h*w*k*k*4] each."""
  padded, (top, bottom, beta), (left, right, alpha) = _all_taps(image, kernels, offsets_h, offsets_v, scale)
  width = padded.shape[2]
  index = jnp.stack([top * width + left, top * width + right, bottom * width + left, bottom * width + right], -1)
  weight = kernels[..., None] * jnp.stack(
      [(1 - alpha) * (1 - beta), alpha * (1 - beta), (1 - alpha) * beta, alpha * beta], axis=-1)
  b = image.shape[0]
  return padded, index.reshape(b, -1), weight.reshape(b, -1)


def gather_folded(image, kernels, offsets_h, offsets_v, scale):
  padded, index, weight = _folded(image, kernels, offsets_h, offsets_v, scale)
  b, _, _, c = padded.shape
  samples = jax.vmap(lambda flat, idx: flat[idx])(padded.reshape(b, -1, c), index)
  lr_shape = kernels.shape[:3]
  return jnp.einsum("bhwm,bhwmc->bhwc", weight.reshape(*lr_shape, -1), samples.reshape(*lr_shape, -1, c))


def gather_channels(image, kernels, offsets_h, offsets_v, scale):
  padded, index, weight = _folded(image, kernels, offsets_h, offsets_v, scale)
  b, _, _, c = padded.shape
  planes = padded.transpose(0, 3, 1, 2).reshape(b, c, -1)
  samples = jnp.take_along_axis(planes, index[:, None], axis=2)
  lr_shape = kernels.shape[:3]
  return jnp.einsum("bhwm,bchwm->bhwc", weight.reshape(*lr_shape, -1), samples.reshape(b, c, *lr_shape[1:], -1))


CANDIDATES: dict[str, Callable] = {
    "scan_rows": resample,
    "gather_corners": gather_corners,
    "gather_folded": gather_folded,
    "gather_channels": gather_channels,
}


def _inputs(batch: int, size: int, channels: int, scale: int, seed: int = 0):
  k = kernel_size(scale)
  keys = jax.random.split(jax.random.key(seed), 4)
  lr = size // scale
  image = jax.random.uniform(keys[0], (batch, size, size, channels))
  kernels = jax.nn.softmax(jax.random.normal(keys[1], (batch, lr, lr, k * k)), axis=-1)
  # The net's range: tanh times the offset unit, so within [-s, s] HR pixels.
  offsets_h = scale * jnp.tanh(jax.random.normal(keys[2], kernels.shape))
  offsets_v = scale * jnp.tanh(jax.random.normal(keys[3], kernels.shape))
  return image, kernels, offsets_h, offsets_v


def _forward_backward(fn: Callable) -> Callable:
  """f(*args) -> (output, grads of <output, cotangent> w.r.t. every argument)."""

  def run(*args):
    out, pullback = jax.vjp(fn, *args)
    return out, pullback(jnp.ones_like(out))

  return run


def _measure(fn: Callable, args: tuple, repeats: int) -> dict:
  compiled = jax.jit(fn).lower(*args).compile()
  memory = compiled.memory_analysis()
  peak = (memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
          - memory.alias_size_in_bytes)
  jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return {"ms": 1e3 * statistics.median(times), "peak_mb": peak / 2**20, "temp_mb": memory.temp_size_in_bytes / 2**20}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--size", type=int, default=512, help="HR side (square input).")
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--scale", type=int, default=4, choices=(2, 4))
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--candidates", default=",".join(CANDIDATES), help="Comma-separated formulations to time.")
  parser.add_argument("--out", default=_RESULTS)
  args = parser.parse_args()

  inputs = _inputs(args.batch, args.size, args.channels, args.scale)
  expected = resample(*inputs, args.scale)
  lr = args.size // args.scale
  # Yardstick: a 3x3 conv at the output size with about the op's FLOPs (16 -> 16 channels: 4.6 kFLOP per
  # pixel; the op does ~k*k*(4*C + 4)*2 = 4.1 kFLOP per pixel at x4, C = 3).
  conv_in = jax.random.normal(jax.random.key(1), (args.batch, lr, lr, 16))
  conv_kernel = jax.random.normal(jax.random.key(2), (3, 3, 16, 16)) * 0.1
  conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

  rows = []
  for name in args.candidates.split(","):
    fn = lambda *a, _f=CANDIDATES[name]: _f(*a, args.scale)
    error = float(jnp.abs(jax.jit(fn)(*inputs) - expected).max())
    rows.append({"name": name, "max_abs_diff": error,
                 "forward": _measure(fn, inputs, args.repeats),
                 "forward_backward": _measure(_forward_backward(fn), inputs, args.repeats)})
  rows.append({"name": "conv3x3_16to16 (yardstick)", "max_abs_diff": 0.0,
               "forward": _measure(conv, (conv_in, conv_kernel), args.repeats),
               "forward_backward": _measure(_forward_backward(conv), (conv_in, conv_kernel), args.repeats)})

  print(f"x{args.scale}, batch {args.batch}, {args.size}^2 x {args.channels} -> {lr}^2, "
        f"{jax.devices()[0].device_kind}, median of {args.repeats}")
  print(f"{'formulation':<28}{'fwd ms':>9}{'fwd MB':>9}{'f+b ms':>9}{'f+b MB':>9}{'max diff':>10}")
  for row in rows:
    f, fb = row["forward"], row["forward_backward"]
    print(f"{row['name']:<28}{f['ms']:>9.1f}{f['peak_mb']:>9.1f}{fb['ms']:>9.1f}{fb['peak_mb']:>9.1f}"
          f"{row['max_abs_diff']:>10.1e}")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"config": vars(args), "device": jax.devices()[0].device_kind, "results": rows}, f, indent=2)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
