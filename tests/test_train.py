"""The generic trainer with HINet: overfitting, exact resume, sharding equivalence, divergence, bad layouts."""

from __future__ import annotations

import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config, short_run

from muraljax import tasks
from muraljax.data import pipeline
from muraljax.train import checkpoint, loop, sharding
from muraljax.train.state import create_train_state, make_optimizer


def tiny_config(**train):
  """The smoke config shrunk further: a 2-level HINet on 32 px patches, evaluation off, one device."""
  c = load_config("hinet", "smoke")
  c.model.wf = 4
  c.model.depth = 2
  return short_run(c, 32, dict(batch_size=8, num_steps=6, checkpoint_every=3) | train)


def read_losses(workdir: pathlib.Path) -> dict[int, float]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return {r["step"]: r["train/loss"] for r in map(json.loads, lines) if "train/loss" in r}


def test_overfitting_one_batch_drives_the_loss_down():
  config = load_config("hinet", "smoke")
  task = tasks.get_task(config)
  batch = next(iter(pipeline.train_loader(config.data, global_batch_size=4, seed=0)))
  batch = jax.tree.map(jnp.asarray, batch)
  tx = make_optimizer(config.optimizer, num_steps=60)
  state = create_train_state(task, tx, jax.random.PRNGKey(0), batch)

  @jax.jit
  def step(state):
    (loss, _), grads = jax.value_and_grad(task.loss, has_aux=True)(state.params, batch, state.rng)
    return state.apply_gradients(grads), loss

  losses = []
  for _ in range(60):
    state, loss = step(state)
    losses.append(float(loss))
  # The loss is -PSNR (dB) summed over both stages with weight 0.5: a drop of 3 is ~3 dB better restorations.
  assert np.mean(losses[-5:]) < losses[0] - 3.0, losses


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
  config = tiny_config(ema_decay=0.9)
  straight = loop.run(config, str(tmp_path / "straight"))
  loop.run(config, str(tmp_path / "resumed"), stop_after_step=4)
  assert max(read_losses(tmp_path / "resumed")) == 4
  resumed = loop.run(config, str(tmp_path / "resumed"))

  assert int(resumed.step) == int(straight.step) == 6
  assert read_losses(tmp_path / "resumed") == read_losses(tmp_path / "straight")
  jax.tree.map(np.testing.assert_array_equal, resumed.params, straight.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.opt_state, straight.opt_state)
  jax.tree.map(np.testing.assert_array_equal, resumed.ema_params, straight.ema_params)
  # The average trails the params: 0.9 * previous average + 0.1 * current params, from the initial params.
  assert not np.allclose(jax.tree.leaves(resumed.ema_params)[0], jax.tree.leaves(resumed.params)[0])


@pytest.mark.parametrize("mesh_shape", [{"data": 8, "fsdp": 1}, {"data": 2, "fsdp": 4},
                                        {"data": 2, "fsdp": 2, "tensor": 2}])
def test_sharded_step_matches_the_single_device_step(tmp_path, mesh_shape):
  single = loop.run(tiny_config(num_steps=1), str(tmp_path / "single"))
  config = tiny_config(num_steps=1)
  config.mesh.num_devices = 8
  config.mesh.shape = mesh_shape
  config.mesh.fsdp_min_size = 64
  sharded = loop.run(config, str(tmp_path / "sharded"))

  np.testing.assert_allclose(read_losses(tmp_path / "sharded")[1], read_losses(tmp_path / "single")[1],
                             rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), sharded.params,
               single.params)
  for axis in ("fsdp", "tensor"):
    if mesh_shape.get(axis, 1) > 1:
      split = [x for x in jax.tree.leaves(sharded.params) if axis in x.sharding.spec]
      assert split, f"{axis} should split the larger parameters"
      assert all(x.addressable_shards[0].data.size <= x.size // mesh_shape[axis] for x in split)


def test_a_nan_loss_stops_the_run_keeping_the_last_good_checkpoint(tmp_path, monkeypatch):
  original = pipeline.train_loader

  class IteratorWithACorruptFifthBatch:
    def __init__(self, iterator):
      self.iterator, self.count = iterator, 0

    def __next__(self):
      batch, self.count = next(self.iterator), self.count + 1
      corrupt = {k: np.full_like(v, np.nan) for k, v in batch.items() if v.dtype == np.float32}
      return batch | corrupt if self.count == 5 else batch

    def get_state(self):
      return self.iterator.get_state()

    def set_state(self, state):
      self.iterator.set_state(state)

  class Loader:
    def __init__(self, *args, **kwargs):
      self.loader = original(*args, **kwargs)

    def __iter__(self):
      return IteratorWithACorruptFifthBatch(iter(self.loader))

  monkeypatch.setattr(pipeline, "train_loader", Loader)
  with pytest.raises(loop.TrainingDiverged, match="at step 5 .* last good checkpoint is step 3"):
    loop.run(tiny_config(num_steps=10), str(tmp_path))
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["3"]


def test_a_batch_that_does_not_divide_the_devices_is_refused(tmp_path):
  config = tiny_config(batch_size=6)
  config.mesh.num_devices = 8
  with pytest.raises(sharding.ShardingError, match="batch_size=6 is not divisible by the 8 data-parallel"):
    loop.run(config, str(tmp_path))


@pytest.mark.parametrize("shape, message", [
    ({"data": 3, "fsdp": 1}, "multiplies to 3 but 8 devices"),
    ({"data": -1, "fsdp": 3}, "not a multiple of 3"),
    ({"data": -1, "model": 2}, "Unknown mesh axes"),
])
def test_impossible_meshes_are_refused(shape, message):
  config = tiny_config().mesh
  config.num_devices = 8
  config.shape = shape
  with pytest.raises(sharding.ShardingError, match=message):
    sharding.make_mesh(config)


def test_a_checkpoint_saved_on_one_mesh_restores_on_another(tmp_path):
  config = tiny_config(num_steps=2, checkpoint_every=2)
  config.mesh.update(num_devices=8, shape={"data": 2, "fsdp": 4}, fsdp_min_size=64)
  saved = loop.run(config, str(tmp_path))

  config.mesh.update(num_devices=2, shape={"data": 2, "fsdp": 1})
  restored = loop.run(config, str(tmp_path))  # Already at num_steps: restores and returns.
  assert int(restored.step) == 2
  assert all(len(x.sharding.device_set) == 2 for x in jax.tree.leaves(restored.params))
  jax.tree.map(np.testing.assert_array_equal, restored.params, saved.params)
  jax.tree.map(np.testing.assert_array_equal, restored.opt_state, saved.opt_state)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> pathlib.Path:
  """A tiny run stopped at step 6, checkpoints at 3 and 6 (of 9 steps)."""
  workdir = tmp_path_factory.mktemp("stopped")
  loop.run(tiny_config(num_steps=9), str(workdir), stop_after_step=6)
  return workdir


def _truncate_largest_file(folder: pathlib.Path) -> None:
  largest = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  largest.write_bytes(largest.read_bytes()[:64])


def _flip_bytes_of_the_largest_file(folder: pathlib.Path) -> None:
  largest = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  data = bytearray(largest.read_bytes())
  data[len(data) // 2:len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2:len(data) // 2 + 64])
  largest.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [
    _truncate_largest_file,
    lambda step: shutil.rmtree(step / "state"),
    lambda step: (step / "state" / "manifest.ocdbt").unlink(),
    lambda step: [shutil.rmtree(p) if p.is_dir() else p.unlink() for p in list(step.iterdir())],  # an empty folder
    lambda step: (step / "state" / "_METADATA").unlink(),
    lambda step: shutil.rmtree(step / "state" / "ocdbt.process_0"),
    _flip_bytes_of_the_largest_file,
], ids=["truncated data", "no state", "no manifest", "empty step folder", "no metadata", "no ocdbt data",
        "flipped bytes"])
def test_resume_sets_a_damaged_checkpoint_aside_and_continues_from_the_newest_intact_one(stopped_run, tmp_path,
                                                                                       damage):
  workdir = tmp_path / "run"
  shutil.copytree(stopped_run, workdir)
  damage(workdir / "checkpoints" / "6")
  state = loop.run(tiny_config(num_steps=9), str(workdir))
  assert int(state.step) == 9
  names = sorted(p.name for p in (workdir / "checkpoints").iterdir())
  assert "6.damaged" in names and {"6", "9"} <= set(names)  # step 6 trained again from step 3, and saved
  assert set(read_losses(workdir)) >= {4, 5, 6, 7, 8, 9}


def test_resume_with_no_readable_checkpoint_stops_with_one_sentence(stopped_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(stopped_run, workdir)
  for step in ("3", "6"):
    shutil.rmtree(workdir / "checkpoints" / step / "state")
  with pytest.raises(ValueError, match=r"No checkpoint in .* reads back \(steps 6, 3 were damaged"):
    loop.run(tiny_config(num_steps=9), str(workdir))


def test_a_full_disk_stops_at_the_failed_save_with_one_sentence(tmp_path, monkeypatch):
  real_disk_usage = checkpoint.shutil.disk_usage
  saves = []

  def filling_disk(path):  # room for the first checkpoint only
    usage = real_disk_usage(path)
    saves.append(path)
    return usage._replace(free=usage.free if len(saves) == 1 else 1000)

  monkeypatch.setattr(checkpoint.shutil, "disk_usage", filling_disk)
  with pytest.raises(checkpoint.CheckpointSaveError,
                     match=r"The checkpoint of step 6 could not be saved .* \(0 MB free on its disk, 0 MB needed\); "
                           r"the last good one is step 3: free space"):
    loop.run(tiny_config(num_steps=9), str(tmp_path))
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["3"]
  assert max(read_losses(tmp_path)) == 6  # stopped at the failed save, not later


def test_a_failed_background_save_stops_the_run_at_the_next_step(tmp_path, monkeypatch):
  calls = []

  def failing(self):
    calls.append(1)
    if len(calls) > 4:
      raise OSError(28, "No space left on device")

  monkeypatch.setattr(checkpoint.ocp.CheckpointManager, "check_for_errors", failing)
  with pytest.raises(checkpoint.CheckpointSaveError, match=r"A checkpoint could not be saved .*No space left on "
                                                           r"device.*the last good one is step 3"):
    loop.run(tiny_config(num_steps=9), str(tmp_path))
  assert max(read_losses(tmp_path)) == 5
