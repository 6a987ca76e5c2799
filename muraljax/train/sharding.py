"""The device mesh, and how batches, parameters and optimizer state are laid out on it.

One code path for every scale: a single-device CPU run is a 1x1 mesh, a pod is the same mesh with more devices.
The batch is split along its leading axis over the data-parallel axes ('data' and 'fsdp'), and replicated over
'tensor'. Parameters (and their optimizer state) are split as `ParamLayout` says: every parameter names its
dimensions with logical axes ('channels_in', 'channels_out', ...), and `config.mesh.rules` maps those names to
mesh axes, so the default rules give FSDP over 'fsdp' and channel (tensor) parallelism over 'tensor'.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from muraljax.models import partitioning

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")


class ShardingError(ValueError):
  """A mesh or batch layout that cannot work on the available devices."""


def make_mesh(config: ml_collections.ConfigDict) -> Mesh:
  """Builds the mesh described by `config.mesh` (see muraljax.config.mesh_config)."""
  devices = jax.devices()
  if config.num_devices:
    if config.num_devices > len(devices):
      raise ShardingError(
          f"mesh.num_devices={config.num_devices} but only {len(devices)} devices are visible; lower it.")
    devices = devices[: config.num_devices]
  names = tuple(config.shape.keys())
  sizes = [int(config.shape[n]) for n in names]
  unknown = set(names) - set(MESH_AXES)
  if unknown:
    raise ShardingError(f"Unknown mesh axes {sorted(unknown)}; use 'data', 'fsdp' (and 'tensor').")
  if sizes.count(-1) > 1:
    raise ShardingError(f"Only one mesh axis may be -1 (fill the rest), got mesh.shape={dict(config.shape)}.")
  fixed = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % fixed:
      raise ShardingError(
          f"mesh.shape={dict(config.shape)} cannot fill {len(devices)} devices: {len(devices)} is not a "
          f"multiple of {fixed}.")
    sizes[sizes.index(-1)] = len(devices) // fixed
  if math.prod(sizes) != len(devices):
    raise ShardingError(
        f"mesh.shape={dict(config.shape)} multiplies to {math.prod(sizes)} but {len(devices)} devices are "
        "in use; make the sizes multiply to the device count (or set one axis to -1).")
  device_grid = np.asarray(devices).reshape(sizes)
  return Mesh(device_grid, names, axis_types=(AxisType.Auto,) * len(names))


def data_parallel_size(mesh: Mesh) -> int:
  return math.prod(mesh.shape.get(a, 1) for a in BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Splits the leading (batch) axis over the data-parallel mesh axes."""
  return NamedSharding(mesh, P(tuple(a for a in BATCH_AXES if a in mesh.shape)))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
  size = data_parallel_size(mesh)
  if global_batch % size:
    raise ShardingError(
        f"train.batch_size={global_batch} is not divisible by the {size} data-parallel devices; "
        f"use a multiple of {size}.")


@dataclasses.dataclass(frozen=True)
class ParamLayout:
  """How parameters are split over `mesh`: the logical axis names every parameter carries (see
  muraljax.models.partitioning) map to mesh axes by `rules`, (logical name, mesh axis) pairs tried in order.

  For each dimension of a parameter, the first rule for its name whose mesh axis is in the mesh with more than
  one device, is not yet used by another dimension of the parameter and divides the dimension wins; otherwise
  the dimension is replicated. Parameters with fewer than `min_size` elements stay replicated whole.
  """

  mesh: Mesh
  rules: tuple[tuple[str, str], ...]
  min_size: int

  @classmethod
  def from_config(cls, mesh: Mesh, config: ml_collections.ConfigDict) -> "ParamLayout":
    """From `config.mesh` (rules, fsdp_min_size); raises ShardingError for a malformed rule."""
    rules = tuple(tuple(rule) for rule in config.rules)
    for rule in rules:
      if len(rule) != 2 or rule[0] not in partitioning.AXIS_NAMES or rule[1] not in MESH_AXES:
        raise ShardingError(
            f"mesh.rules entry {rule!r} is not a (logical axis, mesh axis) pair; logical axes are "
            f"{sorted(partitioning.AXIS_NAMES)}, mesh axes {list(MESH_AXES)}.")
    return cls(mesh, rules, config.fsdp_min_size)

  def spec(self, names: tuple[str | None, ...], shape: tuple[int, ...]) -> P:
    """The mesh PartitionSpec of a parameter of `shape` whose dimensions have the logical axis `names`."""
    if math.prod(shape) < self.min_size:
      return P()
    used, spec = set(), []
    for name, size in zip(names, shape):
      axis = next((mesh_axis for logical, mesh_axis in self.rules
                   if logical == name and mesh_axis not in used and self.mesh.shape.get(mesh_axis, 1) > 1
                   and size % self.mesh.shape[mesh_axis] == 0), None)
      used.add(axis)  # (None is never a mesh axis)
      spec.append(axis)
    return P(*spec)

  def shardings(self, axes: Any, abstract_params: Any) -> Any:
    """NamedShardings for a param tree, from its tree of logical-axis PartitionSpecs (partitioning.axes)."""
    return jax.tree.map(lambda names, leaf: NamedSharding(self.mesh, self.spec(tuple(names), tuple(leaf.shape))),
                        axes, abstract_params)


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each host's slice of the batch into global arrays split over the data-parallel axes."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}
