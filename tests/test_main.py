"""The command line: a short end-to-end run, and one clear sentence (no traceback) for each user mistake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import REPO

TINY = ["--config.model.wf=4", "--config.model.depth=2", "--config.data.image_size=48",
        "--config.data.patch_size=32", "--config.data.eval_size=32", "--config.data.eval_images=2",
        "--config.train.num_steps=4", "--config.train.log_every=2", "--config.train.eval_every=4",
        "--config.train.checkpoint_every=2"]


def train(workdir, *overrides, devices: int = 1, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", TF_CPP_MIN_LOG_LEVEL="3",
             **(env or {}))
  command = [sys.executable, "-m", "muraljax.main", "--config", "configs/hinet.py:smoke",
             f"--workdir={workdir}", *TINY, *overrides]
  return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def assert_one_sentence_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
  assert result.returncode != 0
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  last_line = result.stderr.strip().splitlines()[-1]
  for fragment in fragments:
    assert fragment in last_line, last_line


def test_training_from_the_command_line_writes_checkpoints_metrics_and_images(tmp_path):
  result = train(tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["2", "4"]
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records if "train/loss" in r] == [2, 4]
  evaluation = next(r for r in records if "eval/psnr" in r)
  assert {"eval/psnr_masked", "eval/ssim", "eval/ssim_masked", "eval/damaged_psnr"} <= set(evaluation)
  assert (tmp_path / "images" / "eval_00000004.png").exists()
  assert list(tmp_path.glob("events.out.tfevents.*"))
  saved_config = json.loads((tmp_path / "config.json").read_text())
  assert saved_config["task"] == "hinet" and saved_config["model"]["wf"] == 4
  assert {"perf/images_per_sec", "perf/tflops_per_device"} <= set(records[0])


def test_a_misspelt_config_field_is_named(tmp_path):
  result = train(tmp_path, "--config.train.batchsize=8")
  assert_one_sentence_error(result, "batchsize", "batch_size")


def test_a_missing_image_folder_is_reported(tmp_path):
  result = train(tmp_path, "--config.data.source=folder", f"--config.data.folder={tmp_path / 'nowhere'}")
  assert_one_sentence_error(result, "Error:", str(tmp_path / "nowhere"))


def test_a_batch_that_does_not_divide_the_devices_is_reported(tmp_path):
  result = train(tmp_path, "--config.train.batch_size=6", devices=4)
  assert_one_sentence_error(result, "Error:", "batch_size=6", "multiple of 4")


def test_a_missing_coordinator_is_reported_before_any_compilation(tmp_path):
  env = {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
  result = train(tmp_path, "--coordinator_timeout=2", env=env)
  assert_one_sentence_error(result, "no coordinator answered at 127.0.0.1:1")


def test_a_model_setting_out_of_range_is_reported(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  command = [sys.executable, "-m", "muraljax.main", "--config", "configs/car.py:smoke", f"--workdir={tmp_path}",
             "--config.model.scale=3"]
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert_one_sentence_error(result, "Error:", "3")


def test_a_config_file_that_cannot_be_loaded_stops_before_anything_is_written(tmp_path):
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "config.json").write_text('{"task": "hinet"}')
  for workdir in (tmp_path / "run", tmp_path / "new"):
    result = subprocess.run([sys.executable, "-m", "muraljax.main", "--config", "configs/nope.py:smoke",
                             f"--workdir={workdir}"], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert_one_sentence_error(result, "Error: --config configs/nope.py:smoke", "is not a file")
  assert (tmp_path / "run" / "config.json").read_text() == '{"task": "hinet"}'
  assert not (tmp_path / "new").exists()


def test_no_eval_images_trains_and_saves_and_another_architecture_cannot_resume(tmp_path):
  result = train(tmp_path, "--config.data.eval_images=0")
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["2", "4"]
  assert not (tmp_path / "images").exists()
  stored = (tmp_path / "config.json").read_text()
  result = train(tmp_path, "--config.data.eval_images=0", "--config.model.wf=8", "--config.train.num_steps=6")
  assert_one_sentence_error(result, "holds checkpoints of another model", "model.wf: 4 -> 8", "new --workdir")
  assert (tmp_path / "config.json").read_text() == stored


def test_an_unknown_config_variant_is_one_sentence_without_the_traceback(tmp_path):
  result = subprocess.run([sys.executable, "-m", "muraljax.main", "--config", "configs/hinet.py:bogus",
                           f"--workdir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert_one_sentence_error(result, "--config=configs/hinet.py:bogus: Unknown hinet config variant 'bogus'")
  assert "File " not in result.stderr.strip().splitlines()[-1]


def test_ctrl_c_saves_a_checkpoint_and_stops_like_sigterm(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  command = [sys.executable, "-m", "muraljax.main", "--config", "configs/hinet.py:smoke", f"--workdir={tmp_path}",
             *TINY, "--config.train.num_steps=100000", "--config.train.checkpoint_every=100000"]
  child = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
  for line in child.stderr:
    if "Compiled the train step" in line:
      break
  time.sleep(2)
  child.send_signal(signal.SIGINT)
  _, err = child.communicate(timeout=120)
  assert child.returncode == 0, err[-3000:]
  assert "SIGINT received: saving a checkpoint" in err
  steps = [int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
  assert len(steps) == 1 and 0 < steps[0] < 100000
