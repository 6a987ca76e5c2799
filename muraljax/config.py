"""The config sections every model family shares: trainer, optimizer, mesh, checkpoints, restoration.

`configs/<model>.py` composes these with its model and data sections. Every field is documented here, where it
is defined; the values are the defaults the paper configs start from.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
import importlib.util
import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections

COMPUTE_DTYPES = ("auto", "float32", "bfloat16")


def train_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.batch_size = 64  # Global batch (all hosts and devices together); must divide by the data-parallel size.
  c.num_steps = 400_000  # Total optimizer steps; the learning-rate schedule spans exactly these.
  c.log_every = 100  # Steps between scalar summaries (loss, grad norm, lr, steps/s, images/s).
  c.eval_every = 5_000  # Steps between evaluations on the held-out set (PSNR/SSIM, image grids); 0 = never.
  c.checkpoint_every = 5_000  # Steps between (asynchronous) checkpoints; a final one is always written.
  c.max_to_keep = 3  # Checkpoints kept in <workdir>/checkpoints; older ones are deleted.
  c.eval_batch_size = 8  # Batch size for evaluation and image grids.
  c.grid_images = 4  # Examples shown in each image grid (damaged | restored | ground truth).
  c.ema_decay = 0.0  # Keep an exponential moving average of the params with this decay (0 = none); eval uses it.
  # Activation dtype: 'float32', 'bfloat16', or 'auto' = bfloat16 on GPUs and TPUs, float32 on CPUs (params and
  # optimizer state stay float32 whatever it is).
  c.compute_dtype = "auto"
  # Recompute each block's activations in the backward pass instead of keeping them (saves memory, costs about
  # one more forward): 'none', 'blocks' (keep only block inputs), 'dots' (also keep conv and matmul outputs),
  # 'dots_no_batch' (keep only unbatched matmul outputs). See muraljax.models.partitioning.REMAT_POLICIES.
  c.remat = "none"
  return c


def compute_dtype(train: ml_collections.ConfigDict) -> jnp.dtype:
  """The activation dtype `train.compute_dtype` names ('auto' resolved for the default backend); raises ValueError
  for anything else."""
  if train.compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(f"Unknown train.compute_dtype {train.compute_dtype!r}; use one of {list(COMPUTE_DTYPES)}.")
  if train.compute_dtype == "auto":
    return jnp.dtype(jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16)
  return jnp.dtype(train.compute_dtype)


def optimizer_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.learning_rate = 2e-4  # Peak learning rate (reached after warm-up).
  c.warmup_steps = 0  # Linear warm-up from 0 to learning_rate.
  c.end_learning_rate = 1e-7  # Cosine decay ends here at train.num_steps.
  c.b1 = 0.9  # Adam beta1.
  c.b2 = 0.999  # Adam beta2.
  c.eps = 1e-8  # Adam epsilon.
  c.weight_decay = 0.0  # Decoupled weight decay (AdamW) when > 0.
  c.grad_clip_norm = 0.0  # Clip gradients to this global norm; 0 = no clipping.
  return c


def mesh_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # Mesh axis sizes in order; -1 takes every remaining device. Axes: 'data' and 'fsdp' split the batch, 'fsdp'
  # also the parameters and optimizer state (by `rules`), 'tensor' splits channels (by `rules`), not the batch.
  c.shape = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  c.num_devices = 0  # Use only the first N devices (0 = all); handy for single-device debugging.
  # (logical axis, mesh axis) pairs: which mesh axis each named parameter dimension may be split over, tried in
  # order (muraljax.train.sharding.ParamLayout). Logical axes: see muraljax.models.partitioning.
  c.rules = (("channels_in", "fsdp"), ("channels_out", "tensor"), ("channels_out", "fsdp"),
             ("channels", "tensor"), ("channels", "fsdp"), ("classes", "fsdp"))
  c.fsdp_min_size = 2**18  # Parameters with fewer elements than this stay replicated (on every mesh axis).
  return c


def init_from_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # A muraljax workdir, its checkpoints/ folder or one checkpoints/<step> folder (default: the latest step) whose
  # params initialise the model when the run starts fresh (ignored when resuming the run's own checkpoint);
  # '' = random init. See muraljax.train.init_from.
  c.checkpoint = ""
  # Where the loaded params go: '' = the whole params tree, 'car' = params['car'], 'a/b' = params['a']['b'].
  c.into = ""
  return c


ENSEMBLE_SIZES = (1, 2, 4)
"""Mirrored views a flip self-ensemble may have: the tile alone, with its left-right mirror, with every mirror."""


def restore_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # How `python -m muraljax.restore` and muraljax.restore.load() run the trained model unless told otherwise:
  # mirrored views of each tile a deterministic model averages (ENSEMBLE_SIZES; see muraljax.restore.ensemble).
  c.ensemble = 1
  return c


_AT_LEAST_1, _AT_LEAST_0 = (lambda v: v >= 1, ">= 1"), (lambda v: v >= 0, ">= 0")
_POSITIVE, _FRACTION = (lambda v: v > 0, "> 0"), (lambda v: 0 <= v < 1, "in [0, 1)")
# The shared numeric fields and the ranges `check_ranges` enforces.
_RANGES = {
    "seed": (lambda v: 0 <= v < 2**32, "in [0, 2^32)"),
    "train.batch_size": _AT_LEAST_1, "train.num_steps": _AT_LEAST_1, "train.log_every": _AT_LEAST_1,
    "train.eval_every": _AT_LEAST_0, "train.checkpoint_every": _AT_LEAST_1, "train.max_to_keep": _AT_LEAST_1,
    "train.eval_batch_size": _AT_LEAST_1, "train.grid_images": _AT_LEAST_0, "train.ema_decay": _FRACTION,
    "optimizer.learning_rate": _POSITIVE, "optimizer.warmup_steps": _AT_LEAST_0,
    "optimizer.end_learning_rate": _AT_LEAST_0, "optimizer.b1": _FRACTION, "optimizer.b2": _FRACTION,
    "optimizer.eps": _POSITIVE, "optimizer.weight_decay": _AT_LEAST_0, "optimizer.grad_clip_norm": _AT_LEAST_0,
    "restore.ensemble": (lambda v: v in ENSEMBLE_SIZES, f"one of {list(ENSEMBLE_SIZES)}"),
}


def check_ranges(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first shared numeric field (seed, trainer, optimizer, restore) outside its
  range; the trainer runs it before anything is compiled or written."""
  for dotted, (valid, allowed) in _RANGES.items():
    value = config
    for key in dotted.split("."):
      value = value[key]
    if not valid(value):
      raise ValueError(f"{dotted}={value} is out of range: it must be {allowed}.")


def base_config(task: str) -> ml_collections.ConfigDict:
  """The shared sections; the caller adds `model` and `data` and adjusts values."""
  c = ml_collections.ConfigDict()
  c.task = task  # Which model family trains (see muraljax.tasks): 'hinet', 'car', 'arin', ...
  c.seed = 0  # Seeds parameter init, per-step RNG and the data order.
  c.train = train_config()
  c.optimizer = optimizer_config()
  c.mesh = mesh_config()
  c.init_from = init_from_config()
  c.restore = restore_config()
  return c


def load(spec: str | os.PathLike, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """The config `path/to/config.py[:variant]` names, loaded as `--config` loads it, then `overrides` applied.

  Each override is `a.b=value` (see `set_field`). Raises ValueError, naming `spec`, for a missing file or a
  variant the config's `get_config` refuses.
  """
  path, _, variant = str(spec).partition(":")
  if not os.path.isfile(path):
    raise ValueError(f"{spec}: {path} is not a file; pass a config such as configs/hinet.py:db.")
  module_spec = importlib.util.spec_from_file_location(f"muraljax_config_{pathlib.Path(path).stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  try:
    config = module.get_config(variant) if variant else module.get_config()
  except ValueError as e:
    raise ValueError(f"{spec}: {e}") from None
  for assignment in overrides:
    set_field(config, assignment)
  return config


def set_field(config: ml_collections.ConfigDict, assignment: str) -> None:
  """Sets one existing field from `a.b=value`; the value is read as a Python literal, else kept as a string.

  Raises ValueError for a missing `=`, a field the config does not have, or a value the field cannot take.
  """
  field, has_value, text = assignment.partition("=")
  if not has_value:
    raise ValueError(f"{assignment}: give the field a value, as in model.wf=32.")
  *parents, leaf = field.split(".")
  section = config
  for key in parents:
    section = section.get(key) if isinstance(section, ml_collections.ConfigDict) else None
  if not isinstance(section, ml_collections.ConfigDict) or leaf not in section:
    raise ValueError(f"{field}: the config has no field {field}; check its spelling in the config file.")
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text  # a bare string
  try:
    section[leaf] = value
  except (TypeError, ValueError) as e:
    raise ValueError(f"{field}={text}: {e}") from None
