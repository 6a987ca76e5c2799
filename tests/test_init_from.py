"""init_from on Orbax params checkpoints (written as `python -m muraljax.port` writes them): exact restore into a
subtree, a location without a checkpoint, every mismatch listed. Locations are resolved by muraljax.runs
(test_runs.py); a CAR run starting ARIN through the trainer is tested in test_arin.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_arin import tiny_arin_config, trees_equal

from muraljax import tasks
from muraljax.port import writing
from muraljax.train import init_from
from muraljax.train.state import TrainState

BATCH = {key: jax.ShapeDtypeStruct((1, 32, 32, c), jnp.float32) for key, c in (("damaged", 3), ("clean", 3),
                                                                                 ("mask", 1))}


def abstract_arin_params(**car_model):
  config = tiny_arin_config()
  config.model.car.update(car_model)
  return jax.eval_shape(tasks.get_task(config).init, jax.random.PRNGKey(0), BATCH)


def random_like(abstract, seed: int):
  leaves, treedef = jax.tree.flatten(abstract)
  rng = np.random.default_rng(seed)
  return treedef.unflatten([rng.standard_normal(x.shape).astype(x.dtype) for x in leaves])


@pytest.fixture(scope="module")
def car_checkpoint(tmp_path_factory):
  """(folder, params) of a checkpoint holding params shaped like tiny ARIN's CAR."""
  params = random_like(abstract_arin_params()["car"], seed=1)
  return writing.write(tmp_path_factory.mktemp("ported") / "car", params, {}), params


def state_of(params) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=(), rng=None, tx=None,
                    ema_params=params)


def test_params_land_exactly_in_the_named_subtree(car_checkpoint):
  folder, car_params = car_checkpoint
  fresh = jax.device_put(random_like(abstract_arin_params(), seed=2))
  config = tiny_arin_config().init_from
  config.checkpoint, config.into = str(folder), "car"
  state = init_from.initialise(state_of(fresh), config)
  assert trees_equal(state.params["car"], car_params)
  assert trees_equal(state.params["hinet"], fresh["hinet"])
  assert trees_equal(state.ema_params, state.params)  # The average starts from the loaded params.

  # The step donates params and their average together: they must not share a buffer.
  jax.jit(lambda params, ema: (params, ema), donate_argnums=(0, 1))(state.params, state.ema_params)

  config.checkpoint, config.into = str(folder), "car/upscaler"
  with pytest.raises(init_from.InitFromError, match="unexpected resampler/ds_1_1/kernel"):
    init_from.initialise(state_of(fresh), config)


def test_mismatched_params_are_all_listed(car_checkpoint):
  folder, _ = car_checkpoint
  with pytest.raises(init_from.InitFromError) as error:
    init_from.restore_params(str(folder), abstract_arin_params(n_feats=16)["car"])
  message = str(error.value)
  assert "do not fit the model" in message and "init from a checkpoint of the same architecture" in message
  assert "upscaler/head_0/kernel: checkpoint (3, 3, 3, 8) vs model (3, 3, 3, 16)" in message
  assert "upscaler/tail_1/kernel: checkpoint (3, 3, 8, 3) vs model (3, 3, 16, 3)" in message
  assert "resampler" not in message  # The resampler has no width setting: it matches.

  with pytest.raises(init_from.InitFromError) as error:
    init_from.restore_params(str(folder), abstract_arin_params())  # Forgot into='car'.
  message = str(error.value)
  assert "missing car/resampler/ds_1_1/kernel (5, 5, 3, 64)" in message
  assert "missing hinet/conv_01/kernel" in message
  assert "unexpected resampler/ds_1_1/kernel (5, 5, 3, 64)" in message


def test_bad_locations_are_refused(tmp_path, car_checkpoint):
  with pytest.raises(init_from.InitFromError, match="holds no muraljax checkpoint; point it at a workdir"):
    init_from.restore_params(str(tmp_path / "missing"), {})
  config = tiny_arin_config().init_from
  config.checkpoint, config.into = str(car_checkpoint[0]), "car/upscaler/nope"
  message = r"names no subtree .*no 'car/upscaler/nope'.*pick the next key from \['add_mean'"
  with pytest.raises(init_from.InitFromError, match=message):
    init_from.initialise(state_of(abstract_arin_params()), config)
