"""Test session setup: 8 host CPU devices so sharding is exercised in-process, fp32 everywhere."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
