"""Ahead-of-time compilation of a config's train step: per-device memory under sharding, before any run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO, load_config, tiny_diffumural_config

from muraljax.train import aot, sharding


def compiled_report(config, fsdp: int) -> aot.StepReport:
  config.mesh.update(num_devices=fsdp, shape={"data": 1, "fsdp": -1}, fsdp_min_size=1024)
  config.train.batch_size = fsdp  # one image per device
  return aot.compile_train_step(config)[1]


def test_fsdp_splits_the_step_so_each_device_holds_less():
  config = tiny_diffumural_config(scales=(16,))  # The three-scale paper config compiles in the slow test below.
  config.model.block_out_channels = (32, 64)
  two, eight = compiled_report(config, 2), compiled_report(config, 8)
  assert two.params == eight.params > 100_000
  assert eight.argument_mb < 0.5 * two.argument_mb  # params, EMA and Adam moments split 8 ways instead of 2
  assert eight.total_mb < two.total_mb
  assert eight.flops_per_device > 0 and "per device" in eight.summary()


def test_a_layout_that_cannot_work_is_refused_before_compiling():
  config = load_config("diffumural", "smoke")
  config.mesh.update(num_devices=8, shape={"data": 8, "fsdp": 1})
  config.train.batch_size = 12
  with pytest.raises(sharding.ShardingError, match="batch_size=12 is not divisible by the 8"):
    aot.compile_train_step(config)


@pytest.mark.slow
def test_the_paper_diffumural_step_compiles_on_an_8_device_fsdp_mesh():
  config = load_config("diffumural", "paper")
  report = compiled_report(config, 8)
  assert report.params > 100_000_000 and report.flops_per_device > 1e12


def test_compile_only_from_the_command_line_prints_the_per_device_memory():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", TF_CPP_MIN_LOG_LEVEL="3")
  command = [sys.executable, "-m", "muraljax.main", "--config", "configs/hinet.py:smoke", "--compile_only",
             "--config.model.wf=4", "--config.model.depth=2", "--config.data.patch_size=32",
             "--config.mesh.shape.data=1", "--config.mesh.shape.fsdp=2"]
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Train step on mesh {'data': 1, 'fsdp': 2, 'tensor': 1}" in result.stdout and "MB" in result.stdout
