"""Prepared mural datasets (muraljax.data.datasets, TFDS ArrayRecord files) as grain sources, read without
TensorFlow or tensorflow-datasets, and the damage of their examples: the dataset's own masks, synthetic damage,
or a mix.

A record reads as one uint8 array whose channels travel together through cropping and flips:
[H, W, 3] (the painting) when it has no mask, else [H, W, 7] = painting | mask (255 = damaged) | deteriorated
image (the dataset's own, or the painting with its masked pixels black). `damage` turns a (cropped) record
into the (damaged, mask, clean) triplet the pipeline trains on. Which examples a host reads is the sampler's
business (pipeline._HostSliceSampler): every host opens the whole split and reads only its own records.

Reading follows TFDS's on-disk format: a prepared dataset lives in `<data_dir>/<name>[/<config>]/<version>/`
with `dataset_info.json` (splits, shard lengths, file names), `features.json` (what each feature is) and
`metadata.json` (the build report); each ArrayRecord record is a serialized `tf.train.Example` of the encoded
features (images as PNG or JPEG bytes, integers and booleans as int64s, text as UTF-8 bytes). A record decodes
to what tfds' `as_data_source` returns: images uint8 [H, W, C], tensors numpy arrays of their dtype and shape
(scalars as Python values), text as bytes.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator

import grain
import ml_collections
import numpy as np
from PIL import Image

from muraljax.data import damage_types, degrade
from muraljax.data.errors import DataError

MASK_MODES = ("dataset", "synthetic", "mixed")
PREPARED_DATASETS = {"dunhuang_challenge": "", "mural_folder": "tiles1024"}
"""The datasets `python -m muraljax.data.prepare` builds, each with its default config ('' = none): the names and
defaults of muraljax.data.datasets.BUILDERS, repeated here so that reading never imports TFDS."""
_VERSION = re.compile(r"\d+\.\d+\.\d+")
_SHARD_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"  # TFDS's default shard file name
_BYTES, _FLOATS, _INT64S = 1, 2, 3  # the field numbers of tf.train.Feature's kinds of value list


def dataset_directory(dataset: str, data_dir: str = "") -> str:
  """The folder of prepared dataset `dataset` ('dunhuang_challenge', 'mural_folder', 'mural_folder/whole', or
  the path of a prepared dataset's version folder) under `data_dir` ('' = TFDS's default: $TFDS_DATA_DIR, else
  ~/tensorflow_datasets). Of several prepared versions, the newest."""
  if os.path.isfile(os.path.join(dataset, "dataset_info.json")):
    return dataset
  name, _, config = dataset.partition("/")
  if name not in PREPARED_DATASETS:
    raise DataError(f"Unknown dataset {dataset!r}; use one of {sorted(PREPARED_DATASETS)} (optionally "
                    "'mural_folder/<config>') or the folder of a prepared dataset.")
  root = os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")
  parent = os.path.join(root, name, *filter(None, [config or PREPARED_DATASETS[name]]))
  versions = [version for version in (os.listdir(parent) if os.path.isdir(parent) else [])
              if _VERSION.fullmatch(version) and os.path.isfile(os.path.join(parent, version, "dataset_info.json"))]
  if not versions:
    raise DataError(f"{dataset} is not prepared in {parent}; run `python -m muraljax.data.prepare {name} "
                    f"--manual_dir DIR` with --data_dir {data_dir or '(default)'} first.")
  return os.path.join(parent, max(versions, key=lambda version: tuple(map(int, version.split(".")))))


class PreparedSplit:
  """grain random-access source over one split of a prepared dataset; item i is the record array (see the
  module docstring), upscaled (bicubic; masks nearest) until its shorter side is at least `min_side`.

  The ArrayRecord readers open lazily in each process, so the source pickles into grain's workers.
  """

  def __init__(self, directory: str, split: str, min_side: int = 0):
    info = _json(directory, "dataset_info.json")
    splits = {entry["name"]: entry for entry in info.get("splits", [])}
    if split not in splits:
      raise DataError(f"The dataset in {directory} has no split {split!r}; pick one of {sorted(splits)}.")
    file_format = info.get("fileFormat", "tfrecord")  # TFDS leaves the field out for its default, TFRecord
    if file_format != "array_record":
      raise DataError(f"The dataset in {directory} is stored as {file_format}, not ArrayRecord; rebuild it with "
                      "`python -m muraljax.data.prepare ... --overwrite`.")
    self.directory, self.split, self.min_side = directory, split, min_side
    lengths = [int(length) for length in splits[split].get("shardLengths", [])]
    self.num_records = sum(lengths)
    self._paths = _shard_paths(directory, info["name"], split, splits[split].get("filepathTemplate"), len(lengths))
    self._features = _feature_specs(directory)
    metadata = _json(directory, "metadata.json") if os.path.isfile(os.path.join(directory, "metadata.json")) else {}
    self.records_with_mask = (metadata.get("report") or {}).get(split, {}).get("records_with_mask", 0)
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
      self._records = grain.sources.ArrayRecordDataSource(self._paths)
    serialized = self._records[int(index)]
    try:
      values = _example(serialized)
    except (IndexError, ValueError) as error:
      raise DataError(f"Record {index} of the {self.split!r} split in {self.directory} is corrupt ({error}); "
                      "rebuild the dataset with `python -m muraljax.data.prepare ... --overwrite`.") from error
    missing = sorted(set(self._features) - set(values))
    if missing:
      raise DataError(f"Record {index} of the {self.split!r} split in {self.directory} lacks {missing}; rebuild "
                      "the dataset with `python -m muraljax.data.prepare ... --overwrite`.")
    return {name: _decoded(spec, *values[name]) for name, spec in self._features.items()}

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
          "damage_type": np.int32(damage_types.UNKNOWN_DAMAGE)}


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


def _json(directory: str, filename: str) -> dict:
  with open(os.path.join(directory, filename), encoding="utf-8") as file:
    return json.load(file)


def _shard_paths(directory: str, dataset: str, split: str, template: str | None, num_shards: int) -> list[str]:
  """The split's ArrayRecord files, in record order, named as TFDS names them (naming.ShardedFileTemplate)."""
  digits = max(len(str(num_shards)), 5)
  return [os.path.join(directory, (template or _SHARD_TEMPLATE).format(
      DATASET=dataset, SPLIT=split, FILEFORMAT="array_record", SHARD_INDEX=f"{i:0{digits}d}",
      NUM_SHARDS=f"{num_shards:0{digits}d}", SHARD_X_OF_Y=f"{i:0{digits}d}-of-{num_shards:0{digits}d}"))
          for i in range(num_shards)]


def _feature_specs(directory: str) -> dict[str, tuple]:
  """features.json as {name: ('image', channels) or ('tensor', numpy dtype, shape)}; text is a scalar tensor of
  bytes. Raises DataError for kinds of feature the mural datasets do not use."""
  specs = {}
  for name, feature in _json(directory, "features.json")["featuresDict"]["features"].items():
    kind = feature["pythonClassName"].rsplit(".", 1)[-1]
    if kind == "Image" and feature["image"].get("dtype", "uint8") == "uint8":
      specs[name] = ("image", int(feature["image"]["shape"]["dimensions"][-1]))
    elif kind == "Text" and not feature["text"]:
      specs[name] = ("tensor", np.dtype(object), ())
    elif kind == "Tensor" and feature["tensor"].get("encoding", "none") == "none":
      dtype = feature["tensor"]["dtype"]
      shape = tuple(int(size) for size in feature["tensor"]["shape"].get("dimensions", []))
      specs[name] = ("tensor", np.dtype(object if dtype == "string" else dtype), shape)
    else:
      raise DataError(f"Feature {name!r} of the dataset in {directory} is a kind of {kind} that muraljax does not "
                      "read; prepare the dataset with `python -m muraljax.data.prepare`.")
  return specs


def _decoded(spec: tuple, kind: int, values: list) -> np.ndarray | bytes | bool | int | float:
  """One feature's value as tfds' `decode_example_np` returns it (decoded with PIL, as tfds does without OpenCV)."""
  if spec[0] == "image":
    with Image.open(io.BytesIO(values[0])) as image:
      pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2 or pixels.shape[-1] == 1:  # grey stored for a C-channel feature: repeated, as TF decodes it
      pixels = np.repeat(pixels.reshape(*pixels.shape[:2], 1), spec[1], axis=-1)
    return pixels
  _, dtype, shape = spec
  if kind == _INT64S:
    values = np.array(values, np.uint64).view(np.int64)  # varints hold int64s in two's complement
  array = np.array(values, dtype=dtype)
  return array.item() if not shape else array.reshape(shape)


def _example(serialized: bytes) -> dict[str, tuple[int, list]]:
  """The features of a serialized tf.train.Example, {name: (kind, values)}: kind _BYTES (values: bytes),
  _FLOATS (floats) or _INT64S (unsigned ints).

  The messages (tensorflow/core/example/{example,feature}.proto): Example {Features features = 1},
  Features {map<string, Feature> feature = 1} (each entry a message {key = 1, value = 2}),
  Feature {oneof: BytesList bytes_list = 1, FloatList float_list = 2, Int64List int64_list = 3}, and each list
  {repeated value = 1}, numbers packed or not.
  """
  features = {}
  for _, _, message in _fields(memoryview(serialized), number=1):
    for _, _, entry in _fields(message, number=1):
      parts = {number: value for number, _, value in _fields(entry)}
      name = bytes(parts.get(1, b"")).decode()
      for kind, _, payload in _fields(parts.get(2, memoryview(b""))):
        if kind in (_BYTES, _FLOATS, _INT64S):
          features[name] = (kind, _list_values(kind, payload))
  return features


def _list_values(kind: int, payload: memoryview) -> list:
  values = []
  for _, wire_type, value in _fields(payload, number=1):
    if kind == _BYTES:
      values.append(bytes(value))
    elif kind == _FLOATS:  # packed or one by one, little-endian float32s
      values += np.frombuffer(value, "<f4").tolist()
    elif wire_type == 0:
      values.append(value)
    else:  # packed varints
      position = 0
      while position < len(value):
        number, position = _varint(value, position)
        values.append(number)
  return values


def _fields(message: memoryview, number: int | None = None) -> Iterator[tuple[int, int, int | memoryview]]:
  """(field number, wire type, value) of the fields of a serialized protobuf message (those numbered `number`
  if given): varints as unsigned ints, fixed-size numbers and length-delimited fields as views of `message`."""
  position = 0
  while position < len(message):
    key, position = _varint(message, position)
    wire_type = key & 7
    if wire_type == 0:
      value, position = _varint(message, position)
    elif wire_type in (1, 5):
      size = 8 if wire_type == 1 else 4
      value, position = message[position:position + size], position + size
    elif wire_type == 2:
      size, position = _varint(message, position)
      value, position = message[position:position + size], position + size
    else:
      raise ValueError(f"unsupported protobuf wire type {wire_type}")
    if position > len(message):
      raise ValueError("truncated protobuf message")
    if number is None or key >> 3 == number:
      yield key >> 3, wire_type, value


def _varint(message: memoryview, position: int) -> tuple[int, int]:
  """The base-128 varint at `position`, and the position after it."""
  value = shift = 0
  while True:
    byte = message[position]
    value |= (byte & 0x7F) << shift
    position, shift = position + 1, shift + 7
    if byte < 0x80:
      return value, position
