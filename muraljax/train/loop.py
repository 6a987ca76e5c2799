"""The generic training loop every model family runs through (see muraljax.tasks for the families).

`run(config, workdir)` builds the mesh, the sharded train state and its step (muraljax.train.step), the data, then
compiles the step once and trains, evaluates, logs and checkpoints. Re-running the same command resumes from the
latest checkpoint in `workdir`: model, optimizer, step, RNG and the data iterator's position.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from muraljax import config as config_lib
from muraljax import paths, runs
from muraljax.data import pipeline
from muraljax.metrics.image_files import image_grid, save_png
from muraljax.train import evaluation, init_from, sharding, summaries, throughput
from muraljax.train.checkpoint import Checkpointer
from muraljax.train.state import TrainState
from muraljax.train.step import assemble


class TrainingDiverged(RuntimeError):
  """The loss became NaN or Inf."""


class _Preemption:
  """Turns SIGTERM and Ctrl-C (SIGINT) into a request to checkpoint and stop at the next step boundary; a second
  signal acts at once (the previous handlers are back after the first)."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}

  def _handle(self, signum, frame):
    del frame
    logging.warning("%s received: saving a checkpoint and stopping after this step (send it again to stop at "
                    "once).", signal.Signals(signum).name)
    self.requested = True
    self.restore_handler()

  def restore_handler(self):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)


class _MetricLog:
  """Averages per-step metrics between log points; writes them to the metric writer and <workdir>/metrics.jsonl."""

  def __init__(self, workdir: str, writer: summaries.MetricWriter):
    self.writer = writer
    self.path = os.path.join(workdir, "metrics.jsonl") if jax.process_index() == 0 else None
    self.sums: dict[str, float] = {}
    self.count = 0

  def add(self, metrics: dict[str, float]) -> None:
    for k, v in metrics.items():
      self.sums[k] = self.sums.get(k, 0.0) + v
    self.count += 1

  def write(self, step: int, scalars: dict[str, float]) -> None:
    self.writer.write_scalars(step, scalars)
    if self.path:
      with open(self.path, "a") as f:
        f.write(json.dumps({"step": step, **scalars}) + "\n")

  def flush_means(self, step: int, extra: dict[str, float]) -> None:
    if self.count:
      self.write(step, {f"train/{k}": v / self.count for k, v in self.sums.items()} | extra)
    self.sums, self.count = {}, 0


ARCHITECTURE_SECTIONS = ("task", "model")  # the config sections a checkpoint's params depend on


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(value, dict):
    return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
  return {prefix.rstrip("."): value}


def check_writable_folder(workdir: str) -> None:
  """Creates `workdir` if needed and checks that files can be written in it; raises ValueError otherwise (before
  anything is compiled)."""
  reason = paths.unwritable_reason(workdir)
  if reason is not None:
    raise ValueError(f"--workdir {workdir} cannot be written ({reason}); pass a folder you can write to (a new "
                     "one, or the workdir of a run to resume).")
  os.makedirs(workdir, exist_ok=True)


def check_same_architecture(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Raises ValueError when `workdir` holds checkpoints of a run whose config.json describes another model than
  `config` (resuming would fail inside Orbax, after the record had been overwritten), naming the fields."""
  if not (runs.config_file(workdir).is_file() and runs.steps(workdir)):
    return
  try:
    stored = json.loads(runs.config_file(workdir).read_text())
  except (OSError, json.JSONDecodeError):
    return  # an unreadable record is rewritten; the checkpoint restore then checks the shapes itself
  new = json.loads(config.to_json_best_effort())
  differences = []
  for section in ARCHITECTURE_SECTIONS:
    before, after = _flatten(stored.get(section), f"{section}."), _flatten(new.get(section), f"{section}.")
    # Fields only one side has (added to muraljax since the run started) keep the old behaviour by default.
    differences += [f"{key}: {before[key]!r} -> {after[key]!r}"
                    for key in sorted(before.keys() & after.keys()) if before[key] != after[key]]
  if differences:
    raise ValueError(f"{workdir} holds checkpoints of another model than this config describes "
                     f"({'; '.join(differences)}); resume with the run's own settings, or train the new model in a "
                     f"new --workdir (add --config.init_from.checkpoint={workdir} to start from its params where "
                     "they fit).")


def run(config: ml_collections.ConfigDict, workdir: str, *, stop_after_step: int | None = None) -> TrainState:
  """Trains `config.task` until `config.train.num_steps`, resuming from `workdir` if it has checkpoints.

  `stop_after_step` ends the run early with a checkpoint at that step, exactly as a preemption would.
  Returns the final train state.
  """
  config_lib.check_ranges(config)
  config_text = config.to_json_best_effort(indent=2)  # before anything is written: a bad config changes nothing
  check_writable_folder(workdir)
  check_same_architecture(workdir, config)
  if jax.process_index() == 0:
    runs.write_config(workdir, config_text)  # so tools (evaluation, restoration) rebuild the model from the workdir
  train_cfg = config.train
  mesh = sharding.make_mesh(config.mesh)
  sharding.check_batch_size(train_cfg.batch_size, mesh)
  trainer = assemble(config, mesh=mesh)  # before any data is read: the task checks its settings
  state = trainer.state
  num_params = sum(math.prod(x.shape) for x in jax.tree.leaves(state.params))
  logging.info("Task %s: %s parameters on a mesh %s.", config.task, f"{num_params:,}", dict(mesh.shape))

  loader = pipeline.train_loader(config.data, global_batch_size=train_cfg.batch_size, seed=config.seed)
  data_iterator = iter(loader)
  eval_batches = []
  if train_cfg.eval_every and not config.data.eval_images:
    logging.info("data.eval_images is 0: no evaluation (train.eval_every=%d is ignored).", train_cfg.eval_every)
  elif train_cfg.eval_every:
    replicated = sharding.replicated(mesh)
    eval_batches = [
        {k: jax.make_array_from_process_local_data(replicated, v) for k, v in batch.items()}
        for batch in pipeline.eval_batches(config.data, batch_size=train_cfg.eval_batch_size, seed=config.seed)]

  checkpointer = Checkpointer(workdir, train_cfg)
  resumed = checkpointer.restore_newest_intact(state, data_iterator)
  if resumed is not None:
    state = resumed
    logging.info("Resumed from the checkpoint at step %d in %s.", int(state.step), workdir)
  elif config.init_from.checkpoint:
    state = init_from.initialise(state, config.init_from)

  writer = summaries.MetricWriter(workdir)  # event files from process 0 only
  if int(state.step) == 0:
    writer.write_hparams({k: v for k, v in config.to_dict().items() if not isinstance(v, dict)}
                         | {"num_params": num_params})
  log = _MetricLog(workdir, writer)

  eval_fn = evaluation.make_eval_fn(trainer.task.predict)
  first_batch = sharding.global_batch(next(data_iterator), mesh)
  compile_start = time.perf_counter()
  compiled_step = trainer.step.lower(state, first_batch).compile()
  flops = throughput.flops_per_device(compiled_step)
  logging.info("Compiled the train step in %.1f s (%.3g FLOPs per step and device).",
               time.perf_counter() - compile_start, flops)

  def run_eval(step: int) -> None:
    means, restored = evaluation.evaluate(eval_fn, state.eval_params, eval_batches)
    log.write(step, means)
    first = eval_batches[0]
    n = train_cfg.grid_images
    grid = image_grid([np.asarray(first["damaged"])[:n], np.asarray(restored)[:n], np.asarray(first["clean"])[:n]])
    if jax.process_index() == 0:
      save_png(os.path.join(workdir, "images", f"eval_{step:08d}.png"), grid)
    writer.write_images(step, {"eval/damaged_restored_clean": grid[None]})

  def check_finite(step: int, metrics: dict[str, jax.Array]) -> None:
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not (math.isfinite(values["loss"]) and math.isfinite(values["param_norm"])):
      checkpointer.wait()
      raise TrainingDiverged(
          f"The loss or the parameters became NaN/Inf at step {step} (loss {values['loss']}); stopped "
          f"without saving that step. The last good "
          f"checkpoint is step {checkpointer.latest_step()} in {workdir}: resume from it with a lower "
          "optimizer.learning_rate or with optimizer.grad_clip_norm set.")
    log.add(values)

  preemption = _Preemption()
  progress = summaries.ReportProgress(num_train_steps=train_cfg.num_steps, writer=writer,
                                      every_steps=train_cfg.log_every)
  step = int(state.step)
  last_log = (step, time.perf_counter())
  pending = None  # The previous step's metrics: read one step late so the host never waits on the device.
  batch = first_batch
  try:
    while step < train_cfg.num_steps:
      state, metrics = compiled_step(state, batch)
      step += 1
      if pending is not None:
        check_finite(*pending)
      pending = (step, metrics)
      progress(step)
      stop = preemption.requested or step == stop_after_step or step == train_cfg.num_steps
      boundary = (step % train_cfg.log_every == 0 or step % train_cfg.checkpoint_every == 0 or
                  (train_cfg.eval_every and step % train_cfg.eval_every == 0) or stop)
      if boundary:
        check_finite(*pending)
        pending = None
      if step % train_cfg.log_every == 0 or stop:
        elapsed = time.perf_counter() - last_log[1]
        images_per_sec = (step - last_log[0]) * train_cfg.batch_size / max(elapsed, 1e-9)
        log.flush_means(step, {"perf/images_per_sec": images_per_sec} | throughput.utilisation(
            flops, images_per_sec / train_cfg.batch_size, jax.devices()[0].device_kind))
        last_log = (step, time.perf_counter())
      # The checkpoint first: a failure in evaluation or image writing must not cost the step's save.
      checkpointer.save(step, state, data_iterator, force=stop)
      if eval_batches and (step % train_cfg.eval_every == 0 or step == train_cfg.num_steps):
        run_eval(step)
      if stop:
        break
      batch = sharding.global_batch(next(data_iterator), mesh)
  finally:
    preemption.restore_handler()
    checkpointer.finish(raise_errors=sys.exc_info()[0] is None)
    writer.close()
  return state
