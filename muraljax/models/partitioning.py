"""Logical axis names on every parameter, and rematerialisation policies by name.

Every parameter the models create carries flax's logical-partitioning metadata (`nn.LogicallyPartitioned`)
naming what each of its dimensions means:

| parameter                                  | logical axes                                               |
|--------------------------------------------|------------------------------------------------------------|
| conv kernel [kh, kw, C_in, C_out]          | ('kernel_height', 'kernel_width', 'channels_in', 'channels_out') |
| dense kernel [C_in, C_out]                 | ('channels_in', 'channels_out')                            |
| bias, norm scale [C]                       | ('channels',)                                              |
| embedding table [N, C]                     | ('classes', 'channels')                                    |

`config.mesh.rules` maps these names to mesh axes (muraljax.train.sharding.param_spec), so how parameters are
split is data, not code. `module.init` returns the annotated tree; `unbox` strips the metadata, which is what
every task's `init` returns unless asked for the annotated tree (the trainer reads the names from that).

The layer constructors here (`Conv`, `Dense`, `GroupNorm`, `Embed`) are flax's with annotated initialisers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
from flax.core import meta

CONV = ("kernel_height", "kernel_width", "channels_in", "channels_out")
DENSE = ("channels_in", "channels_out")
VECTOR = ("channels",)
EMBEDDING = ("classes", "channels")

AXIS_NAMES = frozenset(CONV + DENSE + VECTOR + EMBEDDING)


def annotated(init: Callable, names: tuple[str, ...]) -> Callable:
  """An initialiser whose parameter carries the logical axis `names` (one per dimension)."""
  return nn.with_logical_partitioning(init, names)


def unbox(tree: Any) -> Any:
  """The plain arrays (or ShapeDtypeStructs) of an annotated param tree; plain trees pass through."""
  return meta.unbox(tree)


def axes(tree: Any) -> Any:
  """Tree of PartitionSpecs of logical axis names, one per leaf of an annotated param tree (e.g. the
  jax.eval_shape of an init)."""
  return nn.get_partition_spec(tree)


def Conv(features: int, kernel_size, *, kernel_init: Callable = nn.initializers.lecun_normal(),
         **kwargs) -> nn.Conv:
  """`nn.Conv` whose kernel and bias carry logical axis names."""
  return nn.Conv(features, kernel_size, kernel_init=annotated(kernel_init, CONV),
                 bias_init=annotated(nn.initializers.zeros, VECTOR), **kwargs)


def Dense(features: int, **kwargs) -> nn.Dense:
  """`nn.Dense` whose kernel and bias carry logical axis names."""
  return nn.Dense(features, kernel_init=annotated(nn.initializers.lecun_normal(), DENSE),
                  bias_init=annotated(nn.initializers.zeros, VECTOR), **kwargs)


def GroupNorm(**kwargs) -> nn.GroupNorm:
  """`nn.GroupNorm` whose scale and bias carry logical axis names."""
  return nn.GroupNorm(scale_init=annotated(nn.initializers.ones, VECTOR),
                      bias_init=annotated(nn.initializers.zeros, VECTOR), **kwargs)


def Embed(num_embeddings: int, features: int, **kwargs) -> nn.Embed:
  """`nn.Embed` whose table carries logical axis names."""
  return nn.Embed(num_embeddings, features,
                  embedding_init=annotated(nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0),
                                           EMBEDDING), **kwargs)


# What a rematerialised block keeps from its forward pass for the backward pass ('none': no remat at all).
REMAT_POLICIES: dict[str, Callable | None] = {
    "none": None,
    "blocks": jax.checkpoint_policies.nothing_saveable,  # Keep only block inputs; recompute everything inside.
    # Keep matmul and convolution outputs; recompute only elementwise ops and norms.
    "dots": jax.checkpoint_policies.checkpoint_dots,
    # Keep only matmuls without batch dimensions (weights x activations); recompute convs and attention too.
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def check_remat(policy: str) -> None:
  if policy not in REMAT_POLICIES:
    raise ValueError(f"Unknown train.remat {policy!r}; use one of {sorted(REMAT_POLICIES)}.")


@functools.cache
def remat(module: type[nn.Module], policy: str) -> type[nn.Module]:
  """`module` whose activations are recomputed in the backward pass as `policy` (a REMAT_POLICIES name) says."""
  check_remat(policy)
  if policy == "none":
    return module
  return nn.remat(module, policy=REMAT_POLICIES[policy])


def maybe_unbox(tree: Any, keep_axis_names: bool) -> Any:
  """What a task's `init` returns: the annotated tree when `keep_axis_names`, else the plain one."""
  return tree if keep_axis_names else unbox(tree)

