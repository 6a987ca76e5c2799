"""What both mural dataset builders share: the record features, example generation and the build report.

Every record holds one painting (or one tile of a large photograph) and, when the dataset has one, its damage:

  image     uint8 [H, W, 3]  the intact painting (ground truth)
  mask      uint8 [H, W, 1]  255 = damaged, 0 = intact; all 0 when has_mask is False
  has_mask  bool             whether the dataset gave a mask for this painting
  name      text             the example's key (see layout.py), with '@top,left' for a tile
  origin    int32 [2]        (top, left) of this record in its photograph; (0, 0) for a whole image
  damaged   uint8 [H, W, 3]  the deteriorated image as distributed (dunhuang_challenge only)

Records are written in key order (shuffling happens when reading). Examples that cannot be used are skipped,
never silently: each is logged and listed in the build report, which is kept with the dataset
(`metadata.json` -> 'report', per split: records, records with a mask and paintings written, the keys or paths
skipped per reason, the masks resized). A split with nothing usable stops the build with a DataError that says
what was found.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from muraljax.data.datasets import encoding, layout
from muraljax.data.errors import DataError
from muraljax.data.folder import load_image
from muraljax.data.tiles import tile_starts


class MuralBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A builder over a `layout.scan` of its manual_dir; subclasses say how to scan it and whether to tile."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  HAS_DAMAGED_IMAGES = False  # Whether records carry the dataset's own deteriorated image.

  def __init__(self, **kwargs):
    self.report: dict[str, dict] = {}  # Filled while building; kept in the dataset's metadata.
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    features = {
        "image": tfds.features.Image(shape=(None, None, 3)),
        "mask": tfds.features.Image(shape=(None, None, 1)),
        "has_mask": np.bool_,
        "name": tfds.features.Text(),
        "origin": tfds.features.Tensor(shape=(2,), dtype=np.int32),
    }
    if self.HAS_DAMAGED_IMAGES:
      features["damaged"] = tfds.features.Image(shape=(None, None, 3))
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(features), disable_shuffling=True,
                                          metadata=tfds.core.MetadataDict(report=self.report))

  def _scan(self, root: str) -> layout.Layout:
    raise NotImplementedError

  def _tile_size(self) -> int:
    return 0

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
    found = self._scan(str(dl_manager.manual_dir))
    for problem_split, reasons in found.problems.items():
      for reason, names in reasons.items():
        logging.warning("%s: %d %s: %s", problem_split, len(names), reason, ", ".join(names))
    if not found.examples:
      raise DataError(f"No train/test images found under {str(dl_manager.manual_dir)!r}; expected split folders "
                      "such as train_GT/ and train_mask/ (see muraljax/data/datasets/layout.py).")
    for split in found.examples:
      self.report[split] = {"records": 0, "records_with_mask": 0, "paintings": 0, "masks_resized": [],
                            "skipped": dict(found.problems.get(split, {}))}
    return {split: self._generate_examples(split, examples) for split, examples in found.examples.items()}

  def _generate_examples(self, split: str, examples: list[layout.Example]) -> Iterator[tuple[int, dict]]:
    report = self.report[split]
    skipped = collections.defaultdict(list, report["skipped"])
    for example in examples:
      try:
        records = list(self._records(example, report))
      except encoding.SizeMismatch as error:
        skipped["mask or deteriorated image of another aspect ratio"].append(f"{example.key} ({error})")
        continue
      except Exception as error:  # pylint: disable=broad-except  # any decoder failure means "skip the example"
        logging.warning("Skipping %s: unreadable (%s: %s).", example.key, type(error).__name__, error)
        skipped["unreadable file"].append(f"{example.key} ({type(error).__name__}: {error})")
        continue
      for record in records:
        yield report["records"], record
        report["records"] += 1
        report["records_with_mask"] += int(record["has_mask"])
      report["paintings"] += 1
    report["skipped"] = dict(skipped)
    if not report["records"]:
      left_out = "; ".join(f"{len(names)} {reason}: {', '.join(names[:5])}" for reason, names in skipped.items())
      raise DataError(f"The {split!r} split has no usable example ({left_out or 'no images'}); add its ground "
                      "truth and masks or remove the folder.")

  def _records(self, example: layout.Example, report: dict) -> Iterator[dict]:
    image = load_image(example.image)
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    if example.mask is not None:
      mask, resized = encoding.load_mask(example.mask, height, width)
      if resized:
        report["masks_resized"].append(example.key)
    damaged = None
    if self.HAS_DAMAGED_IMAGES:
      damaged = (encoding.load_damaged(example.damaged, height, width) if example.damaged is not None else
                 np.where(mask[..., None] > 0, 0, image).astype(np.uint8))
    tile = self._tile_size()
    # Neighbours overlap by a quarter tile or more, so no training crop is confined to one side of a seam.
    tops, lefts = (tile_starts(length, tile, Fraction(tile, 4)) for length in (height, width))
    whole = len(tops) == len(lefts) == 1
    for top in tops:
      for left in lefts:
        window = np.s_[top:top + (tile or height), left:left + (tile or width)]
        record = {
            "image": encoding.image_bytes(example.image, image) if whole else encoding.png_bytes(image[window]),
            "mask": encoding.png_bytes(mask[window]),
            "has_mask": example.mask is not None,
            "name": example.key if whole else f"{example.key}@{top},{left}",
            "origin": np.array([top, left], np.int32),
        }
        if damaged is not None:
          record["damaged"] = (encoding.image_bytes(example.damaged, damaged) if whole and example.damaged else
                               encoding.png_bytes(damaged[window]))
        yield record
