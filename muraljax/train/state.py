"""The train state pytree and the optimizer built from config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue exactly: params, optimizer state, step and the base RNG key.

  `rng` is a raw uint32 key; step t uses `fold_in(rng, t)`, so no key has to be split and carried.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, params: Any, tx: optax.GradientTransformation, rng: jax.Array) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=rng, tx=tx)

  def apply_gradients(self, grads: Any) -> "TrainState":
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                        opt_state=opt_state)


def create_train_state(task, tx: optax.GradientTransformation, rng: jax.Array, example_batch: dict[str, Any],
                       shardings_for: Callable[[Any], Any] | None = None) -> TrainState:
  """Fresh parameters and optimizer state, created directly with the shardings that `shardings_for` picks for
  the abstract state (default: wherever jit puts them).

  The init program runs once, so on CPU it is compiled without LLVM optimisation: the per-parameter random
  number generation otherwise takes XLA tens of seconds to optimise, even for tiny models.
  """
  def init(rng: jax.Array) -> TrainState:
    return TrainState.create(task.init(rng, example_batch), tx, rng)

  shardings = shardings_for(jax.eval_shape(init, rng)) if shardings_for else None
  options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
  return jax.jit(init, out_shardings=shardings).lower(rng).compile(compiler_options=options)(rng)


def learning_rate_schedule(config: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """Linear warm-up to the peak, then cosine decay to `end_learning_rate` at `num_steps`."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate, warmup_steps=config.warmup_steps,
      decay_steps=max(num_steps, config.warmup_steps + 1), end_value=config.end_learning_rate)


def make_optimizer(config: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """Adam(W) on the schedule, after optional global-norm clipping (see muraljax.config.optimizer_config)."""
  schedule = learning_rate_schedule(config, num_steps)
  adam = optax.adamw(schedule, b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=config.weight_decay)
  if config.grad_clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adam)
  return adam
