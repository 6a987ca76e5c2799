"""Damage masks and (damaged, mask, clean) triplets: ratio limits, reproducibility, untouched pixels, config checks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from muraljax.data import damage_types, degrade
from muraljax.data.errors import DataError

_MISSING_KINDS = [kind for kind in degrade.MASK_GENERATORS if kind != "fading"]


def _clean(seed: int = 0, height: int = 48, width: int = 56) -> np.ndarray:
  # Values kept away from 0 so that a black fill is distinguishable from the image.
  return np.random.default_rng(seed).uniform(0.1, 1.0, (height, width, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def mask_folder(tmp_path_factory) -> str:
  """Three mask files of other sizes than the images (white blobs on black), for the 'real' kind."""
  folder = tmp_path_factory.mktemp("real_masks")
  rng = np.random.default_rng(0)
  for k, (height, width) in enumerate([(30, 40), (90, 70), (64, 64)]):
    rows, cols = np.mgrid[0:height, 0:width]
    blobs = np.zeros((height, width), bool)
    for y, x in rng.uniform(0, 1, (6, 2)) * (height, width):
      blobs |= (rows - y) ** 2 + (cols - x) ** 2 < (0.12 * min(height, width)) ** 2
    Image.fromarray(blobs.astype(np.uint8) * 255).save(folder / f"mask_{k}.png")
  return str(folder)


def _config(kinds: list[str] | None = None, low: float = 0.05, high: float = 0.3, fill: str = "black",
            mask_folder: str = ""):
  config = degrade.default_config()
  config.mask_folder = mask_folder
  if kinds is not None:
    for kind in degrade.KINDS:
      config.weights[kind] = 1.0 if kind in kinds else 0.0
    config.max_kinds = len(kinds)
  config.min_hole_ratio, config.max_hole_ratio, config.fill = low, high, fill
  return config


def _check_triplet(out: dict[str, np.ndarray], clean: np.ndarray, low: float, high: float) -> np.ndarray:
  assert out["damaged"].dtype == out["mask"].dtype == out["clean"].dtype == np.float32
  assert out["mask"].shape == clean.shape[:2] + (1,)
  mask = out["mask"][..., 0]
  assert set(np.unique(mask)) <= {0.0, 1.0}
  assert low <= mask.mean() <= high
  outside = mask == 0
  np.testing.assert_array_equal(out["damaged"][outside], clean[outside])
  np.testing.assert_array_equal(out["clean"], clean)
  assert 0.0 <= out["damaged"].min() and out["damaged"].max() <= 1.0
  return mask.astype(bool)


@pytest.mark.parametrize("kind", degrade.KINDS)
def test_each_kind_respects_ratio_limits_and_leaves_the_rest_untouched(kind, mask_folder):
  clean = _clean()
  for seed in range(12):
    out = degrade.degrade(clean, np.random.default_rng(seed), _config([kind], mask_folder=mask_folder))
    inside = _check_triplet(out, clean, 0.05, 0.3)
    if kind == "fading":
      assert np.abs(out["damaged"][inside] - clean[inside]).max() > 0.01
    else:
      assert not out["damaged"][inside].any()  # black fill


@pytest.mark.parametrize("kind, damage_type", [("cracks", "cracks"), ("flaking", "flaking"),
                                               ("collapse", "collapse"), ("fading", "fading"),
                                               ("random_walk", "unknown"), ("strokes", "unknown"),
                                               ("boxes", "unknown"), ("real", "unknown")])
def test_one_kind_of_damage_is_labelled_with_its_type(kind, damage_type, mask_folder):
  out = degrade.degrade(_clean(), np.random.default_rng(0), _config([kind], mask_folder=mask_folder))
  assert out["damage_type"].dtype == np.int32 and damage_types.DAMAGE_TYPES[out["damage_type"]] == damage_type


@pytest.mark.parametrize("crack_rows, collapse_rows, expected", [(12, 4, "cracks"), (4, 12, "collapse")])
def test_mixed_damage_is_labelled_with_the_kind_covering_most_of_it(monkeypatch, crack_rows, collapse_rows, expected):
  def rows(first, count):  # A generator damaging `count` whole rows from `first`.
    def generate(rng, height, width):
      mask = np.zeros((height, width), bool)
      mask[first:first + count] = True
      return mask
    return generate

  monkeypatch.setitem(degrade.MASK_GENERATORS, "cracks", rows(0, crack_rows))
  monkeypatch.setitem(degrade.MASK_GENERATORS, "collapse", rows(20, collapse_rows))
  out = degrade.degrade(_clean(), np.random.default_rng(0), _config(["cracks", "collapse"], 0.05, 0.5))
  assert out["mask"][..., 0].sum(axis=1).astype(bool).sum() == crack_rows + collapse_rows  # both kinds were used
  assert damage_types.DAMAGE_TYPES[out["damage_type"]] == expected


@pytest.mark.parametrize("low, high, kinds", [(0.01, 0.5, None), (0.4, 0.45, ["cracks"]), (0.0, 0.02, ["collapse"]),
                                              (0.2, 0.25, ["fading", "boxes"]), (0.3, 0.6, _MISSING_KINDS)])
def test_mixed_and_extreme_limits_hold(low, high, kinds):
  clean = _clean(1, 40, 64)
  for seed in range(10):
    _check_triplet(degrade.degrade(clean, np.random.default_rng(seed), _config(kinds, low, high)), clean, low, high)


def test_same_seed_same_triplet_different_seed_differs():
  clean = (_clean(2) * 255).astype(np.uint8)
  config = degrade.default_config()
  first = degrade.degrade(clean, np.random.default_rng(7), config)
  again = degrade.degrade(clean, np.random.default_rng(7), config)
  for key in ("damaged", "mask", "clean"):
    np.testing.assert_array_equal(first[key], again[key])
  others = [degrade.degrade(clean, np.random.default_rng(s), config)["mask"] for s in range(8, 12)]
  assert all(not np.array_equal(first["mask"], other) for other in others)


def test_uint8_and_float_inputs_agree():
  clean = (_clean(3) * 255).astype(np.uint8)
  from_uint8 = degrade.degrade(clean, np.random.default_rng(0), degrade.default_config())
  from_float = degrade.degrade(clean / np.float32(255), np.random.default_rng(0), degrade.default_config())
  np.testing.assert_allclose(from_uint8["damaged"], from_float["damaged"], atol=1e-6)


@pytest.mark.parametrize("fill", degrade.FILLS)
def test_fills(fill):
  clean = _clean(4)
  out = degrade.degrade(clean, np.random.default_rng(0), _config(["boxes"], 0.1, 0.4, fill))
  inside = _check_triplet(out, clean, 0.1, 0.4)
  values = out["damaged"][inside]
  expected = {"black": (0.0, 0.0), "white": (1.0, 1.0), "noise": (0.0, 1.0), "plaster": (0.5, 0.95)}[fill]
  assert expected[0] <= values.min() and values.max() <= expected[1]
  if fill == "noise":
    assert values.std() > 0.2


@pytest.mark.parametrize("kind", sorted(degrade.MASK_GENERATORS))
def test_mask_generators_are_boolean_and_sized(kind):
  mask = degrade.MASK_GENERATORS[kind](np.random.default_rng(0), 40, 72)
  assert mask.dtype == bool and mask.shape == (40, 72) and mask.any()


def test_real_masks_are_turned_rescaled_crops_of_the_files(tmp_path):
  split = np.zeros((50, 60), np.uint8)
  split[:, :25] = 255  # damaged on the left: every crop, flip, turn and rescale keeps one straight border
  Image.fromarray(split).save(tmp_path / "split.png")
  seen_both, orientations = False, set()
  for seed in range(16):
    mask = degrade.real_mask(np.random.default_rng(seed), 40, 56, str(tmp_path))
    assert mask.shape == (40, 56) and mask.dtype == bool
    rows_constant, cols_constant = (mask == mask[:, :1]).all(), (mask == mask[:1, :]).all()
    assert rows_constant or cols_constant
    orientations.add(bool(rows_constant))
    seen_both |= bool(mask.any() and not mask.all())
  assert seen_both and orientations == {True, False}
  np.testing.assert_array_equal(degrade.real_mask(np.random.default_rng(3), 40, 56, str(tmp_path)),
                                degrade.real_mask(np.random.default_rng(3), 40, 56, str(tmp_path)))


def test_real_kind_needs_a_folder_of_masks(tmp_path):
  with pytest.raises(DataError, match="needs degradation.mask_folder"):
    degrade.degrade(_clean(), np.random.default_rng(0), _config(["real"], mask_folder=str(tmp_path)))


@pytest.mark.parametrize("change, message", [
    (lambda c: c.weights.__setitem__("mould", 1.0), "Unknown damage kind"),
    (lambda c: c.weights.__setitem__("cracks", -1.0), ">= 0"),
    (lambda c: setattr(c, "min_hole_ratio", 0.6), "larger than max_hole_ratio"),
    (lambda c: setattr(c, "max_hole_ratio", 1.5), r"in \[0, 1\]"),
    (lambda c: setattr(c, "min_hole_ratio", -0.1), r"in \[0, 1\]"),
    (lambda c: setattr(c, "fill", "gold"), "Unknown degradation.fill"),
    (lambda c: setattr(c, "max_kinds", 0), "max_kinds"),
])
def test_bad_config_raises_data_error(change, message):
  config = degrade.default_config()
  change(config)
  with pytest.raises(DataError, match=message):
    degrade.degrade(_clean(), np.random.default_rng(0), config)


@pytest.mark.parametrize("image, message", [
    (np.zeros((8, 8)), r"\[H, W, 3\]"),
    (np.full((8, 8, 3), 2.0), r"\[0, 1\]"),
    (np.zeros((8, 8, 3), np.int32), "uint8 or float"),
])
def test_bad_image_raises_data_error(image, message):
  with pytest.raises(DataError, match=message):
    degrade.degrade(image, np.random.default_rng(0), degrade.default_config())
