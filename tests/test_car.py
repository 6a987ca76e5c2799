"""CAR nets (resampler, EDSR), quantisation and loss terms: official names/shapes/counts and behaviour."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muraljax.models import car, edsr, partitioning
from muraljax.models.torch_names import read_layout_file
from muraljax.tasks import car_loss

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "state_dict_keys")


def abstract_params(model, side):
  return partitioning.unbox(jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, side, side, 3)))["params"])


def count(params):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))


@pytest.mark.parametrize("scale,expected", [(4, 9_896_455), (2, 10_645_663)])
def test_resampler_matches_official_names_shapes_and_count(scale, expected):
  params = abstract_params(car.KernelGenerationNet(scale=scale), 16)
  assert count(params) == expected
  assert car.torch_layout(params) == read_layout_file(os.path.join(FIXTURES, f"car_kgn_x{scale}.txt"))


@pytest.mark.parametrize("scale,expected", [(4, 43_089_947), (2, 40_729_627)])
def test_edsr_matches_official_names_shapes_and_count(scale, expected):
  params = abstract_params(edsr.EDSR(scale=scale), 4)
  assert count(params) == expected
  assert edsr.torch_layout(params) == read_layout_file(os.path.join(FIXTURES, f"car_usn_x{scale}.txt"))


@functools.cache
def resampler(scale):
  """An initialised net whose offset heads saturate the tanh, so the [-s, s] bound is actually reached."""
  net = car.KernelGenerationNet(scale=scale)
  variables = partitioning.unbox(jax.jit(net.init)(jax.random.key(scale), jnp.zeros((1, 16, 16, 3))))
  params = dict(variables["params"])
  for head in ("offsets_h_generation_4", "offsets_v_generation_4"):
    params[head] = jax.tree_util.tree_map(lambda p: 1e3 * p, params[head])
  return net, {"params": params}


@pytest.mark.parametrize("scale", [2, 4])
def test_resampler_outputs(scale):
  net, variables = resampler(scale)
  image = jax.random.uniform(jax.random.key(1), (2, 16, 24, 3))
  out = jax.jit(functools.partial(net.apply, method="downscale"))(variables, image)
  taps = (3 * scale + 1) ** 2
  assert out.image.shape == (2, 16 // scale, 24 // scale, 3)
  for name in ("kernels", "offsets_h", "offsets_v"):
    assert getattr(out, name).shape == (2, 16 // scale, 24 // scale, taps), name
  np.testing.assert_allclose(out.kernels.sum(-1), 1.0, atol=1e-5)
  assert float(out.kernels.min()) >= 0.0
  for offsets in (out.offsets_h, out.offsets_v):
    assert float(jnp.abs(offsets).max()) <= scale
    assert float(jnp.abs(offsets).max()) > 0.9 * scale  # saturated: the unit really is s HR pixels


def test_resampler_pads_sides_that_are_not_multiples_of_8():
  net, variables = resampler(4)
  out = net.apply(variables, jnp.full((1, 20, 12, 3), 0.5), method="downscale")
  assert out.image.shape == (1, 5, 3, 3)
  assert out.kernels.shape == (1, 5, 3, 169)


def test_resampler_rejects_sides_not_divisible_by_scale():
  with pytest.raises(ValueError, match="divisible by the scale 4"):
    abstract_params(car.KernelGenerationNet(scale=4), 18)


def test_resampler_rejects_unsupported_scale():
  with pytest.raises(ValueError, match="scale 2 or 4"):
    abstract_params(car.KernelGenerationNet(scale=3), 24)


def test_mean_shifts_are_fixed_official_constants():
  net, variables = resampler(2)
  sub_mean = variables["params"]["sub_mean"]
  np.testing.assert_array_equal(sub_mean["kernel"][0, 0], np.eye(3))
  np.testing.assert_allclose(sub_mean["bias"], -np.asarray(edsr.RGB_MEAN), rtol=1e-7)
  image = jnp.full((1, 8, 8, 3), 0.3)
  lr_sum = lambda p: net.apply({"params": p}, image, method="downscale").image.sum()
  grads = jax.jit(jax.grad(lr_sum))(variables["params"])
  assert not any(np.any(g) for g in jax.tree_util.tree_leaves(grads["sub_mean"]))
  assert np.any(grads["ds_1_1"]["kernel"])
  mask = edsr.trainable_mask(variables["params"])
  assert mask["sub_mean"] == {"kernel": False, "bias": False}
  assert mask["ds_1_1"] == {"kernel": True, "bias": True}


@pytest.mark.parametrize("scale", [2, 4])
def test_tiny_edsr_upscales(scale):
  model = edsr.EDSR(scale=scale, n_resblocks=2, n_feats=8)
  lr = jax.random.uniform(jax.random.key(0), (2, 5, 6, 3))
  params = partitioning.unbox(model.init(jax.random.key(1), lr)["params"])
  assert model.apply({"params": params}, lr).shape == (2, 5 * scale, 6 * scale, 3)
  # With every conv zeroed, only add_mean's bias is left: the output is the RGB mean everywhere.
  zeroed = {name: jax.tree_util.tree_map(jnp.zeros_like, p) if name not in edsr.MEAN_SHIFT_NAMES else p
            for name, p in params.items()}
  np.testing.assert_allclose(model.apply({"params": zeroed}, lr), np.broadcast_to(edsr.RGB_MEAN, (2, 5 * scale,
                             6 * scale, 3)), rtol=1e-6)


def test_edsr_bfloat16_compute_keeps_float32_params():
  model = edsr.EDSR(scale=2, n_resblocks=1, n_feats=8, dtype=jnp.bfloat16)
  lr = jnp.full((1, 4, 4, 3), 0.5)
  variables = partitioning.unbox(model.init(jax.random.key(0), lr))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))
  assert model.apply(variables, lr).dtype == jnp.bfloat16


def test_quantize_forward_rounds_to_8_bit_levels():
  x = jnp.asarray([-0.3, 0.0, 0.4 / 255, 0.6 / 255, 100.2 / 255, 1.0, 1.7])
  expected = np.asarray([0.0, 0.0, 0.0, 1.0, 100.0, 255.0, 255.0]) / 255
  np.testing.assert_allclose(car.quantize(x), expected, rtol=1e-6)


def test_quantize_surrogate_gradient_is_soft_rounding_on_the_255_scale():
  levels = jnp.asarray([0.0, 17.0, 128.0, 255.0]) / 255
  halfway = levels[:3] + 0.5 / 255
  grad = jax.vmap(jax.grad(car.quantize))
  np.testing.assert_allclose(grad(levels), 0.0, atol=1e-4)
  np.testing.assert_allclose(grad(halfway), 2.0, atol=1e-4)
  quarter = 17.25 / 255
  np.testing.assert_allclose(jax.grad(car.quantize)(quarter), 1 - np.cos(2 * np.pi * 17.25), atol=1e-4)


def test_l1_loss():
  assert float(car_loss.l1_loss(jnp.ones((1, 2, 2, 3)), jnp.zeros((1, 2, 2, 3)))) == 1.0


def test_offset_tv_of_constant_field_is_zero():
  kernels = jax.random.uniform(jax.random.key(0), (2, 3, 4, 9))
  offsets = jnp.full((2, 3, 4, 9), 0.7)
  assert float(car_loss.offset_tv_loss(kernels, offsets, -offsets)) == 0.0


def test_offset_tv_by_hand():
  # B=2, h=2, w=2, one tap. offsets_v steps by 1 along the width, offsets_h by 3 along the height.
  kernels = jnp.asarray([[[0.5], [0.25]], [[1.0], [2.0]]])[None].repeat(2, axis=0)  # [2, 2, 2, 1]
  offsets_v = jnp.asarray([[[0.0], [1.0]], [[0.0], [1.0]]])[None].repeat(2, axis=0)
  offsets_h = jnp.asarray([[[0.0], [0.0]], [[3.0], [3.0]]])[None].repeat(2, axis=0)
  # along w: |1 - 0| * kernel[:, :, 0] = 0.5 + 1.0 per image; along h: |3 - 0| * kernel[:, 0] = 3 * 0.75.
  expected = 2 * (1.5 + 2.25) / 2
  np.testing.assert_allclose(car_loss.offset_tv_loss(kernels, offsets_h, offsets_v), expected, rtol=1e-6)


def test_offset_magnitude_by_hand():
  weights = car_loss.tap_distance_weights(169)
  np.testing.assert_allclose(weights[0], np.hypot(6.5, 6.5) / 13, rtol=1e-6)
  np.testing.assert_allclose(weights[13 * 6 + 6], np.hypot(0.5, 0.5) / 13, rtol=1e-6)
  # One tap (k = 1, weight sqrt(0.5)), a (3, 4) offset at one of B*h*w = 2*1*2 pixels.
  offsets_h = jnp.zeros((2, 1, 2, 1)).at[0, 0, 0, 0].set(3.0)
  offsets_v = jnp.zeros((2, 1, 2, 1)).at[0, 0, 0, 0].set(4.0)
  np.testing.assert_allclose(car_loss.offset_magnitude_loss(offsets_h, offsets_v), 5 * np.sqrt(0.5) / 4, rtol=1e-6)
  grads = jax.grad(car_loss.offset_magnitude_loss, argnums=(0, 1))(offsets_h, offsets_v)
  assert all(np.isfinite(g).all() for g in grads)
  with pytest.raises(ValueError, match="square number of taps"):
    car_loss.offset_magnitude_loss(jnp.zeros((1, 1, 1, 8)), jnp.zeros((1, 1, 1, 8)))


def test_car_loss_weights_terms_and_converts_offsets_to_offset_units():
  hr = jnp.zeros((1, 8, 8, 3))
  kernels = jnp.full((1, 2, 2, 169), 1 / 169)
  offsets_h = jnp.full((1, 2, 2, 169), 4.0)  # one offset unit at x4
  offsets_v = jnp.zeros((1, 2, 2, 169))
  loss, terms = car_loss.car_loss(hr + 0.1, hr, kernels, offsets_h, offsets_v, scale=4)
  np.testing.assert_allclose(terms["l1"], 0.1, rtol=1e-6)
  assert float(terms["offset_tv"]) == 0.0
  np.testing.assert_allclose(terms["offset_magnitude"], car_loss.tap_distance_weights(169).sum(), rtol=1e-6)
  np.testing.assert_allclose(loss, 0.1 + 0.001 * terms["offset_magnitude"], rtol=1e-6)
