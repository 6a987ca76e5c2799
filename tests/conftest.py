"""Test session setup: 8 host CPU devices so sharding is exercised in-process, fp32 everywhere."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

import pathlib  # noqa: E402

from muraljax import config as config_lib  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_config(name: str, variant: str | None = None):
  """`configs/<name>.py:<variant>`, loaded the way `--config` loads it."""
  return config_lib.load(REPO / "configs" / f"{name}.py:{variant or ''}")
