"""The FDP spectral block: shape, identity at init, a NumPy reference, gradients, bf16, logical axis names."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from muraljax.models import partitioning
from muraljax.models.fdp import SpectralBlock

B, H, W, C, GROUPS = 2, 8, 9, 8, 4  # odd width: irfft2 must restore it
BLOCK = SpectralBlock(norm_num_groups=GROUPS)


def inputs(seed: int = 0) -> jax.Array:
  return jax.random.normal(jax.random.PRNGKey(seed), (B, H, W, C)) * 2.0 + 0.5


def random_params(seed: int = 1):
  params = partitioning.unbox(BLOCK.init(jax.random.PRNGKey(0), inputs())["params"])
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(tree, [0.3 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])


def numpy_reference(params, x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  groups = x.reshape(B, H, W, GROUPS, C // GROUPS)
  mean = groups.mean(axis=(1, 2, 4), keepdims=True)
  var = groups.var(axis=(1, 2, 4), keepdims=True)
  normed = ((groups - mean) / np.sqrt(var + 1e-5)).reshape(B, H, W, C) * p["norm"]["scale"] + p["norm"]["bias"]
  spectrum = np.fft.rfft2(normed, axes=(1, 2), norm="ortho")
  z = np.concatenate([spectrum.real, spectrum.imag], axis=-1)
  z = np.maximum(z @ p["spectral_in"]["kernel"] + p["spectral_in"]["bias"], 0.0)
  z = z @ p["spectral_out"]["kernel"] + p["spectral_out"]["bias"]
  return x + np.fft.irfft2(z[..., :C] + 1j * z[..., C:], s=(H, W), axes=(1, 2), norm="ortho")


def test_fresh_block_is_the_identity_and_keeps_the_shape():
  x = inputs()
  variables = BLOCK.init(jax.random.PRNGKey(0), x)
  y = BLOCK.apply(variables, x)
  assert y.shape == x.shape and y.dtype == x.dtype
  np.testing.assert_array_equal(y, x)


def test_matches_a_numpy_reference_with_random_weights():
  params, x = random_params(), inputs(3)
  y = jax.jit(BLOCK.apply)({"params": params}, x)
  reference = numpy_reference(params, x)
  assert np.max(np.abs(reference - np.asarray(x))) > 0.1  # the residual is not trivially small
  np.testing.assert_allclose(y, reference, rtol=1e-4, atol=1e-4)


def test_every_output_pixel_sees_every_input_pixel():
  params = random_params()
  jacobian_row = jax.grad(lambda x: BLOCK.apply({"params": params}, x)[0, 0, 0].sum())(inputs())
  assert np.all(np.abs(np.asarray(jacobian_row[0])).sum(-1) > 0)


def test_gradients_are_finite_and_reach_the_zero_initialised_convolution():
  x = inputs()
  params = partitioning.unbox(BLOCK.init(jax.random.PRNGKey(0), x)["params"])
  grads = jax.grad(lambda p: jnp.sum(jnp.square(BLOCK.apply({"params": p}, x))))(params)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert np.any(np.asarray(grads["spectral_out"]["kernel"]) != 0)


def test_bf16_compute_keeps_the_input_dtype_and_is_close_to_fp32():
  params, x = random_params(), inputs(4)
  fp32 = BLOCK.apply({"params": params}, x)
  bf16 = SpectralBlock(norm_num_groups=GROUPS, dtype=jnp.bfloat16).apply({"params": params}, x)
  assert bf16.dtype == jnp.float32
  np.testing.assert_allclose(bf16, fp32, atol=0.1)


def test_params_carry_logical_axis_names():
  specs = partitioning.axes(jax.eval_shape(BLOCK.init, jax.random.PRNGKey(0), inputs())["params"])
  assert tuple(specs["spectral_in"]["kernel"]) == partitioning.DENSE
  assert tuple(specs["spectral_out"]["kernel"]) == partitioning.DENSE
  for name in ("spectral_in", "spectral_out", "norm"):
    for leaf in ("bias", "scale") if name == "norm" else ("bias",):
      assert tuple(specs[name][leaf]) == partitioning.VECTOR
