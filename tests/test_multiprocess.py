"""Two processes over jax.distributed on 127.0.0.1 (started by launch/local.py) train exactly like one process
with the same devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from conftest import REPO

TINY = ["--config.model.wf=4", "--config.model.depth=2", "--config.data.image_size=48",
        "--config.data.patch_size=32", "--config.data.eval_size=32", "--config.data.eval_images=2",
        "--config.train.num_steps=3", "--config.train.log_every=1", "--config.train.eval_every=3",
        "--config.train.checkpoint_every=3"]


def train_command(workdir) -> list[str]:
  return [sys.executable, "-m", "muraljax.main", "--config", "configs/hinet.py:smoke", f"--workdir={workdir}",
          *TINY]


def start(command: list[str], devices: int = 8) -> subprocess.Popen:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> None:
  output, _ = process.communicate(timeout=300)
  assert process.returncode == 0, output[-3000:]


def losses(workdir) -> list[float]:
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [r["train/loss"] for r in records if "train/loss" in r]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
  launcher = [sys.executable, "launch/local.py", "--processes=2", "--devices-per-process=4",
              f"--log-dir={tmp_path / 'logs'}", "--", *train_command(tmp_path / "two")]
  two = start(launcher)
  one = start(train_command(tmp_path / "one"))
  finish(two)
  finish(one)

  # The global batch is assembled from each host's half, so the two runs see the same examples.
  np.testing.assert_allclose(losses(tmp_path / "two"), losses(tmp_path / "one"), rtol=1e-5)
  # Only process 0 writes images and metrics; both took part in the checkpoint.
  assert len(list((tmp_path / "two" / "images").iterdir())) == 1
  assert (tmp_path / "two" / "checkpoints" / "3").is_dir()


def test_launch_scripts_are_valid_shell():
  for script in ("launch/tpu_pod.sh", "launch/slurm.sbatch"):
    subprocess.run(["bash", "-n", script], cwd=REPO, check=True)
    checked = subprocess.run(["shellcheck", script], cwd=REPO, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
