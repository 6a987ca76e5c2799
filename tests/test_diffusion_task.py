"""DiffuMural's task on the generic trainer: overfitting, frozen base, inpainting, exact resume, config errors."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config

from muraljax import tasks
from muraljax.data import pipeline
from muraljax.train import loop
from muraljax.train.state import TrainState, create_train_state, make_optimizer


def tiny_config(**train):
  """The smoke config shrunk further: channels 8-16, attention in the mid block only, 16 px patches, 4 sampling
  steps, evaluation off, checkpoints only where a run stops, one device."""
  c = load_config("diffumural", "smoke")
  c.model.block_out_channels = (8, 16)
  c.model.down_block_types = ("DownBlock2D", "DownBlock2D")
  c.model.up_block_types = ("UpBlock2D", "UpBlock2D")
  c.model.norm_num_groups = 4
  c.model.attention_head_dim = None
  c.model.controlnet_conditioning_channels = (8,)
  c.sampling.steps = 4
  c.data.image_size = 48
  c.data.patch_size = 16
  c.data.eval_size = 16
  c.data.eval_images = 2
  c.train.batch_size = 4
  c.train.num_steps = 6
  c.train.log_every = 1
  c.train.eval_every = 0
  c.train.checkpoint_every = 100
  c.mesh.num_devices = 1
  c.train.update(train)
  return c


def first_batch(config):
  batch = next(iter(pipeline.train_loader(config.data, global_batch_size=config.train.batch_size, seed=0)))
  return jax.tree.map(jnp.asarray, batch)


@pytest.fixture(scope="module")
def trained():
  """(task, batch, grad_fn, initial params, frozen-base params after one step, params after 50 steps on one batch
  with fixed timesteps and noise), sharing one compiled gradient program."""
  config = tiny_config()
  config.diffusion.condition_dropout = 0.0
  config.optimizer.warmup_steps = 0
  task = tasks.get_task(config)
  batch = first_batch(config)
  state = create_train_state(task, make_optimizer(config.optimizer, num_steps=50), jax.random.PRNGKey(0), batch)
  initial = jax.tree.map(np.asarray, state.params)
  rng = jax.random.PRNGKey(1)  # The same timesteps and noise every step: one fixed regression problem.
  grad_fn = jax.jit(jax.value_and_grad(task.loss, has_aux=True))

  config.model.freeze_base = True
  frozen_tx = make_optimizer(config.optimizer, num_steps=50, trainable=tasks.get_task(config).trainable)
  frozen = TrainState.create(state.params, frozen_tx, state.rng)
  frozen = frozen.apply_gradients(grad_fn(frozen.params, batch, rng)[1])

  apply_gradients = jax.jit(TrainState.apply_gradients)
  losses = []
  for _ in range(50):
    (loss, _), grads = grad_fn(state.params, batch, rng)
    state = apply_gradients(state, grads)
    losses.append(float(loss))
  return task, batch, initial, frozen.params, state.params, losses


def test_overfitting_one_batch_drives_the_loss_down(trained):
  losses = trained[-1]
  assert np.mean(losses[-5:]) < 0.3 * losses[0], losses


def test_frozen_base_trains_only_the_controlnet(trained):
  _, _, initial, frozen, _, _ = trained
  jax.tree.map(np.testing.assert_array_equal, frozen["unet"], initial["unet"])
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), frozen["controlnet"], initial["controlnet"])
  assert changed["controlnet_mid_block"]["kernel"] and all(jax.tree.leaves(changed["controlnet_down_blocks_0"]))


def test_predict_inpaints_only_the_damaged_pixels(trained):
  task, batch, _, _, params, _ = trained
  restored = np.asarray(jax.jit(task.predict)(params, batch))
  damaged, intact = np.asarray(batch["damaged"]), np.broadcast_to(np.asarray(batch["mask"]) < 0.5, restored.shape)
  np.testing.assert_array_equal(restored[intact], damaged[intact])
  assert np.all(np.isfinite(restored)) and restored.min() >= 0 and restored.max() <= 1
  assert not np.array_equal(restored[~intact], damaged[~intact])


@pytest.fixture
def compilation_cache(tmp_path):
  """A persistent XLA cache for one test: runs of the same config compile each program once."""
  options = {"jax_compilation_cache_dir": str(tmp_path / "xla_cache"),
             "jax_persistent_cache_min_compile_time_secs": 0.0, "jax_persistent_cache_min_entry_size_bytes": 0}
  previous = {name: getattr(jax.config, name) for name in options}
  for name, value in options.items():
    jax.config.update(name, value)
  yield
  for name, value in previous.items():
    jax.config.update(name, value)


def read_losses(workdir: pathlib.Path) -> dict[int, float]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return {r["step"]: r["train/loss"] for r in map(json.loads, lines) if "train/loss" in r}


def test_resumed_run_matches_an_uninterrupted_one(tmp_path, compilation_cache):
  config = tiny_config(ema_decay=0.9)
  straight = loop.run(config, str(tmp_path / "straight"))
  loop.run(config, str(tmp_path / "resumed"), stop_after_step=4)
  resumed = loop.run(config, str(tmp_path / "resumed"))

  assert int(resumed.step) == int(straight.step) == 6
  assert read_losses(tmp_path / "resumed") == read_losses(tmp_path / "straight")
  jax.tree.map(np.testing.assert_array_equal, resumed.params, straight.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.ema_params, straight.ema_params)


def test_bad_settings_and_missing_contours_are_refused():
  config = tiny_config()
  config.sampling.sampler = "euler"
  with pytest.raises(ValueError, match="Unknown sampling.sampler 'euler'"):
    tasks.get_task(config)
  config = tiny_config()
  config.diffusion.prediction = "x0"
  with pytest.raises(ValueError, match="Unknown prediction type 'x0'"):
    tasks.get_task(config)
  task = tasks.get_task(tiny_config())
  batch = {"damaged": jnp.zeros((1, 16, 16, 3)), "mask": jnp.zeros((1, 16, 16, 1))}
  with pytest.raises(ValueError, match="config.data.contours is set but the batch has no 'contour'"):
    task.condition(batch)
