"""ARIN train-step throughput, compile time and memory per phase, and what the CAR resampling costs in memory.

  python benchmarks/arin_train_step.py [--steps 3] [--cases smoke_joint_b4,paper_car_b2,...]

Synthetic batches. Besides the usual columns it inspects the compiled step for the buffer a naive backward of
the resampling op would hold: every tap's four bilinear corner samples of every LR pixel, [B, H/s, W/s, k^2, 4, C]
("full taps" below). It searches the optimised HLO (`compiled.as_text()`) for any array with at least that many
elements that is a multiple of B*h*w*k^2 elements (whatever its layout, flattened or not), reports the largest
array indexed by the LR grid and the taps, and counts the while loops, gathers and scatters the op compiles to.
Prints a table and writes benchmarks/results/arin_train_step.json.
"""

from __future__ import annotations

import math
import re
from typing import Any

import common

CASES = {  # name: (config options, global batch, patch side)
    "smoke_joint_b4": ("smoke,joint", 4, 48),
    "paper_car_b2": ("car", 2, 128),
    "paper_hinet_b1": ("hinet", 1, 128),
    "paper_joint_b1": ("joint", 1, 128),
}
COLUMNS = common.STEP_COLUMNS + (
    common.Column("full_taps_mb", "full taps MB", ">14.1f"),
    common.Column("largest_tap_buffer", "largest tap-indexed array", ">27"),
    common.Column("full_sized_array_count", "full-taps arrays", ">18"),
)
_ARRAY = re.compile(r"\b(f64|f32|bf16|f16|s32|u32|pred)\[([\d,]+)\]")


def _name(array: tuple[str, tuple[int, ...]]) -> str:
  dtype, shape = array
  return f"{dtype}[{','.join(map(str, shape))}]"


def tap_buffers(hlo: str, batch: int, lr_side: int, k: int, channels: int = 3) -> dict[str, Any]:
  """What the compiled program holds of the resampling taps (see the module docstring)."""
  per_tap_grid = batch * lr_side * lr_side * k * k
  full = per_tap_grid * 4 * channels
  arrays = {(dtype, tuple(int(d) for d in dims.split(","))) for dtype, dims in _ARRAY.findall(hlo)}
  tap_indexed = [(dtype, shape) for dtype, shape in arrays
                 if shape.count(lr_side) >= 2 and (k in shape or k * k in shape)]
  largest = max(tap_indexed, key=lambda a: math.prod(a[1]))
  full_sized = sorted(_name(a) for a in arrays if math.prod(a[1]) >= full and math.prod(a[1]) % per_tap_grid == 0)
  return {
      "full_taps_shape": [batch, lr_side, lr_side, k * k, 4, channels],
      "full_taps_mb": full * 4 / 2**20,
      "largest_tap_buffer": _name(largest),
      "largest_tap_buffer_fraction_of_full": math.prod(largest[1]) / full,
      "full_sized_arrays": full_sized,
      "full_sized_array_count": len(full_sized),
      "while_loops": len(re.findall(r"\swhile\(", hlo)),
      "gathers": sorted(set(re.findall(r"= (\w+\[[\d,]*\])\S* gather\(", hlo))),
      "gather_count": len(re.findall(r"\sgather\(", hlo)),
      "scatter_count": len(re.findall(r"\sscatter\(", hlo)),
  }


def run_case(name: str, steps: int) -> dict[str, Any]:
  options, batch_size, side = CASES[name]
  config = common.load_config("arin", options)
  result, compiled = common.bench_train_step(config, batch_size, side, steps)
  scale = config.model.car.scale
  return result | tap_buffers(compiled.as_text(), batch_size, side // scale, 3 * scale + 1)


def explain(results: dict[str, dict[str, Any]]) -> None:
  print("\nResampling op in the compiled steps (HLO of each case):")
  for name, r in results.items():
    found = ", ".join(r["full_sized_arrays"]) or "none"
    print(f"  {name}: full taps {r['full_taps_shape']} = {r['full_taps_mb']:.1f} MB; arrays of that size: {found}; "
          f"largest tap-indexed {r['largest_tap_buffer']} ({r['largest_tap_buffer_fraction_of_full']:.3f} of "
          f"full); {r['while_loops']} while loops, {r['gather_count']} gathers {r['gathers']}, "
          f"{r['scatter_count']} scatters")


if __name__ == "__main__":
  common.main(description=__doc__.splitlines()[0], title="ARIN train step", cases=list(CASES), run_case=run_case,
              result_name="arin_train_step", default_steps=3, columns=COLUMNS, after_table=explain)
