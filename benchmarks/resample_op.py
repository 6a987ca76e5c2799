"""Times CAR's resampling op, forward and forward+backward, next to a dense 3x3 conv yardstick.

Compares formulations of the same op (all exact; checked against `muraljax.models.resample.resample`):

* gather_folded:   (the library's) kernel folded into the 4 bilinear weights, one row gather of C-vectors,
                   one weighted reduction over taps x corners.
* gather_corners:  bilinear value per tap first (4 gathers), then the kernel-weighted sum over taps.
* gather_channels: channels-first scalar gather ([B, C, Hp*Wp]) instead of C-vector rows.
* scan_rows:       lax.scan over the k kernel rows (k taps per step), checkpointed, so only one row of
                   samples is alive at a time.

Peak memory is XLA's own estimate for the compiled program (`memory_analysis()`), times are the median of
`--repeats` runs after compilation. Prints a table and writes JSON.

  python benchmarks/resample_op.py                       # x4, batch 4, 512x512 -> 128x128, C=3
  python benchmarks/resample_op.py --size 64 --batch 1   # a quick run
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

from muraljax.models.resample import axis_corners, kernel_size, resample

_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "resample_op.json")


def _padded_taps(image, kernels, offsets_h, offsets_v, scale):
  """Reflect-padded image and per-axis corners, [B, h, w, k*k] each."""
  k = kernel_size(scale)
  padded = jnp.pad(image, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)), mode="reflect")
  _, padded_h, padded_w, _ = padded.shape
  _, lr_h, lr_w, taps = kernels.shape
  tap_y, tap_x = jnp.divmod(jnp.arange(taps), k)
  rows = axis_corners(offsets_v, jnp.arange(lr_h)[:, None, None], tap_y, scale, padded_h)
  cols = axis_corners(offsets_h, jnp.arange(lr_w)[:, None], tap_x, scale, padded_w)
  return padded, rows, cols


def gather_corners(image, kernels, offsets_h, offsets_v, scale):
  padded, (top, bottom, beta), (left, right, alpha) = _padded_taps(image, kernels, offsets_h, offsets_v, scale)
  pixel = jax.vmap(lambda img, y, x: img[y, x])
  value = ((1 - alpha) * (1 - beta))[..., None] * pixel(padded, top, left)
  value += (alpha * (1 - beta))[..., None] * pixel(padded, top, right)
  value += ((1 - alpha) * beta)[..., None] * pixel(padded, bottom, left)
  value += (alpha * beta)[..., None] * pixel(padded, bottom, right)
  return jnp.einsum("bhwn,bhwnc->bhwc", kernels, value)


def gather_channels(image, kernels, offsets_h, offsets_v, scale):
  padded, (top, bottom, beta), (left, right, alpha) = _padded_taps(image, kernels, offsets_h, offsets_v, scale)
  b, padded_h, padded_w, c = padded.shape
  index = jnp.stack([top * padded_w + left, top * padded_w + right, bottom * padded_w + left,
                     bottom * padded_w + right], axis=-1)
  weight = kernels[..., None] * jnp.stack(
      [(1 - alpha) * (1 - beta), alpha * (1 - beta), (1 - alpha) * beta, alpha * beta], axis=-1)
  planes = padded.transpose(0, 3, 1, 2).reshape(b, c, padded_h * padded_w)
  samples = jnp.take_along_axis(planes, index.reshape(b, 1, -1), axis=2)
  lr_shape = kernels.shape[:3]
  return jnp.einsum("bhwm,bchwm->bhwc", weight.reshape(*lr_shape, -1), samples.reshape(b, c, *lr_shape[1:], -1))


def scan_rows(image, kernels, offsets_h, offsets_v, scale):
  k = kernel_size(scale)
  pad = k // 2
  padded = jnp.pad(image, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  b, padded_h, padded_w, c = padded.shape
  _, lr_h, lr_w, _ = kernels.shape
  flat = padded.reshape(b, padded_h * padded_w, c)
  by_row = lambda t: t.reshape(b, lr_h, lr_w, k, k).transpose(3, 0, 1, 2, 4)  # [k rows, B, h, w, k]

  @jax.checkpoint
  def row(acc, inputs):
    kern, off_h, off_v, tap_y = inputs
    top, bottom, beta = axis_corners(off_v, jnp.arange(lr_h)[:, None, None], tap_y, scale, padded_h)
    left, right, alpha = axis_corners(off_h, jnp.arange(lr_w)[:, None], jnp.arange(k), scale, padded_w)
    index = jnp.stack([top * padded_w + left, top * padded_w + right, bottom * padded_w + left,
                       bottom * padded_w + right], axis=-1)
    weight = kern[..., None] * jnp.stack(
        [(1 - alpha) * (1 - beta), alpha * (1 - beta), (1 - alpha) * beta, alpha * beta], axis=-1)
    samples = jax.vmap(lambda img, idx: img[idx])(flat, index.reshape(b, -1)).reshape(b, lr_h, lr_w, -1, c)
    return acc + jnp.einsum("bhwn,bhwnc->bhwc", weight.reshape(b, lr_h, lr_w, -1), samples), None

  init = jnp.zeros((b, lr_h, lr_w, c), image.dtype)
  xs = (by_row(kernels), by_row(offsets_h), by_row(offsets_v), jnp.arange(k))
  return jax.lax.scan(row, init, xs)[0]


CANDIDATES: dict[str, Callable] = {
    "gather_folded": resample,
    "gather_corners": gather_corners,
    "gather_channels": gather_channels,
    "scan_rows": scan_rows,
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
  peak = getattr(memory, "peak_memory_in_bytes", 0) or (
      memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
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
  parser.add_argument("--repeats", type=int, default=5)
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
