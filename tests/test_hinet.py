"""HINet: official parameter names/shapes/counts, output shapes, and a NumPy reference of the official forward."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_layers import conv2d_reference, conv_transpose2x2_reference, half_instance_norm_reference, nchw, nhwc

from muraljax.models import hinet, partitioning, torch_names

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "state_dict_keys"


def abstract_params(model: hinet.HINet) -> dict:
  """Param tree of ShapeDtypeStructs; nothing is allocated."""
  image = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
  return partitioning.unbox(jax.eval_shape(model.init, jax.random.key(0), image)["params"])


def random_params(model: hinet.HINet, seed: int = 0) -> dict:
  """Random float32 params in which no bias, norm scale or norm bias is trivially 0 or 1.

  Drawn with NumPy from the abstract tree: compiling `model.init` costs XLA:CPU about a second per param.
  """
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    noise = rng.normal(size=leaf.shape).astype(np.float32)
    if path[-1].key == "kernel":
      return noise / np.sqrt(np.prod(leaf.shape[:-1]))  # fan-in scaling keeps activations O(1)
    return 0.1 * noise + (path[-1].key == "scale")

  return jax.tree_util.tree_map_with_path(draw, abstract_params(model))


@pytest.mark.parametrize(
    "config, fixture, count",
    [
        (dict(wf=64, hin_levels=(0, 1, 2, 3, 4)), "hinet_w64_hin04.txt", 88_669_702),
        (dict(wf=64, hin_levels=(3, 4)), "hinet_w64_hin34.txt", 88_668_806),
        (dict(wf=32, hin_levels=(0, 1, 2, 3, 4)), "hinet_w32_hin04.txt", 22_176_518),
    ],
)
def test_params_match_official_names_shapes_and_count(config, fixture, count):
  params = abstract_params(hinet.HINet(**config))

  assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params)) == count
  assert hinet.torch_layout(params) == torch_names.read_layout_file(str(FIXTURES / fixture))


@pytest.mark.parametrize(
    "config, size",
    [
        (dict(wf=8, depth=3), (37, 50)),  # padded to 40 x 52
        (dict(wf=4, depth=5, hin_levels=(3, 4)), (37, 50)),  # padded to 48 x 64
        (dict(wf=4, depth=4), (3, 5)),  # smaller than the pad: edge padding
        (dict(wf=8, depth=3), (16, 16)),
    ],
)
def test_outputs_have_the_input_size_and_restore_something(config, size):
  model = hinet.HINet(**config)
  image = jax.random.uniform(jax.random.key(0), (2, *size, 3))
  params = random_params(model)

  out_1, out_2 = jax.jit(model.apply)({"params": params}, image)

  for out in (out_1, out_2):
    assert out.shape == image.shape and out.dtype == jnp.float32
    assert np.all(np.isfinite(out))
    assert np.abs(out - image).mean() > 1e-3
  assert np.abs(out_1 - out_2).mean() > 1e-3


def torch_state_dict(params: dict) -> dict[str, np.ndarray]:
  """Flax params -> the official PyTorch state dict (float64), as a checkpoint port would write it."""
  state_dict = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = tuple(entry.key for entry in path)
    value = np.asarray(leaf, np.float64)
    if value.ndim == 4:
      value = value.transpose(2, 3, 0, 1) if names[-2] == "up" else value.transpose(3, 2, 0, 1)
    state_dict[torch_names.torch_name(names, hinet.TORCH_NAME_RULES)] = value
  return state_dict


class ReferenceHINet:
  """The official PyTorch HINet forward (hinet_arch.py) in NumPy, NCHW, on a PyTorch state dict."""

  def __init__(self, state_dict: dict[str, np.ndarray], depth: int, hin_levels: Sequence[int], slope: float = 0.2):
    self.sd, self.depth, self.hin_levels, self.slope = state_dict, depth, hin_levels, slope

  def conv(self, name: str, x: np.ndarray, stride: int = 1, padding: int | None = None) -> np.ndarray:
    weight = self.sd[f"{name}.weight"]
    padding = weight.shape[-1] // 2 if padding is None else padding
    return conv2d_reference(x, weight, self.sd.get(f"{name}.bias"), stride, padding)

  def leaky_relu(self, x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, self.slope * x)

  def conv_block(self, name, x, downsample, use_hin, enc=None, dec=None):
    out = self.conv(f"{name}.conv_1", x)
    if use_hin:
      out = half_instance_norm_reference(out, self.sd[f"{name}.norm.weight"], self.sd[f"{name}.norm.bias"])
    out = self.leaky_relu(out)
    out = self.leaky_relu(self.conv(f"{name}.conv_2", out))
    out = out + self.conv(f"{name}.identity", x)
    if enc is not None:
      out = out + self.conv(f"{name}.csff_enc", enc) + self.conv(f"{name}.csff_dec", dec)
    if downsample:
      return self.conv(f"{name}.downsample", out, stride=2, padding=1), out
    return out

  def up_block(self, name, x, bridge):
    up = conv_transpose2x2_reference(x, self.sd[f"{name}.up.weight"], self.sd[f"{name}.up.bias"])
    return self.conv_block(f"{name}.conv_block", np.concatenate([up, bridge], axis=1), False, False)

  def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x1 = self.conv("conv_01", image)
    encs, decs = [], []
    for i in range(self.depth):
      if i + 1 < self.depth:
        x1, x1_up = self.conv_block(f"down_path_1.{i}", x1, True, i in self.hin_levels)
        encs.append(x1_up)
      else:
        x1 = self.conv_block(f"down_path_1.{i}", x1, False, i in self.hin_levels)
    for i in range(self.depth - 1):
      x1 = self.up_block(f"up_path_1.{i}", x1, self.conv(f"skip_conv_1.{i}", encs[-i - 1]))
      decs.append(x1)

    out_1 = self.conv("sam12.conv2", x1) + image
    attention = 1 / (1 + np.exp(-self.conv("sam12.conv3", out_1)))
    sam_feature = self.conv("sam12.conv1", x1) * attention + x1

    x2 = self.conv("cat12", np.concatenate([self.conv("conv_02", image), sam_feature], axis=1))
    blocks = []
    for i in range(self.depth):
      if i + 1 < self.depth:
        x2, x2_up = self.conv_block(f"down_path_2.{i}", x2, True, i in self.hin_levels, encs[i], decs[-i - 1])
        blocks.append(x2_up)
      else:
        x2 = self.conv_block(f"down_path_2.{i}", x2, False, i in self.hin_levels)
    for i in range(self.depth - 1):
      x2 = self.up_block(f"up_path_2.{i}", x2, self.conv(f"skip_conv_2.{i}", blocks[-i - 1]))
    return out_1, self.conv("last", x2) + image


@pytest.mark.parametrize("hin_levels", [(0, 1, 2), (1,)])
def test_forward_matches_numpy_reference_of_official_code(hin_levels):
  model = hinet.HINet(wf=4, depth=3, hin_levels=hin_levels)
  image = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)
  params = random_params(model)
  state_dict = torch_state_dict(params)
  assert {name: value.shape for name, value in state_dict.items()} == hinet.torch_layout(params)

  out_1, out_2 = model.apply({"params": params}, image)

  expected_1, expected_2 = ReferenceHINet(state_dict, depth=3, hin_levels=hin_levels)(nchw(image))
  np.testing.assert_allclose(out_1, nhwc(expected_1), atol=1e-4)
  np.testing.assert_allclose(out_2, nhwc(expected_2), atol=1e-4)


def test_unaligned_input_is_reflect_padded_and_cropped():
  model = hinet.HINet(wf=4, depth=3)
  image = np.random.default_rng(1).uniform(size=(1, 13, 14, 3)).astype(np.float32)
  params = random_params(model)

  out_1, out_2 = model.apply({"params": params}, image)

  padded = np.pad(image, ((0, 0), (0, 3), (0, 2), (0, 0)), mode="reflect")
  expected_1, expected_2 = model.apply({"params": params}, padded)
  np.testing.assert_allclose(out_1, expected_1[:, :13, :14], atol=1e-6)
  np.testing.assert_allclose(out_2, expected_2[:, :13, :14], atol=1e-6)


def test_bfloat16_compute_is_close_to_float32():
  image = jax.random.uniform(jax.random.key(0), (1, 32, 32, 3))
  model_fp32 = hinet.HINet(wf=8, depth=3)
  model_bf16 = hinet.HINet(wf=8, depth=3, dtype=jnp.bfloat16)
  params = random_params(model_fp32)

  _, out_fp32 = model_fp32.apply({"params": params}, image)
  _, out_bf16 = model_bf16.apply({"params": params}, image)

  assert out_bf16.dtype == jnp.bfloat16
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(abstract_params(model_bf16)))
  error = np.abs(np.asarray(out_bf16, np.float32) - out_fp32)
  assert error.mean() < 0.02 * np.abs(out_fp32).mean()
  assert error.max() < 0.1 * np.abs(out_fp32).max()
