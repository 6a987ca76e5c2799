"""Test session setup: 8 host CPU devices so sharding is exercised in-process, fp32 everywhere."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

import importlib.util  # noqa: E402
import pathlib  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_config(name: str, variant: str | None = None):
  """`configs/<name>.py:<variant>`, loaded the way `--config` loads it."""
  spec = importlib.util.spec_from_file_location(f"configs_{name}", REPO / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)
