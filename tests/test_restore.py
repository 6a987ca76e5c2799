"""The conservator's tool end to end (python -m muraljax.restore): outputs, provenance and hashes, intact pixels,
orientation, input formats, damage detection, DiffuMural sampling, and one clear sentence for each bad input."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from conftest import REPO, claimed_size_png, load_config, tiny_diffumural_config
from PIL import Image

from muraljax.config import train_config
from muraljax.data.murals import generate_mural
from muraljax.restore import example, figures
from muraljax.restore.__main__ import main
from muraljax.restore.errors import RestoreError
from muraljax.restore.model import TrainedModel, untrained_model
from muraljax.restore.restoration import Restorer, Settings
from muraljax.train import loop

HEIGHT, WIDTH = 96, 128
SMALL = ["--tile", "64", "--overlap", "16"]
PROVENANCE_FIELDS = {"tool", "command", "started", "finished", "seconds", "input", "mask", "model", "restoration",
                     "uncertainty", "outputs", "software", "notes"}


def tiny_hinet_config():
  """The smoke HINet shrunk to 2 levels of width 4 on 32 px patches, trained for 2 steps on one device."""
  c = load_config("hinet", "smoke")
  c.model.wf, c.model.depth = 4, 2
  c.data.image_size, c.data.patch_size, c.data.eval_size, c.data.eval_images = 48, 32, 32, 2
  c.train.batch_size, c.train.num_steps, c.train.log_every = 4, 2, 1
  c.train.eval_every, c.train.checkpoint_every = 0, 2
  c.mesh.num_devices = 1
  return c


@pytest.fixture(scope="module")
def hinet_run(tmp_path_factory) -> pathlib.Path:
  """The workdir of a tiny HINet training (checkpoints/2 and the config.json the trainer writes)."""
  workdir = tmp_path_factory.mktemp("hinet-run")
  loop.run(tiny_hinet_config(), str(workdir))
  return workdir


@pytest.fixture
def wall(tmp_path) -> tuple[pathlib.Path, pathlib.Path, np.ndarray]:
  """A procedural mural photograph with a black-filled hole, its mask file, and the mask bool [H, W]."""
  image = generate_mural(7, HEIGHT, WIDTH)
  damaged = np.zeros((HEIGHT, WIDTH), bool)
  damaged[30:52, 40:90] = True
  damaged[70:74, 10:120] = True
  image[damaged] = 0
  Image.fromarray(image).save(tmp_path / "wall.png")
  Image.fromarray(np.where(damaged, 255, 0).astype(np.uint8)).save(tmp_path / "mask.png")
  return tmp_path / "wall.png", tmp_path / "mask.png", damaged


def restore(capsys, *args) -> tuple[int, str]:
  """Runs the command line in this process; returns its exit status and stderr."""
  status = main([str(a) for a in args])
  return status, capsys.readouterr().err


def sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_sha256(folder: pathlib.Path) -> str:
  """The checkpoint hash as provenance.json documents it, computed independently."""
  lines = "".join(f"{p.relative_to(folder).as_posix()}\0{sha256(p)}\n"
                  for p in sorted(folder.rglob("*")) if p.is_file())
  return hashlib.sha256(lines.encode()).hexdigest()


def read(path: pathlib.Path) -> np.ndarray:
  return np.asarray(Image.open(path))


def assert_nothing_written(out: pathlib.Path) -> None:
  assert not out.exists()
  assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_a_restoration_writes_every_output_documents_it_and_keeps_intact_pixels(hinet_run, wall, tmp_path, capsys):
  image_path, mask_path, damaged = wall
  image_hash = sha256(image_path)
  out = tmp_path / "out"
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask", mask_path, "--out", out,
                        *SMALL)
  assert status == 0, err
  assert "Restoring" in err and "tiles [" in err  # the plan and the progress bar
  assert sorted(p.name for p in out.iterdir()) == ["comparison.png", "mask.png", "provenance.json", "restored.png"]
  assert sha256(image_path) == image_hash  # the input is only read
  original, restored = read(image_path), read(out / "restored.png")
  assert restored.shape == original.shape
  np.testing.assert_array_equal(restored[~damaged], original[~damaged])
  assert (restored[damaged] != original[damaged]).any()
  np.testing.assert_array_equal(read(out / "mask.png") == 255, damaged)

  record = json.loads((out / "provenance.json").read_text())
  assert set(record) == PROVENANCE_FIELDS
  assert record["input"]["sha256"] == image_hash
  assert (record["input"]["width"], record["input"]["height"]) == (WIDTH, HEIGHT)
  assert record["mask"]["source"]["sha256"] == sha256(mask_path)
  assert record["mask"]["statistics"]["damaged_pixels"] == damaged.sum()
  assert record["mask"]["statistics"]["regions"] == 2
  assert record["model"]["name"] == "hinet" and record["model"]["step"] == 2
  assert record["model"]["checkpoint_sha256"] == folder_sha256(hinet_run / "checkpoints" / "2" / "state")
  assert record["model"]["config"] == json.loads((hinet_run / "config.json").read_text())
  assert record["outputs"] == {name: sha256(out / name) for name in ("comparison.png", "mask.png", "restored.png")}
  assert record["mask"]["statistics"]["damaged_fraction"] == pytest.approx(damaged.mean())
  assert record["mask"]["statistics"]["bounding_box"] == [30, 10, 74, 120]
  assert record["restoration"]["seed"] == 0 and record["restoration"]["mode"] == "inpaint"
  assert record["restoration"]["ensemble"] == 1
  assert record["restoration"]["tiles"] == 6 and record["restoration"]["tiles_restored"] == 6
  for package in ("jax", "jaxlib", "flax", "orbax-checkpoint", "numpy", "pillow"):
    assert record["software"]["packages"][package] == importlib.metadata.version(package)
  assert record["software"]["python"] == ".".join(map(str, sys.version_info[:3]))
  started, finished = (datetime.datetime.fromisoformat(record[k]) for k in ("started", "finished"))
  assert started.tzinfo is not None and started <= finished
  assert 0 < record["seconds"] <= (finished - started).total_seconds() + 1
  assert record["command"][3:] == ["--checkpoint", str(hinet_run), "--image", str(image_path), "--mask",
                                   str(mask_path), "--out", str(out), *SMALL]


UPRIGHT = {3: lambda x: np.rot90(x, 2), 6: lambda x: np.rot90(x, -1), 8: lambda x: np.rot90(x, 1)}
"""EXIF orientation -> how a viewer turns the stored pixels upright (6: 90 degrees clockwise, 8: anticlockwise)."""


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_an_exif_rotated_photograph_comes_back_upright_at_its_size(hinet_run, tmp_path, capsys, orientation):
  stored_shape = (HEIGHT, WIDTH) if orientation == 3 else (WIDTH, HEIGHT)
  exif = Image.Exif()
  exif[0x0112] = orientation
  Image.fromarray(generate_mural(3, *stored_shape)).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
  upright = UPRIGHT[orientation](read(tmp_path / "rotated.jpg"))
  assert upright.shape == (HEIGHT, WIDTH, 3)
  damaged = np.zeros((HEIGHT, WIDTH), bool)
  damaged[10:30, 20:60] = True
  Image.fromarray(np.where(damaged, 255, 0).astype(np.uint8)).save(tmp_path / "mask.png")
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", tmp_path / "rotated.jpg", "--mask",
                        tmp_path / "mask.png", "--out", tmp_path / "out", *SMALL)
  assert status == 0, err
  restored = read(tmp_path / "out" / "restored.png")
  assert restored.shape == upright.shape
  np.testing.assert_array_equal(restored[~damaged], upright[~damaged])
  np.testing.assert_array_equal(read(tmp_path / "out" / "mask.png") == 255, damaged)
  record = json.loads((tmp_path / "out" / "provenance.json").read_text())
  assert record["input"]["exif_orientation"] == orientation
  assert any(f"EXIF orientation {orientation}" in note for note in record["notes"])
  assert (record["input"]["width"], record["input"]["height"]) == (WIDTH, HEIGHT)
  assert (record["input"]["stored_height"], record["input"]["stored_width"]) == stored_shape

  if orientation != 3:
    Image.fromarray(np.zeros(stored_shape, np.uint8)).save(tmp_path / "stored-mask.png")  # drawn unrotated
    status, err = restore(capsys, "--checkpoint", hinet_run, "--image", tmp_path / "rotated.jpg", "--mask",
                          tmp_path / "stored-mask.png", "--out", tmp_path / "out2")
    assert status == 2 and "is 96x128 but the upright image is 128x96" in err
    assert_nothing_written(tmp_path / "out2")


def test_relative_paths_are_read_from_the_working_folder(hinet_run, wall, tmp_path, capsys, monkeypatch):
  """As the README writes the commands: --checkpoint runs/hinet-smoke and friends, relative to where it runs."""
  image_path, mask_path, damaged = wall
  monkeypatch.chdir(tmp_path)
  status, err = restore(capsys, "--checkpoint", os.path.relpath(hinet_run), "--image", image_path.name, "--mask",
                        mask_path.name, "--out", "wall-restored", *SMALL)
  assert status == 0, err
  np.testing.assert_array_equal(read(tmp_path / "wall-restored" / "restored.png")[~damaged],
                                read(image_path)[~damaged])


def _gray16(image: np.ndarray, path: pathlib.Path) -> np.ndarray:
  values = (image.mean(axis=-1) * 257).astype(np.uint16)
  Image.fromarray(values).save(path)
  return np.round(values / 257).astype(np.uint8)


def _rgb48(image: np.ndarray, path: pathlib.Path) -> np.ndarray:
  """A 16-bit-per-channel RGB PNG, written by hand (Pillow writes none)."""
  rows = (image.astype(">u2") * 257).reshape(image.shape[0], -1)
  chunk = lambda tag, body: (struct.pack(">I", len(body)) + tag + body +
                             struct.pack(">I", zlib.crc32(tag + body)))
  header = struct.pack(">IIBBBBB", image.shape[1], image.shape[0], 16, 2, 0, 0, 0)  # 16 bits, truecolour
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                   chunk(b"IDAT", zlib.compress(b"".join(b"\0" + row.tobytes() for row in rows))) + chunk(b"IEND", b""))
  return image


def _rgba(image: np.ndarray, path: pathlib.Path) -> np.ndarray:
  alpha = np.full(image.shape[:2], 255, np.uint8)
  alpha[:, :8] = 0  # a transparent strip, composited onto white
  Image.fromarray(np.dstack([image, alpha])).save(path)
  return np.where(alpha[..., None] == 0, 255, image).astype(np.uint8)


def _gray8(image: np.ndarray, path: pathlib.Path) -> np.ndarray:
  Image.fromarray(image).convert("L").save(path)
  return np.asarray(Image.open(path))


@pytest.mark.parametrize("write, note", [(_gray16, "16-bit"), (_rgb48, "16-bit"), (_rgba, "Transparent"),
                                         (_gray8, "Grayscale")])
def test_16_bit_transparent_and_grayscale_photographs_are_restored(hinet_run, wall, tmp_path, capsys, write, note):
  """Intact pixels are the photograph's own, brought to 8 bits (16-bit / 257) or composited onto white; grayscale
  stays grayscale."""
  _, mask_path, damaged = wall
  expected = write(generate_mural(7, HEIGHT, WIDTH), tmp_path / "input.png")
  input_hash = sha256(tmp_path / "input.png")
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", tmp_path / "input.png", "--mask", mask_path,
                        "--out", tmp_path / "out", *SMALL)
  assert status == 0, err
  restored = read(tmp_path / "out" / "restored.png")
  assert restored.shape == expected.shape
  np.testing.assert_array_equal(restored[~damaged], expected[~damaged])
  record = json.loads((tmp_path / "out" / "provenance.json").read_text())
  assert any(note in n for n in record["notes"])
  assert sha256(tmp_path / "input.png") == input_hash == record["input"]["sha256"]


def test_a_grey_mask_is_thresholded_at_half_and_noted(hinet_run, wall, tmp_path, capsys):
  image_path, _, _ = wall
  values = np.zeros((HEIGHT, WIDTH), np.uint8)
  values[9:21, 9:51] = 127  # a 1 px rim just below half: intact
  values[10:20, 10:50] = 255
  values[39:61, 59:101] = 128  # a 1 px rim at half: damaged
  values[40:60, 60:100] = 255
  Image.fromarray(values).save(tmp_path / "soft.png")
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask", tmp_path / "soft.png",
                        "--out", tmp_path / "out", *SMALL)
  assert status == 0, err
  np.testing.assert_array_equal(read(tmp_path / "out" / "mask.png") == 255, values >= 128)
  assert "228 grey pixels" in err


def _antialiased(damaged: np.ndarray, path: pathlib.Path) -> None:
  """As a brush in an image editor draws it: at 4x, then averaged down, so every edge is grey."""
  big = np.roll(np.kron(damaged, np.ones((4, 4), np.uint8)) * 255, 1, axis=(0, 1))  # edges 1/4 and 3/4 white
  big[:, 3:7] = 255  # a crack 1 px wide that straddles two pixel columns
  Image.fromarray(big.astype(np.uint8)).resize(damaged.shape[::-1], Image.Resampling.BOX).save(path)


def _jpeg(damaged: np.ndarray, path: pathlib.Path) -> None:
  Image.fromarray(np.where(damaged, 255, 0).astype(np.uint8)).convert("RGB").save(path, quality=75)


@pytest.mark.parametrize("write", [_antialiased, _jpeg])
def test_anti_aliased_and_jpeg_masks_are_masks(hinet_run, wall, tmp_path, capsys, write):
  image_path, _, damaged = wall
  mask_path = tmp_path / f"mask{'.jpg' if write is _jpeg else '.png'}"
  write(damaged, mask_path)
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask", mask_path, "--out",
                        tmp_path / "out", *SMALL)
  assert status == 0, err
  used = read(tmp_path / "out" / "mask.png") == 255
  assert (used == damaged).mean() > 0.97 and used[damaged].all()
  np.testing.assert_array_equal(read(tmp_path / "out" / "restored.png")[~used], read(image_path)[~used])
  assert "grey pixels" in err


def test_an_inverted_mask_reads_black_as_damage(hinet_run, wall, tmp_path, capsys):
  image_path, mask_path, damaged = wall
  Image.fromarray(np.where(damaged, 0, 255).astype(np.uint8)).save(tmp_path / "black-is-damage.png")
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask",
                        tmp_path / "black-is-damage.png", "--out", tmp_path / "as-drawn", *SMALL)
  assert status == 0 and "re-run with --invert-mask" in err
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask",
                        tmp_path / "black-is-damage.png", "--invert-mask", "--out", tmp_path / "out", *SMALL)
  assert status == 0, err
  np.testing.assert_array_equal(read(tmp_path / "out" / "mask.png") == 255, damaged)


def test_an_empty_mask_returns_the_input_with_a_note(hinet_run, wall, tmp_path, capsys):
  image_path, _, _ = wall
  Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(tmp_path / "empty.png")
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask", tmp_path / "empty.png",
                        "--out", tmp_path / "out")
  assert status == 0, err
  np.testing.assert_array_equal(read(tmp_path / "out" / "restored.png"), read(image_path))
  record = json.loads((tmp_path / "out" / "provenance.json").read_text())
  assert any("The mask is empty" in note for note in record["notes"])
  assert record["mask"]["statistics"]["damaged_pixels"] == 0


def test_detect_damage_proposes_the_blanked_out_hole_for_editing(hinet_run, wall, tmp_path, capsys):
  image_path, _, damaged = wall
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--detect-damage", "--out",
                        tmp_path / "out", *SMALL)
  assert status == 0, err
  proposal = read(tmp_path / "out" / "mask.png") == 255
  assert proposal[damaged].mean() > 0.95  # the black fill is found whatever the barely trained model does
  np.testing.assert_array_equal(read(tmp_path / "out" / "restored.png")[~proposal], read(image_path)[~proposal])
  assert (tmp_path / "out" / "damage_score.png").exists()
  record = json.loads((tmp_path / "out" / "provenance.json").read_text())
  assert record["mask"]["source"]["kind"] == "detected"
  assert "blind-model residual" in record["mask"]["source"]["cues"]
  assert any("re-run with --mask" in note for note in record["notes"])


def test_enhance_replaces_every_pixel(hinet_run, wall, tmp_path, capsys):
  image_path, _, _ = wall
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--enhance", "--out",
                        tmp_path / "out", *SMALL)
  assert status == 0, err
  assert (read(tmp_path / "out" / "mask.png") == 255).all()
  assert (read(tmp_path / "out" / "restored.png") != read(image_path)).any(axis=-1).mean() > 0.5
  assert json.loads((tmp_path / "out" / "provenance.json").read_text())["restoration"]["mode"] == "enhance"


def test_the_same_command_gives_the_same_files(hinet_run, wall, tmp_path, capsys):
  """Run twice (a second compile, a fresh output folder): every output file is byte for byte the same, and so is
  the provenance record but for times and the output path."""
  image_path, mask_path, _ = wall
  records = []
  for out in ("first", "second"):
    status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask", mask_path, "--out",
                          tmp_path / out, "--seed", "7", *SMALL)
    assert status == 0, err
    records.append(json.loads((tmp_path / out / "provenance.json").read_text()))
  assert records[0]["outputs"] == records[1]["outputs"]
  assert records[0]["outputs"]["restored.png"] == sha256(tmp_path / "second" / "restored.png")
  varying = {"started", "finished", "seconds", "command", "restoration"}
  assert {k: v for k, v in records[0].items() if k not in varying} == \
         {k: v for k, v in records[1].items() if k not in varying}
  assert {k: v for k, v in records[0]["restoration"].items() if k != "compute_seconds"} == \
         {k: v for k, v in records[1]["restoration"].items() if k != "compute_seconds"}


def test_an_existing_output_folder_is_kept_unless_overwrite(hinet_run, wall, tmp_path, capsys):
  image_path, mask_path, _ = wall
  out = tmp_path / "out"
  out.mkdir()
  (out / "notes.txt").write_text("a conservator's notes")
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask", mask_path, "--out", out)
  assert status == 2 and "already exists; pass --overwrite" in err
  assert (out / "notes.txt").read_text() == "a conservator's notes"
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask", mask_path, "--out", out,
                        "--overwrite", *SMALL)
  assert status == 0, err
  assert not (out / "notes.txt").exists() and (out / "restored.png").exists()
  assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_overwrite_never_replaces_a_folder_holding_the_input(hinet_run, wall, tmp_path, capsys):
  image_path, mask_path, _ = wall
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask", mask_path, "--out",
                        tmp_path, "--overwrite")
  assert status == 2 and "contains the input" in err
  assert image_path.exists()


def test_a_failure_while_writing_leaves_nothing_half_written(hinet_run, wall, tmp_path, capsys, monkeypatch):
  image_path, mask_path, _ = wall

  def broken(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(figures, "comparison", broken)
  with pytest.raises(OSError, match="disk full"):
    main(["--checkpoint", str(hinet_run), "--image", str(image_path), "--mask", str(mask_path), "--out",
          str(tmp_path / "out"), *SMALL])
  assert_nothing_written(tmp_path / "out")


BAD_INPUTS = {
    "unreadable image": (["--image", "{tmp}/not-an-image.jpg", "--mask", "{mask}"], "cannot be read as an image"),
    "truncated image": (["--image", "{tmp}/truncated.jpg", "--mask", "{mask}"], "cannot be read as an image"),
    "missing image": (["--image", "{tmp}/nowhere.jpg", "--mask", "{mask}"], "does not exist"),
    "mask of another size": (["--image", "{image}", "--mask", "{tmp}/small-mask.png"],
                             "is 20x10 but the upright image is 128x96"),
    "unreadable mask": (["--image", "{image}", "--mask", "{tmp}/not-an-image.jpg"], "The mask"),
    "coloured mask": (["--image", "{image}", "--mask", "{tmp}/red-mask.png"], "has 1100 coloured pixels"),
    "0/1 mask": (["--image", "{image}", "--mask", "{tmp}/zero-one-mask.png"], "multiply a 0/1 mask by 255"),
    "0/1 mask, inverted": (["--image", "{image}", "--mask", "{tmp}/zero-one-mask.png", "--invert-mask"],
                           "only black and one dark value"),
    "photograph as mask": (["--image", "{image}", "--mask", "{tmp}/grey-photograph.png"], "is not black and white"),
    "soft mask": (["--image", "{image}", "--mask", "{tmp}/soft-mask.png"], "grey far from any black or white"),
    "no mask option": (["--image", "{image}"], "pass --mask, or --detect-damage"),
    "wrong model": (["--image", "{image}", "--mask", "{mask}", "--model", "diffumural"],
                    "holds a 'hinet' model, not 'diffumural'"),
    "overlap too large": (["--image", "{image}", "--mask", "{mask}", "--tile", "64", "--overlap", "40"],
                          "--overlap 40 must be between 0 and half of --tile 64"),
    "samples of a blind model": (["--image", "{image}", "--mask", "{mask}", "--samples", "3"], "deterministic"),
    "damage type for a blind model": (["--image", "{image}", "--mask", "{mask}", "--damage-type", "cracks"],
                                      "hinet takes no damage type"),
    "enhance with a mask": (["--image", "{image}", "--mask", "{mask}", "--enhance"],
                            "Pass only one of --mask, --detect-damage and --enhance"),
}


def write_bad_files(folder: pathlib.Path, image_path: pathlib.Path, damaged: np.ndarray) -> None:
  """The files BAD_INPUTS names, in `folder`."""
  (folder / "not-an-image.jpg").write_text("this is not a JPEG")
  Image.fromarray(read(image_path)).save(folder / "full.jpg")
  (folder / "truncated.jpg").write_bytes((folder / "full.jpg").read_bytes()[:2000])
  Image.fromarray(np.zeros((10, 20), np.uint8)).save(folder / "small-mask.png")
  red = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
  red[damaged[:HEIGHT] & (np.arange(HEIGHT) < 60)[:, None]] = (255, 0, 0)  # the first hole, drawn in red
  Image.fromarray(red).save(folder / "red-mask.png")
  Image.fromarray(damaged.astype(np.uint8)).save(folder / "zero-one-mask.png")
  Image.open(image_path).convert("L").save(folder / "grey-photograph.png")
  y, x = np.mgrid[:HEIGHT, :WIDTH]
  soft = np.exp(-((y - 40) ** 2 + (x - 64) ** 2) / (2 * 30.0 ** 2))  # a probability map, not a drawn mask
  Image.fromarray(np.round(255 * soft).astype(np.uint8)).save(folder / "soft-mask.png")


def assert_one_sentence(err: str, message: str) -> None:
  """The last line of stderr is 'Error: ' and one sentence holding `message`."""
  line = err.strip().splitlines()[-1]
  assert line.startswith("Error: ") and message in line, err
  assert line.endswith(".") and not re.search(r"[.;] +[A-Z]", line[len("Error: "):-1]), line


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_each_bad_input_stops_with_one_sentence_and_writes_nothing(hinet_run, wall, tmp_path, capsys, case):
  image_path, mask_path, damaged = wall
  write_bad_files(tmp_path, image_path, damaged)
  inputs = {path: sha256(path) for path in (image_path, mask_path)}
  args, message = BAD_INPUTS[case]
  args = [a.format(tmp=tmp_path, image=image_path, mask=mask_path) for a in args]
  status, err = restore(capsys, "--checkpoint", hinet_run, *args, "--out", tmp_path / "out")
  assert_one_sentence(err, message)
  assert status == 2
  assert_nothing_written(tmp_path / "out")
  assert {path: sha256(path) for path in inputs} == inputs


def test_an_output_path_that_is_a_file_is_refused(hinet_run, wall, tmp_path, capsys):
  image_path, mask_path, _ = wall
  (tmp_path / "out").write_text("not a folder")
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask", mask_path, "--out",
                        tmp_path / "out", "--overwrite")
  assert status == 2
  assert_one_sentence(err, "exists and is not a folder")
  assert (tmp_path / "out").read_text() == "not a folder"


def test_huge_claimed_sizes_are_refused_from_the_header_before_decoding(hinet_run, wall, tmp_path, capsys):
  image_path, mask_path, _ = wall
  claimed_size_png(tmp_path / "bomb.png", 30000, 30000)
  common = ["--checkpoint", hinet_run, "--out", tmp_path / "out", *SMALL]
  status, err = restore(capsys, "--image", image_path, "--mask", tmp_path / "bomb.png", *common)
  assert status == 2
  assert_one_sentence(err, "is 30000x30000 but the upright image is 128x96")
  status, err = restore(capsys, "--image", tmp_path / "bomb.png", "--detect-damage", *common)
  assert status == 2
  for fragment in ("(900 megapixels), above the limit of 150", "about 36 GB", "a 100-megapixel wall about 4 GB",
                   "--max-megapixels 900"):
    assert_one_sentence(err, fragment)
  status, err = restore(capsys, "--image", image_path, "--mask", mask_path, "--max-megapixels", "0.01", *common)
  assert status == 2
  assert_one_sentence(err, "128x96 (0 megapixels), above the limit of 0.01")
  assert not (tmp_path / "out").exists()


def test_an_output_folder_below_a_file_is_refused_before_restoring(hinet_run, wall, tmp_path, capsys):
  image_path, mask_path, _ = wall
  (tmp_path / "file").write_text("x")
  status, err = restore(capsys, "--checkpoint", hinet_run, "--image", image_path, "--mask", mask_path, "--out",
                        tmp_path / "file" / "out")
  assert status == 2
  assert_one_sentence(err, f"cannot be written ({tmp_path / 'file'} is a file, not a folder)")


@pytest.fixture(scope="module")
def other_runs(hinet_run, tmp_path_factory) -> dict[str, pathlib.Path]:
  """Copies of the HINet run whose config.json says something else: a wider HINet, a CAR (which does not
  restore), a DiffuMural, a HINet without its width, one written before two shared fields existed; and an empty
  folder."""
  root = tmp_path_factory.mktemp("other-runs")
  configs = {"wider": lambda c: c["model"].update(wf=8), "car": lambda c: c.update(task="car"),
             "diffumural": lambda c: c.clear() or c.update(json.loads(tiny_diffumural_config().to_json_best_effort())),
             "no-width": lambda c: c["model"].pop("wf"),
             "older": lambda c: c["train"].pop("compute_dtype") and c["mesh"].pop("rules")}
  runs = {"empty": root / "empty"}
  runs["empty"].mkdir()
  for name, change in configs.items():
    runs[name] = root / name
    shutil.copytree(hinet_run, runs[name])
    config = json.loads((runs[name] / "config.json").read_text())
    change(config)
    (runs[name] / "config.json").write_text(json.dumps(config))
  return runs


@pytest.mark.parametrize("checkpoint, model, message", [
    ("wider", None, "does not hold the hinet model its config.json describes"),
    ("car", None, "holds a 'car' model, which does not restore murals"),
    ("diffumural", None, "does not hold the diffumural model its config.json describes"),
    ("diffumural", "diffumural", "does not hold the diffumural model its config.json describes"),
    ("diffumural", "arin", "holds a 'diffumural' model, not 'arin'"),
    ("no-width", None, "lacks the setting wf that this version's hinet model needs"),
    ("empty", None, "holds no muraljax checkpoint")])
def test_a_checkpoint_of_another_model_is_refused(other_runs, wall, tmp_path, capsys, checkpoint, model, message):
  image_path, mask_path, _ = wall
  checkpoint_hash = folder_sha256(other_runs[checkpoint])
  options = ["--model", model] if model else []
  status, err = restore(capsys, "--checkpoint", other_runs[checkpoint], "--image", image_path, "--mask", mask_path,
                        "--out", tmp_path / "out", *options)
  assert status == 2
  assert_one_sentence(err, message)
  assert_nothing_written(tmp_path / "out")
  assert folder_sha256(other_runs[checkpoint]) == checkpoint_hash


def test_a_run_older_than_a_shared_config_field_restores_with_a_note(hinet_run, other_runs, wall, tmp_path,
                                                                     capsys):
  image_path, mask_path, _ = wall
  for run, out in ((hinet_run, "current"), (other_runs["older"], "older")):
    status, err = restore(capsys, "--checkpoint", run, "--image", image_path, "--mask", mask_path, "--out",
                          tmp_path / out, *SMALL)
    assert status == 0, err
  assert sha256(tmp_path / "older" / "restored.png") == sha256(tmp_path / "current" / "restored.png")
  record = json.loads((tmp_path / "older" / "provenance.json").read_text())
  assert "predates the config fields mesh.rules, train.compute_dtype" in record["notes"][0]
  assert record["model"]["config"]["train"]["compute_dtype"] == train_config().compute_dtype


@pytest.mark.parametrize("damage", ["truncate the largest data file", "delete the manifest"])
def test_a_damaged_checkpoint_stops_with_one_sentence(hinet_run, wall, tmp_path, capsys, damage):
  run = tmp_path / "run"
  shutil.copytree(hinet_run, run)
  state = run / "checkpoints" / "2" / "state"
  if damage.startswith("truncate"):
    largest = max((p for p in state.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    largest.write_bytes(largest.read_bytes()[:100])
  else:
    (state / "manifest.ocdbt").unlink()
  image_path, mask_path, _ = wall
  status, err = restore(capsys, "--checkpoint", run, "--image", image_path, "--mask", mask_path, "--out",
                        tmp_path / "out", *SMALL)
  assert status == 2 and "Traceback" not in err
  assert "is damaged or incomplete: pass an intact step folder" in err.strip().splitlines()[-1]
  assert not (tmp_path / "out").exists()


def test_sigterm_while_restoring_leaves_no_half_written_folder(hinet_run, tmp_path):
  Image.fromarray(generate_mural(5, 1200, 1200)).save(tmp_path / "wall.png")
  Image.fromarray(np.full((1200, 1200), 255, np.uint8)).save(tmp_path / "mask.png")
  command = [sys.executable, "-m", "muraljax.restore", "--checkpoint", str(hinet_run), "--image",
             str(tmp_path / "wall.png"), "--mask", str(tmp_path / "mask.png"), "--out", str(tmp_path / "out"),
             "--tile", "16", "--overlap", "0", "--batch", "1"]  # thousands of tiny model calls: time to stop it
  child = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  deadline = time.monotonic() + 120
  while not list(tmp_path.glob(".out.partial-*")) and child.poll() is None and time.monotonic() < deadline:
    time.sleep(0.2)
  assert child.poll() is None, "the restoration ended before it could be stopped"
  child.send_signal(signal.SIGTERM)
  _, err = child.communicate(timeout=120)
  assert child.returncode == 130 and "Stopped: nothing was written to --out." in err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png", "wall.png"]


def test_the_module_entry_point_reports_errors_without_a_traceback(wall, tmp_path):
  image_path, mask_path, _ = wall
  (tmp_path / "out").mkdir()
  result = subprocess.run([sys.executable, "-m", "muraljax.restore", "--checkpoint", str(tmp_path), "--image",
                           str(image_path), "--mask", str(mask_path), "--out", str(tmp_path / "out")],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith("Error: The output folder")


@pytest.fixture(scope="module")
def diffumural() -> TrainedModel:
  """Single-scale, to keep its three compiles quick; the slow command-line test below samples all three scales."""
  return untrained_model(tiny_diffumural_config(scales=(16,)))


def test_diffumural_refuses_a_flip_ensemble(diffumural):
  with pytest.raises(RestoreError, match="drop --ensemble"):
    Settings(ensemble=2).check(diffumural)


def test_diffumural_samples_depend_only_on_the_seed_and_give_an_uncertainty_map(diffumural):
  pixels = generate_mural(5, 40, 56)
  damaged = np.zeros((40, 56), bool)
  damaged[8:30, 10:40] = True
  settings = Settings(tile=32, overlap=8, batch=2, samples=2, seed=3)
  restorer = Restorer(diffumural, settings, 40, 56, lambda message: None)
  first, again = restorer.restore(pixels, damaged), restorer.restore(pixels, damaged)
  np.testing.assert_array_equal(first.restored, again.restored)
  np.testing.assert_array_equal(first.restored[~damaged], pixels[~damaged])
  assert (first.uncertainty[~damaged] == 0).all() and (first.uncertainty[damaged] > 0).mean() > 0.9
  other_seed = Restorer(diffumural, dataclasses.replace(settings, seed=4), 40, 56, lambda message: None)
  assert (other_seed.restore(pixels, damaged).restored != first.restored).any()
  cracks = Restorer(diffumural, dataclasses.replace(settings, damage_type="cracks"), 40, 56, lambda message: None)
  conditioned = cracks.restore(pixels, damaged).restored
  np.testing.assert_array_equal(conditioned[~damaged], pixels[~damaged])
  assert (conditioned != first.restored).any()  # the same seed and noise, another condition
  one_tile_per_call = Restorer(diffumural, dataclasses.replace(settings, batch=1), 40, 56, lambda message: None)
  np.testing.assert_allclose(one_tile_per_call.restore(pixels, damaged).restored.astype(int),
                             first.restored.astype(int), atol=1)  # each tile's own noise; atol: float rounding


@pytest.mark.slow
def test_diffumural_from_the_command_line_saves_samples_and_uncertainty(wall, tmp_path, capsys):
  image_path, mask_path, damaged = wall
  loop.run(tiny_diffumural_config(num_steps=1), str(tmp_path / "run"))
  out = tmp_path / "out"
  status, err = restore(capsys, "--checkpoint", tmp_path / "run", "--image", image_path, "--mask", mask_path,
                        "--out", out, "--samples", "2", "--seed", "5", "--tile", "32", "--overlap", "8",
                        "--damage-type", "fading")
  assert status == 0, err
  assert "Estimated time" in err
  assert {"uncertainty.png", "uncertainty.tiff", "samples"} <= {p.name for p in out.iterdir()}
  np.testing.assert_array_equal(read(out / "restored.png")[~damaged], read(image_path)[~damaged])
  record = json.loads((out / "provenance.json").read_text())
  assert record["model"]["name"] == "diffumural" and record["restoration"]["seed"] == 5
  assert record["restoration"]["damage_type"] == "fading"
  assert record["uncertainty"]["max"] > 0
  assert set(record["outputs"]) >= {"samples/sample_01.png", "samples/sample_02.png", "uncertainty.tiff"}


def test_help_prints():
  result = subprocess.run([sys.executable, "-m", "muraljax.restore", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-2000:]
  assert "thresholded at 50%" in " ".join(result.stdout.split())


def test_the_walkthrough_example_paints_damages_and_restores(hinet_run, tmp_path, capsys):
  assert example.main(["--out", str(tmp_path / "example"), "--checkpoint", str(hinet_run), "--height", "96",
                       "--width", "128"]) == 0
  printed = capsys.readouterr().out
  assert "$ python -m muraljax.restore" in printed and "PSNR inside the damage" in printed
  names = {p.relative_to(tmp_path / "example").as_posix() for p in (tmp_path / "example").rglob("*.png")}
  assert {"clean.png", "wall.png", "wall-mask.png", "restored/restored.png", "proposal/mask.png"} <= names


def test_arin_restores_through_the_same_tiles(wall):
  """ARIN (CAR then HINet) with fresh params, on tiles that are no multiple of its 16 px downsampling."""
  image_path, _, damaged = wall
  pixels = read(image_path)
  restorer = Restorer(untrained_model(load_config("arin", "smoke")), Settings(tile=72, overlap=12), HEIGHT, WIDTH,
                      lambda message: None)
  result = restorer.restore(pixels, damaged)
  assert result.restored.shape == pixels.shape
  np.testing.assert_array_equal(result.restored[~damaged], pixels[~damaged])
