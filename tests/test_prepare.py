"""`python -m muraljax.data.prepare`: builds a dataset, prints where it went and what it skipped, reuses a
build, and stops bad input with one sentence."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from conftest import REPO
from PIL import Image


def _prepare(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "muraljax.data.prepare", *args], cwd=REPO, capture_output=True,
                        text=True, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_prepare_builds_reports_and_reuses(tmp_path):
  for split in ("train", "test"):
    for key in ("001", "002"):
      (tmp_path / f"{split}_GT").mkdir(exist_ok=True)
      (tmp_path / f"{split}_mask").mkdir(exist_ok=True)
      Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(tmp_path / f"{split}_GT" / f"{key}.png")
      Image.fromarray(np.zeros((24, 32), np.uint8)).save(tmp_path / f"{split}_mask" / f"{key}_mask.png")
  os.remove(tmp_path / "train_GT" / "002.png")
  data_dir = tmp_path / "data"
  first = _prepare("dunhuang_challenge", f"--manual_dir={tmp_path}", f"--data_dir={data_dir}")
  assert first.returncode == 0, first.stderr[-2000:]
  assert f"Prepared dunhuang_challenge in {data_dir}/dunhuang_challenge/1.0.0" in first.stdout
  assert "train: 1 records" in first.stdout and "test: 2 records" in first.stdout
  assert "skipped, no ground truth: 1: 002" in first.stdout
  assert f"--config.data.dataset=dunhuang_challenge --config.data.data_dir={data_dir}" in first.stdout
  assert list((data_dir / "dunhuang_challenge" / "1.0.0").glob("*.array_record-*"))
  again = _prepare("dunhuang_challenge", f"--manual_dir={tmp_path}", f"--data_dir={data_dir}")
  assert again.returncode == 0 and "already prepared: reused" in again.stdout


def test_prepare_stops_bad_input_with_one_sentence(tmp_path):
  unknown = _prepare("imagenet", f"--manual_dir={tmp_path}")
  assert unknown.returncode != 0 and "Error: Unknown dataset 'imagenet'" in unknown.stderr
  empty = _prepare("mural_folder", f"--manual_dir={tmp_path}", f"--data_dir={tmp_path / 'data'}")
  assert empty.returncode != 0 and "Error: No train/test images found" in empty.stderr
  missing = _prepare("mural_folder", f"--manual_dir={tmp_path / 'nowhere'}", f"--data_dir={tmp_path / 'data'}")
  assert missing.returncode != 0 and "is not a directory" in missing.stderr
