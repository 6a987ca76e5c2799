"""benchmarks/accelerator_check.py: its --tiny runs (each case in a process of its own, a failing case reported in
its row) and its batch search, driven by a fake measurement."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "accelerator_check.py"
_spec = importlib.util.spec_from_file_location("accelerator_check", SCRIPT)
accelerator_check = sys.modules["accelerator_check"] = importlib.util.module_from_spec(_spec)  # For dataclasses.
_spec.loader.exec_module(accelerator_check)  # Imports nothing but the standard library.


def _run_tiny(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
  out = tmp_path / "check.json"
  child = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out), *args], cwd=REPO,
                         capture_output=True, text=True, timeout=170)
  assert out.exists(), child.stdout + child.stderr[-3000:]
  return child, json.loads(out.read_text())


def test_tiny_train_step_and_resample_op_and_a_failing_case(tmp_path):
  child, report = _run_tiny(tmp_path, "--cases", "hinet,car,car_op", "--fail-case", "car")
  assert child.returncode == 1, child.stdout + child.stderr[-3000:]  # A failed case fails the run ...
  rows = report["results"]
  assert list(rows) == ["hinet", "car", "car_op"]
  assert rows["car"]["status"] == "failed"
  assert "RuntimeError: failure injected by --fail-case car" in rows["car"]["reason"]
  assert "FAILED: RuntimeError" in child.stdout

  hinet = rows["hinet"]  # ... and the cases after it still run.
  assert hinet["status"] == "ok", hinet
  for key in ("compile_s", "step_s", "images_per_s", "flops_per_step", "tflops_per_device", "peak_mb", "params"):
    assert hinet[key] > 0, key
  assert hinet["mfu"] is None  # No peak FLOP/s is known for CPUs.
  assert [(a["batch"], a["outcome"]) for a in hinet["attempts"]] == [(1, "ok"), (2, "ok")]
  assert hinet["batch"] == 2 and hinet["side"] == 32 and hinet["dtype"] == "float32"

  op = rows["car_op"]
  assert op["status"] == "ok", op
  assert op["resample_fb_ms"] > 0 and op["conv_fb_ms"] > 0
  assert op["ratio"] == pytest.approx(op["resample_fb_ms"] / op["conv_fb_ms"])
  assert report["device"] == "cpu" and report["tiny"] is True


def test_tiny_numerics_and_pytorch_exit_0(tmp_path):
  child, report = _run_tiny(tmp_path, "--cases", "numerics,pytorch")
  assert child.returncode == 0, child.stdout + child.stderr[-3000:]
  numerics, torch_row = report["results"]["numerics"], report["results"]["pytorch"]
  assert numerics["status"] == "ok", numerics
  assert len(numerics["losses"]["float32"]) == len(numerics["losses"]["bfloat16"]) == 2
  assert 0 < numerics["max_relative_loss_difference"] < 0.1
  assert torch_row["status"] in ("ok", "skipped"), torch_row
  if torch_row["status"] == "skipped":
    assert torch_row["reason"] in ("no PyTorch CUDA", "no PyTorch")


def test_the_benchmarks_import_no_tensorflow_or_clu():
  script = ("import sys; sys.path[:0] = ['benchmarks', '.']; import accelerator_check, common, diffusion, resample_op, "
            "compare_pytorch; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'tensorflow', 'tensorflow_datasets', 'clu'}))")
  child = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert child.returncode == 0, child.stderr[-3000:]
  assert child.stdout.split("\n")[0] == "[]"


# ------------------------------------------------------------------------------------------------ batch search


def _fake_measure(fits_up_to: int, per_image: float = 1.0, fixed: float = 10.0, calls: list | None = None):
  """A measurement whose device peak is fixed + per_image * batch, and that runs out of memory above a batch."""

  def measure(batch: int) -> dict:
    if calls is not None:
      calls.append(batch)
    if batch > fits_up_to:
      raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 123 bytes.")
    return {"compile_s": 1.0, "step_s": 0.1, "run_s": 0.5, "peak_bytes": fixed + per_image * batch,
            "fixed_bytes": fixed}

  return measure


def test_largest_batch_jumps_to_the_largest_predicted_fit_and_backs_off_after_out_of_memory():
  calls = []
  best, attempts = accelerator_check.largest_batch((8, 16, 32, 64, 128), _fake_measure(40, calls=calls),
                                                   deadline=float("inf"), memory_limit=1e9)
  assert calls == [8, 128, 64, 32]
  assert best["batch"] == 32
  assert [a["outcome"] for a in attempts] == ["ok", "out of memory", "out of memory", "ok"]


def test_largest_batch_skips_batches_predicted_not_to_fit():
  calls = []
  # Peak 10 + batch bytes: 42 predicted for 32 (under 95% of 50), 74 for 64.
  best, attempts = accelerator_check.largest_batch((8, 16, 32, 64, 128), _fake_measure(1000, calls=calls),
                                                   deadline=float("inf"), memory_limit=50)
  assert calls == [8, 32] and best["batch"] == 32
  assert [a["batch"] for a in attempts if a["outcome"].startswith("not tried: predicted")] == [64, 128]


def test_largest_batch_without_memory_statistics_goes_up_one_candidate_at_a_time():
  calls = []
  measure = lambda batch: calls.append(batch) or {"compile_s": 1.0, "step_s": 0.1}
  best, _ = accelerator_check.largest_batch((1, 2, 4), measure, deadline=float("inf"))
  assert calls == [1, 2, 4] and best["batch"] == 4


def test_largest_batch_starts_at_the_first_candidate_and_stops_when_time_runs_out():
  now = [0.0]

  def measure(batch):
    now[0] += 10.0 + batch  # The attempt's time grows with the batch.
    return {"compile_s": 10.0, "step_s": 0.1, "run_s": float(batch)}

  best, attempts = accelerator_check.largest_batch((4, 2, 8, 16), measure, deadline=40.0, clock=lambda: now[0])
  # 4 ends at 14 s; 8 is predicted to take 14 + 4 s and ends at 32 s; 16 would take another 18 + 8 s.
  assert best["batch"] == 8
  assert [(a["batch"], a["outcome"].split(":")[0]) for a in attempts] == [(4, "ok"), (8, "ok"), (16, "not tried")]


def test_largest_batch_raises_when_nothing_fits_and_passes_other_errors_through():
  with pytest.raises(MemoryError, match="out of memory at batch 2"):
    accelerator_check.largest_batch((4, 2), _fake_measure(1), deadline=float("inf"), memory_limit=1e9)

  def broken(batch):
    raise ValueError("a bug, not memory")

  with pytest.raises(ValueError, match="a bug"):
    accelerator_check.largest_batch((1, 2), broken, deadline=float("inf"))
