"""Prepared mural datasets (muraljax.data.datasets, TFDS ArrayRecord files) as grain sources, read without
TensorFlow, and the damage of their examples: the dataset's own masks, synthetic damage, or a mix.

A record reads as one uint8 array whose channels travel together through cropping and flips:
[H, W, 3] (the painting) when it has no mask, else [H, W, 7] = painting | mask (255 = damaged) | deteriorated
image (the dataset's own, or the painting with its masked pixels black). `damage` turns a (cropped) record
into the (damaged, mask, clean) triplet the pipeline trains on. Which examples a host reads is the sampler's
business (pipeline._HostSliceSampler): every host opens the whole split and reads only its own records.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from muraljax.data import datasets, degrade
from muraljax.data.errors import DataError

MASK_MODES = ("dataset", "synthetic", "mixed")


def dataset_directory(dataset: str, data_dir: str = "") -> str:
  """The folder of prepared dataset `dataset` ('dunhuang_challenge', 'mural_folder', 'mural_folder/whole', or
  the path of a prepared dataset's version folder) under `data_dir` ('' = TFDS's default)."""
  if os.path.isfile(os.path.join(dataset, "dataset_info.json")):
    return dataset
  if dataset.split("/")[0] not in datasets.BUILDERS:
    raise DataError(f"Unknown dataset {dataset!r}; use one of {sorted(datasets.BUILDERS)} (optionally "
                    "'mural_folder/<config>') or the folder of a prepared dataset.")
  builder = tfds.builder(dataset, data_dir=data_dir or None)
  if not builder.is_prepared():
    raise DataError(f"{dataset} is not prepared in {builder.data_dir}; run `python -m muraljax.data.prepare "
                    f"{dataset.split('/')[0]} --manual_dir DIR` with --data_dir {data_dir or '(default)'} first.")
  return os.fspath(builder.data_dir)


class PreparedSplit:
  """grain random-access source over one split of a prepared dataset; item i is the record array (see the
  module docstring), upscaled (bicubic; masks nearest) until its shorter side is at least `min_side`.

  The ArrayRecord readers open lazily in each process, so the source pickles into grain's workers.
  """

  def __init__(self, directory: str, split: str, min_side: int = 0):
    builder = tfds.builder_from_directory(directory)
    if split not in builder.info.splits:
      raise DataError(f"The dataset in {directory} has no split {split!r}; pick one of "
                      f"{sorted(builder.info.splits)}.")
    self.directory, self.split, self.min_side = directory, split, min_side
    self.num_records = builder.info.splits[split].num_examples
    report = (builder.info.metadata or {}).get("report", {}).get(split, {})
    self.records_with_mask = report.get("records_with_mask", 0)
    self._records = None

  def __getstate__(self) -> dict:
    return {**self.__dict__, "_records": None}

  def __len__(self) -> int:
    return self.num_records

  def __repr__(self) -> str:
    return f"PreparedSplit({self.directory!r}, {self.split!r}, records={self.num_records}, min_side={self.min_side})"

  def record(self, index: int) -> dict:
    """The decoded record: image, mask, has_mask, name (bytes), origin and, where stored, damaged."""
    if self._records is None:
      self._records = tfds.builder_from_directory(self.directory).as_data_source(self.split)
    return self._records[int(index)]

  def __getitem__(self, index: int) -> np.ndarray:
    record = self.record(index)
    image = record["image"]
    if record["has_mask"]:
      damaged = record.get("damaged")
      if damaged is None:
        damaged = np.where(record["mask"] > 0, 0, image).astype(np.uint8)
      image = np.concatenate([image, record["mask"], damaged], axis=-1)
    return _upscaled(image, self.min_side)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises DataError when the dataset fields of a data config (`source='arrayrecord'`) cannot be used."""
  if not config.dataset:
    raise DataError("source='arrayrecord' needs config.data.dataset (e.g. 'dunhuang_challenge'); set it.")
  if config.mask_mode not in MASK_MODES:
    raise DataError(f"Unknown data.mask_mode {config.mask_mode!r}; use one of {list(MASK_MODES)}.")
  if not 0.0 <= config.real_mask_probability <= 1.0:
    raise DataError(f"data.real_mask_probability must lie in [0, 1], got {config.real_mask_probability}.")


def open_split(config: ml_collections.ConfigDict, split: str, min_side: int) -> PreparedSplit:
  """The split of the data config's dataset; with mask_mode 'dataset' it must hold masks."""
  source = PreparedSplit(dataset_directory(config.dataset, config.data_dir), split, min_side)
  if config.mask_mode == "dataset" and not source.records_with_mask:
    raise DataError(f"The {split!r} split of {config.dataset} has no masks; set data.mask_mode='synthetic'.")
  return source


def damage(record: np.ndarray, rng: np.random.Generator, config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """The (damaged, mask, clean) triplet of a (cropped) record, float32 in [0, 1], and its damage type, like
  `degrade.degrade`'s (a dataset's own damage is of type 'unknown').

  mask_mode 'dataset' uses the record's own mask and deteriorated image, 'synthetic' damages the painting with
  `config.degradation`, 'mixed' does the former with probability `real_mask_probability`. A record without a
  mask always gets synthetic damage.
  """
  own = record.shape[-1] > 3 and (config.mask_mode == "dataset" or (
      config.mask_mode == "mixed" and rng.random() < config.real_mask_probability))
  if not own:
    return degrade.degrade(record[..., :3], rng, config.degradation)
  return {"damaged": record[..., 4:].astype(np.float32) / 255.0,
          "mask": (record[..., 3:4] > 127).astype(np.float32),
          "clean": record[..., :3].astype(np.float32) / 255.0,
          "damage_type": np.int32(degrade.UNKNOWN_DAMAGE)}


def _upscaled(record: np.ndarray, min_side: int) -> np.ndarray:
  height, width = record.shape[:2]
  if min(height, width) >= min_side:
    return record
  scale = min_side / min(height, width)
  size = (max(min_side, round(width * scale)), max(min_side, round(height * scale)))
  parts = np.split(record, [3, 4], axis=-1) if record.shape[-1] > 3 else [record]
  return np.concatenate([_resized(part, size, Image.Resampling.NEAREST if i == 1 else Image.Resampling.BICUBIC)
                         for i, part in enumerate(parts)], axis=-1)


def _resized(channels: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
  """uint8 [H, W, 1 or 3] resized to size = (width, height)."""
  image = Image.fromarray(channels[..., 0] if channels.shape[-1] == 1 else channels)
  return np.asarray(image.resize(size, resample)).reshape(size[1], size[0], -1)
