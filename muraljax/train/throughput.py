"""FLOPs of a compiled step, and model FLOP utilisation (MFU) against the device's peak."""

from __future__ import annotations

import jax

# Dense bf16 peak TFLOP/s per device (vendor figures), matched against `device_kind` by substring, most
# specific first.
PEAK_BF16_TFLOPS = (
    ("TPU v6", 918.0),
    ("TPU v5p", 459.0),
    ("TPU v5", 197.0),  # v5e ("TPU v5 lite")
    ("TPU v4", 275.0),
    ("TPU v3", 123.0),
    ("H200", 989.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("V100", 125.0),
)


def peak_tflops(device_kind: str) -> float | None:
  """The device's dense bf16 peak, or None when unknown (e.g. CPUs)."""
  return next((peak for name, peak in PEAK_BF16_TFLOPS if name in device_kind), None)


def flops_per_device(compiled: jax.stages.Compiled) -> float:
  """FLOPs one device executes per call of the compiled (SPMD-partitioned) program, from XLA's cost analysis."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  return float((analysis or {}).get("flops", 0.0))


def utilisation(flops: float, steps_per_second: float, device_kind: str) -> dict[str, float]:
  """TFLOP/s per device, plus MFU when the device's peak is known."""
  tflops = flops * steps_per_second / 1e12
  peak = peak_tflops(device_kind)
  return {"perf/tflops_per_device": tflops} | ({"perf/mfu": tflops / peak} if peak else {})
