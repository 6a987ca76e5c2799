"""TFDS builders written as ArrayRecord: a fake Dunhuang layout and photo folders build, read back through grain
with the files' pixels, split correctly, shard over two processes, and bad input gets a clear message."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grain
import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from muraljax.data import arrayrecord_source, pipeline, prepare
from muraljax.data.errors import DataError

_RNG = np.random.default_rng(0)


def _save(path, pixels) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels).save(path, quality=90)


def _painting(height=40, width=56) -> np.ndarray:
  return _RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _mask(height=40, width=56) -> np.ndarray:
  mask = np.zeros((height, width), np.uint8)
  mask[height // 4:height // 2, width // 8:width // 2] = 255
  return mask


def _write_dunhuang(root) -> dict[str, dict[str, np.ndarray]]:
  """The organisers' layout for train (JPG and PNG), per-split folders with other cases for test; returns the
  PNG paintings written, by split and key."""
  written = {"train": {}, "test": {}}
  for i, ext in enumerate(["jpg", "png", "JPG", "png"], start=1):
    painting, mask = _painting(), _mask()
    written["train"][f"{i:03d}"] = painting
    _save(f"{root}/train_GT/{i:03d}.{ext}", painting)
    _save(f"{root}/train_mask/{i:03d}_mask.{ext}", mask)
    _save(f"{root}/train_masked/{i:03d}_masked.{ext}", np.where(mask[..., None] > 0, 0, painting).astype(np.uint8))
  for i, ext in enumerate(["png", "jpg"], start=1):
    painting = _painting()
    written["test"][f"{i:03d}"] = painting
    _save(f"{root}/Test/GT/{i:03d}.{ext}", painting)
    _save(f"{root}/Test/Mask/{i:03d}.PNG", _mask())  # no deteriorated image: made from the two
  return written


def _read(directory: str, split: str) -> list[dict]:
  """Every record of a split, read through a grain pipeline over the ArrayRecord source."""
  source = arrayrecord_source.PreparedSplit(directory, split)
  records = grain.MapDataset.source(source).map(lambda array: array)
  names = [source.record(i)["name"].decode() for i in range(len(source))]
  return [{"name": name, "array": array} for name, array in zip(names, records)]


@pytest.fixture(scope="module")
def dunhuang(tmp_path_factory):
  root = tmp_path_factory.mktemp("dunhuang")
  written = _write_dunhuang(root)
  builder = prepare.build("dunhuang_challenge", str(root), str(tmp_path_factory.mktemp("data")))
  return root, written, os.fspath(builder.data_dir), builder


def test_dunhuang_layout_builds_and_reads_back_the_files_pixels(dunhuang):
  root, written, directory, _ = dunhuang
  for split, split_folder, mask_folder in (("train", "train_GT", "train_mask"), ("test", "Test/GT", "Test/Mask")):
    records = _read(directory, split)
    assert [r["name"] for r in records] == sorted(written[split])
    for record in records:
      array = record["array"]
      assert array.shape == (40, 56, 7) and array.dtype == np.uint8
      gt_file = next(p for p in (root / split_folder).iterdir() if p.stem == record["name"])
      mask_file = next(p for p in (root / mask_folder).iterdir() if p.stem.startswith(record["name"]))
      if gt_file.suffix.lower() == ".png":  # lossless: exactly the written pixels
        np.testing.assert_array_equal(array[..., :3], written[split][record["name"]])
      with Image.open(gt_file) as image:  # JPG: exactly what PIL decodes from the file
        np.testing.assert_array_equal(array[..., :3], np.asarray(image.convert("RGB")))
      with Image.open(mask_file) as image:
        expected_mask = np.where(np.asarray(image.convert("RGB")).max(-1) > 127, 255, 0)
      np.testing.assert_array_equal(array[..., 3], expected_mask)
      if split == "test":  # made from ground truth and mask
        np.testing.assert_array_equal(array[..., 4:], np.where(array[..., 3:4] > 0, 0, array[..., :3]))


def test_dataset_masks_make_the_training_triplets(dunhuang):
  directory = dunhuang[2]
  config = pipeline.default_config()
  config.update(source="arrayrecord", dataset=directory, patch_size=32, eval_size=32, eval_images=2, augment=False)
  batch = next(iter(pipeline.train_loader(config, global_batch_size=2, seed=0, shard_index=0, shard_count=1)))
  assert set(np.unique(batch["mask"])) == {0.0, 1.0}
  damaged = batch["mask"][..., 0] > 0
  assert batch["damaged"][damaged].mean() < 0.05  # the organisers' deteriorated pixels are black (JPEG: nearly)
  evaluation = pipeline.eval_batches(config, batch_size=2)[0]
  assert evaluation["clean"].shape == (2, 32, 32, 3) and evaluation["mask"].any()
  config.mask_mode = "synthetic"
  synthetic = pipeline.eval_batches(config, batch_size=2)[0]
  np.testing.assert_array_equal(synthetic["clean"], evaluation["clean"])
  assert not np.array_equal(synthetic["mask"], evaluation["mask"])


def test_incomplete_examples_are_listed_skipped_and_counted(tmp_path):
  root = tmp_path / "manual"
  _write_dunhuang(root)
  (root / "train_GT" / "002.png").unlink()  # masked image and mask without ground truth
  (root / "train_mask" / "003_mask.JPG").unlink()
  _save(f"{root}/train_mask/004_mask.png", _mask(20, 28))  # half size, same aspect: resized
  _save(f"{root}/train_mask/001_mask.jpg", _mask(40, 40))  # other aspect ratio: skipped
  (root / "test" / "GT").mkdir(parents=True)
  (root / "test" / "GT" / "009.png").write_bytes(b"not an image")
  _save(f"{root}/test/mask/009.png", _mask())
  builder = prepare.build("dunhuang_challenge", str(root), str(tmp_path / "data"))
  report = builder.report["train"]
  assert report["skipped"]["no ground truth"] == ["002"]
  assert report["skipped"]["no mask"] == ["003"]
  assert [name.split()[0] for name in report["skipped"]["mask or deteriorated image of another aspect ratio"]] == [
      "001"]
  assert report["masks_resized"] == ["004"] and report["records"] == report["paintings"] == 1
  assert [name.split()[0] for name in builder.report["test"]["skipped"]["unreadable file"]] == ["009"]
  assert builder.info.splits["test"].num_examples == 2
  resized = _read(os.fspath(builder.data_dir), "train")[0]["array"][..., 3]
  np.testing.assert_array_equal(resized, np.repeat(np.repeat(_mask(20, 28), 2, 0), 2, 1))  # nearest neighbour
  summary = prepare.summary(builder, 1.0)
  assert "no ground truth: 1: 002" in summary and "1 masks resized" in summary


def test_an_empty_split_or_no_split_stops_with_a_clear_message(tmp_path):
  root = tmp_path / "manual"
  _save(f"{root}/train_GT/001.png", _painting())
  _save(f"{root}/train_mask/001_mask.png", _mask())
  _save(f"{root}/test_masked/001_masked.png", _painting())
  with pytest.raises(DataError, match=r"'test' split has no usable example \(1 no ground truth: 001\)"):
    prepare.build("dunhuang_challenge", str(root), str(tmp_path / "a"))
  loose = tmp_path / "loose"
  _save(f"{loose}/001.png", _painting())
  with pytest.raises(DataError, match="No train/test images found"):
    prepare.build("dunhuang_challenge", str(loose), str(tmp_path / "b"))
  with pytest.raises(DataError, match="is not prepared"):
    arrayrecord_source.dataset_directory("dunhuang_challenge", str(tmp_path / "nothing"))


def test_mural_folder_tiles_large_photos_and_holds_out_a_test_split(tmp_path):
  photos = tmp_path / "photos"
  large = _painting(100, 70)
  _save(f"{photos}/wall/large.png", large)
  _save(f"{photos}/wall/large_mask.png", _mask(100, 70))
  for i in range(9):
    _save(f"{photos}/small_{i}.png", _painting(30, 30))
  builder = prepare.build("mural_folder", str(photos), str(tmp_path / "data"), tile_size=48)
  directory = os.fspath(builder.data_dir)
  assert directory.endswith("mural_folder/tiles48/1.0.0")
  records = _read(directory, "train") + _read(directory, "test")
  assert len({r["name"].split("@")[0] for r in records}) == 10  # every photo, each in one split
  tiles = []
  for split in ("train", "test"):
    source = arrayrecord_source.PreparedSplit(directory, split)
    tiles += [(source.record(i), r["array"]) for i, r in enumerate(_read(directory, split)) if "@" in r["name"]]
  assert len(tiles) == 6  # rows at 0, 26, 52 and columns at 0, 22
  for record, array in tiles:
    top, left = record["origin"]
    np.testing.assert_array_equal(array[..., :3], large[top:top + 48, left:left + 48])
    assert array.shape == (48, 48, 7) and record["has_mask"]
  assert all(r["array"].shape == (30, 30, 3) for r in records if "@" not in r["name"])


_SHARD_READER = """
import json, sys
import numpy as np
from muraljax.data import pipeline
config = pipeline.default_config()
config.update(source="arrayrecord", dataset=sys.argv[1], mask_mode="synthetic", patch_size=32, eval_images=0,
              augment=False)
loader = pipeline.train_loader(config, global_batch_size=2, seed=5, shard_index=int(sys.argv[2]), shard_count=2)
iterator = iter(loader)
print(json.dumps([int(round(next(iterator)["clean"][0, 0, 0, 0] * 255)) for _ in range(4)]))
assert "tensorflow" not in sys.modules, "reading imported TensorFlow"
"""


def test_two_processes_read_disjoint_shards_that_cover_the_split(tmp_path):
  photos = tmp_path / "photos"
  for i in range(8):
    _save(f"{photos}/train/{i}.png", np.full((32, 32, 3), 20 * i + 10, np.uint8))
  directory = os.fspath(prepare.build("mural_folder", str(photos), str(tmp_path / "data"), tile_size=0).data_dir)
  readers = [subprocess.Popen([sys.executable, "-c", _SHARD_READER, directory, str(shard)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for shard in (0, 1)]
  shards = []
  for reader in readers:
    output, errors = reader.communicate(timeout=120)
    assert reader.returncode == 0, errors[-2000:]
    shards.append(json.loads(output.strip().splitlines()[-1]))
  assert not set(shards[0]) & set(shards[1])
  assert sorted(shards[0] + shards[1]) == [20 * i + 10 for i in range(8)]
