"""A trained model for restoration: rebuilt from its run's config.json, params from its Orbax checkpoint (the EMA
params when the run kept them, as its evaluation used), and wrapped as a function of fixed-size tile batches
(`muraljax.restore.tiling.TileFn`).

A run trained before muraljax gained a config field has no such field in its config.json. The shared sections
(trainer, optimizer, mesh, init_from, data), which do not define the architecture, get the current defaults for
it (muraljax.runs.read_config), with a note in the provenance record; a missing model field stops with a
sentence naming it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from muraljax import runs, tasks
from muraljax.data.damage_types import UNKNOWN_DAMAGE
from muraljax.models.ops import crop_to, pad_to_multiple
from muraljax.restore import ensemble
from muraljax.restore.errors import RestoreError
from muraljax.restore.photo_files import sha256_folder
from muraljax.restore.tiling import TileFn
from muraljax.train import state

MODELS = tuple(name for name in tasks.names() if tasks.task_type(name).restores)  # the families that restore murals


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """A model family's task with the params of one checkpoint (`step_dir`, a checkpoints/<step> folder)."""

  name: str
  config: ml_collections.ConfigDict
  task: Any
  params: Any
  step_dir: Path
  sha256: str
  notes: tuple[str, ...] = ()
  weights: str = "params"  # the checkpoint item the params came from: 'params' or 'ema_params' 

  @property
  def blind(self) -> bool:
    """Whether the model sees only the damaged image (the paper's hinet and arin); the mask then only decides
    which of its output pixels are kept. Mask-aware models (inpainting hinet/arin, diffumural) take the mask."""
    return self.task.blind

  @property
  def sampled(self) -> bool:
    """Whether restorations are drawn with a seed (diffumural), so several samples differ."""
    return self.task.sampled

  @property
  def num_params(self) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(self.params))


def _read_run(checkpoint: str) -> tuple[Path, runs.RunConfig]:
  try:
    step_dir = runs.resolve(checkpoint)
  except runs.NoCheckpoint:
    raise RestoreError(f"--checkpoint {checkpoint!r} holds no muraljax checkpoint; pass a training workdir, its "
                       "checkpoints/ folder or one checkpoints/<step> folder.") from None
  try:
    return step_dir, runs.read_config(step_dir)
  except runs.NoConfig:
    raise RestoreError(f"No config.json (the training run's config) next to the checkpoint {str(step_dir)!r}; pass "
                       "the workdir of a muraljax training run as --checkpoint.") from None
  except runs.UnreadableConfig as error:
    raise RestoreError(f"{str(error.path)!r} is not valid JSON ({error.reason}); restore the run's "
                       "config.json.") from None


def read_run(checkpoint: str) -> tuple[Path, ml_collections.ConfigDict]:
  """The checkpoints/<step> folder that `checkpoint` designates (a workdir, its checkpoints/ folder or one step
  folder; the latest step by default) and the config its run was trained with (the workdir's config.json)."""
  step_dir, run = _read_run(checkpoint)
  return step_dir, run.config


def load_model(checkpoint: str, name: str | None = None) -> TrainedModel:
  """The model trained in `checkpoint` (see `read_run`); `name`, when given, must be the family it was trained
  as."""
  step_dir, run = _read_run(checkpoint)
  config = run.config
  trained_as = config.get("task")
  if name is not None and name != trained_as:
    raise RestoreError(f"The checkpoint {str(step_dir)!r} holds a {trained_as!r} model, not {name!r}; pass "
                       f"--model {trained_as} or a checkpoint trained as {name}.")
  if trained_as not in MODELS:
    raise RestoreError(f"The checkpoint {str(step_dir)!r} holds a {trained_as!r} model, which does not restore "
                       f"murals; use a checkpoint of one of {list(MODELS)}.")
  try:
    task = tasks.get_task(config)
  except AttributeError as error:  # the task read a field (error.name) that the run's config.json lacks
    raise RestoreError(f"The config.json of the run {checkpoint!r} lacks the setting {error.name} that this "
                       f"version's {trained_as} model needs; add it from configs/{trained_as}.py, or restore with "
                       "the muraljax version that trained it.") from None
  except ValueError as error:
    raise RestoreError(f"The config.json of the run {checkpoint!r} describes no {trained_as} model this version can "
                       f"build ({str(error).rstrip('.')}); correct it, or restore with the muraljax version that "
                       "trained it.") from None
  try:
    params, weights = runs.load_task_params(step_dir, task, config)
  except runs.ParamsMismatch as error:
    raise RestoreError(f"The checkpoint {str(step_dir)!r} does not hold the {trained_as} model its config.json "
                       f"describes ({len(error.differences)} differences, e.g. {'; '.join(error.differences[:3])}); "
                       "pass the workdir of the run that trained it.") from None
  except Exception as error:  # pylint: disable=broad-except  # any reader failure means a damaged checkpoint
    raise RestoreError(f"The checkpoint {str(step_dir)!r} cannot be read ({type(error).__name__}); it is damaged or "
                       "incomplete: pass an intact step folder (checkpoints/<step>) or copy the run again.") from None
  notes = (run.note,) if run.note else ()
  return TrainedModel(trained_as, config, task, params, step_dir, sha256_folder(step_dir / runs.STATE_ITEM), notes,
                      weights)


def untrained_model(config: ml_collections.ConfigDict) -> TrainedModel:
  """The model `config` describes with freshly initialised params, for what needs no training (timing the
  restoration of a wall, testing tiling and sampling)."""
  task = tasks.get_task(config)
  rng, example = jax.random.PRNGKey(0), tasks.example_batch(task, config)
  params = state.compile_once(task.init, rng, example)(rng, example)
  return TrainedModel(config.task, config, task, params, Path("untrained/0"), "")


def _tile_seeds(seed: int, sample: int, tile_indices: np.ndarray) -> np.ndarray:
  """int32 [B]: a seed per tile from (seed, sample number, tile index), so results do not depend on batching."""
  return np.array([np.random.SeedSequence([seed, sample, int(i)]).generate_state(1)[0] >> 1 for i in tile_indices],
                  np.int32)


class TilePredictor:
  """`model` compiled once for batches of `batch_size` tiles of `tile_shape`; `tile_fn` gives the TileFn.
  A model conditioned on the damage type (DiffuMural) gets `damage_type` (an index into
  data.damage_types.DAMAGE_TYPES) for every tile; a deterministic one restores `ensemble_size` mirrored views of
  each tile (muraljax.restore.ensemble)."""

  def __init__(self, model: TrainedModel, batch_size: int, tile_shape: tuple[int, int],
               damage_type: int = UNKNOWN_DAMAGE, ensemble_size: int = 1):
    self.model, self.damage_type, self.ensemble_size = model, damage_type, ensemble_size
    self.params = jax.device_put(model.params)
    self.inputs = model.task.inputs(batch_size, *tile_shape)
    seeds = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
    started = time.perf_counter()
    self._compiled = jax.jit(self._predict).lower(self.params, self.inputs, seeds).compile()
    self.compile_seconds = time.perf_counter() - started

  def _predict(self, params: Any, batch: dict[str, jax.Array], seeds: jax.Array) -> jax.Array:
    """The task's restorations of tiles padded to its size multiple and cropped back; a sampled task draws each
    tile with the key of its own seed, so results do not depend on batching."""
    task = self.model.task
    size = batch["damaged"].shape[1:3]
    batch = {name: value if value.ndim == 1 else pad_to_multiple(value, task.size_multiple)[0]
             for name, value in batch.items()}
    if not task.sampled:
      views = {name: ensemble.views(value, self.ensemble_size) for name, value in batch.items()}
      return crop_to(ensemble.combine(task.predict(params, views), self.ensemble_size), size)

    def sample_one(example: dict[str, jax.Array], seed: jax.Array) -> jax.Array:
      return task.predict(params, {name: value[None] for name, value in example.items()}, jax.random.PRNGKey(seed))[0]

    return crop_to(jax.vmap(sample_one)(batch, seeds), size)

  def tile_fn(self, seed: int = 0, sample: int = 0) -> TileFn:
    """The TileFn of this model; a sampled model's tiles are drawn with seeds from (`seed`, `sample`, tile
    index)."""

    def fn(batch: dict[str, np.ndarray], tile_indices: np.ndarray) -> jax.Array:
      seeds = _tile_seeds(seed, sample, tile_indices) if self.model.sampled else np.zeros(len(tile_indices), np.int32)
      return self._compiled(self.params, tasks.complete_batch(self.inputs, batch, self.damage_type), seeds)

    return fn
