"""Runs N muraljax processes on this machine that join one jax.distributed job over 127.0.0.1.

  python launch/local.py --processes 2 --devices-per-process 4 -- \
      python -m muraljax.main --config configs/hinet.py:smoke --workdir runs/local2

Each process gets JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID (which muraljax.main turns into
jax.distributed.initialize) and, on CPU, its own number of host devices. Output of process i goes to
<log-dir>/process_<i>.log; the launcher exits with the first non-zero exit code and stops the other
processes when one fails.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import socket
import subprocess
import sys
import time


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_env(index: int, count: int, port: int, devices_per_process: int) -> dict[str, str]:
  env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(count),
             JAX_PROCESS_ID=str(index))
  if devices_per_process:
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices_per_process}".strip()
  return env


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--processes", type=int, default=2, help="How many processes to start.")
  parser.add_argument("--devices-per-process", type=int, default=0,
                      help="CPU host devices per process (0 = leave XLA's default).")
  parser.add_argument("--port", type=int, default=0, help="Coordinator port on 127.0.0.1 (0 = a free one).")
  parser.add_argument("--log-dir", default="", help="Where process logs go (default: inherit the terminal).")
  parser.add_argument("command", nargs=argparse.REMAINDER, help="The command every process runs, after --.")
  args = parser.parse_args()
  command = args.command[1:] if args.command[:1] == ["--"] else args.command
  if not command:
    parser.error("give the command to run after --, e.g. -- python -m muraljax.main --config ...")
  if args.processes < 1:
    parser.error("--processes must be at least 1.")

  port = args.port or free_port()
  logs = []
  processes = []
  for i in range(args.processes):
    output = None
    if args.log_dir:
      pathlib.Path(args.log_dir).mkdir(parents=True, exist_ok=True)
      output = open(pathlib.Path(args.log_dir) / f"process_{i}.log", "w")
      logs.append(output)
    env = process_env(i, args.processes, port, args.devices_per_process)
    processes.append(subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT if output else None))

  exit_code = 0
  while any(p.poll() is None for p in processes):
    failed = [p for p in processes if p.poll() not in (None, 0)]
    if failed:
      exit_code = failed[0].returncode
      for p in processes:
        if p.poll() is None:
          p.terminate()
    time.sleep(0.2)
  exit_code = exit_code or next((p.returncode for p in processes if p.returncode), 0)
  for log in logs:
    log.close()
  return exit_code


if __name__ == "__main__":
  sys.exit(main())
