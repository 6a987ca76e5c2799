"""Porting refuses bad input with one clear error and writes nothing: damaged files, unsafe pickles, the wrong
model, missing or extra tensors, an occupied output folder. Also: the wrappers and prefixes it removes."""

from __future__ import annotations

import pathlib
import pickle

import numpy as np
import pytest
import safetensors.torch
import torch

from muraljax import port
from muraljax.models import hinet
from muraljax.port import __main__ as cli
from muraljax.port.torch_reference import car as torch_car
from muraljax.port.torch_reference import hinet as torch_hinet
from muraljax.port.torch_reference import randomize_


def _touch(path: str) -> None:
  pathlib.Path(path).touch()


class Payload:
  """Unpickling this runs `_touch(marker)`: what a malicious checkpoint would do with os.system."""

  def __init__(self, marker: pathlib.Path):
    self.marker = marker

  def __reduce__(self):
    return _touch, (str(self.marker),)


@pytest.fixture(scope="module")
def tiny_hinet() -> dict[str, torch.Tensor]:
  return randomize_(torch_hinet.HINet(wf=4, depth=2)).state_dict()


def run_cli(tmp_path: pathlib.Path, capsys, model: str, src: pathlib.Path) -> str:
  """Runs the port CLI into tmp_path/out, asserts it failed and wrote nothing; returns the error."""
  assert cli.main(["--model", model, "--src", str(src), "--out", str(tmp_path / "out")]) == 2
  assert not (tmp_path / "out").exists()
  assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left
  return capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file(tmp_path, capsys, tiny_hinet, suffix):
  path = tmp_path / f"HINet{suffix}"
  if suffix == ".pth":
    torch.save({"params": tiny_hinet}, path)
  else:
    safetensors.torch.save_file(tiny_hinet, path)
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

  error = run_cli(tmp_path, capsys, "hinet", path)
  assert "truncated" in error and "download it again" in error


def test_checkpoint_that_needs_arbitrary_unpickling_is_refused_unexecuted(tmp_path, capsys, tiny_hinet):
  marker = tmp_path / "payload-ran"
  path = tmp_path / "HINet.pth"
  torch.save({"params": tiny_hinet, "extra": Payload(marker)}, path)

  error = run_cli(tmp_path, capsys, "hinet", path)
  assert "arbitrary" in error and "_touch" in error and "state_dict" in error
  assert not marker.exists()


def test_a_protocol_4_pickle_is_refused_as_unsafe_not_as_truncated(tmp_path, capsys, tiny_hinet):
  marker = tmp_path / "payload-ran"
  path = tmp_path / "HINet.pth"
  with open(path, "wb") as file:  # a plain pickle, not torch's zip format: protocol 4 opcodes
    pickle.dump({"params": {"conv_01.weight": Payload(marker)}}, file, protocol=4)

  error = run_cli(tmp_path, capsys, "hinet", path)
  assert "refused as possibly unsafe and was not run" in error and "truncated" not in error
  assert not marker.exists()


def test_checkpoint_of_another_model(tmp_path, capsys):
  path = tmp_path / "kgn.pth"
  torch.save({f"module.{k}": v for k, v in torch_car.DSN(7, scale=2).state_dict().items()}, path)

  error = run_cli(tmp_path, capsys, "hinet", path)
  assert "not a hinet checkpoint" in error and "--model car_resampler" in error


def test_safetensors_with_missing_tensors_lists_each(tmp_path, capsys, tiny_hinet):
  gone = ["sam12.conv2.bias", "down_path_2.0.csff_dec.weight", "up_path_1.0.up.weight"]
  path = tmp_path / "HINet.safetensors"
  safetensors.torch.save_file({k: v for k, v in tiny_hinet.items() if k not in gone}, path)

  error = run_cli(tmp_path, capsys, "hinet", path)
  assert "3 missing" in error and all(name in error for name in gone)
  assert "--allow-partial" in error


def test_unexpected_and_mis_shaped_tensors_are_each_listed(tiny_hinet):
  state_dict = dict(tiny_hinet, **{"extra.a": torch.zeros(2), "extra.b": torch.zeros(3)})
  state_dict["last.bias"] = torch.zeros(4)

  with pytest.raises(port.PortError) as error:
    port.convert(state_dict, hinet.HINet(wf=4, depth=2))
  assert "2 unexpected: extra.a (2,), extra.b (3,)" in str(error.value)
  assert "1 mis-shaped: last.bias checkpoint (4,) vs model (3,)" in str(error.value)


def test_occupied_output_folder_is_not_overwritten(tmp_path, capsys, tiny_hinet):
  path = tmp_path / "HINet.pth"
  torch.save({"params": tiny_hinet}, path)
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "keep.txt").write_text("mine")

  assert cli.main(["--model", "hinet", "--src", str(path), "--out", str(tmp_path / "out")]) == 2
  assert "already exists" in capsys.readouterr().err
  assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_an_output_folder_below_a_file_is_refused_before_reading(tmp_path, capsys, tiny_hinet):
  path = tmp_path / "HINet.pth"
  torch.save({"params": tiny_hinet}, path)
  (tmp_path / "file").write_text("x")
  assert cli.main(["--model", "hinet", "--src", str(path), "--out", str(tmp_path / "file" / "out")]) == 2
  assert f"cannot be written ({tmp_path / 'file'} is a file, not a folder)" in capsys.readouterr().err


def test_non_tensor_entries_are_named():
  with pytest.raises(port.PortError, match=r"non-tensor entries.*epoch \(int\).*name \(str\)"):
    port.convert({"conv_01.weight": np.zeros((4, 3, 3, 3)), "epoch": 3, "name": "x"}, "hinet")


@pytest.mark.parametrize("wrap", [
    lambda sd: {"params": sd, "iter": 400_000},
    lambda sd: {"state_dict": sd},
    lambda sd: {f"module.{k}": v for k, v in sd.items()},
    lambda sd: {k: v.numpy() for k, v in sd.items()},
])
def test_wrappers_and_prefixes_are_removed(tiny_hinet, wrap):
  params = port.convert(wrap(tiny_hinet), "hinet")
  np.testing.assert_array_equal(params["last"]["bias"], tiny_hinet["last.bias"].numpy())
