"""The evaluation protocol on a smoke HINet trained here: the CLI writes JSON, Markdown and the case sheet; metrics
agree with scikit-image; prepared datasets are scored on whole images with their masks, per hole-ratio bucket."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, load_config
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from muraljax.data import prepare
from muraljax.evaluate import protocol, published
from muraljax.train import loop


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  config = load_config("hinet", "smoke")
  config.model.wf, config.model.depth = 4, 2
  config.data.update(image_size=48, patch_size=32, eval_size=32, eval_images=3)
  config.train.update(num_steps=2, log_every=1, eval_every=0, checkpoint_every=2)
  workdir = tmp_path_factory.mktemp("hinet")
  loop.run(config, str(workdir))
  return workdir


def test_cli_writes_json_markdown_and_the_case_sheet(workdir, tmp_path):
  command = [sys.executable, "-m", "muraljax.evaluate", f"--checkpoint={workdir}", f"--output_dir={tmp_path}",
             "--conditions=clean,gn16,jpeg30", "--anchors"]
  finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert finished.returncode == 0, finished.stderr[-3000:]
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["task"] == "hinet" and results["step"] == 2 and results["images"] == 3
  assert set(results["conditions"]) == {"clean", "gn16", "jpeg30"}
  means = results["conditions"]["clean"]["mean"]
  assert set(means) == set(protocol.METRICS) and all(means[m] is not None for m in ("psnr", "lpips", "ccon"))
  assert means["dssim"] == pytest.approx(1 - means["ssim"], abs=1e-6)
  assert set(results["cases"]) == {"best", "median", "worst"}
  report = (tmp_path / "results.md").read_text()
  assert "| HINet-DB | 33.32 | 0.900 | 0.100 | 0.080 |" in report
  assert "| ARIN | 31.00 / 0.860 / 0.150 | 28.50 / 0.760 / 0.210 | 28.30 / 0.800 / 0.230 |" in report
  assert "**ours** (hinet, step 2)" in report and "1 - SSIM" in report
  with Image.open(tmp_path / "cases.png") as sheet:  # 3 rows x 4 columns of 256 px cells, 2 px borders
    assert sheet.size == (4 * 256 + 5 * 2, 3 * 256 + 4 * 2)
  assert report in finished.stdout
  anchors = (tmp_path / "anchors.md").read_text()  # --anchors: the model beside classical inpainting, one table
  rows = [line.split(" | ")[0].lstrip("| ") for line in anchors.split("\n\n")[1].splitlines()[2:]]
  assert rows == ["damaged input", "OpenCV Telea (r=5)", "OpenCV Navier-Stokes (r=5)", "scikit-image biharmonic",
                  "muraljax harmonic prefill", f"muraljax {workdir}"]
  assert set(json.loads((tmp_path / "anchors.json").read_text())) == set(rows)


@pytest.mark.parametrize("problem", ["output below a file", "no checkpoint"])
def test_bad_folders_are_refused_before_evaluating(workdir, tmp_path, problem):
  (tmp_path / "file").write_text("x")
  checkpoint, output_dir = (workdir, tmp_path / "file" / "out") if problem == "output below a file" else (tmp_path,
                                                                                                         tmp_path)
  command = [sys.executable, "-m", "muraljax.evaluate", f"--checkpoint={checkpoint}", f"--output_dir={output_dir}"]
  finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert finished.returncode == 2 and "Traceback" not in finished.stderr
  expected = (f"cannot be written ({tmp_path / 'file'} is a file, not a folder)" if problem == "output below a file"
              else f"--checkpoint {tmp_path} holds no muraljax checkpoint")
  assert expected in finished.stderr.strip().splitlines()[-1]


def test_per_image_metrics_agree_with_scikit_image(workdir, tmp_path):
  config = protocol.run_config(workdir / "checkpoints" / "2")
  cases, _ = protocol.load_cases(config.data, max_images=2)
  predict = protocol.load_predict(config, str(workdir))
  scores = protocol.evaluate(predict, cases, ("clean",))
  for case, restored, image in zip(cases, scores["restored"], scores["per_image"]):
    assert image["clean"]["psnr"] == pytest.approx(
        peak_signal_noise_ratio(case.clean, restored, data_range=1.0), abs=1e-3)
    assert image["clean"]["ssim"] == pytest.approx(structural_similarity(
        case.clean, restored, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
        channel_axis=-1), abs=1e-4)
    damaged = case.mask[..., 0] > 0
    masked_mse = np.mean((case.clean[damaged] - restored[damaged]) ** 2)
    assert image["clean"]["psnr_masked"] == pytest.approx(10 * np.log10(1 / masked_mse), abs=1e-3)


def test_prepared_dataset_whole_images_with_their_masks_and_buckets(workdir, tmp_path):
  rng = np.random.default_rng(0)
  for i, rows in enumerate((2, 10, 20)):  # hole ratios 0.05, 0.25, 0.5
    painting = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    mask = np.zeros((40, 48), np.uint8)
    mask[:rows] = 255
    os.makedirs(tmp_path / "manual" / "test" / "gt", exist_ok=True)
    os.makedirs(tmp_path / "manual" / "test" / "mask", exist_ok=True)
    Image.fromarray(painting).save(tmp_path / "manual" / "test" / "gt" / f"{i}.png")
    Image.fromarray(mask).save(tmp_path / "manual" / "test" / "mask" / f"{i}.png")
  directory = os.fspath(prepare.build("dunhuang_challenge", str(tmp_path / "manual"), str(tmp_path / "tfds")).data_dir)
  config = protocol.run_config(workdir / "checkpoints" / "2")
  results = protocol.run(config, str(workdir), str(tmp_path / "out"), data=f"{directory}:test", conditions=("clean",))
  assert results["images"] == 3 and "whole images, dataset masks" in results["data"]
  assert [round(image["hole_ratio"], 2) for image in results["per_image"]] == [0.05, 0.25, 0.5]
  assert list(results["conditions"]["clean"]["buckets"]) == ["0.0-0.1", "0.2-0.3", "0.5-0.6"]
  assert results["published"]["clean"]["ARIN"] == published.CLEAN["ARIN"]
  assert sorted(os.listdir(tmp_path / "out")) == ["cases.png", "results.json", "results.md"]


def test_buckets_and_missing_config():
  assert [protocol._bucket_name(r) for r in (0.0, 0.099, 0.1, 0.55, 0.6, 0.61, 1.0)] == [
      "0.0-0.1", "0.0-0.1", "0.1-0.2", "0.5-0.6", "0.5-0.6", "0.6-1.0", "0.6-1.0"]
  with pytest.raises(ValueError, match="pass the model's config with --config"):
    protocol.run_config(REPO / "tests" / "fixtures")
