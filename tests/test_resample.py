"""CAR's resampling op against a loop-by-loop NumPy transcription of the official CUDA kernel."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from muraljax.models.resample import kernel_size, resample


def cuda_reference(image, kernels, offsets_h, offsets_v, scale):
  """The official kernel's arithmetic, one LR pixel and tap at a time (float64, NHWC, offsets in HR px)."""
  k = 3 * scale + 1
  pad = k // 2
  padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  batch, padded_h, padded_w, channels = padded.shape
  _, lr_h, lr_w, _ = kernels.shape
  out = np.zeros((batch, lr_h, lr_w, channels))
  for b in range(batch):
    for i in range(lr_h):
      for j in range(lr_w):
        for ky in range(k):
          for kx in range(k):
            tap = k * ky + kx
            p_x = (j + 0.5) * scale + kx + offsets_h[b, i, j, tap] - 0.5
            p_y = (i + 0.5) * scale + ky + offsets_v[b, i, j, tap] - 0.5
            alpha, beta = p_x - np.floor(p_x), p_y - np.floor(p_y)
            x_l = max(min(int(np.floor(p_x)), padded_w - 1), 0)
            x_r = max(min(x_l + 1, padded_w - 1), 0)
            y_t = max(min(int(np.floor(p_y)), padded_h - 1), 0)
            y_b = max(min(y_t + 1, padded_h - 1), 0)
            value = ((1 - alpha) * (1 - beta) * padded[b, y_t, x_l] + alpha * (1 - beta) * padded[b, y_t, x_r]
                     + (1 - alpha) * beta * padded[b, y_b, x_l] + alpha * beta * padded[b, y_b, x_r])
            out[b, i, j] += kernels[b, i, j, tap] * value
  return out


def random_inputs(scale, lr_h=3, lr_w=2, batch=2, channels=3, offset_std=1.0, seed=0):
  rng = np.random.default_rng(seed)
  taps = kernel_size(scale) ** 2
  image = rng.random((batch, lr_h * scale, lr_w * scale, channels))
  kernels = rng.random((batch, lr_h, lr_w, taps))
  kernels /= kernels.sum(-1, keepdims=True)
  offsets_h = rng.normal(0.0, offset_std, (batch, lr_h, lr_w, taps))
  offsets_v = rng.normal(0.0, offset_std, (batch, lr_h, lr_w, taps))
  return image, kernels, offsets_h, offsets_v


@pytest.mark.parametrize("scale", [2, 4])
def test_matches_cuda_semantics_including_clamped_borders(scale):
  # Offsets up to ~6s HR pixels throw many taps past the padded border, so both clamps are exercised.
  inputs = random_inputs(scale, offset_std=2.0 * scale)
  expected = cuda_reference(*inputs, scale)
  got = resample(*(jnp.asarray(x, jnp.float32) for x in inputs), scale)
  assert got.shape == expected.shape
  np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 4])
def test_left_border_quirk(scale):
  # floor(p_x) <= -2: the CUDA kernel clamps the left corner to 0 and takes the right one as 0 + 1.
  image, kernels, _, _ = random_inputs(scale, lr_h=1, lr_w=1, batch=1)
  offsets = np.full(kernels.shape, -2.7 * scale)
  expected = cuda_reference(image, kernels, offsets, offsets, scale)
  got = resample(*(jnp.asarray(x, jnp.float32) for x in (image, kernels, offsets, offsets)), scale)
  np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)


@pytest.mark.parametrize("argnum", [0, 1, 2, 3], ids=["image", "kernels", "offsets_h", "offsets_v"])
def test_gradients_match_finite_differences(argnum):
  scale = 2
  image, kernels, offsets_h, offsets_v = random_inputs(scale, lr_h=2, lr_w=2, batch=1, offset_std=3.0, seed=1)
  # The op is bilinear between integer crossings: put every fraction in [0.2, 0.8] so finite differences
  # stay on one piece.
  rng = np.random.default_rng(2)
  away_from_integers = lambda o: np.floor(o + 0.5) + rng.uniform(0.2, 0.8, o.shape) - 0.5
  args = [image, kernels, away_from_integers(offsets_h), away_from_integers(offsets_v)]
  with jax.enable_x64(True):
    args = [jnp.asarray(a, jnp.float64) for a in args]

    def of_one(x):
      return resample(*args[:argnum], x, *args[argnum + 1:], scale)

    check_grads(of_one, (args[argnum],), order=1, modes=["rev"], eps=1e-4, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("scale", [2, 4])
def test_centred_delta_kernel_point_samples(scale):
  # Centre tap (k//2, k//2), zero offsets: p = (j + 0.5)*s + k//2 - 0.5 padded, i.e. (j + 0.5)*s - 0.5 in the
  # image, halfway between HR pixels s*j + s/2 - 1 and s*j + s/2. So the output is the mean of the 2x2 HR
  # pixels at rows/cols s*i + s/2 - 1 .. s*i + s/2 (the whole 2x2 block at x2, the centre of the 4x4 at x4).
  # Offsetting by +0.5 HR px lands exactly on HR pixel (s*i + s/2, s*j + s/2).
  k = kernel_size(scale)
  image = jnp.asarray(np.random.default_rng(3).random((1, 4 * scale, 3 * scale, 2)), jnp.float32)
  kernels = jnp.zeros((1, 4, 3, k * k)).at[..., k * (k // 2) + k // 2].set(1.0)
  zeros = jnp.zeros_like(kernels)
  first = scale // 2 - 1
  blocks = image.reshape(1, 4, scale, 3, scale, 2)
  expected_mean = blocks[:, :, first:first + 2, :, first:first + 2].mean(axis=(2, 4))
  np.testing.assert_allclose(resample(image, kernels, zeros, zeros, scale), expected_mean, atol=1e-6)
  expected_point = image[:, scale // 2::scale, scale // 2::scale]
  np.testing.assert_allclose(resample(image, kernels, zeros + 0.5, zeros + 0.5, scale), expected_point, atol=1e-6)


def test_bfloat16_inputs_keep_their_dtype():
  inputs = [jnp.asarray(x, jnp.bfloat16) for x in random_inputs(2)]
  out = jax.jit(functools.partial(resample, scale=2))(*inputs)
  assert out.dtype == jnp.bfloat16
  expected = cuda_reference(*(np.asarray(x, np.float64) for x in inputs), 2)
  np.testing.assert_allclose(np.asarray(out, np.float32), expected, atol=2e-2)


def test_unsupported_scale_is_rejected():
  with pytest.raises(ValueError, match="scale 2 or 4"):
    resample(jnp.zeros((1, 6, 6, 3)), jnp.zeros((1, 2, 2, 100)), jnp.zeros((1, 2, 2, 100)),
             jnp.zeros((1, 2, 2, 100)), 3)


def test_mismatched_kernel_shape_is_rejected():
  with pytest.raises(ValueError, match="kernels of shape"):
    resample(jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 4, 4, 48)), jnp.zeros((1, 4, 4, 49)),
             jnp.zeros((1, 4, 4, 49)), 2)
