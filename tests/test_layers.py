"""Shared layers against NumPy references of the PyTorch layers they port.

The references work in PyTorch's layout (NCHW activations, OIHW / (in, out, kH, kW) weights) in float64;
test_hinet.py builds its whole-network reference from them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muraljax.models import partitioning
from muraljax.models.layers import HalfInstanceNorm, UpConv2x2, conv2d


def conv2d_reference(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: int = 1, padding: int = 0
) -> np.ndarray:
  """PyTorch `F.conv2d`: x [N, C, H, W], weight [O, C, kH, kW] -> [N, O, H', W'], zero padding on every side."""
  _, _, h, w = x.shape
  _, _, kh, kw = weight.shape
  padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
  out_h = (h + 2 * padding - kh) // stride + 1
  out_w = (w + 2 * padding - kw) // stride + 1
  out = 0.0
  for dy in range(kh):
    for dx in range(kw):
      window = padded[:, :, dy : dy + stride * (out_h - 1) + 1 : stride, dx : dx + stride * (out_w - 1) + 1 : stride]
      out = out + np.einsum("nchw,oc->nohw", window, weight[:, :, dy, dx])
  return out if bias is None else out + bias[None, :, None, None]


def conv_transpose2x2_reference(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
  """PyTorch `F.conv_transpose2d(stride=2)`: x [N, C, H, W], weight [C, O, 2, 2] -> [N, O, 2H, 2W].

  out[n, o, 2i + a, 2j + b] = sum_c x[n, c, i, j] * weight[c, o, a, b] + bias[o].
  """
  n, _, h, w = x.shape
  out = np.zeros((n, weight.shape[1], 2 * h, 2 * w))
  for a in range(2):
    for b in range(2):
      out[:, :, a::2, b::2] = np.einsum("nchw,co->nohw", x, weight[:, :, a, b])
  return out if bias is None else out + bias[None, :, None, None]


def half_instance_norm_reference(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
  """HINet's HIN: `InstanceNorm2d(C // 2, affine=True)` on channels [0, C // 2) of x [N, C, H, W]."""
  half = x.shape[1] // 2
  first = x[:, :half]
  mean = first.mean(axis=(2, 3), keepdims=True)
  variance = first.var(axis=(2, 3), keepdims=True)
  normalized = (first - mean) / np.sqrt(variance + 1e-5) * weight[None, :, None, None] + bias[None, :, None, None]
  return np.concatenate([normalized, x[:, half:]], axis=1)


def nchw(x: jax.Array) -> np.ndarray:
  return np.asarray(x, np.float64).transpose(0, 3, 1, 2)


def nhwc(x: np.ndarray) -> np.ndarray:
  return x.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("use_bias", [True, False])
def test_up_conv_matches_pytorch_conv_transpose(use_bias):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 3, 5, 6)).astype(np.float32)
  torch_weight = rng.normal(size=(6, 4, 2, 2)).astype(np.float32)
  torch_bias = rng.normal(size=(4,)).astype(np.float32)

  layer = UpConv2x2(4, use_bias=use_bias)
  shapes = jax.tree.map(jnp.shape, partitioning.unbox(layer.init(jax.random.key(0), x)["params"]))
  assert shapes == ({"kernel": (2, 2, 6, 4), "bias": (4,)} if use_bias else {"kernel": (2, 2, 6, 4)})

  params = {"kernel": torch_weight.transpose(2, 3, 0, 1)}
  if use_bias:
    params["bias"] = torch_bias
  out = layer.apply({"params": params}, x)

  expected = conv_transpose2x2_reference(nchw(x), torch_weight.astype(np.float64), torch_bias if use_bias else None)
  assert out.shape == (2, 6, 10, 4)
  np.testing.assert_allclose(out, nhwc(expected), atol=1e-5)


@pytest.mark.parametrize(
    "kernel_size, stride, padding, use_bias",
    [(3, 1, None, True), (1, 1, None, True), (4, 2, 1, False)],  # HINet's conv_3x3, identity, downsample
)
def test_conv2d_pads_like_pytorch(kernel_size, stride, padding, use_bias):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 8, 10, 3)).astype(np.float32)
  layer = conv2d(5, kernel_size, stride=stride, padding=padding, use_bias=use_bias)
  params = jax.tree.map(
      lambda p: rng.normal(size=p.shape).astype(np.float32), partitioning.unbox(layer.init(jax.random.key(0), x)["params"])
  )
  out = layer.apply({"params": params}, x)

  torch_weight = np.asarray(params["kernel"], np.float64).transpose(3, 2, 0, 1)
  torch_bias = params["bias"] if use_bias else None
  torch_padding = kernel_size // 2 if padding is None else padding
  expected = conv2d_reference(nchw(x), torch_weight, torch_bias, stride, torch_padding)
  assert out.shape == nhwc(expected).shape
  np.testing.assert_allclose(out, nhwc(expected), atol=1e-4)


def test_half_instance_norm_matches_reference():
  rng = np.random.default_rng(2)
  # A large offset makes float32 statistics matter; the second half must come back bit for bit.
  x = (rng.normal(size=(2, 7, 9, 6)) * 3 + 10).astype(np.float32)
  params = {"scale": rng.normal(size=(3,)).astype(np.float32), "bias": rng.normal(size=(3,)).astype(np.float32)}
  layer = HalfInstanceNorm()
  assert jax.tree.map(jnp.shape, partitioning.unbox(layer.init(jax.random.key(0), x)["params"])) == {"scale": (3,), "bias": (3,)}

  out = layer.apply({"params": params}, x)

  expected = nhwc(half_instance_norm_reference(nchw(x), params["scale"], params["bias"]))
  np.testing.assert_allclose(out, expected, atol=1e-5)
  np.testing.assert_array_equal(out[..., 3:], x[..., 3:])


def test_half_instance_norm_bf16_keeps_float32_statistics():
  rng = np.random.default_rng(3)
  x = (rng.normal(size=(1, 16, 16, 4)) + 100).astype(np.float32)  # mean >> std: bf16 statistics would fail
  params = {"scale": np.ones(2, np.float32), "bias": np.zeros(2, np.float32)}
  x_bf16 = jnp.asarray(x, jnp.bfloat16)

  out = HalfInstanceNorm(dtype=jnp.bfloat16).apply({"params": params}, x_bf16)

  assert out.dtype == jnp.bfloat16
  expected = nhwc(half_instance_norm_reference(nchw(x_bf16), params["scale"], params["bias"]))
  np.testing.assert_allclose(np.asarray(out, np.float32)[..., :2], expected[..., :2], atol=0.05)


def test_half_instance_norm_rejects_odd_channels():
  with pytest.raises(ValueError, match="even number of channels"):
    HalfInstanceNorm().init(jax.random.key(0), jnp.zeros((1, 4, 4, 5)))
