"""Inpainting samplers, driven by the exact denoiser of a Gaussian toy dataset (no network to compile)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muraljax.diffusion import samplers, schedules

SCHEDULE = schedules.cosine_schedule(100)
B, SIDE = 2, 8


def gaussian_denoiser(mean: float, std: float, prediction: str, unconditional_mean: float | None = None):
  """model_fn of the ideal denoiser for data whose pixels are i.i.d. N(mean, std^2): E[x0 | x_t] in closed form.
  With `unconditional_mean`, dropping the condition gives the denoiser of N(unconditional_mean, std^2)."""

  def model_fn(x_t, t, drop_condition):
    mu = unconditional_mean if drop_condition else mean
    alpha_bar = SCHEDULE.alpha_bar(t)
    gain = jnp.sqrt(alpha_bar) * std**2 / (alpha_bar * std**2 + 1 - alpha_bar)
    x0 = mu + gain * (x_t - jnp.sqrt(alpha_bar) * mu)
    eps = schedules.eps_from_x0(x_t, x0, alpha_bar)
    return eps if prediction == "epsilon" else schedules.v_from(x0, eps, alpha_bar)

  return model_fn


def image_and_mask():
  image = jax.random.uniform(jax.random.PRNGKey(7), (B, SIDE, SIDE, 3), minval=-1, maxval=1)
  mask = jnp.zeros((B, SIDE, SIDE, 1)).at[:, 2:6, 1:5].set(1.0)
  return image, mask


@functools.lru_cache
def sampler(prediction="v", std=0.3, mean=0.2, **settings):
  """A compiled inpaint(image, mask, rng) for one toy denoiser and sampler setting, reused across tests."""
  settings = {"steps": 10, **settings}
  model_fn = gaussian_denoiser(mean, std, prediction, unconditional_mean=-0.4)
  return jax.jit(lambda image, mask, rng: samplers.inpaint(model_fn, SCHEDULE, image, mask, rng,
                                                            prediction=prediction, **settings))


def test_intact_pixels_are_the_input_exactly_and_seeds_decide_the_rest():
  image, mask = image_and_mask()
  run = sampler(eta=0.5)
  first, again = run(image, mask, jax.random.PRNGKey(0)), run(image, mask, jax.random.PRNGKey(0))
  other = run(image, mask, jax.random.PRNGKey(1))
  intact = np.broadcast_to(np.asarray(mask) < 0.5, image.shape)
  np.testing.assert_array_equal(np.asarray(first)[intact], np.asarray(image)[intact])
  np.testing.assert_array_equal(first, again)
  assert np.all(np.abs(np.asarray(first) - np.asarray(other))[~intact] > 0)
  assert np.all(np.isfinite(first)) and np.all(np.abs(first) <= 1)


@pytest.mark.parametrize("prediction, eta", [("epsilon", 1.0), ("v", 0.0)])
def test_the_ideal_denoiser_of_a_point_mass_samples_that_point(prediction, eta):
  image, mask = image_and_mask()
  out = sampler(prediction, std=0.0, mean=0.2, eta=eta)(image, mask, jax.random.PRNGKey(0))
  np.testing.assert_allclose(np.asarray(out)[:, 2:6, 1:5], 0.2, atol=1e-4)


def test_sampled_statistics_match_the_data_distribution():
  image = jnp.zeros((4, 16, 16, 3))
  out = np.asarray(sampler("epsilon", std=0.3, mean=0.2, steps=50)(image, jnp.ones((4, 16, 16, 1)),
                                                                   jax.random.PRNGKey(3)))
  # 50 DDIM steps integrate the probability-flow ODE coarsely: the spread comes out a few percent narrow.
  assert abs(out.mean() - 0.2) < 0.01 and abs(out.std() - 0.3) < 0.03


def test_guidance_extrapolates_from_the_unconditional_prediction():
  image, mask = image_and_mask()
  out = sampler("v", std=0.0, mean=0.2, guidance_scale=2.0)(image, mask, jax.random.PRNGKey(0))
  np.testing.assert_allclose(np.asarray(out)[:, 2:6, 1:5], -0.4 + 2.0 * (0.2 + 0.4), atol=1e-4)


def test_all_intact_returns_the_input_and_all_damaged_samples_everything():
  image, _ = image_and_mask()
  run = sampler()
  np.testing.assert_array_equal(run(image, jnp.zeros((B, SIDE, SIDE, 1)), jax.random.PRNGKey(0)), image)
  everything = run(image, jnp.ones((B, SIDE, SIDE, 1)), jax.random.PRNGKey(0))
  assert np.all(np.isfinite(everything)) and not np.any(np.isclose(everything, image))


def test_non_binary_masks_are_thresholded_at_one_half():
  image, mask = image_and_mask()
  soft = jnp.where(mask > 0, 0.5, 0.49)
  run = sampler()
  np.testing.assert_array_equal(run(image, soft, jax.random.PRNGKey(0)), run(image, mask, jax.random.PRNGKey(0)))


def test_resampling_jumps_back_and_still_keeps_the_known_region():
  levels = samplers.resampling_levels(10, jump_length=2, jump_n_sample=3)
  assert levels[0] == 10 and levels[-1] == 0
  assert set(np.diff(levels)) == {-1, 1}
  # Jumps at RePaint's t = 0, 2, 4, 6 (levels 1, 3, 5, 7), each repeated twice, 2 levels up and down again.
  assert np.sum(np.diff(levels) == 1) == 4 * 2 * 2 and np.sum(np.diff(levels) == -1) == 10 + 4 * 2 * 2
  np.testing.assert_array_equal(samplers.resampling_levels(5), [5, 4, 3, 2, 1, 0])

  image, mask = image_and_mask()
  out = sampler("v", std=0.0, mean=0.2, jump_length=2, jump_n_sample=3)(image, mask, jax.random.PRNGKey(0))
  np.testing.assert_allclose(np.asarray(out)[:, 2:6, 1:5], 0.2, atol=1e-4)
  np.testing.assert_array_equal(np.asarray(out)[:, :2], np.asarray(image)[:, :2])


def test_timesteps_are_trailing_and_bad_settings_are_refused():
  np.testing.assert_array_equal(samplers.sampling_timesteps(1000, 4), [249, 499, 749, 999])
  image, mask = image_and_mask()
  model_fn = gaussian_denoiser(0.0, 1.0, "v")
  with pytest.raises(ValueError, match="does not match the images"):
    samplers.inpaint(model_fn, SCHEDULE, image, mask[:, :4], jax.random.PRNGKey(0), prediction="v")
  with pytest.raises(ValueError, match="steps=200 sampling steps do not fit a 100-step schedule"):
    samplers.inpaint(model_fn, SCHEDULE, image, mask, jax.random.PRNGKey(0), prediction="v", steps=200)
  with pytest.raises(ValueError, match="jump_length"):
    samplers.resampling_levels(10, jump_length=0)
