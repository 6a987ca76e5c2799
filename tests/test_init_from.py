"""init_from: a CAR run's params start ARIN's CAR exactly; checkpoint locations; mismatches are listed."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import load_config
from test_arin import tiny_arin_config, trees_equal

from muraljax import tasks
from muraljax.train import init_from, loop
from muraljax.train.state import TrainState


def tiny_car_config():
  """A CAR smoke config with the CAR part of `tiny_arin_config`, so its checkpoints fit ARIN's 'car' subtree."""
  c = load_config("car", "smoke")
  arin = tiny_arin_config()
  c.model = arin.model.car
  c.data = arin.data
  c.train.update(arin.train)
  c.train.num_steps = 1
  c.mesh.num_devices = 1
  return c


@pytest.fixture(scope="module")
def car_run(tmp_path_factory):
  """(workdir, final params) of a one-step CAR run."""
  workdir = tmp_path_factory.mktemp("car")
  return workdir, loop.run(tiny_car_config(), str(workdir)).params


def abstract_arin_params(**car_model):
  config = tiny_arin_config()
  config.model.car.update(car_model)
  batch = {key: jax.ShapeDtypeStruct((1, 32, 32, c), np.float32) for key, c in (("damaged", 3), ("clean", 3),
                                                                                  ("mask", 1))}
  return jax.eval_shape(tasks.get_task(config).init, jax.random.PRNGKey(0), batch)


def test_a_car_checkpoint_initialises_arins_car_subtree_exactly(car_run, tmp_path):
  car_workdir, car_params = car_run
  config = tiny_arin_config("hinet", num_steps=1)
  config.init_from.checkpoint = str(car_workdir)
  config.init_from.into = "car"
  state = loop.run(config, str(tmp_path))
  assert trees_equal(state.params["car"], car_params)  # Loaded, then kept frozen by phase 'hinet'.


def test_step_and_checkpoints_folders_resolve_to_the_same_checkpoint(car_run):
  car_workdir, _ = car_run
  expected = car_workdir / "checkpoints" / "1" / "state"
  for path in (car_workdir, car_workdir / "checkpoints", car_workdir / "checkpoints" / "1"):
    assert init_from.state_item_dir(str(path)) == expected


def test_mismatched_params_are_all_listed(car_run):
  car_workdir, _ = car_run
  wider = abstract_arin_params(n_feats=16)["car"]
  with pytest.raises(init_from.InitFromError) as error:
    init_from.restore_params(str(car_workdir), wider)
  message = str(error.value)
  assert "do not fit the model" in message and "init from a checkpoint of the same architecture" in message
  assert "upscaler/head_0/kernel: checkpoint (3, 3, 3, 8) vs model (3, 3, 3, 16)" in message
  assert "upscaler/tail_1/kernel: checkpoint (3, 3, 8, 3) vs model (3, 3, 16, 3)" in message
  assert "resampler" not in message  # The resampler has no width setting: it matches.

  with pytest.raises(init_from.InitFromError) as error:
    init_from.restore_params(str(car_workdir), abstract_arin_params())  # Forgot into='car'.
  message = str(error.value)
  assert "missing car/resampler/ds_1_1/kernel (5, 5, 3, 64)" in message
  assert "missing hinet/conv_01/kernel" in message
  assert "unexpected resampler/ds_1_1/kernel (5, 5, 3, 64)" in message


def test_bad_locations_are_refused(tmp_path, car_run):
  with pytest.raises(init_from.InitFromError, match="holds no muraljax checkpoint; point it at a workdir"):
    init_from.state_item_dir(str(tmp_path / "missing"))
  state = TrainState(step=0, params=abstract_arin_params(), opt_state=None, rng=None, tx=None)
  config = load_config("arin", "smoke").init_from
  config.checkpoint, config.into = str(car_run[0]), "car/upscaler/nope"
  message = r"names no subtree .*no 'car/upscaler/nope'.*pick the next key from \['add_mean'"
  with pytest.raises(init_from.InitFromError, match=message):
    init_from.initialise(state, config)
