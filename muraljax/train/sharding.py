"""The device mesh, and how batches, parameters and optimizer state are laid out on it.

One code path for every scale: a single-device CPU run is a 1x1 mesh, a pod is the same mesh with more devices.
The batch is split along its leading axis over the data-parallel axes ('data' and 'fsdp'); parameters stay
replicated unless the 'fsdp' axis has more than one device, in which case every parameter with at least
`fsdp_min_size` elements is split along its largest dimension that the axis size divides.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

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
  unknown = set(names) - {"data", "fsdp", "tensor"}
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


def param_spec(shape: tuple[int, ...], fsdp_size: int, min_size: int) -> P:
  """Splits the largest dimension divisible by the fsdp axis size; small parameters stay replicated."""
  if fsdp_size == 1 or math.prod(shape) < min_size:
    return P()
  for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
    if shape[dim] % fsdp_size == 0:
      spec = [None] * len(shape)
      spec[dim] = "fsdp"
      return P(*spec)
  return P()


def state_shardings(abstract_state: Any, mesh: Mesh, fsdp_min_size: int) -> Any:
  """NamedShardings for every leaf of a (possibly abstract) train state pytree."""
  fsdp_size = mesh.shape.get("fsdp", 1)
  return jax.tree.map(
      lambda leaf: NamedSharding(mesh, param_spec(tuple(leaf.shape), fsdp_size, fsdp_min_size)),
      abstract_state)


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each host's slice of the batch into global arrays split over the data-parallel axes."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}
