"""Command-line entry point: `python -m muraljax.main --config configs/hinet.py:smoke --workdir runs/x`.

Config fields are overridden with `--config.section.field=value`. A multi-process job (TPU pod, SLURM, or
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID in the environment) is joined automatically
with `jax.distributed.initialize()` before anything touches the devices. A mistake stops it with one sentence and
exit status 2 (muraljax.cli).
"""

from __future__ import annotations

import logging as pylogging
import os
import socket
import sys
import time

from absl import flags, logging
from ml_collections import config_flags

from muraljax import cli

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
        raise cli.CommandError(f"no coordinator answered at {address} within {timeout:.0f} s; start process 0 "
                               "(it hosts the coordinator) and check JAX_COORDINATOR_ADDRESS.") from None
      time.sleep(1)


def _initialize_distributed() -> None:
  import jax  # pylint: disable=g-import-not-at-top

  env = os.environ
  if "JAX_COORDINATOR_ADDRESS" in env:
    missing = [k for k in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID") if k not in env]
    if missing:
      raise cli.CommandError(f"JAX_COORDINATOR_ADDRESS is set but {', '.join(missing)} is not; set all three.")
    if int(env["JAX_PROCESS_ID"]) != 0:
      _wait_for_coordinator(env["JAX_COORDINATOR_ADDRESS"], flags.FLAGS.coordinator_timeout)
    jax.distributed.initialize(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                               num_processes=int(env["JAX_NUM_PROCESSES"]),
                               process_id=int(env["JAX_PROCESS_ID"]))
  else:
    jax.distributed.initialize()


def _log_like_absl_apps() -> None:
  """absl's log handler, at INFO unless --verbosity says otherwise: what absl.app.run would set up."""
  logging.use_absl_handler()
  if flags.FLAGS["verbosity"].using_default_value:
    flags.FLAGS.verbosity = 0


def _quiet_library_logs() -> None:
  """Orbax logs every save step by step through absl at INFO; keep its warnings and errors only."""
  def keep(record: pylogging.LogRecord) -> bool:
    return record.levelno >= pylogging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname

  logging.get_absl_handler().addFilter(keep)


def main(argv: list[str]) -> None:
  del argv
  _log_like_absl_apps()
  _quiet_library_logs()
  if flags.FLAGS.distributed or (flags.FLAGS.distributed is None and _is_multiprocess_environment()):
    _initialize_distributed()
  # Imported after distributed initialisation: nothing may touch the devices before it.
  from muraljax.train import loop  # pylint: disable=g-import-not-at-top

  from muraljax.train import aot  # pylint: disable=g-import-not-at-top

  # A config file that cannot be loaded stops here, with one sentence, before anything is written.
  config = cli.loaded_config(flags.FLAGS)
  if not (flags.FLAGS.workdir or flags.FLAGS.compile_only):
    raise cli.CommandError("--workdir is required: the directory for checkpoints and logs (or pass --compile_only).")
  logging.info("Config:\n%s", config)
  # Bad input anywhere (data, mesh, model settings, init_from) is a ValueError that names the fix, and the run
  # diverging or failing to save stops with one sentence too: muraljax.cli reports them.
  if flags.FLAGS.compile_only:
    print(aot.compile_train_step(config)[1].summary())
  else:
    loop.run(config, flags.FLAGS.workdir)


if __name__ == "__main__":
  sys.exit(cli.run(main, flags.FLAGS, __doc__))
