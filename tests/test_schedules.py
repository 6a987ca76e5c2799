"""Noise schedules, the eps / v / x0 conversions, and the denoising loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muraljax.diffusion import losses, schedules


@pytest.mark.parametrize("name", schedules.SCHEDULES)
def test_alphas_cumprod_decrease_strictly_inside_zero_one(name):
  schedule = schedules.make_schedule(name, 1000)
  alpha_bar = np.asarray(schedule.alphas_cumprod)
  assert alpha_bar.shape == (1000,) and schedule.num_timesteps == 1000
  assert np.all(alpha_bar > 0) and np.all(alpha_bar < 1)
  assert np.all(np.diff(alpha_bar) < 0)
  assert alpha_bar[0] > 0.99 and alpha_bar[-1] < 1e-3  # nearly clean at t = 0, nearly pure noise at T - 1


def test_forward_noising_mixes_signal_and_noise_by_alpha_bar():
  schedule = schedules.cosine_schedule(100)
  x0, noise = jnp.ones((2, 4, 4, 3)), jnp.full((2, 4, 4, 3), 2.0)
  t = jnp.array([0, 99])
  x_t = schedules.q_sample(schedule, x0, t, noise)
  a = np.asarray(schedule.alphas_cumprod)[[0, 99]]
  np.testing.assert_allclose(x_t[:, 0, 0, 0], np.sqrt(a) + 2 * np.sqrt(1 - a), rtol=1e-6)


def random_triplet():
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  x0 = jax.random.uniform(keys[0], (5, 4, 4, 3), minval=-1, maxval=1)
  eps = jax.random.normal(keys[1], (5, 4, 4, 3))
  alpha_bar = jax.random.uniform(keys[2], (5, 1, 1, 1), minval=0.01, maxval=0.99)
  return x0, eps, alpha_bar, jnp.sqrt(alpha_bar) * x0 + jnp.sqrt(1 - alpha_bar) * eps


def test_eps_v_and_x0_conversions_invert_each_other():
  x0, eps, alpha_bar, x_t = random_triplet()
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  close(schedules.x0_from_eps(x_t, eps, alpha_bar), x0)
  close(schedules.eps_from_x0(x_t, x0, alpha_bar), eps)
  v = schedules.v_from(x0, eps, alpha_bar)
  close(schedules.x0_from_v(x_t, v, alpha_bar), x0)
  close(schedules.eps_from_v(x_t, v, alpha_bar), eps)
  for prediction, output in (("epsilon", eps), ("v", v)):
    close(schedules.x0_from_output(prediction, x_t, output, alpha_bar), x0)
    close(schedules.prediction_target(prediction, x0, eps, alpha_bar), output)


@pytest.mark.parametrize("prediction", schedules.PREDICTIONS)
@pytest.mark.parametrize("gamma", [0.0, 5.0])
def test_a_perfect_predictor_has_zero_loss(prediction, gamma):
  x0, eps, alpha_bar, _ = random_triplet()
  target = schedules.prediction_target(prediction, x0, eps, alpha_bar)
  loss = losses.denoising_loss(target, target, alpha_bar, prediction=prediction, min_snr_gamma=gamma)
  assert float(loss) == 0.0
  assert float(losses.denoising_loss(target + 0.1, target, alpha_bar, prediction=prediction,
                                     min_snr_gamma=gamma)) > 0.0


def test_min_snr_weights_cap_the_low_noise_timesteps():
  alpha_bar = jnp.array([0.0, 0.5, 0.99])  # SNR 0, 1, 99
  np.testing.assert_allclose(losses.min_snr_weights("epsilon", alpha_bar, 5.0), [1.0, 1.0, 5 / 99], rtol=1e-5)
  np.testing.assert_allclose(losses.min_snr_weights("v", alpha_bar, 5.0), [0.0, 0.5, 5 / 100], rtol=1e-5)
  np.testing.assert_array_equal(losses.min_snr_weights("v", alpha_bar, 0.0), [1.0, 1.0, 1.0])


def test_unknown_names_are_refused():
  with pytest.raises(ValueError, match="Unknown noise schedule 'sqrt'"):
    schedules.make_schedule("sqrt", 1000)
  with pytest.raises(ValueError, match="Unknown prediction type 'x0'"):
    schedules.prediction_target("x0", jnp.zeros(1), jnp.zeros(1), jnp.ones(1))
