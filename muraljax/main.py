"""Command-line entry point: `python -m muraljax.main --config configs/hinet.py:smoke --workdir runs/x`.

Config fields are overridden with `--config.section.field=value`. A multi-process job (TPU pod, SLURM, or
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID in the environment) is joined automatically
with `jax.distributed.initialize()` before anything touches the devices.
"""

from __future__ import annotations

import logging as pylogging
import os
import re
import socket
import sys
import time

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from muraljax import config as config_lib

config_flags.DEFINE_config_file("config", None, "Training config: path/to/config.py[:variant].", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and images; re-running resumes from it.")
flags.DEFINE_bool("distributed", None,
                  "Call jax.distributed.initialize(); default: only when the environment describes a "
                  "multi-process job.")
flags.DEFINE_integer("coordinator_timeout", 300,
                     "Seconds a non-zero process waits for the coordinator (process 0) to accept connections.")
flags.DEFINE_bool("compile_only", False,
                  "Compile the train step ahead of time from abstract shapes, print the memory and FLOPs one device "
                  "needs, and exit without training (no --workdir needed).")
flags.mark_flags_as_required(["config"])


def _is_multiprocess_environment() -> bool:
  env = os.environ
  return (int(env.get("SLURM_NTASKS", "1")) > 1 or "TPU_WORKER_HOSTNAMES" in env and
          "," in env["TPU_WORKER_HOSTNAMES"] or "JAX_COORDINATOR_ADDRESS" in env)


def _wait_for_coordinator(address: str, timeout: float) -> None:
  """Fails with one sentence if nothing accepts connections at `address` in time.

  jax.distributed aborts the whole process (no exception) when it cannot register with the coordinator, so
  the address is probed first.
  """
  host, _, port = address.rpartition(":")
  deadline = time.monotonic() + timeout
  while True:
    try:
      socket.create_connection((host, int(port)), timeout=5).close()
      return
    except OSError:
      if time.monotonic() > deadline:
        raise SystemExit(f"Error: no coordinator answered at {address} within {timeout:.0f} s; start process 0 "
                         "(it hosts the coordinator) and check JAX_COORDINATOR_ADDRESS.") from None
      time.sleep(1)


def _initialize_distributed() -> None:
  import jax  # pylint: disable=g-import-not-at-top

  env = os.environ
  if "JAX_COORDINATOR_ADDRESS" in env:
    missing = [k for k in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID") if k not in env]
    if missing:
      raise SystemExit(f"Error: JAX_COORDINATOR_ADDRESS is set but {', '.join(missing)} is not; set all three.")
    if int(env["JAX_PROCESS_ID"]) != 0:
      _wait_for_coordinator(env["JAX_COORDINATOR_ADDRESS"], flags.FLAGS.coordinator_timeout)
    jax.distributed.initialize(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                               num_processes=int(env["JAX_NUM_PROCESSES"]),
                               process_id=int(env["JAX_PROCESS_ID"]))
  else:
    jax.distributed.initialize()


def _parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with config override mistakes reported as one sentence instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError, TypeError, ValueError, flags.Error) as e:
    text = str(e).strip()
    raised_by_config = re.match(r"flag (\S+): Error whilst parsing config file", text)
    if raised_by_config and "Traceback (most recent call last)" in text:
      # config_flags embeds the config file's traceback; its last line is the sentence that names the fix.
      detail = text.splitlines()[-1].partition(": ")[2]
      raise SystemExit(f"Bad command line: {raised_by_config.group(1)}: {detail}") from None
    message = text.strip("'\"").replace("\\n", " ").replace("\n", " ")
    raise SystemExit(f"Bad command line: {message}") from None


def _quiet_library_logs() -> None:
  """Orbax logs every save step by step through absl at INFO; keep its warnings and errors only."""
  def keep(record: pylogging.LogRecord) -> bool:
    return record.levelno >= pylogging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname

  logging.get_absl_handler().addFilter(keep)


def _loaded_config():
  """--config, loaded; a file that cannot be loaded stops here, with one sentence, before anything is written."""
  config = flags.FLAGS.config
  if isinstance(config, ml_collections.ConfigDict):
    return config
  # config_flags stands in an object that raises on use for a config file that failed to load; our own loader
  # says why in one sentence.
  spec = config_flags.get_config_filename(flags.FLAGS["config"])
  try:
    config_lib.load(spec)
  except ValueError as error:  # names the spec and the fix
    sys.exit(f"Error: --config {error}")
  except Exception as error:  # pylint: disable=broad-except  # whatever else the config file raised
    sys.exit(f"Error: --config {spec} cannot be loaded ({type(error).__name__}: {error}); fix the file.")
  sys.exit(f"Error: --config {spec} cannot be loaded; check that it defines get_config().")


def main(argv: list[str]) -> None:
  del argv
  _quiet_library_logs()
  if flags.FLAGS.distributed or (flags.FLAGS.distributed is None and _is_multiprocess_environment()):
    _initialize_distributed()
  # Imported after distributed initialisation: nothing may touch the devices before it.
  from muraljax.train import loop  # pylint: disable=g-import-not-at-top

  from muraljax.train import aot  # pylint: disable=g-import-not-at-top

  config = _loaded_config()
  if not (flags.FLAGS.workdir or flags.FLAGS.compile_only):
    sys.exit("Error: --workdir is required: the directory for checkpoints and logs (or pass --compile_only).")
  logging.info("Config:\n%s", config)
  try:
    if flags.FLAGS.compile_only:
      print(aot.compile_train_step(config)[1].summary())
    else:
      loop.run(config, flags.FLAGS.workdir)
  # Bad input anywhere (data, mesh, model settings, init_from) is a ValueError that names the fix; the run
  # diverging is the one runtime failure reported the same way.
  except (ValueError, loop.TrainingDiverged, loop.CheckpointSaveError) as e:
    logging.debug("Stopped by", exc_info=e)
    sys.exit(f"Error: {e}")


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
