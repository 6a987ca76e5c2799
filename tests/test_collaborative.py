"""Collaborative multi-scale sampling, driven by toy analytic denoisers (no network to compile).

Every scale runs `toy`, whose behaviour its params choose (so one compiled sampler serves many denoisers):
  x0 = (1 - mix) target + mix coarse + shrink E[x0 | x_t] of N(0, 0.3^2) pixels,
e.g. the oracle (target = the scale's ground truth), a denoiser that trusts the coarse estimate it is given
(mix = 1), a blank one (target = 0) and a stochastic one whose result depends on the noise (shrink = 1).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muraljax.diffusion import collaborative, fusion, schedules

SCHEDULE = schedules.cosine_schedule(100)
B, SIDE, FACTORS = 2, 32, (2, 1)  # two scales: 16 and 32 px


def truth() -> jax.Array:
  """[B, SIDE, SIDE, 3] in [-1, 1]: smooth structure plus fine texture."""
  y, x = np.mgrid[:SIDE, :SIDE] / SIDE
  structure = np.stack([np.sin(3 * x + y), np.cos(2 * y), x - y], -1)
  texture = 0.2 * np.random.default_rng(0).normal(size=(B, SIDE, SIDE, 3))
  return jnp.asarray(np.clip(0.6 * structure + texture, -1, 1), jnp.float32)


def damage() -> jax.Array:
  """A 20 x 20 hole (centre depth 10) and a one-pixel crack at x = 3 (depth 1)."""
  mask = np.zeros((B, SIDE, SIDE, 1), np.float32)
  mask[:, 6:26, 10:30] = 1.0
  mask[:, :, 3] = 1.0
  return jnp.asarray(mask)


def toy(params, x_t, t, coarse):
  """A v-predicting denoiser (see the module docstring); params = (mix, shrink, target)."""
  mix, shrink, target = params
  alpha_bar = SCHEDULE.alpha_bar(t)
  x0 = (1 - mix) * target + shrink * jnp.sqrt(alpha_bar) * 0.09 / (alpha_bar * 0.09 + 1 - alpha_bar) * x_t
  if coarse is not None:
    assert coarse.shape == x_t.shape
    x0 = x0 + mix * coarse
  return schedules.v_from(x0, schedules.eps_from_x0(x_t, x0, alpha_bar), alpha_bar)


def oracle(x0):
  return (0.0, 0.0, x0)


def trusts_coarse(like):
  return (1.0, 0.0, jnp.zeros_like(like))


def blank(like):
  return (0.0, 0.0, jnp.zeros_like(like))


def shrinker(like):
  return (0.0, 1.0, jnp.zeros_like(like))


@functools.lru_cache
def sampler(**settings):
  """sample(params per scale, images, masks, weights, seed), compiled once per setting (unoptimised: each runs
  a few times only)."""
  def run(params, images, masks, weights, seed):
    fns = [functools.partial(toy, p) for p in params]
    return collaborative.sample(fns, SCHEDULE, images, masks, jax.random.PRNGKey(seed), prediction="v",
                                fusion_weights=weights, **{"steps": 8, "eta": 1.0, **settings})

  jitted = jax.jit(run, compiler_options={"xla_backend_optimization_level": 0})
  return lambda *args: [np.asarray(x) for x in jitted(*args)]


def scales(factors=FACTORS):
  return collaborative.pyramid(truth(), damage(), factors)


def default_weights(masks, **settings):
  return fusion.fusion_weights(masks[-1], FACTORS, **settings)


def test_pyramid_keeps_intact_coarse_pixels_exact():
  images, masks = scales((4, 2, 1))
  assert [i.shape[1] for i in images] == [8, 16, 32] and [m.shape[1] for m in masks] == [8, 16, 32]
  coarse_damage = np.asarray(masks[0])[..., 0] >= 0.5
  fine_damage = np.asarray(damage())[..., 0].reshape(B, 8, 4, 8, 4).max(axis=(2, 4)) >= 0.5
  np.testing.assert_array_equal(coarse_damage, fine_damage)
  intact = np.broadcast_to(~coarse_damage[..., None], images[0].shape)
  blocks = np.asarray(truth()).reshape(B, 8, 4, 8, 4, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(np.asarray(images[0])[intact], blocks[intact], atol=1e-6)
  with pytest.raises(ValueError, match="multiples"):
    collaborative.pyramid(truth()[:, :30], damage()[:, :30], (4, 2, 1))


def test_oracle_recovers_the_ground_truth_and_intact_pixels_are_exact():
  images, masks = scales()
  samples = sampler()([oracle(x) for x in images], images, masks, default_weights(masks), 0)
  for sample, image, mask in zip(samples, images, masks):
    intact = np.broadcast_to(np.asarray(mask) < 0.5, sample.shape)
    np.testing.assert_array_equal(sample[intact], np.asarray(image)[intact])
    np.testing.assert_allclose(sample, image, atol=1e-4)  # `images` are the ground truth here


def test_same_rng_same_output_and_another_rng_another():
  images, masks = scales()
  run = functools.partial(sampler(), [shrinker(x) for x in images], images, masks, default_weights(masks))
  first, again, other = run(0), run(0), run(1)
  for a, b, c, mask in zip(first, again, other, masks):
    np.testing.assert_array_equal(a, b)
    hole = np.broadcast_to(np.asarray(mask) >= 0.5, a.shape)
    assert np.all(np.abs(a - c)[hole] > 0)


def test_finer_scale_is_conditioned_on_the_upsampled_coarse_estimate_and_cascade_feeds_nothing_back():
  images, masks = scales()
  weights = default_weights(masks, cascade=True)
  run = lambda params: sampler(cascade=True)(params, images, masks, weights, 0)  # noqa: E731
  trusting = run([oracle(images[0]), trusts_coarse(images[1])])
  hole = np.broadcast_to(np.asarray(masks[-1]) >= 0.5, trusting[-1].shape)
  expected = np.asarray(collaborative.upsample(images[0], 2))
  np.testing.assert_allclose(trusting[-1][hole], expected[hole], atol=1e-4)
  # The coarse scale goes its own way whatever the finer one does.
  blanked = run([oracle(images[0]), blank(images[1])])
  np.testing.assert_array_equal(trusting[0], blanked[0])
  np.testing.assert_allclose(trusting[0], images[0], atol=1e-4)


def test_large_holes_take_the_coarse_structure_and_cracks_the_fine_estimate():
  """Coarse oracle, blank finest denoiser: the result is the coarse content where the coarse scale dominates,
  and the fused estimate fed back down changes the coarse scale's own result (unlike the cascade)."""
  images, masks = scales()
  weights = fusion.fusion_weights(masks[-1], FACTORS, characteristic_length=1.0)
  samples = sampler()([oracle(images[0]), blank(images[1])], images, masks, weights, 0)
  coarse_up = np.asarray(collaborative.upsample(images[0], 2))
  centre, crack = (slice(None), slice(12, 20), slice(16, 24)), (slice(None), slice(None), 3)
  assert np.asarray(weights)[..., 0][centre].min() > 0.95 and np.asarray(weights)[..., 1][crack].min() > 0.8
  np.testing.assert_allclose(samples[-1][centre], coarse_up[centre], atol=0.05)
  assert np.max(np.abs(samples[-1][crack])) < 0.2 * np.max(np.abs(coarse_up[crack]))
  assert np.max(np.abs(samples[0] - np.asarray(images[0]))) > 0.1


def test_three_scales_default_weights_and_resampling_jumps():
  images, masks = scales((4, 2, 1))
  run = sampler(steps=6, jump_length=2, jump_n_sample=2, eta=0.5)
  samples = run([oracle(x) for x in images], images, masks, None, 0)
  assert [s.shape for s in samples] == [x.shape for x in images]
  for sample, image in zip(samples, images):
    np.testing.assert_allclose(sample, image, atol=1e-4)


def test_fuse_weighs_the_proposals():
  images, masks = scales()
  coarse, fine = images[0] + 0.5, images[1]
  weights = default_weights(masks)
  fused = np.asarray(collaborative.fuse([coarse, fine], weights, -images[1], FACTORS))
  w = np.asarray(weights)
  proposal = np.asarray(fine + collaborative.upsample(coarse - collaborative.downsample(fine, 2), 2))
  expected = (1 - w.sum(-1, keepdims=True)) * -np.asarray(fine) + w[..., :1] * proposal + w[..., 1:] * fine
  np.testing.assert_allclose(fused, expected, atol=1e-6)
  intact = np.broadcast_to(np.asarray(masks[-1]) < 0.5, fused.shape)
  np.testing.assert_array_equal(fused[intact], -np.asarray(fine)[intact])


def test_bad_inputs_are_refused():
  images, masks = scales()
  fns = [functools.partial(toy, shrinker(x)) for x in images]
  key = jax.random.PRNGKey(0)
  with pytest.raises(ValueError, match="coarse to fine"):
    collaborative.sample(fns, SCHEDULE, images[::-1], masks[::-1], key, prediction="v")
  with pytest.raises(ValueError, match="one denoise function per scale"):
    collaborative.sample(fns[:1], SCHEDULE, images, masks, key, prediction="v")
  with pytest.raises(ValueError, match="fusion_weights"):
    collaborative.sample(fns, SCHEDULE, images, masks, key, prediction="v", fusion_weights=jnp.ones((B, 16, 16, 2)))
  with pytest.raises(ValueError, match="does not match"):
    collaborative.sample(fns, SCHEDULE, images, [masks[0], masks[0]], key, prediction="v")
