"""The train state pytree and the optimizer built from config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from muraljax.models import partitioning
from muraljax.train import sharding


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue exactly: params, optimizer state, step and the base RNG key.

  `rng` is a raw uint32 key; step t uses `fold_in(rng, t)`, so no key has to be split and carried.
  `ema_params` is an exponential moving average of `params` (None when `ema_decay` is 0); evaluation uses it
  when present.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  ema_params: Any = None
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)
  ema_decay: float = flax.struct.field(pytree_node=False, default=0.0)

  @classmethod
  def create(cls, params: Any, tx: optax.GradientTransformation, rng: jax.Array,
             ema_decay: float = 0.0) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=rng,
               ema_params=params if ema_decay else None, tx=tx, ema_decay=ema_decay)

  @property
  def eval_params(self) -> Any:
    return self.params if self.ema_params is None else self.ema_params

  def apply_gradients(self, grads: Any) -> "TrainState":
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    ema_params = self.ema_params
    if ema_params is not None:
      ema_params = optax.incremental_update(params, ema_params, step_size=1.0 - self.ema_decay)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state, ema_params=ema_params)


def state_shardings(task, tx: optax.GradientTransformation, example_batch: dict[str, Any],
                    layout: sharding.ParamLayout, ema_decay: float = 0.0) -> TrainState:
  """The NamedSharding of every leaf of the train state: params (and EMA params) as `layout` lays out their
  logical axes, optimizer moments like their params, scalars and the RNG key replicated."""
  rng = jax.random.PRNGKey(0)
  axes = partitioning.axes(jax.eval_shape(lambda r: task.init(r, example_batch, keep_axis_names=True), rng))
  abstract = _abstract_state(task, tx, example_batch, ema_decay)
  params = layout.shardings(axes, abstract.params)
  replicated = sharding.replicated(layout.mesh)
  return abstract.replace(step=replicated, params=params, opt_state=_like_params(abstract, params, replicated),
                          rng=replicated, ema_params=params if ema_decay else None)


def _like_params(abstract: TrainState, params: Any, otherwise: jax.sharding.Sharding) -> Any:
  """Shardings for the optimizer state: a leaf whose path ends with a parameter's path (Adam's mu and nu, under
  whatever wrappers the optimizer has) and has its shape is placed like the parameter; the rest `otherwise`."""
  by_path = {tuple(path): (leaf.shape, where) for (path, leaf), where in
             zip(jax.tree_util.tree_flatten_with_path(abstract.params)[0], jax.tree.leaves(params))}
  depths = sorted({len(path) for path in by_path})

  def place(path, leaf):
    for depth in depths:
      shape, where = by_path.get(tuple(path[-depth:]), (None, None))
      if shape == leaf.shape:
        return where
    return otherwise

  return jax.tree_util.tree_map_with_path(place, abstract.opt_state)


def abstract_train_state(task, tx: optax.GradientTransformation, example_batch: dict[str, Any],
                         layout: sharding.ParamLayout, ema_decay: float = 0.0) -> TrainState:
  """The train state as sharded ShapeDtypeStructs: enough to compile a step ahead of time without allocating."""
  shardings = state_shardings(task, tx, example_batch, layout, ema_decay)
  return jax.tree.map(lambda leaf, where: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=where),
                      _abstract_state(task, tx, example_batch, ema_decay), shardings)


def _abstract_state(task, tx: optax.GradientTransformation, example_batch: dict[str, Any],
                    ema_decay: float) -> TrainState:
  return jax.eval_shape(lambda r: TrainState.create(task.init(r, example_batch), tx, r, ema_decay),
                        jax.random.PRNGKey(0))


def create_train_state(task, tx: optax.GradientTransformation, rng: jax.Array, example_batch: dict[str, Any],
                       layout: sharding.ParamLayout | None = None, ema_decay: float = 0.0) -> TrainState:
  """Fresh parameters and optimizer state, created directly where `layout` puts them (default: wherever jit
  puts them)."""
  def init(rng: jax.Array) -> TrainState:
    return TrainState.create(task.init(rng, example_batch), tx, rng, ema_decay)

  shardings = state_shardings(task, tx, example_batch, layout, ema_decay) if layout else None
  return compile_once(init, rng, out_shardings=shardings)(rng)


def compile_once(fn: Callable[..., Any], *args: Any, out_shardings: Any = None) -> jax.stages.Compiled:
  """`fn` jit-compiled for `args` (arrays or jax.ShapeDtypeStruct) for a program that runs once or a few times,
  parameter init above all: on CPU without LLVM optimisation, which otherwise spends tens of seconds on the
  per-parameter random number generation of even a tiny model.
  """
  options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
  return jax.jit(fn, out_shardings=out_shardings).lower(*args).compile(compiler_options=options)


def learning_rate_schedule(config: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """Linear warm-up to the peak, then cosine decay to `end_learning_rate` at `num_steps`."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate, warmup_steps=config.warmup_steps,
      decay_steps=max(num_steps, config.warmup_steps + 1), end_value=config.end_learning_rate)


def make_optimizer(config: ml_collections.ConfigDict, num_steps: int,
                   trainable: Callable[[Any], Any] | None = None) -> optax.GradientTransformation:
  """Adam(W) on the schedule, after optional global-norm clipping (see muraljax.config.optimizer_config).

  `trainable(params)` -> a pytree of bools freezes the parameters marked False: they get no update, no weight
  decay and no optimizer state.
  """
  schedule = learning_rate_schedule(config, num_steps)
  tx = optax.adamw(schedule, b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=config.weight_decay)
  if config.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
  if trainable is None:
    return tx
  labels = lambda params: jax.tree.map(lambda t: "train" if t else "freeze", trainable(params))
  return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)
