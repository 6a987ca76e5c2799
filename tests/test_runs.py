"""The run folder (muraljax.runs): locations resolved to one absolute step folder, config.json read with today's
defaults for the shared fields an older run lacks, params written and read back (EMA when kept), every mismatch
listed as a fact."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import load_config

from muraljax import runs

PARAMS = {"conv": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.ones(3, np.float32)}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A run folder with params-only checkpoints at steps 3 and 7 and the smoke HINet's config.json."""
  folder = tmp_path_factory.mktemp("run")
  runs.write_params(folder, PARAMS, 3)
  runs.write_params(folder, jax.tree.map(lambda x: x + 1, PARAMS), 7)
  runs.write_config(folder, load_config("hinet", "smoke").to_json_best_effort(indent=2))
  return folder


def abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def test_a_workdir_its_checkpoints_folder_or_a_step_folder_all_name_the_latest_checkpoint(run):
  expected = run / "checkpoints" / "7" / "state"
  for path in (run, run / "checkpoints", run / "checkpoints" / "7"):
    assert runs.resolve(str(path)) / runs.STATE_ITEM == expected
  assert runs.resolve(run / "checkpoints" / "3").name == "3"
  assert runs.run_folder(runs.resolve(run)) == run
  assert runs.steps(run) == [7, 3]


def test_relative_paths_resolve_absolute(run, monkeypatch):
  monkeypatch.chdir(run)
  assert runs.resolve("checkpoints") == run / "checkpoints" / "7"
  assert runs.resolve("checkpoints").is_absolute()


def test_a_folder_without_a_checkpoint_is_a_typed_error(tmp_path):
  with pytest.raises(runs.NoCheckpoint, match="holds no muraljax checkpoint") as error:
    runs.resolve(str(tmp_path / "missing"))
  assert error.value.path == str(tmp_path / "missing")


def test_params_read_back_and_ema_is_preferred_when_kept(run, tmp_path):
  params, item = runs.load_params(runs.resolve(run), abstract(PARAMS), prefer_ema=True)
  assert item == "params"  # a params-only checkpoint
  np.testing.assert_array_equal(params["conv"]["kernel"], PARAMS["conv"]["kernel"] + 1)

  state = {"params": PARAMS, "ema_params": jax.tree.map(lambda x: x * 2, PARAMS)}
  with ocp.CheckpointManager(runs.checkpoints_dir(tmp_path), options=ocp.CheckpointManagerOptions(
      enable_async_checkpointing=False), item_handlers={"state": ocp.StandardCheckpointHandler()}) as manager:
    manager.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave(jax.tree.map(jnp.asarray, state))))
  step_dir = runs.resolve(tmp_path)
  ema, item = runs.load_params(step_dir, abstract(PARAMS), prefer_ema=True)
  assert item == "ema_params"
  np.testing.assert_array_equal(ema["conv"]["bias"], 2 * PARAMS["conv"]["bias"])
  raw, item = runs.load_params(step_dir, abstract(PARAMS))
  assert item == "params"
  np.testing.assert_array_equal(raw["conv"]["bias"], PARAMS["conv"]["bias"])


def test_mismatched_params_are_listed_as_facts(run):
  target = {"conv": {"kernel": jax.ShapeDtypeStruct((2, 4), jnp.float32)}, "head": {"w": PARAMS["conv"]["bias"]}}
  with pytest.raises(runs.ParamsMismatch) as error:
    runs.load_params(runs.resolve(run), target)
  assert error.value.differences == ["missing head/w (3,)", "unexpected conv/bias (3,)",
                                     "conv/kernel: checkpoint (2, 3) vs model (2, 4)"]
  assert error.value.step_dir == run / "checkpoints" / "7"


def test_an_older_config_gets_todays_shared_defaults_with_a_note(run, tmp_path):
  config = json.loads((run / "config.json").read_text())
  del config["train"]["compute_dtype"], config["mesh"]["rules"]
  (tmp_path / "config.json").write_text(json.dumps(config))
  (tmp_path / "checkpoints" / "5").mkdir(parents=True)
  read = runs.read_config(tmp_path / "checkpoints" / "5")
  assert read.filled == ("mesh.rules", "train.compute_dtype")
  assert read.config.train.compute_dtype == "auto" and read.config.model.wf == config["model"]["wf"]
  assert "predates the config fields mesh.rules, train.compute_dtype" in read.note
  assert runs.read_config(runs.resolve(run)).note is None


def test_a_missing_or_broken_config_is_a_typed_error(tmp_path):
  step_dir = tmp_path / "checkpoints" / "1"
  step_dir.mkdir(parents=True)
  with pytest.raises(runs.NoConfig) as missing:
    runs.read_config(step_dir)
  assert missing.value.step_dir == step_dir
  (tmp_path / "config.json").write_text("{")
  with pytest.raises(runs.UnreadableConfig) as broken:
    runs.read_config(step_dir)
  assert broken.value.path == tmp_path / "config.json" and "line 1" in broken.value.reason


def test_config_is_written_whole(tmp_path):
  runs.write_config(tmp_path, '{"task": "hinet"}')
  assert json.loads((tmp_path / "config.json").read_text()) == {"task": "hinet"}
  assert os.listdir(tmp_path) == ["config.json"]
