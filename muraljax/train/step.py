"""The trainer's pieces for a config, assembled in one place: the task, the optimizer and its learning-rate schedule,
the train state and the jitted train step. The training loop, the ahead-of-time compile and the benchmarks all get
them from `assemble`; nothing here reads data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import ml_collections
import optax

from muraljax import tasks
from muraljax.train import sharding
from muraljax.train.state import (TrainState, abstract_train_state, create_train_state, learning_rate_schedule,
                                  make_optimizer)

TrainStep = Callable[[TrainState, tasks.Batch], tuple[TrainState, dict[str, jax.Array]]]


@dataclasses.dataclass(frozen=True)
class Trainer:
  """What a config trains with.

  `state` holds arrays, or ShapeDtypeStructs carrying their shardings when assembled abstract. `step(state, batch)
  -> (state, metrics)` is jitted with the state donated; `step.lower(state, batch).compile()` compiles it.
  """

  task: tasks.Task
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  state: TrainState
  step: jax.stages.Wrapped


def assemble(config: ml_collections.ConfigDict, example_batch: tasks.Batch | None = None, *,
             mesh: jax.sharding.Mesh | None = None, abstract: bool = False, ema: bool = True,
             seed: int | None = None) -> Trainer:
  """The trainer's pieces for `config`, with parameters for inputs shaped like `example_batch` (default: one
  training patch, `tasks.example_batch`).

  With a `mesh`, the state is created laid out on it by the rules in `config.mesh`, and the step takes batches split
  over the data-parallel axes and returns replicated metrics; without, jit places everything. `abstract` (needs a
  mesh) gives the state as ShapeDtypeStructs, nothing allocated: enough to compile the step ahead of time. `ema`
  keeps EMA params when config.train.ema_decay > 0; `seed` draws the initial params (default: config.seed).
  """
  if abstract and mesh is None:
    raise ValueError("An abstract train state is laid out on a mesh; pass one.")
  task = tasks.get_task(config)
  num_steps = config.train.num_steps
  tx = make_optimizer(config.optimizer, num_steps, getattr(task, "trainable", None))
  schedule = learning_rate_schedule(config.optimizer, num_steps)
  example_batch = tasks.example_batch(task, config) if example_batch is None else example_batch
  ema_decay = config.train.ema_decay if ema else 0.0
  layout = None if mesh is None else sharding.ParamLayout.from_config(mesh, config.mesh)
  if abstract:
    state = abstract_train_state(task, tx, example_batch, layout, ema_decay)
  else:
    rng = jax.random.PRNGKey(config.seed if seed is None else seed)
    state = create_train_state(task, tx, rng, example_batch, layout, ema_decay=ema_decay)

  train_step = make_train_step(task, schedule)
  if mesh is None:
    step = jax.jit(train_step, donate_argnums=0)
  else:
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    step = jax.jit(train_step, in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
                   out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=0)
  return Trainer(task=task, tx=tx, schedule=schedule, state=state, step=step)


def make_train_step(task: tasks.Task, schedule: optax.Schedule) -> TrainStep:
  """One optimizer step on `task.loss`, un-jitted; its metrics add the loss, gradient and parameter norms and the
  learning rate to the task's."""
  def train_step(state: TrainState, batch: tasks.Batch) -> tuple[TrainState, dict[str, jax.Array]]:
    rng = jax.random.fold_in(state.rng, state.step)
    (loss, metrics), grads = jax.value_and_grad(task.loss, has_aux=True)(state.params, batch, rng)
    new_state = state.apply_gradients(grads)
    metrics = {**metrics, "loss": loss, "grad_norm": optax.global_norm(grads),
               "param_norm": optax.global_norm(new_state.params), "learning_rate": schedule(state.step)}
    return new_state, metrics

  return train_step
