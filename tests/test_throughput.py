"""FLOP counting from compiled programs and MFU."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from muraljax.train import throughput


def test_matmul_flops_come_from_the_compiled_program_per_device():
  a = jnp.ones((64, 128))
  b = jnp.ones((128, 32))
  compiled = jax.jit(jnp.matmul).lower(a, b).compile()
  np.testing.assert_allclose(throughput.flops_per_device(compiled), 2 * 64 * 128 * 32, rtol=0.05)

  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  rows = NamedSharding(mesh, P("data"))
  sharded = jax.jit(jnp.matmul, in_shardings=(rows, NamedSharding(mesh, P())), out_shardings=rows)
  per_device = throughput.flops_per_device(sharded.lower(a, b).compile())
  np.testing.assert_allclose(per_device, 2 * 64 * 128 * 32 / 8, rtol=0.05)


def test_mfu_only_for_known_devices():
  assert throughput.utilisation(1e12, 2.0, "cpu") == {"perf/tflops_per_device": 2.0}
  h100 = throughput.utilisation(989e12, 0.5, "NVIDIA H100 80GB HBM3")
  np.testing.assert_allclose(h100["perf/mfu"], 0.5)
  assert throughput.peak_tflops("TPU v5 lite") == 197.0
  assert throughput.peak_tflops("TPU v5p") == 459.0
