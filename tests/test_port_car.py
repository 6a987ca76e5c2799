"""Porting official CAR checkpoints (kgn.pth resampler, usn.pth EDSR upscaler, x2 and x4): names, shapes and
parity with the PyTorch reference; the two-file bundle into a CAR run."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest
import torch

from muraljax import port
from muraljax.models import car, edsr, torch_names
from muraljax.port import __main__ as cli
from muraljax.port.convert import abstract_params, expected_tensors
from muraljax.port.families import FAMILIES
from muraljax.port.torch_reference import car as torch_car
from muraljax.port.torch_reference import edsr as torch_edsr
from muraljax.port.torch_reference import nchw, nhwc, randomize_
from muraljax.train import init_from

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "state_dict_keys"
TOLERANCE = 1e-4
PREFIX = "module."  # the official nets were saved inside nn.DataParallel


def official_checkpoint(reference: torch.nn.Module, path: pathlib.Path) -> pathlib.Path:
  """Saves `reference` as kgn.pth / usn.pth are saved: a `module.`-prefixed state dict."""
  torch.save({PREFIX + k: v for k, v in reference.state_dict().items()}, path)
  return path


def official_layout(name: str) -> dict[str, tuple[int, ...]]:
  return {k.removeprefix(PREFIX): v for k, v in torch_names.read_layout_file(str(FIXTURES / name)).items()}


def resampler_differences(reference: torch_car.DSN, params: dict, scale: int, image: np.ndarray) -> list[float]:
  """Max |Flax - PyTorch| of kernels, offsets_h, offsets_v (the reference's offsets are in units of s)."""
  with torch.no_grad():
    kernels, offsets_h, offsets_v = (nhwc(t) for t in reference(nchw(image)))
  outputs = jax.jit(car.KernelGenerationNet(scale=scale).apply)({"params": params}, image)
  return [float(np.abs(np.asarray(out) - ref).max())
          for out, ref in zip(outputs, (kernels, scale * offsets_h, scale * offsets_v))]


def upscaler_difference(reference: torch_edsr.EDSR, params: dict, model: edsr.EDSR, image: np.ndarray) -> float:
  with torch.no_grad():
    expected = nhwc(reference(nchw(image)))
  return float(np.abs(np.asarray(jax.jit(model.apply)({"params": params}, image)) - expected).max())


@pytest.mark.parametrize("scale", [2, 4])
def test_official_resampler_matches_pytorch(tmp_path, scale):
  official = official_layout(f"car_kgn_x{scale}.txt")
  reference = randomize_(torch_car.DSN(3 * scale + 1, scale=scale)).eval()
  assert {k: tuple(v.shape) for k, v in reference.state_dict().items()} == official

  conversion = port.convert_with_report(
      port.read_checkpoint(official_checkpoint(reference, tmp_path / "kgn.pth")).tensors, "car_resampler")

  assert conversion.report["architecture"] == {"scale": scale}
  assert {t["torch"]: tuple(t["torch_shape"]) for t in conversion.report["tensors"]} == official
  image = np.random.default_rng(scale).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  assert max(resampler_differences(reference, conversion.params, scale, image)) <= TOLERANCE


@pytest.mark.parametrize("scale", [2, 4])
def test_official_upscaler_matches_pytorch(tmp_path, scale):
  official = official_layout(f"car_usn_x{scale}.txt")
  reference = randomize_(torch_edsr.EDSR(scale=scale)).eval()  # full size: 32 blocks x 256 features
  assert {k: tuple(v.shape) for k, v in reference.state_dict().items()} == official

  conversion = port.convert_with_report(
      port.read_checkpoint(official_checkpoint(reference, tmp_path / "usn.pth")).tensors, "car_upscaler")

  assert conversion.report["architecture"] == {"scale": scale, "n_resblocks": 32, "n_feats": 256, "res_scale": 0.1}
  assert {t["torch"]: tuple(t["torch_shape"]) for t in conversion.report["tensors"]} == official
  image = np.random.default_rng(scale).uniform(size=(1, 8, 8, 3)).astype(np.float32)
  assert upscaler_difference(reference, conversion.params, edsr.EDSR(scale=scale), image) <= TOLERANCE


@pytest.mark.parametrize("scale", [2, 4])
def test_expected_tensors_are_the_official_names_and_shapes(scale):
  for family, model, fixture, layout in (
      ("car_resampler", car.KernelGenerationNet(scale=scale), f"car_kgn_x{scale}.txt", car.torch_layout),
      ("car_upscaler", edsr.EDSR(scale=scale), f"car_usn_x{scale}.txt", edsr.torch_layout)):
    params = abstract_params(FAMILIES[family].target(model))
    expected = {name: slot.torch_shape for name, slot in expected_tensors(params, FAMILIES[family]).items()}
    assert expected == official_layout(fixture)
    assert {PREFIX + k: v for k, v in expected.items()} == layout(params)


def test_bundle_folder_loads_into_a_car_run(tmp_path, capsys):
  folder = tmp_path / "models" / "2x"
  folder.mkdir(parents=True)
  resampler = randomize_(torch_car.DSN(7, scale=2), seed=1).eval()
  upscaler = randomize_(torch_edsr.EDSR(n_resblocks=2, n_feats=8, scale=2), seed=2).eval()
  official_checkpoint(resampler, folder / "kgn.pth")
  official_checkpoint(upscaler, folder / "usn.pth")

  assert cli.main(["--model", "car", "--src", str(folder), "--out", str(tmp_path / "out")]) == 0
  printed = capsys.readouterr().out
  assert "[resampler]" in printed and "inferred n_resblocks = 2" in printed

  models = {"resampler": car.KernelGenerationNet(scale=2), "upscaler": edsr.EDSR(scale=2, n_resblocks=2, n_feats=8)}
  target = {part: abstract_params(FAMILIES[f"car_{part}"].target(model)) for part, model in models.items()}
  params = init_from.restore_params(str(tmp_path / "out"), target)  # a CAR run's params tree
  image = np.random.default_rng(0).uniform(size=(1, 16, 16, 3)).astype(np.float32)
  assert max(resampler_differences(resampler, params["resampler"], 2, image)) <= TOLERANCE
  assert upscaler_difference(upscaler, params["upscaler"], models["upscaler"], image[:, :8, :8]) <= TOLERANCE
  report = json.loads((tmp_path / "out" / "port_report.json").read_text())
  assert report["parts"]["upscaler"]["inferred"]["scale"].startswith("2 ")
