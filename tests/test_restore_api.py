"""The shipped models and the Python restore API: loading by name or path, restoring arrays, refusing tampered
weights and bad arrays, and the command line with no --checkpoint."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest
from conftest import load_config
from PIL import Image

import muraljax.restore as R
from muraljax.data.murals import generate_mural
from muraljax.restore import shipped
from muraljax.restore.__main__ import main
from muraljax.restore.errors import RestoreError
from muraljax.train import loop


@pytest.fixture(scope="module")
def default_model() -> R.MuralRestorer:
  return R.load()


def _damaged_mural(height: int = 80, width: int = 112) -> tuple[np.ndarray, np.ndarray]:
  image = generate_mural(3, height, width)
  mask = np.zeros((height, width), bool)
  mask[20:44, 30:70] = True
  mask[60:64, 5:100] = True
  return image, mask


def _masked_error(restored: np.ndarray, clean: np.ndarray, mask: np.ndarray) -> float:
  return float(np.abs(restored.astype(np.float32) - clean)[mask].mean())


def test_default_shipped_model_is_a_verified_mask_aware_hinet(default_model):
  assert shipped.DEFAULT in shipped.names()
  assert default_model.shipped and default_model.model.name == "hinet"
  assert not default_model.model.blind and not default_model.model.sampled
  card = (shipped.WEIGHTS / shipped.DEFAULT / shipped.CARD_FILE).read_text()
  sums = (shipped.WEIGHTS / shipped.DEFAULT / shipped.SUMS_FILE).read_text().splitlines()
  for line in sums:
    digest, name = line.split("  ")
    assert name == shipped.CARD_FILE or digest in card  # the card lists every weights file's digest


def test_restores_an_array_keeping_intact_pixels_and_beating_a_flat_fill(default_model):
  clean, mask = _damaged_mural()
  damaged = np.where(mask[..., None], 0, clean).astype(np.uint8)
  restored = default_model.restore(damaged, mask)
  assert restored.dtype == np.uint8 and restored.shape == clean.shape
  np.testing.assert_array_equal(restored[~mask], damaged[~mask])
  flat = np.where(mask[..., None], clean[~mask].mean(axis=0).round(), clean).astype(np.uint8)
  assert _masked_error(restored, clean, mask) < 0.8 * _masked_error(flat, clean, mask)
  np.testing.assert_array_equal(default_model.restore(damaged, mask), restored)  # deterministic


def test_any_size_is_tiled_and_an_empty_mask_changes_nothing(default_model):
  clean, mask = _damaged_mural(300, 70)
  restored = default_model.restore(clean, mask)
  assert restored.shape == (300, 70, 3)
  np.testing.assert_array_equal(restored[~mask], clean[~mask])
  np.testing.assert_array_equal(default_model.restore(clean, np.zeros((300, 70), bool)), clean)


@pytest.mark.parametrize("image, mask, message", [
    (np.zeros((16, 16, 3), np.float32), np.zeros((16, 16), bool), r"image must be a uint8 numpy array \[H, W, 3\]"),
    (np.zeros((16, 16), np.uint8), np.zeros((16, 16), bool), r"got uint8 array of shape \(16, 16\)"),
    ([[0]], np.zeros((16, 16), bool), "got list"),
    (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16), np.uint8), r"mask must be a bool numpy array \[H, W\]"),
    (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 1), bool), "mask must be a bool"),
    (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 17), bool), "mask is 16x17 but image is 16x16"),
])
def test_bad_arrays_get_one_value_error_sentence(default_model, image, mask, message):
  with pytest.raises(ValueError, match=message):
    default_model.restore(image, mask)


@pytest.fixture
def weights_copy(tmp_path, monkeypatch) -> pathlib.Path:
  """A copy of the shipped models that shipped.resolve uses instead of the package's."""
  copy = tmp_path / "weights"
  shutil.copytree(shipped.WEIGHTS, copy)
  monkeypatch.setattr(shipped, "WEIGHTS", copy)
  return copy / shipped.DEFAULT


def _flip_last_byte_of_the_largest_file(folder: pathlib.Path) -> None:
  largest = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  data = largest.read_bytes()
  largest.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))


@pytest.mark.parametrize("tamper, problem", [
    (_flip_last_byte_of_the_largest_file, "has changed"),
    (lambda f: (f / "config.json").unlink(), "config.json is missing"),
    (lambda f: (f / "checkpoints" / "extra.bin").write_bytes(b"x"), "checkpoints/extra.bin is not listed"),
])
def test_a_shipped_model_that_does_not_match_its_card_is_refused(weights_copy, tamper, problem):
  R.load(shipped.DEFAULT)  # the untouched copy loads
  tamper(weights_copy)
  with pytest.raises(RestoreError, match=f"does not match its model card .*{problem}.*reinstall muraljax"):
    R.load()


def test_unknown_name_is_refused():
  with pytest.raises(RestoreError, match="'no-such-model' is neither an existing checkpoint path nor a shipped model"):
    R.load("no-such-model")


def test_command_line_without_checkpoint_uses_the_default_model(tmp_path, capsys):
  clean, mask = _damaged_mural()
  Image.fromarray(np.where(mask[..., None], 0, clean).astype(np.uint8)).save(tmp_path / "wall.png")
  Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
  status = main(["--image", str(tmp_path / "wall.png"), "--mask", str(tmp_path / "mask.png"),
                 "--out", str(tmp_path / "out")])
  assert status == 0, capsys.readouterr().err
  assert {p.name for p in (tmp_path / "out").iterdir()} == {"restored.png", "mask.png", "comparison.png",
                                                            "provenance.json"}
  restored = np.asarray(Image.open(tmp_path / "out" / "restored.png"))
  np.testing.assert_array_equal(restored, R.load().restore(np.asarray(Image.open(tmp_path / "wall.png")), mask))
  record = json.loads((tmp_path / "out" / "provenance.json").read_text())
  assert record["model"]["name"] == "hinet"
  assert str(shipped.WEIGHTS / shipped.DEFAULT) in record["model"]["checkpoint"]


def test_a_trained_run_ships_and_loads_by_name(tmp_path, monkeypatch):
  config = load_config("hinet", "inpaint_small")
  config.model.update(wf=4, depth=2, hin_levels=(0,))
  config.loss.perceptual_weight = 0.0
  config.data.update(image_size=48, patch_size=32, eval_size=32, eval_images=2)
  config.train.update(batch_size=2, num_steps=2, log_every=1, eval_every=0, checkpoint_every=2, ema_decay=0.5)
  config.mesh.num_devices = 1
  loop.run(config, str(tmp_path / "run"))
  monkeypatch.setattr(shipped, "WEIGHTS", tmp_path / "weights")
  folder = shipped.ship(str(tmp_path / "run"), "tiny", "# tiny\n", weights=tmp_path / "weights")
  assert shipped.names() == ["tiny"] and (folder / "checkpoints" / "2" / "state").is_dir()
  by_name, by_path = R.load("tiny"), R.load(str(tmp_path / "run"))
  image, mask = _damaged_mural(40, 40)
  np.testing.assert_array_equal(by_name.restore(image, mask), by_path.restore(image, mask))  # the EMA params both
  with pytest.raises(RestoreError, match="exists already"):
    shipped.ship(str(tmp_path / "run"), "tiny", "# tiny\n", weights=tmp_path / "weights")
  tuned = shipped.ship(str(tmp_path / "run"), "tuned", "# tuned\n", weights=tmp_path / "weights",
                       settings=["model.prefill_sweeps=40"])
  assert json.loads((tuned / "config.json").read_text())["model"]["prefill_sweeps"] == 40
  assert R.load("tuned").model.config.model.prefill_sweeps == 40
  with pytest.raises(RestoreError, match="does not hold the hinet model"):  # the params do not fit a wider model
    shipped.ship(str(tmp_path / "run"), "wide", "# wide\n", weights=tmp_path / "weights", settings=["model.wf=8"])
  with pytest.raises(RestoreError, match="--set model.sweeps: the config has no field"):
    shipped.ship(str(tmp_path / "run"), "typo", "# typo\n", weights=tmp_path / "weights", settings=["model.sweeps=8"])
  assert shipped.names() == ["tiny", "tuned"]
