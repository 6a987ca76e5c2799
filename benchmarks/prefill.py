"""The harmonic prefill (muraljax.models.prefill): time per batch and distance from the exact harmonic fill.

For each image side and sweep count: the median time of the jit-compiled `harmonic_fill` on a batch of smooth
random images with box and stroke holes, and its largest and mean error against the exact discrete harmonic fill
(the sparse linear system solved by SciPy, same 4-neighbour stencil and mirrored borders), on one image.
Prints a table and writes benchmarks/results/prefill.json.

  python benchmarks/prefill.py                         # sides 256, 512, 1024; sweeps 8, 16, 32; batch 4
  python benchmarks/prefill.py --sides 128 --sweeps 16 --batch 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import numpy as np
from scipy import sparse
from scipy.sparse import linalg

from muraljax.data import degrade
from muraljax.models.prefill import harmonic_fill

_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "prefill.json")


def exact_harmonic(image: np.ndarray, damaged: np.ndarray) -> np.ndarray:
  """The exact discrete harmonic fill of `image` [H, W] where `damaged` [H, W]: each damaged pixel the mean of
  its 4 neighbours (a neighbour outside the image is the edge pixel itself)."""
  height, width = damaged.shape
  index = -np.ones(damaged.shape, np.int64)
  index[damaged] = np.arange(np.count_nonzero(damaged))
  rows, cols, values, rhs = [], [], [], np.zeros(np.count_nonzero(damaged))
  for (y, x), k in zip(np.argwhere(damaged), index[damaged]):
    rows.append(k), cols.append(k), values.append(4.0)
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
      ny, nx = min(max(y + dy, 0), height - 1), min(max(x + dx, 0), width - 1)
      if damaged[ny, nx]:
        rows.append(k), cols.append(index[ny, nx]), values.append(-1.0)
      else:
        rhs[k] += image[ny, nx]
  matrix = sparse.csr_matrix((values, (rows, cols)), shape=(len(rhs), len(rhs)))
  filled = image.astype(np.float64).copy()
  filled[damaged] = linalg.spsolve(matrix, rhs)
  return filled


def _inputs(batch: int, side: int) -> tuple[np.ndarray, np.ndarray]:
  """Smooth random images (a few random sinusoids per channel) [B, S, S, 3] and box + stroke masks [B, S, S, 1]."""
  rng = np.random.default_rng(0)
  rows, cols = np.mgrid[0:side, 0:side] / side
  frequencies, phases = rng.uniform(0.5, 4, (batch, 3, 4, 2)), rng.uniform(0, 2 * np.pi, (batch, 3, 4))
  waves = np.sin(2 * np.pi * (frequencies[..., 0, None, None] * rows + frequencies[..., 1, None, None] * cols)
                 + phases[..., None, None])
  images = (0.5 + 0.12 * waves.sum(axis=2)).transpose(0, 2, 3, 1).astype(np.float32)
  masks = np.stack([degrade.box_mask(rng, side, side) | degrade.stroke_mask(rng, side, side) for _ in range(batch)])
  return images, masks[..., None].astype(np.float32)


def measure(side: int, sweeps: int, batch: int, repeats: int) -> dict[str, float]:
  images, masks = _inputs(batch, side)
  fill = jax.jit(lambda x, m: harmonic_fill(x, m, sweeps))
  started = time.perf_counter()
  filled = np.asarray(fill(images, masks))
  compile_s = time.perf_counter() - started
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    fill(images, masks).block_until_ready()
    times.append(time.perf_counter() - started)
  row = {"side": side, "sweeps": sweeps, "batch": batch, "hole_ratio": float(masks.mean()),
         "compile_s": compile_s, "ms_per_batch": 1e3 * statistics.median(times)}
  if side <= 512:
    damaged = masks[0, ..., 0] > 0.5
    exact = exact_harmonic(images[0, ..., 0], damaged)
    error = np.abs(filled[0, ..., 0] - exact)[damaged]
    row |= {"max_error": float(error.max()), "mean_error": float(error.mean())}
  return row


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--sides", default="256,512,1024")
  p.add_argument("--sweeps", default="8,16,32")
  p.add_argument("--batch", type=int, default=4)
  p.add_argument("--repeats", type=int, default=5)
  args = p.parse_args()
  rows = [measure(int(side), int(sweeps), args.batch, args.repeats) for side in args.sides.split(",")
          for sweeps in args.sweeps.split(",")]
  print(f"harmonic_fill on {jax.devices()[0].device_kind}, batch {args.batch} x 3 channels; error on the first "
        "channel of one image against the exact harmonic fill (0-1 intensities; n/a above 512 px)")
  print(f"{'side':>6} {'sweeps':>7} {'holes':>6} {'ms/batch':>9} {'compile s':>10} {'max err':>8} {'mean err':>9}")
  for r in rows:
    errors = (f"{r['max_error']:>8.4f} {r['mean_error']:>9.5f}" if "max_error" in r else f"{'n/a':>8} {'n/a':>9}")
    print(f"{r['side']:>6} {r['sweeps']:>7} {r['hole_ratio']:>6.1%} {r['ms_per_batch']:>9.1f} {r['compile_s']:>10.2f} "
          f"{errors}")
  os.makedirs(os.path.dirname(_RESULTS), exist_ok=True)
  with open(_RESULTS, "w") as file:
    json.dump({"device": jax.devices()[0].device_kind, "rows": rows}, file, indent=1)


if __name__ == "__main__":
  main()
