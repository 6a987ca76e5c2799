"""Ahead-of-time compilation of a config's train step on a mesh, with nothing allocated.

Before a long run on a pod, `python -m muraljax.main --config ... --compile_only` compiles the exact step the
run would execute (same task, optimizer, shardings, global batch) from abstract shapes and reports what one
device needs; the memory benchmarks use the same function with simulated CPU devices.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import ml_collections

from muraljax.data import pipeline
from muraljax.train import sharding, throughput
from muraljax.train.step import assemble

MB = 1e6


@dataclasses.dataclass(frozen=True)
class StepReport:
  """What one device needs for one train step, from XLA's compiled program.

  `total_mb` = arguments + temporaries + outputs - outputs aliased to (donated) arguments: the peak the
  program's buffers can occupy on a device.
  """

  mesh: dict[str, int]
  params: int
  batch_size: int
  flops_per_device: float
  argument_mb: float
  output_mb: float
  temp_mb: float
  alias_mb: float
  compile_s: float

  @property
  def total_mb(self) -> float:
    return self.argument_mb + self.temp_mb + self.output_mb - self.alias_mb

  def summary(self) -> str:
    return (f"Train step on mesh {self.mesh} ({self.params:,} params, global batch {self.batch_size}), per device: "
            f"{self.total_mb:,.0f} MB ({self.argument_mb:,.0f} MB arguments, {self.temp_mb:,.0f} MB temporaries), "
            f"{self.flops_per_device / 1e12:.3g} TFLOPs per step; compiled in {self.compile_s:.1f} s.")


def compile_train_step(config: ml_collections.ConfigDict,
                       mesh: jax.sharding.Mesh | None = None) -> tuple[jax.stages.Compiled, StepReport]:
  """Compiles `config`'s train step for its global batch on `mesh` (default: the one config.mesh describes).

  Raises ShardingError (a ValueError) for a batch or layout that cannot work, before compiling anything.
  """
  mesh = mesh or sharding.make_mesh(config.mesh)
  train = config.train
  sharding.check_batch_size(train.batch_size, mesh)
  trainer = assemble(config, mesh=mesh, abstract=True)
  state = trainer.state
  batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding.batch_sharding(mesh))
           for k, v in pipeline.batch_shapes(config.data, train.batch_size).items()}
  start = time.perf_counter()
  compiled = trainer.step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  memory = compiled.memory_analysis()
  return compiled, StepReport(
      mesh=dict(mesh.shape), params=sum(math.prod(x.shape) for x in jax.tree.leaves(state.params)),
      batch_size=train.batch_size, flops_per_device=throughput.flops_per_device(compiled),
      argument_mb=memory.argument_size_in_bytes / MB, output_mb=memory.output_size_in_bytes / MB,
      temp_mb=memory.temp_size_in_bytes / MB, alias_mb=memory.alias_size_in_bytes / MB, compile_s=compile_s)
