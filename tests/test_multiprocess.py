"""Two processes over jax.distributed on 127.0.0.1 train exactly like one process with the same devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import portpicker
from conftest import REPO

TINY = ["--config.model.wf=4", "--config.model.depth=2", "--config.data.image_size=48",
        "--config.data.patch_size=32", "--config.data.eval_size=32", "--config.data.eval_images=2",
        "--config.train.num_steps=3", "--config.train.log_every=1", "--config.train.eval_every=3",
        "--config.train.checkpoint_every=3"]


def launch(workdir, process_id: int | None, port: int) -> subprocess.Popen:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  if process_id is None:
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  else:
    env.update(XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
               JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(process_id))
  command = [sys.executable, "-m", "muraljax.main", "--config", "configs/hinet.py:smoke", f"--workdir={workdir}",
             *TINY]
  return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr[-3000:]


def losses(workdir) -> list[float]:
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [r["train/loss"] for r in records if "train/loss" in r]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
  port = portpicker.pick_unused_port()
  workers = [launch(tmp_path / "two", i, port) for i in (0, 1)]
  single = launch(tmp_path / "one", None, port)
  for process in [*workers, single]:
    finish(process)

  # The global batch is assembled from each host's half, so the two runs see the same examples.
  np.testing.assert_allclose(losses(tmp_path / "two"), losses(tmp_path / "one"), rtol=1e-5)
  # Only process 0 writes images and metrics; both took part in the checkpoint.
  assert len(list((tmp_path / "two" / "images").iterdir())) == 1
  assert (tmp_path / "two" / "checkpoints" / "3").is_dir()
