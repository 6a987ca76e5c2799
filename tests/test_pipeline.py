"""grain pipelines: batch contents, determinism (seeds, workers, resumption), host sharding, eval set, folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from muraljax.data import damage_types, pipeline
from muraljax.data.errors import DataError


def _config(**overrides):
  config = pipeline.default_config()
  config.num_images, config.image_size, config.patch_size = 40, 64, 32
  config.eval_images, config.eval_size = 3, 48
  config.update(overrides)
  return config


def _take(loader, count: int) -> list[dict[str, np.ndarray]]:
  iterator = iter(loader)
  return [next(iterator) for _ in range(count)]


def _assert_same(first: list[dict], second: list[dict]) -> None:
  assert len(first) == len(second)
  for a, b in zip(first, second):
    for key in ("damaged", "mask", "clean"):
      np.testing.assert_array_equal(a[key], b[key])


def test_batch_shapes_dtypes_and_ranges():
  batch = _take(pipeline.train_loader(_config(), global_batch_size=4, seed=0, shard_index=0, shard_count=1), 1)[0]
  assert batch["damaged"].shape == batch["clean"].shape == (4, 32, 32, 3)
  assert batch["mask"].shape == (4, 32, 32, 1)
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
      k: (v.shape, v.dtype) for k, v in pipeline.batch_shapes(_config(), 4).items()}
  for key in ("damaged", "clean", "mask"):
    assert batch[key].dtype == np.float32 and 0.0 <= batch[key].min() and batch[key].max() <= 1.0
  assert batch["damage_type"].dtype == np.int32 and set(batch["damage_type"]) <= set(range(len(damage_types.DAMAGE_TYPES)))
  assert set(np.unique(batch["mask"])) <= {0.0, 1.0}
  outside = np.broadcast_to(batch["mask"] == 0, batch["clean"].shape)
  np.testing.assert_array_equal(batch["damaged"][outside], batch["clean"][outside])


def test_seed_determines_the_batches():
  def batches(seed):
    return _take(pipeline.train_loader(_config(), global_batch_size=4, seed=seed, shard_index=0, shard_count=1), 3)

  first = batches(1)
  _assert_same(first, batches(1))
  assert not np.array_equal(first[0]["clean"], batches(2)[0]["clean"])


def test_state_round_trip_resumes_with_the_next_batch():
  config = _config()
  iterator = iter(pipeline.train_loader(config, global_batch_size=4, seed=3, shard_index=0, shard_count=1))
  for _ in range(3):
    next(iterator)
  state = iterator.get_state()
  expected = next(iterator)
  resumed = iter(pipeline.train_loader(config, global_batch_size=4, seed=3, shard_index=0, shard_count=1))
  resumed.set_state(state)
  _assert_same([next(resumed)], [expected])


def test_hosts_read_different_examples_and_batch_must_divide():
  config = _config()
  shards = [_take(pipeline.train_loader(config, global_batch_size=4, seed=0, shard_index=i, shard_count=2), 3)
            for i in range(2)]
  assert shards[0][0]["clean"].shape[0] == 2
  patches = [np.concatenate([batch["clean"] for batch in shard]) for shard in shards]
  for patch in patches[0]:
    assert not any(np.array_equal(patch, other) for other in patches[1])
  with pytest.raises(DataError, match="does not divide over 2 hosts"):
    pipeline.train_loader(config, global_batch_size=5, seed=0, shard_index=0, shard_count=2)


def test_host_slices_assemble_the_single_host_global_batch():
  config = _config()
  single = _take(pipeline.train_loader(config, global_batch_size=4, seed=3, shard_index=0, shard_count=1), 3)
  shards = [_take(pipeline.train_loader(config, global_batch_size=4, seed=3, shard_index=i, shard_count=2), 3)
            for i in range(2)]
  assembled = [{k: np.concatenate([shards[0][step][k], shards[1][step][k]]) for k in single[step]}
               for step in range(3)]
  _assert_same(assembled, single)


def test_worker_processes_give_the_same_batches_and_resume():
  def loader(workers):
    return pipeline.train_loader(_config(num_workers=workers), global_batch_size=4, seed=5, shard_index=0,
                                 shard_count=1)

  in_process = _take(loader(0), 4)
  iterator = iter(loader(2))
  with_workers = [next(iterator) for _ in range(3)]
  _assert_same(in_process[:3], with_workers)
  state = iterator.get_state()
  resumed = iter(loader(2))
  resumed.set_state(state)
  _assert_same(in_process[3:], [next(resumed)])


def test_eval_batches_are_fixed_and_batched():
  config = _config()
  first = pipeline.eval_batches(config, batch_size=2)
  assert [batch["clean"].shape for batch in first] == [(2, 48, 48, 3), (1, 48, 48, 3)]
  assert first[0]["mask"].shape == (2, 48, 48, 1)
  _assert_same(first, pipeline.eval_batches(config, batch_size=2))
  assert pipeline.eval_batches(_config(eval_images=0), batch_size=2) == []


def test_folder_source_end_to_end_holds_out_eval_images(tmp_path):
  # Image k is solid red level 20 * k + 10, so every patch tells which file it came from.
  sizes = [(40, 50), (20, 24), (64, 48), (36, 36), (50, 70), (30, 90), (45, 40), (80, 60)]
  for k, (height, width) in enumerate(sizes):
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0], image[..., 1] = 20 * k + 10, 100
    (tmp_path / f"sub{k % 2}").mkdir(exist_ok=True)
    Image.fromarray(image).save(tmp_path / f"sub{k % 2}" / f"{k}.png")

  def sources(batches):
    return {int(round(v)) for batch in batches for v in np.unique(batch["clean"][..., 0] * 255)}

  config = _config(source="folder", folder=str(tmp_path), eval_images=2, eval_size=32)
  train = _take(pipeline.train_loader(config, global_batch_size=4, seed=0, shard_index=0, shard_count=1), 6)
  assert train[0]["damaged"].shape == (4, 32, 32, 3)
  held_out = pipeline.eval_batches(config, batch_size=4)
  assert len(held_out) == 1 and held_out[0]["clean"].shape == (2, 32, 32, 3)
  train_sources, eval_sources = sources(train), sources(held_out)
  assert len(eval_sources) == 2 and not train_sources & eval_sources
  assert train_sources <= {20 * k + 10 for k in range(len(sizes))}


def test_unreadable_held_out_images_are_skipped_not_fatal(tmp_path):
  for k in range(4):
    Image.fromarray(np.full((40, 40, 3), 40 * k + 20, np.uint8)).save(tmp_path / f"{k}.png")
  config = _config(source="folder", folder=str(tmp_path), eval_images=3, eval_size=32)
  held_out = pipeline.folder_split(config)[1].paths
  for path in held_out[:2]:
    with open(path, "wb") as file:
      file.write(b"not an image")
  batches = pipeline.eval_batches(config, batch_size=4)
  assert len(batches) == 1 and len(batches[0]["clean"]) == 1  # the one readable held-out image
  for path in held_out[2:]:
    with open(path, "wb") as file:
      file.write(b"not an image")
  assert pipeline.eval_batches(config, batch_size=4) == []  # no evaluation, but no stop either


def test_procedural_fraction_mixes_built_in_murals_into_a_folder(tmp_path):
  for k in range(4):
    Image.fromarray(np.full((40, 40, 3), 40 * k + 20, np.uint8)).save(tmp_path / f"{k}.png")

  def solid_patches(fraction: float) -> list[bool]:
    config = _config(source="folder", folder=str(tmp_path), eval_images=1, eval_size=32, procedural_fraction=fraction)
    batches = _take(pipeline.train_loader(config, global_batch_size=8, seed=0, shard_index=0, shard_count=1), 4)
    return [bool(np.ptp(clean) == 0) for batch in batches for clean in batch["clean"]]

  assert all(solid_patches(0.0)) and not any(solid_patches(1.0))
  mixed = solid_patches(0.5)
  assert 8 <= sum(mixed) <= 24 and mixed == solid_patches(0.5)


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c, "procedural_fraction", 0.5), "leave it at 0"),
    (lambda c: c.update(source="folder", folder="/x", procedural_fraction=1.5), r"in \[0, 1\]"),
    (lambda c: setattr(c, "source", "tfds"), "Unknown data source"),
    (lambda c: setattr(c, "source", "folder"), "needs config.data.folder"),
    (lambda c: setattr(c, "image_size", 16), "image_size .* is smaller"),
    (lambda c: setattr(c.degradation, "fill", "gold"), "Unknown degradation.fill"),
])
def test_bad_config_raises_data_error(change, message):
  config = _config()
  change(config)
  with pytest.raises(DataError, match=message):
    pipeline.train_loader(config, global_batch_size=4, seed=0, shard_index=0, shard_count=1)
