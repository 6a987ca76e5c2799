"""muraljax.train.summaries: event files TensorBoard's own reader parses, no TensorFlow imported, the console-only
fallback without `tensorboard`, and the progress report."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from muraljax.train import summaries


def test_crc32c_matches_the_standard_check_value():
  assert summaries.crc32c(b"123456789") == 0xE3069283
  assert summaries.crc32c(b"") == 0


def test_tensorboard_reads_back_scalars_images_and_hparams(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  rng = np.random.default_rng(0)
  grid = rng.integers(0, 256, (1, 20, 30, 3), dtype=np.uint8)
  floats = rng.random((2, 8, 6, 1)).astype(np.float32)
  writer = summaries.MetricWriter(str(tmp_path), write_files=True)
  writer.write_hparams({"seed": 3, "task": "hinet"})
  writer.write_scalars(2, {"train/loss": 0.5, "perf/images_per_sec": 123.25})
  writer.write_scalars(4, {"train/loss": 0.25})
  writer.write_images(4, {"eval/grid": grid, "eval/grey": floats})
  writer.close()

  assert "[2] perf/images_per_sec=123.25, train/loss=0.5" in caplog.messages
  files = list(tmp_path.glob("events.out.tfevents.*"))
  assert len(files) == 1
  events = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={
      event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0})
  events.Reload()
  assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(2, 0.5), (4, 0.25)]
  assert [(e.step, e.value) for e in events.Scalars("perf/images_per_sec")] == [(2, 123.25)]

  [image] = events.Images("eval/grid")
  assert (image.step, image.width, image.height) == (4, 30, 20)
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(image.encoded_image_string))), grid[0])
  for i in range(2):  # floats in [0, 1] become uint8, rounded; N > 1 images are tagged name/i
    [image] = events.Images(f"eval/grey/{i}")
    decoded = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)))
    np.testing.assert_array_equal(decoded, np.round(floats[i, ..., 0] * 255).astype(np.uint8))

  [hparams] = events.Tensors("hparams")
  table = hparams.tensor_proto.string_val[0].decode()
  assert "| seed | 3 |" in table and "| task | hinet |" in table


def test_other_processes_only_log(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  writer = summaries.MetricWriter(str(tmp_path / "run"), write_files=False)
  writer.write_scalars(7, {"train/loss": 1.5})
  writer.write_images(7, {"eval/grid": np.zeros((1, 4, 4, 3), np.uint8)})
  writer.close()
  assert "[7] train/loss=1.5" in caplog.messages
  assert not (tmp_path / "run").exists()


_WRITE = """
import json, sys
from absl import logging
import numpy as np
logging.set_verbosity(logging.INFO)
from muraljax.train import summaries
writer = summaries.MetricWriter(sys.argv[1])
writer.write_hparams({"seed": 0})
writer.write_scalars(1, {"train/loss": 0.5})
writer.write_images(1, {"eval/grid": np.zeros((1, 8, 8, 3), np.float32)})
writer.close()
print(json.dumps(sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))))
"""


def _write_in_subprocess(workdir, prelude: str = "") -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", prelude + _WRITE, str(workdir)], cwd=REPO, capture_output=True,
                        text=True, timeout=300)


def test_writing_imports_no_tensorflow(tmp_path):
  pytest.importorskip("tensorflow")  # installed with the datasets extra: only then is the check meaningful
  finished = _write_in_subprocess(tmp_path)
  assert finished.returncode == 0, finished.stderr[-3000:]
  assert json.loads(finished.stdout.strip().splitlines()[-1]) == []
  assert list(tmp_path.glob("events.out.tfevents.*"))


def test_without_tensorboard_metrics_only_go_to_the_console(tmp_path):
  finished = _write_in_subprocess(tmp_path, "import sys\nsys.modules['tensorboard'] = None\n")
  assert finished.returncode == 0, finished.stderr[-3000:]
  off = [line for line in finished.stderr.splitlines() if "event files are off" in line]
  assert len(off) == 1 and "`tensorboard` is not installed" in off[0]
  assert "[1] train/loss=0.5" in finished.stderr
  assert not list(tmp_path.iterdir())


class _Recorder:
  def __init__(self):
    self.scalars = []

  def write_scalars(self, step, scalars):
    self.scalars.append((step, sorted(scalars)))


def test_progress_reports_every_few_steps_and_at_the_last(caplog):
  caplog.set_level(logging.INFO, logger="absl")
  recorder = _Recorder()
  progress = summaries.ReportProgress(num_train_steps=5, writer=recorder, every_steps=2)
  reported = [step for step in range(1, 6) if progress(step)]  # the first call starts the clock
  assert reported == [2, 4, 5]
  assert recorder.scalars == [(step, ["steps_per_sec", "uptime"]) for step in (2, 4, 5)]
  assert any("100.0% (5/5), ETA: 0m" in message for message in caplog.messages)
  assert summaries.format_seconds(123456.7) == "1d10h17m"
