"""Logical axis names on every parameter, the rules that map them to mesh axes, remat policies and bf16 compute."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import load_config, tiny_diffumural_config

from muraljax import config as config_lib
from muraljax import tasks
from muraljax.models import partitioning
from muraljax.train import sharding
from muraljax.train.state import abstract_train_state, compile_once, make_optimizer

FAMILIES = [("hinet", "smoke"), ("car", "smoke"), ("arin", "smoke"), ("diffumural", "smoke")]


def example_batch(side: int) -> dict[str, jax.Array]:
  image = jnp.zeros((1, side, side, 3))
  return {"damaged": image, "clean": image, "mask": jnp.zeros((1, side, side, 1)),
          "contour": jnp.zeros((1, side, side, 1))}


def random_batch(batch: int, side: int) -> dict[str, jax.Array]:
  keys = jax.random.split(jax.random.PRNGKey(3), 2)
  clean = jax.random.uniform(keys[0], (batch, side, side, 3))
  mask = (jax.random.uniform(keys[1], (batch, side, side, 1)) < 0.3).astype(jnp.float32)
  return {"clean": clean, "damaged": clean * (1 - mask), "mask": mask, "contour": jnp.zeros_like(mask)}


@pytest.mark.parametrize("family, variant", FAMILIES)
def test_every_parameter_names_each_of_its_dimensions(family, variant):
  config = load_config(family, variant)
  task = tasks.get_task(config)
  batch = example_batch(config.data.patch_size)
  annotated = jax.eval_shape(lambda r: task.init(r, batch, keep_axis_names=True), jax.random.PRNGKey(0))
  boxes = jax.tree.leaves(annotated, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  assert all(isinstance(box, nn.LogicallyPartitioned) for box in boxes)
  for box in boxes:
    assert len(box.names) == box.value.ndim and set(box.names) <= partitioning.AXIS_NAMES, box
  plain = jax.eval_shape(lambda r: task.init(r, batch), jax.random.PRNGKey(0))
  assert jax.tree.map(lambda x: x.shape, partitioning.unbox(annotated)) == jax.tree.map(lambda x: x.shape, plain)


def layout(mesh_shape: dict[str, int], min_size: int = 0, rules=None) -> sharding.ParamLayout:
  config = ml_collections.ConfigDict({"shape": mesh_shape, "num_devices": 8, "fsdp_min_size": min_size})
  config.rules = rules if rules is not None else load_config("hinet", "smoke").mesh.rules
  return sharding.ParamLayout.from_config(sharding.make_mesh(config), config)


def test_rules_map_logical_axes_to_mesh_axes_falling_back_when_a_size_does_not_divide():
  fsdp = layout({"data": 2, "fsdp": 4})
  assert fsdp.spec(partitioning.CONV, (3, 3, 64, 128)) == jax.sharding.PartitionSpec(None, None, "fsdp", None)
  # 3 input channels do not divide over 4 devices: the output channels take the fsdp axis instead.
  assert fsdp.spec(partitioning.CONV, (3, 3, 3, 64)) == jax.sharding.PartitionSpec(None, None, None, "fsdp")
  assert fsdp.spec(partitioning.CONV, (3, 3, 3, 6)) == jax.sharding.PartitionSpec(None, None, None, None)
  assert layout({"data": 2, "fsdp": 4}, min_size=10_000).spec(partitioning.DENSE, (64, 64)) == \
      jax.sharding.PartitionSpec()
  both = layout({"fsdp": 2, "tensor": 4})
  assert both.spec(partitioning.DENSE, (64, 128)) == jax.sharding.PartitionSpec("fsdp", "tensor")
  assert both.spec(partitioning.VECTOR, (128,)) == jax.sharding.PartitionSpec("tensor")


@pytest.mark.parametrize("rule", [("channels_in", "model"), ("width", "fsdp"), ("channels_in",)])
def test_a_malformed_rule_is_refused_naming_the_valid_axes(rule):
  with pytest.raises(sharding.ShardingError, match="is not a \\(logical axis, mesh axis\\) pair.*channels_in"):
    layout({"data": 8}, rules=(rule,))


def test_optimizer_moments_are_placed_like_their_parameters():
  config = load_config("arin", "smoke")  # the CAR mean shifts are frozen: no optimizer state of their own
  config.mesh.fsdp_min_size = 1024
  task = tasks.get_task(config)
  tx = make_optimizer(config.optimizer, 10, task.trainable)
  state = abstract_train_state(task, tx, example_batch(config.data.patch_size), layout({"data": 2, "fsdp": 4}, 1024))
  params = {jax.tree_util.keystr(p): x.sharding.spec for p, x in jax.tree_util.tree_flatten_with_path(state.params)[0]}
  split = [k for k, spec in params.items() if "fsdp" in spec]
  assert split
  moments = {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(state.opt_state)[0]}
  for key, spec in params.items():
    matching = [x for path, x in moments.items() if path.endswith(key) and x.shape]
    assert all(x.sharding.spec == spec for x in matching), key
  assert all(x.sharding.spec == jax.sharding.PartitionSpec() for x in moments.values() if not x.shape)


@pytest.mark.parametrize("policy", ["blocks", "dots"])
def test_remat_recomputes_blocks_without_changing_the_gradients(policy):
  config = load_config("hinet", "smoke")
  batch = random_batch(2, 32)
  reference = tasks.get_task(config)
  params = reference.init(jax.random.PRNGKey(0), batch)
  config.train.remat = policy
  rematerialised = tasks.get_task(config)
  grad = lambda task: jax.grad(lambda p: task.loss(p, batch, jax.random.PRNGKey(1))[0])
  expected, got = grad(reference)(params), grad(rematerialised)(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), got, expected)
  # 'blocks' recomputes the blocks' convolutions in the backward pass; 'dots' keeps conv and matmul outputs.
  convolutions = lambda task: jax.jit(grad(task)).lower(params).compile().as_text().count(" convolution(")
  assert (convolutions(rematerialised) > convolutions(reference)) == (policy == "blocks")


def test_an_unknown_remat_policy_is_refused():
  config = load_config("diffumural", "smoke")
  config.train.remat = "everything"
  with pytest.raises(ValueError, match="Unknown train.remat 'everything'; use one of"):
    tasks.get_task(config)


@pytest.mark.parametrize("family", ["hinet", "car", "diffumural"])
def test_bf16_compute_keeps_fp32_params_and_gradients_close_to_fp32(family):
  config = tiny_diffumural_config(scales=(8, 16)) if family == "diffumural" else load_config(family, "smoke")
  side = 16 if family == "diffumural" else 32
  batch = random_batch(2, side)
  fp32, rng = tasks.get_task(config), jax.random.PRNGKey(0)
  params = compile_once(fp32.init, rng, batch)(rng, batch)
  config.train.compute_dtype = "bfloat16"
  bf16 = tasks.get_task(config)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(jax.eval_shape(bf16.init, rng, batch)))

  def loss_and_grad(task):
    return jax.jit(jax.value_and_grad(lambda p: task.loss(p, batch, jax.random.PRNGKey(1))[0]))(params)

  (loss_32, grads_32), (loss_16, grads_16) = loss_and_grad(fp32), loss_and_grad(bf16)
  assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads_16))
  assert np.isfinite(float(loss_16)) and abs(float(loss_16) - float(loss_32)) < 0.05 * abs(float(loss_32)) + 1e-2
  flat_32 = np.concatenate([np.ravel(g) for g in jax.tree.leaves(grads_32)])
  flat_16 = np.concatenate([np.ravel(g) for g in jax.tree.leaves(grads_16)])
  cosine = flat_16 @ flat_32 / (np.linalg.norm(flat_16) * np.linalg.norm(flat_32))
  assert cosine > 0.95, cosine


@pytest.mark.parametrize("backend, expected", [("cpu", jnp.float32), ("gpu", jnp.bfloat16), ("tpu", jnp.bfloat16)])
def test_auto_compute_dtype_is_bf16_on_accelerators_only(monkeypatch, backend, expected):
  config = load_config("hinet", "paper")
  assert config.train.compute_dtype == "auto"
  monkeypatch.setattr(jax, "default_backend", lambda: backend)
  assert config_lib.compute_dtype(config.train) == expected


def test_an_unknown_compute_dtype_is_refused():
  config = load_config("hinet", "smoke")
  config.train.compute_dtype = "float16"
  with pytest.raises(ValueError, match="Unknown train.compute_dtype 'float16'; use one of"):
    tasks.get_task(config)
