"""Porting official HINet checkpoints: names and shapes of every variant, parity with the PyTorch reference."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest
import torch

from muraljax import port
from muraljax.models import hinet, torch_names
from muraljax.port import __main__ as cli
from muraljax.port.convert import abstract_params, expected_tensors
from muraljax.port.families import FAMILIES
from muraljax.port.torch_reference import hinet as torch_hinet
from muraljax.port.torch_reference import nchw, nhwc, randomize_
from muraljax.train import init_from

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "state_dict_keys"
REPO = pathlib.Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4

# (official release, fixture, reference constructor arguments, inferred Flax HINet fields)
VARIANTS = [
    ("Rain13k / SIDD-1x", "hinet_w64_hin04.txt", dict(wf=64), dict(wf=64, hin_levels=(0, 1, 2, 3, 4))),
    ("GoPro", "hinet_w64_hin34.txt", dict(wf=64, hin_position_left=3), dict(wf=64, hin_levels=(3, 4))),
    ("SIDD-0.5x", "hinet_w32_hin04.txt", dict(wf=32), dict(wf=32, hin_levels=(0, 1, 2, 3, 4))),
]


def official_checkpoint(reference: torch.nn.Module, path: pathlib.Path) -> pathlib.Path:
  """Saves `reference` as the official releases are saved: {'params': state_dict}."""
  torch.save({"params": reference.state_dict()}, path)
  return path


def max_differences(reference: torch.nn.Module, params: dict, image: np.ndarray, **fields) -> list[float]:
  """Max |Flax - PyTorch| of both stage outputs on `image` [B, H, W, 3]."""
  with torch.no_grad():
    expected = [nhwc(out) for out in reference(nchw(image))]
  outputs = jax.jit(hinet.HINet(**fields).apply)({"params": params}, image)
  return [float(np.abs(np.asarray(out) - ref).max()) for out, ref in zip(outputs, expected)]


@pytest.mark.parametrize("release, fixture, reference_args, fields", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_official_variant_matches_pytorch(tmp_path, release, fixture, reference_args, fields):
  official = torch_names.read_layout_file(str(FIXTURES / fixture))
  reference = randomize_(torch_hinet.HINet(**reference_args)).eval()
  assert {k: tuple(v.shape) for k, v in reference.state_dict().items()} == official  # the reference is official

  path = official_checkpoint(reference, tmp_path / "HINet.pth")
  conversion = port.convert_with_report(port.read_checkpoint(path).tensors, "hinet")
  path.unlink()  # hundreds of MB

  assert conversion.report["architecture"] == dict(in_chn=3, depth=5, relu_slope=0.2, mask_input=False, prefill="none",
                                                  prefill_sweeps=16, **fields)
  assert {t["torch"]: tuple(t["torch_shape"]) for t in conversion.report["tensors"]} == official
  image = np.random.default_rng(0).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  assert max(max_differences(reference, conversion.params, image, **fields)) <= TOLERANCE


@pytest.mark.parametrize("fixture, fields", [(v[1], v[3]) for v in VARIANTS])
def test_expected_tensors_are_the_official_names_and_shapes(fixture, fields):
  family = FAMILIES["hinet"]
  params = abstract_params(family.target(hinet.HINet(**fields)))
  layout = {name: slot.torch_shape for name, slot in expected_tensors(params, family).items()}

  assert layout == torch_names.read_layout_file(str(FIXTURES / fixture)) == hinet.torch_layout(params)


def test_cli_output_loads_with_init_from_and_reproduces_pytorch(tmp_path, capsys):
  reference = randomize_(torch_hinet.HINet(wf=8, depth=3, hin_position_left=1), seed=1).eval()
  src = official_checkpoint(reference, tmp_path / "HINet-tiny.pth")

  assert cli.main(["--model", "hinet", "--src", str(src), "--out", str(tmp_path / "out")]) == 0
  printed = capsys.readouterr().out
  assert "inferred hin_levels = (1, 2)" in printed and "init_from.checkpoint=" in printed

  model = hinet.HINet(wf=8, depth=3, hin_levels=(1, 2))
  params = init_from.restore_params(str(tmp_path / "out"), abstract_params(FAMILIES["hinet"].target(model)))
  image = np.random.default_rng(1).uniform(size=(2, 16, 24, 3)).astype(np.float32)
  assert max(max_differences(reference, params, image, wf=8, depth=3, hin_levels=(1, 2))) <= TOLERANCE
  report = json.loads((tmp_path / "out" / "port_report.json").read_text())
  assert report["source"] == str(src) and report["missing"] == report["unexpected"] == []
  assert {t["transform"] for t in report["tensors"]} == {"conv OIHW -> HWIO", "transposed conv IOHW -> HWIO",
                                                         "as is"}


def test_config_mismatch_lists_every_difference_and_partial_port_fills_them(tmp_path, capsys):
  reference = randomize_(torch_hinet.HINet(wf=8, depth=3, hin_position_left=2)).eval()
  src = official_checkpoint(reference, tmp_path / "HINet-tiny.pth")
  config = f"{REPO / 'configs' / 'hinet.py'}:smoke"  # wf 8, depth 3, HIN at every level
  args = ["--model", "hinet", "--src", str(src), "--config", config]

  assert cli.main([*args, "--out", str(tmp_path / "strict")]) == 2
  error = capsys.readouterr().err
  missing = [f"down_path_{s}.{i}.norm.{leaf}" for s in (1, 2) for i in (0, 1) for leaf in ("weight", "bias")]
  assert "8 missing" in error and all(name in error for name in missing)
  assert ("looks like HINet(in_chn=3, wf=8, depth=3, relu_slope=0.2, hin_levels=(2,), mask_input=False, "
          "prefill='none', prefill_sweeps=16)") in error
  assert not (tmp_path / "strict").exists()

  assert cli.main([*args, "--out", str(tmp_path / "partial"), "--allow-partial"]) == 0
  report = json.loads((tmp_path / "partial" / "port_report.json").read_text())
  assert sorted(report["missing"]) == sorted(missing) and len(report["initialised_fresh"]) == 8
  model = hinet.HINet(wf=8, depth=3)
  params = init_from.restore_params(str(tmp_path / "partial"), abstract_params(FAMILIES["hinet"].target(model)))
  np.testing.assert_array_equal(params["down_path_1_0"]["norm"]["scale"], np.ones(4))  # fresh init
  np.testing.assert_array_equal(params["down_path_1_2"]["norm"]["scale"],
                                reference.state_dict()["down_path_1.2.norm.weight"].numpy())


def test_config_overrides_and_the_train_command_for_arin(tmp_path, capsys):
  reference = randomize_(torch_hinet.HINet(wf=8, depth=3, hin_position_left=3)).eval()  # HIN at no level < 3
  src = official_checkpoint(reference, tmp_path / "HINet-tiny.pth")
  config = f"{REPO / 'configs' / 'arin.py'}:smoke"  # ARIN's HINet: wf 8, depth 3, HIN at every level
  args = ["--model", "hinet", "--src", str(src), "--config", config]

  assert cli.main([*args, "--out", str(tmp_path / "out"), "--config.model.hinet.hin_levels=()"]) == 0
  command = capsys.readouterr().out.splitlines()[-1]
  assert "--config.model.hinet.hin_levels=()" in command and command.endswith("--config.init_from.into=hinet")

  assert cli.main([*args, "--out", str(tmp_path / "bad"), "--config.model.hinet.hin_level=()"]) == 2
  assert "no field model.hinet.hin_level" in capsys.readouterr().err
