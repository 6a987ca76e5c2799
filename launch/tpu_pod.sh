#!/usr/bin/env bash
# Train on a Cloud TPU pod slice: copy this checkout to every worker, install it, run the same command on all
# workers, and collect their output in one local log.
#
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.field=value ...]
#
# WORKDIR should be a bucket path (gs://...) that every worker can write. muraljax.main detects the pod
# (TPU_WORKER_HOSTNAMES) and calls jax.distributed.initialize() on each worker.
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "usage: launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.field=value ...]" >&2
  exit 2
fi
tpu=$1
zone=$2
config=$3
workdir=$4
shift 4
overrides=$(printf ' %q' "$@")
repo=$(cd "$(dirname "$0")/.." && pwd)
remote_dir=muraljax
logs=logs/$tpu-$(date +%Y%m%d-%H%M%S)

on_all_workers() {
  gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command "$1"
}

echo "Copying $repo to every worker of $tpu..."
tar -C "$repo" --exclude=.git --exclude=.venv --exclude=runs -czf /tmp/muraljax.tgz .
gcloud compute tpus tpu-vm scp /tmp/muraljax.tgz "$tpu":/tmp/muraljax.tgz --zone "$zone" --worker=all
on_all_workers "mkdir -p $remote_dir && tar -xzf /tmp/muraljax.tgz -C $remote_dir"

echo "Installing..."
on_all_workers "cd $remote_dir && python3 -m venv .venv && . .venv/bin/activate && pip install -q -e . 'jax[tpu]'"

echo "Training (log: $logs/workers.log)..."
mkdir -p "$logs"
# gcloud streams every worker's output here, each line prefixed with its worker.
on_all_workers "cd $remote_dir && . .venv/bin/activate && python -m muraljax.main --config $config \
  --workdir $workdir$overrides" 2>&1 | tee "$logs/workers.log"
