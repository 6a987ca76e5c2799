"""grain input pipelines: infinite shuffled training batches of (damaged, mask, clean) patches, and a fixed eval set.

Batches are dicts of float32 numpy arrays in [0, 1]: 'damaged' and 'clean' [B, P, P, 3], 'mask' [B, P, P, 1]
(1 = damaged), where B is this host's share of the global batch. Every example's crop, augmentation and damage
come from an RNG grain derives from (seed, position in the sampled sequence), so the same seed gives the same
batches whatever the number of worker processes, and a restored iterator state continues with the exact next
batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import grain
import jax
import ml_collections
import numpy as np
from absl import flags, logging

from muraljax.data import arrayrecord_source, contours, degrade, robustness
from muraljax.data.errors import DataError
from muraljax.data.folder import ImageFolder, load_image
from muraljax.data.murals import ProceduralMurals

SOURCES = ("procedural", "folder", "arrayrecord")
_PROCEDURAL_SEED = 0  # the built-in collection is fixed, whatever the training seed
_HOLDOUT_SEED = 0  # the held-out folder images are the same for every run over the same folder
# Folder records are whole decoded photographs (a 20-megapixel one is 60 MB) until they are cropped, so decode a
# few ahead in a few threads instead of grain's default 500 records. Procedural records are mere indices: reading
# them in threads would only add overhead.
_READ_OPTIONS = {"folder": grain.ReadOptions(num_threads=4, prefetch_buffer_size=8),
                 "arrayrecord": grain.ReadOptions(num_threads=4, prefetch_buffer_size=8),
                 "procedural": grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)}


def default_config() -> ml_collections.ConfigDict:
  """Data settings (`config.data` of a training config)."""
  config = ml_collections.ConfigDict()
  # 'procedural': built-in Dunhuang-style murals generated on the fly (no download); 'folder': the photos under
  # `folder` (JPEG/PNG/BMP/TIFF/WebP, searched recursively); 'arrayrecord': a dataset prepared with
  # `python -m muraljax.data.prepare` (ArrayRecord, read without TensorFlow).
  config.source = "procedural"
  # Root directory of the image folder, for source='folder'.
  config.folder = ""
  # For source='arrayrecord': the prepared dataset, 'dunhuang_challenge', 'mural_folder' (1024 px tiles),
  # 'mural_folder/<config>' or the folder of a prepared dataset; the split to train on; the split the
  # eval_images are taken from (its first ones, in key order); and TFDS's data_dir ('' = $TFDS_DATA_DIR or
  # ~/tensorflow_datasets).
  config.dataset = ""
  config.split = "train"
  config.eval_split = "test"
  config.data_dir = ""
  # Damage of source='arrayrecord' examples: 'dataset' (the dataset's own masks and deteriorated images),
  # 'synthetic' (`degradation` applied to the paintings) or 'mixed' (the dataset's with probability
  # real_mask_probability, else synthetic). Examples without a mask always get synthetic damage.
  config.mask_mode = "dataset"
  config.real_mask_probability = 0.5
  # For source='folder' or 'arrayrecord': the fraction of training examples cut from the built-in procedural murals
  # (the first num_images of the collection) instead of the photographs, drawn per example. Evaluation stays on
  # the held-out photographs.
  config.procedural_fraction = 0.0
  # Number of procedural training murals; the eval murals are the next `eval_images` ones of the same collection.
  config.num_images = 10_000
  # For source='folder': photographs larger than this many megapixels are skipped (with a warning) before they are
  # decoded; a 100-megapixel photograph takes 300 MB decoded.
  config.max_megapixels = 100.0
  # Side in pixels of the (square) procedural murals that training patches and eval crops are cut from.
  config.image_size = 512
  # Side of the square training patches. Folder images with a shorter side than this (or than eval_size) are
  # upscaled (bicubic, aspect kept) until it fits.
  config.patch_size = 256
  # Random horizontal/vertical flips and 90-degree rotations of the training patches.
  config.augment = True
  # Images held out for periodic evaluation: procedural murals after the training ones, or a fixed seeded choice
  # of files that training never sees (source='folder'). 0 disables evaluation data.
  config.eval_images = 16
  # Side of the eval centre crops.
  config.eval_size = 256
  # grain worker processes that prepare batches in parallel; 0 prepares them in the training process. A saved
  # iterator state only restores into a loader with the same number of workers.
  config.num_workers = 0
  # Damage applied to every patch (see muraljax.data.degrade.default_config).
  config.degradation = degrade.default_config()
  # Photographic corruption (Gaussian noise, JPEG) of the damaged input, for training and evaluation alike (see
  # muraljax.data.robustness.default_config); none by default.
  config.corruption = robustness.default_config()
  # Add 'contour' [B, P, P, 1] (muraljax.data.contours.contour_map of the damaged input) to every training and eval
  # example, for models conditioned on contours (DiffuMural).
  config.contours = False
  return config


def batch_shapes(config: ml_collections.ConfigDict, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
  """The shapes and dtypes of the batches the loaders yield, without making any (e.g. to compile ahead of time)."""
  side = config.patch_size
  channels = {"damaged": 3, "clean": 3, "mask": 1} | ({"contour": 1} if config.contours else {})
  images = {k: jax.ShapeDtypeStruct((batch_size, side, side, c), np.float32) for k, c in channels.items()}
  return images | {"damage_type": jax.ShapeDtypeStruct((batch_size,), np.int32)}


def train_loader(config: ml_collections.ConfigDict, *, global_batch_size: int, seed: int,
                 shard_index: int | None = None, shard_count: int | None = None) -> grain.DataLoader:
  """Infinite, shuffled training batches of this host's share of `global_batch_size`.

  Args:
    config: `default_config()` or a modified copy.
    global_batch_size: examples per step over all hosts; must divide by `shard_count`.
    seed: shuffling and per-example randomness (a non-negative 32-bit int).
    shard_index, shard_count: this host's slice of the data; default jax.process_index() / process_count().
      Hosts read disjoint sets of images.

  Returns:
    A grain.DataLoader whose iterator yields dict(damaged=[B, P, P, 3], mask=[B, P, P, 1], clean=[B, P, P, 3])
    float32 numpy arrays (and contour=[B, P, P, 1] with `config.contours`) plus damage_type=[B] int32 (indices into
    damage_types.DAMAGE_TYPES), B = global_batch_size // shard_count, P = config.patch_size, and supports
    get_state() / set_state().
  """
  _check_config(config)
  shard_index = jax.process_index() if shard_index is None else shard_index
  shard_count = jax.process_count() if shard_count is None else shard_count
  if global_batch_size < 1 or global_batch_size % shard_count:
    raise DataError(f"The global batch size {global_batch_size} does not divide over {shard_count} hosts; use a "
                    f"positive multiple of {shard_count}.")
  if not 0 <= seed < 2**32:
    raise DataError(f"The data seed must be a non-negative 32-bit integer, got {seed}; pick another seed.")
  source, cut_patch = _training_source(config)
  if len(source) < shard_count:
    raise DataError(f"{len(source)} training images cannot be split over {shard_count} hosts; add images.")
  shard_options = grain.sharding.ShardOptions(shard_index=shard_index, shard_count=shard_count, drop_remainder=True)
  sampler = _HostSliceSampler(len(source), seed, global_batch_size // shard_count, shard_count)
  if config.num_workers:
    _mark_absl_flags_parsed()
  return _BatchingLoader(batch_size=global_batch_size // shard_count, data_source=source, sampler=sampler,
                         operations=[_TrainingExample(cut_patch, config.augment, config)],
                         worker_count=config.num_workers, shard_options=shard_options,
                         read_options=_READ_OPTIONS[config.source])


def eval_batches(config: ml_collections.ConfigDict, *, batch_size: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
  """The held-out set: centre crops of side eval_size, damaged (and corrupted, when `corruption` is configured)
  with fixed per-image seeds, in batches.

  Returns a list of dicts like the training batches, [batch_size, S, S, C] each (the last may be smaller); the
  same (config, seed) gives the same arrays on every call. Runs to compare should use the same seed.
  """
  _check_config(config)
  if batch_size < 1:
    raise DataError(f"The eval batch size must be positive, got {batch_size}.")
  size = config.eval_size
  examples = []
  for i, image in enumerate(_eval_images(config)):
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    crop = image[top:top + size, left:left + size]
    examples.append(_damaged_example(crop, np.random.default_rng([seed, i]), config))
  return [{key: np.stack([example[key] for example in examples[start:start + batch_size]])
           for key in examples[0]} for start in range(0, len(examples), batch_size)]


def _check_config(config: ml_collections.ConfigDict) -> None:
  if config.source not in SOURCES:
    raise DataError(f"Unknown data source {config.source!r}; use one of {list(SOURCES)}.")
  if config.source == "folder" and not config.folder:
    raise DataError("source='folder' needs config.data.folder, the directory that holds the images; set it.")
  if config.source == "arrayrecord":
    arrayrecord_source.check_config(config)
  if config.patch_size < 8 or config.eval_size < 8:
    raise DataError(f"patch_size ({config.patch_size}) and eval_size ({config.eval_size}) must be at least 8.")
  fraction = config.get("procedural_fraction", 0.0)  # .get: a run's config.json may predate these fields
  if config.source == "procedural" or fraction:
    if config.num_images < 1:
      raise DataError(f"num_images must be positive, got {config.num_images}.")
    largest = max(config.patch_size, config.eval_size if config.eval_images else 0)
    if config.image_size < largest:
      raise DataError(f"image_size ({config.image_size}) is smaller than the patch or eval crops ({largest}); "
                      "raise image_size or lower patch_size/eval_size.")
  if config.get("max_megapixels", 1.0) <= 0:
    raise DataError(f"max_megapixels must be positive, got {config.max_megapixels}.")
  if not 0.0 <= fraction <= 1.0:
    raise DataError(f"procedural_fraction must lie in [0, 1], got {fraction}.")
  if fraction and config.source == "procedural":
    raise DataError("procedural_fraction mixes the built-in murals into a folder or arrayrecord source; with "
                    "source='procedural' every example is built-in already, so leave it at 0.")
  if config.eval_images < 0 or config.num_workers < 0:
    raise DataError(f"eval_images ({config.eval_images}) and num_workers ({config.num_workers}) must be >= 0.")
  degrade.check_config(config.degradation)
  robustness.check_config(config.corruption)


def _procedural_murals(config: ml_collections.ConfigDict) -> ProceduralMurals:
  """The built-in collection: training murals first, then the eval ones."""
  return ProceduralMurals(config.num_images + config.eval_images, config.image_size, config.image_size,
                          _PROCEDURAL_SEED)


def folder_split(config: ml_collections.ConfigDict) -> tuple[ImageFolder, ImageFolder]:
  """(training, held-out) files of the image folder."""
  images = ImageFolder(config.folder, min_side=max(config.patch_size, config.eval_size),
                       max_megapixels=config.get("max_megapixels"))
  if len(images) <= config.eval_images:
    raise DataError(f"{config.folder!r} holds {len(images)} images, too few to hold out eval_images="
                    f"{config.eval_images} and still train; add images or lower eval_images.")
  held_out = np.sort(np.random.default_rng(_HOLDOUT_SEED).choice(len(images), config.eval_images, replace=False))
  return images.subset(np.setdiff1d(np.arange(len(images)), held_out)), images.subset(held_out)


def _training_source(config: ml_collections.ConfigDict) -> tuple[grain.sources.RandomAccessDataSource, Callable]:
  """The grain data source and the function that cuts a random patch from one of its records."""
  if config.source in ("folder", "arrayrecord"):
    if config.source == "folder":
      source = folder_split(config)[0]
    else:
      source = arrayrecord_source.open_split(config, config.split, config.patch_size)
    cut_patch = functools.partial(_crop_image, config.patch_size)
    if config.get("procedural_fraction", 0.0):
      cut_patch = functools.partial(_mixed_patch, cut_patch, _procedural_murals(config), config.num_images,
                                    config.patch_size, config.procedural_fraction)
    return source, cut_patch
  # Records are mural indices; only the patch is rendered, which is far cheaper than the whole mural.
  murals = _procedural_murals(config)
  return grain.sources.RangeDataSource(0, config.num_images, 1), functools.partial(_crop_mural, murals,
                                                                                    config.patch_size)


def _eval_images(config: ml_collections.ConfigDict) -> list[np.ndarray]:
  """Held-out images, uint8 [H, W, 3] (source='arrayrecord': record arrays, see arrayrecord_source), at least
  eval_size on each side."""
  if not config.eval_images:
    return []
  if config.source == "folder":
    return _readable(folder_split(config)[1])
  if config.source == "arrayrecord":
    held_out = arrayrecord_source.open_split(config, config.eval_split, config.eval_size)
    return [held_out[i] for i in range(min(config.eval_images, len(held_out)))]
  murals, size = _procedural_murals(config), config.eval_size
  corner = (config.image_size - size) // 2
  return [murals.crop(config.num_images + i, corner, corner, size, size) for i in range(config.eval_images)]


def _readable(images: ImageFolder) -> list[np.ndarray]:
  """The images of `images` that decode; the others are skipped with a warning (evaluation runs on fewer)."""
  readable = []
  for path in images.paths:
    try:
      readable.append(load_image(path, images.min_side, images.max_megapixels))
    except Exception as error:  # pylint: disable=broad-except  # any decoder failure means "skip this file"
      logging.warning("Skipping unreadable held-out image %s (%s: %s); evaluation uses the other held-out images.",
                      path, type(error).__name__, error)
  return readable


def _crop_mural(murals: ProceduralMurals, size: int, index: int, rng: np.random.Generator) -> np.ndarray:
  top, left = rng.integers(0, murals.height - size + 1), rng.integers(0, murals.width - size + 1)
  return murals.crop(int(index), int(top), int(left), size, size)


def _mixed_patch(cut_patch: Callable, murals: ProceduralMurals, count: int, size: int, fraction: float,
                 record: object, rng: np.random.Generator) -> np.ndarray:
  """With probability `fraction`, a patch of one of the first `count` murals instead of one of `record`."""
  if rng.random() < fraction:
    return _crop_mural(murals, size, int(rng.integers(count)), rng)
  return cut_patch(record, rng)


def _crop_image(size: int, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  top, left = rng.integers(0, image.shape[0] - size + 1), rng.integers(0, image.shape[1] - size + 1)
  return image[top:top + size, left:left + size]


def _augment(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """One of the 8 flips/rotations of a square patch [P, P, C], uniformly."""
  flip, turns = rng.integers(0, 2), rng.integers(0, 4)
  return np.rot90(patch[:, ::-1] if flip else patch, k=turns)


def _damaged_example(image: np.ndarray, rng: np.random.Generator,
                     config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """The degradation triplet of one image (or prepared record: its own damage or synthetic, as mask_mode says),
  its damaged input then corrupted as a photograph of it may be."""
  if config.source == "arrayrecord":
    example = arrayrecord_source.damage(image, rng, config)
  else:
    example = degrade.degrade(image, rng, config.degradation)
  example["damaged"] = robustness.corrupt(example["damaged"], rng, config.corruption)
  if config.contours:
    example["contour"] = contours.contour_map(example["damaged"], example["mask"])
  return example


class _TrainingExample(grain.transforms.RandomMap):
  """Record -> random patch (-> random flip/rotation) -> degradation triplet, with grain's per-record RNG."""

  def __init__(self, cut_patch: Callable[[object, np.random.Generator], np.ndarray], augment: bool,
               config: ml_collections.ConfigDict):
    self.cut_patch, self.augment, self.config = cut_patch, augment, config

  def random_map(self, element: object, rng: np.random.Generator) -> dict[str, np.ndarray]:
    patch = self.cut_patch(element, rng)
    if self.augment:
      patch = _augment(patch, rng)
    return _damaged_example(np.ascontiguousarray(patch), rng, self.config)


class _HostSliceSampler:
  """One global example order, of which each host reads its contiguous slice of every global batch.

  The loader asks host h for index i = k * host_count + h (its k-th example). That is position
  p = (k // b) * b * host_count + h * b + k % b of a single shuffled order (b = per-host batch), with that
  position's rng, so a global batch holds the same examples, cropped and damaged the same way, on any number
  of hosts: a run can move between topologies and still see the same data.
  """

  def __init__(self, num_records: int, seed: int, per_host_batch: int, host_count: int):
    self.order = grain.samplers.IndexSampler(num_records=num_records, shuffle=True, num_epochs=None, seed=seed)
    self.per_host_batch, self.host_count = per_host_batch, host_count

  def __len__(self) -> int:
    return len(self.order)

  def __repr__(self) -> str:  # grain compares reprs to check a restored iterator belongs to this sampler.
    return f"_HostSliceSampler({self.order!r}, per_host_batch={self.per_host_batch}, hosts={self.host_count})"

  def __getitem__(self, index: int) -> grain.RecordMetadata:
    k, host = divmod(index, self.host_count)
    b = self.per_host_batch
    position = (k // b) * b * self.host_count + host * b + k % b
    example = self.order[position]
    return grain.RecordMetadata(index=index, record_key=example.record_key, rng=example.rng)


class _BatchingLoader(grain.DataLoader):
  """A grain.DataLoader of examples whose iterator stacks them into batches in the consuming process.

  grain's Batch operation runs inside each worker on that worker's share of the records (i, i + n, i + 2n, ...),
  so the examples grouped into a batch would depend on the number of workers. Workers hand examples back in
  record order, so batching them here gives the same batches for any worker count.
  """

  def __init__(self, *, batch_size: int, **kwargs):
    super().__init__(**kwargs)
    self.batch_size = batch_size

  def __iter__(self) -> _BatchIterator:
    return _BatchIterator(super().__iter__(), self.batch_size)


class _BatchIterator:
  """Batches of `batch_size` consecutive examples; its state is the example iterator's after whole batches."""

  def __init__(self, examples: grain.DataLoaderIterator, batch_size: int):
    self.examples, self.batch_size = examples, batch_size

  def __iter__(self) -> _BatchIterator:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    examples = [next(self.examples) for _ in range(self.batch_size)]
    return {key: np.stack([example[key] for example in examples]) for key in examples[0]}

  def get_state(self) -> bytes:
    return self.examples.get_state()

  def set_state(self, state: bytes) -> None:
    self.examples.set_state(state)

  def start_prefetch(self) -> None:
    self.examples.start_prefetch()


def _mark_absl_flags_parsed() -> None:
  """grain's worker processes read absl flags; outside an absl app (a notebook, pytest) nothing parsed them."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
