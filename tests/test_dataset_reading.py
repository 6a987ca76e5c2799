"""Prepared datasets read without TensorFlow or tensorflow-datasets: the reader returns exactly what tfds'
`as_data_source` returns, works (with the training pipeline) when neither can be imported, and `prepare` without
them names the `datasets` extra in one sentence."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import REPO
from test_datasets import _mask, _painting, _save, dunhuang  # noqa: F401  (dunhuang: the fixture)

from muraljax.data import arrayrecord_source, datasets, prepare
from muraljax.data.errors import DataError

# Set before anything imports them: an import of either then fails.
_BLOCK_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None; sys.modules['tensorflow_datasets'] = None\n"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", _BLOCK_TENSORFLOW + script, *args], cwd=REPO, capture_output=True,
                        text=True, timeout=120)


def _assert_same_record(record: dict, expected: dict) -> None:
  """Same keys, types, dtypes, shapes and values."""
  assert sorted(record) == sorted(expected)
  for key, value in expected.items():
    assert type(record[key]) is type(value), key
    if isinstance(value, np.ndarray):
      assert (record[key].dtype, record[key].shape) == (value.dtype, value.shape), key
      np.testing.assert_array_equal(record[key], value, err_msg=key)
    else:
      assert record[key] == value, key


def _assert_reads_like_tfds(directory: str) -> None:
  """Every record of every split of the dataset in `directory`, read by the reader and by tfds."""
  builder = tfds.builder_from_directory(directory)
  for split, info in builder.info.splits.items():
    source, expected = arrayrecord_source.PreparedSplit(directory, split), builder.as_data_source(split)
    assert len(source) == len(expected) == info.num_examples > 0
    assert source.records_with_mask == builder.info.metadata["report"][split]["records_with_mask"]
    for i in range(len(expected)):
      _assert_same_record(source.record(i), expected[i])


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
  """A mural_folder build with tiles of 48 px: a masked large photograph and small ones without masks."""
  photos = tmp_path_factory.mktemp("photos")
  _save(f"{photos}/wall/large.png", _painting(100, 70))
  _save(f"{photos}/wall/large_mask.png", _mask(100, 70))
  for i in range(4):
    _save(f"{photos}/small_{i}.jpg", _painting(30, 30))
  data_dir = tmp_path_factory.mktemp("data")
  return str(data_dir), os.fspath(prepare.build("mural_folder", str(photos), str(data_dir), tile_size=48).data_dir)


def test_reader_returns_what_tfds_returns(dunhuang, tiles, monkeypatch):
  _assert_reads_like_tfds(dunhuang[2])  # JPEG and PNG paintings, masks, deteriorated images
  _assert_reads_like_tfds(tiles[1])  # tiles, records without a mask
  data_dir = os.path.dirname(os.path.dirname(dunhuang[2]))
  assert arrayrecord_source.dataset_directory("dunhuang_challenge", data_dir) == dunhuang[2]
  assert arrayrecord_source.dataset_directory("mural_folder/tiles48", tiles[0]) == tiles[1]
  monkeypatch.setenv("TFDS_DATA_DIR", data_dir)  # TFDS's default data_dir
  assert arrayrecord_source.dataset_directory("dunhuang_challenge") == dunhuang[2]
  with pytest.raises(DataError, match="mural_folder is not prepared in .*/mural_folder/tiles1024;"):
    arrayrecord_source.dataset_directory("mural_folder")  # the builder's default config
  # The names and default configs the reader knows without TFDS are the builders'.
  assert arrayrecord_source.PREPARED_DATASETS == {
      name: builder.BUILDER_CONFIGS[0].name if builder.BUILDER_CONFIGS else ""
      for name, builder in datasets.BUILDERS.items()}


_READER = """
import pickle
from muraljax.data import arrayrecord_source, pipeline
data_dir, output = sys.argv[1:]
source = arrayrecord_source.PreparedSplit(arrayrecord_source.dataset_directory("dunhuang_challenge", data_dir),
                                          "train")
records = [source.record(i) for i in range(len(source))]
config = pipeline.default_config()
config.update(source="arrayrecord", dataset="dunhuang_challenge", data_dir=data_dir, patch_size=32, eval_size=32,
              eval_images=2, augment=False)
batch = next(iter(pipeline.train_loader(config, global_batch_size=2, seed=0, shard_index=0, shard_count=1)))
assert {key: batch[key].shape for key in ("damaged", "mask", "clean")} == {
    "damaged": (2, 32, 32, 3), "mask": (2, 32, 32, 1), "clean": (2, 32, 32, 3)}, batch
imported = [name for name, module in sys.modules.items() if module is not None and (
    name.split(".")[0] in ("tensorflow", "tensorflow_datasets") or name.startswith("muraljax.data.datasets"))]
assert not imported, imported
with open(output, "wb") as file:
  pickle.dump(records, file)
"""


def test_reading_and_training_need_neither_tensorflow_nor_tfds(dunhuang, tmp_path):
  directory = dunhuang[2]
  reader = _run(_READER, os.path.dirname(os.path.dirname(directory)), str(tmp_path / "records.pkl"))
  assert reader.returncode == 0, reader.stderr[-3000:]
  with open(tmp_path / "records.pkl", "rb") as file:
    records = pickle.load(file)
  expected = tfds.builder_from_directory(directory).as_data_source("train")
  assert len(records) == len(expected) == 4
  for record, want in zip(records, expected):
    _assert_same_record(record, want)


def test_prepare_without_the_datasets_extra_says_what_to_install(tmp_path, monkeypatch):
  sentence = ("Error: Building a dataset needs TensorFlow and tensorflow-datasets; install them with "
              "`pip install 'muraljax[datasets]'`.")
  prepare_run = _run("import runpy; sys.argv[0] = 'prepare'; runpy.run_module('muraljax.data.prepare', "
                     "run_name='__main__', alter_sys=True)", "dunhuang_challenge", f"--manual_dir={tmp_path}")
  assert prepare_run.returncode == 2 and prepare_run.stderr.strip() == sentence, prepare_run.stderr[-3000:]
  assert not prepare_run.stdout
  monkeypatch.setattr(prepare, "tfds", None)  # what the module sets when either is missing
  with pytest.raises(DataError, match=r"pip install 'muraljax\[datasets\]'"):
    prepare.build("dunhuang_challenge", str(tmp_path))
