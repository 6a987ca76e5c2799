"""ARIN (CAR -> HINet) and the CAR task: training phases, frozen parts, starting from a CAR run and resuming
exactly, image sizes, configs."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config, short_run
from test_diffusion_task import compilation_cache  # noqa: F401 (a fixture)
from test_train import read_losses

from muraljax import tasks
from muraljax.data import pipeline
from muraljax.data.errors import DataError
from muraljax.train import loop
from muraljax.train.state import TrainState, compile_once, make_optimizer


def tiny_arin_config(phase: str = "joint", **train):
  """The ARIN smoke config shrunk further: 1-block 8-wide EDSR, 2-level 4-wide HINet, 32 px, one device."""
  c = load_config("arin", f"smoke,{phase}")
  c.model.car.n_resblocks = 1
  c.model.car.n_feats = 8
  c.model.hinet.wf = 4
  c.model.hinet.depth = 2
  return short_run(c, 32, dict(batch_size=4, num_steps=4, checkpoint_every=2) | train)


def trees_equal(a, b) -> bool:
  return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


def trees_all_differ(a, b) -> bool:
  """Whether every trainable-looking leaf (every leaf but the fixed mean shifts) changed."""
  changed = jax.tree_util.tree_map_with_path(
      lambda path, x, y: "mean" in str(path) or not np.array_equal(x, y), a, b)
  return all(jax.tree.leaves(changed))


@functools.cache
def batch_and_initial_params():
  """One fixed batch, and ARIN params initialised once (they are the same in every phase)."""
  config = tiny_arin_config()
  batch = jax.tree.map(jnp.asarray, next(iter(pipeline.train_loader(config.data, global_batch_size=2, seed=0))))
  rng = jax.random.PRNGKey(0)
  return batch, compile_once(tasks.get_task(config).init, rng, batch)(rng, batch)


@pytest.mark.parametrize("phase", ["car", "hinet", "joint"])
def test_each_phase_overfits_one_batch_and_trains_only_its_part(phase):
  config = tiny_arin_config(phase)
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 0
  task = tasks.get_task(config)
  batch, initial = batch_and_initial_params()
  steps = 15
  state = TrainState.create(initial, make_optimizer(config.optimizer, steps, task.trainable), jax.random.PRNGKey(1))

  def step(state):
    (loss, metrics), grads = jax.value_and_grad(task.loss, has_aux=True)(state.params, batch, state.rng)
    return state.apply_gradients(grads), loss, metrics

  step = compile_once(step, state)
  losses = []
  for _ in range(steps):
    state, loss, metrics = step(state)
    losses.append(float(loss))
  if phase == "car":  # The CAR loss is mostly an L1 error in [0, 1].
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses
  else:  # The HINet loss is -PSNR in dB (two stages, weight 0.5 each): 3 lower is ~3 dB better.
    assert np.mean(losses[-3:]) < losses[0] - 3.0, losses
  assert {"car": {"car_l1", "car_loss"}, "hinet": {"hinet_loss_stage2", "hinet_loss"},
          "joint": {"car_l1", "hinet_loss"}}[phase] <= set(metrics)

  car_same, hinet_same = trees_equal(state.params["car"], initial["car"]), trees_equal(state.params["hinet"],
                                                                                      initial["hinet"])
  assert car_same == (phase == "hinet") and hinet_same == (phase == "car")
  for part in {"car": ["car"], "hinet": ["hinet"], "joint": ["car", "hinet"]}[phase]:
    assert trees_all_differ(state.params[part], initial[part]), f"some {part} params did not train"
  for net, shift in (("resampler", "sub_mean"), ("upscaler", "sub_mean"), ("upscaler", "add_mean")):
    assert trees_equal(state.params["car"][net][shift], initial["car"][net][shift])
  restored = compile_once(task.predict, state.params, batch)(state.params, batch)
  assert restored.shape == batch["clean"].shape and 0.0 <= float(restored.min()) <= float(restored.max()) <= 1.0


def test_arin_started_from_a_car_run_resumes_exactly(tmp_path, compilation_cache):  # noqa: F811
  """A CAR run's checkpoint starts ARIN's CAR (init_from, into='car'); phase 'hinet' keeps it bit-identical; a run
  interrupted after step 2 and resumed (which must ignore init_from) matches the uninterrupted one."""
  car_config = load_config("car", "smoke")
  car_config.model = tiny_arin_config().model.car
  car_config.data = tiny_arin_config().data
  car_config.train = tiny_arin_config(num_steps=1).train
  car_config.mesh.num_devices = 1
  car_params = loop.run(car_config, str(tmp_path / "car")).params

  config = tiny_arin_config("hinet")  # Its optimizer state has frozen (CAR) and trained (HINet) parts.
  config.init_from.checkpoint = str(tmp_path / "car")
  config.init_from.into = "car"
  straight = loop.run(config, str(tmp_path / "straight"))
  loop.run(config, str(tmp_path / "resumed"), stop_after_step=2)
  assert max(read_losses(tmp_path / "resumed")) == 2
  config.init_from.checkpoint = str(tmp_path / "no-such-run")  # Resuming must not read it.
  resumed = loop.run(config, str(tmp_path / "resumed"))

  assert int(resumed.step) == int(straight.step) == 4
  assert read_losses(tmp_path / "resumed") == read_losses(tmp_path / "straight")
  jax.tree.map(np.testing.assert_array_equal, resumed.params, straight.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.opt_state, straight.opt_state)
  assert trees_equal(straight.params["car"], car_params)


@pytest.mark.parametrize("name", ["car", "arin"])
def test_images_of_any_size_are_padded_and_cropped_back(name):
  config = tiny_arin_config() if name == "arin" else load_config("car", "smoke")
  task = tasks.get_task(config)
  odd = {key: jnp.zeros((2, 30, 26, channels)) for key, channels in (("damaged", 3), ("clean", 3), ("mask", 1))}
  params = jax.eval_shape(task.init, jax.random.PRNGKey(0), odd)
  assert jax.eval_shape(task.predict, params, odd).shape == (2, 30, 26, 3)


@pytest.mark.parametrize("name, patch, valid", [("car", 50, "48 or 56"), ("arin", 40, "32 or 48"),
                                                ("arin", 4, "16")])
def test_training_patches_must_suit_the_nets(name, patch, valid):
  config = load_config(name, "smoke" if name == "car" else "paper")
  config.data.patch_size = patch
  with pytest.raises(DataError, match=f"patch_size={patch} is not a multiple of .*; use {valid}"):
    tasks.get_task(config)


@pytest.mark.parametrize("name, field", [("car", "model.scale"), ("arin", "model.car.scale")])
def test_scales_other_than_2_and_4_are_refused(name, field):
  config = load_config(name, "smoke")
  if name == "car":
    config.model.scale = 3
  else:
    config.model.car.scale = 3
  with pytest.raises(ValueError, match=f"CAR resamples by 2 or 4, got {field}=3"):
    tasks.get_task(config)


def test_config_options_pick_phase_trainer_and_hinet_variant():
  paper_hinet = load_config("arin", "hinet,db")
  assert paper_hinet.arin.phase == "hinet" and tuple(paper_hinet.model.hinet.hin_levels) == (3, 4)
  assert (paper_hinet.train.batch_size, paper_hinet.data.patch_size) == (4, 128)
  paper_car = load_config("arin")
  assert (paper_car.arin.phase, paper_car.train.batch_size, paper_car.optimizer.learning_rate) == ("car", 10, 1e-4)
  assert load_config("arin", "x2").model.car.scale == 2
  assert load_config("car", "x2").model.scale == 2
  with pytest.raises(ValueError, match="exclude each other"):
    load_config("arin", "car,hinet")
  with pytest.raises(ValueError, match="Unknown arin config options"):
    load_config("arin", "tiny")
  config = tiny_arin_config()
  config.arin.phase = "both"
  with pytest.raises(ValueError, match="Unknown arin.phase 'both'"):
    tasks.get_task(config)
