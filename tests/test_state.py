"""Train-state arithmetic: the EMA update, frozen parameters and the learning-rate schedule."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from muraljax.config import optimizer_config
from muraljax.train.state import TrainState, learning_rate_schedule, make_optimizer


def test_ema_follows_the_params_with_the_configured_decay():
  params = {"w": jnp.array([1.0, 2.0])}
  state = TrainState.create(params, optax.sgd(1.0), jnp.zeros(2, jnp.uint32), ema_decay=0.9)
  state = state.apply_gradients({"w": jnp.array([0.5, -1.0])})
  np.testing.assert_allclose(state.params["w"], [0.5, 3.0])
  np.testing.assert_allclose(state.ema_params["w"], 0.9 * np.array([1.0, 2.0]) + 0.1 * np.array([0.5, 3.0]))
  assert state.eval_params is state.ema_params


def test_frozen_parameters_get_no_update_not_even_weight_decay():
  config = optimizer_config()
  config.weight_decay = 0.1
  params = {"frozen": jnp.ones(3), "trained": jnp.ones(3)}
  tx = make_optimizer(config, num_steps=10, trainable=lambda p: {"frozen": False, "trained": True})
  state = TrainState.create(params, tx, jnp.zeros(2, jnp.uint32))
  for _ in range(3):
    state = state.apply_gradients({"frozen": jnp.ones(3), "trained": jnp.ones(3)})
  np.testing.assert_array_equal(state.params["frozen"], np.ones(3))
  assert np.all(np.asarray(state.params["trained"]) < 1.0)


def test_schedule_warms_up_then_decays_to_the_end_rate():
  config = ml_collections.ConfigDict(dict(optimizer_config()))
  config.update(learning_rate=1e-3, warmup_steps=10, end_learning_rate=1e-6)
  schedule = learning_rate_schedule(config, num_steps=110)
  np.testing.assert_allclose([schedule(0), schedule(5), schedule(10), schedule(110)], [0.0, 5e-4, 1e-3, 1e-6],
                             rtol=1e-5)
