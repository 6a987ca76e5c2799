"""Porting diffusers UNet2DModel checkpoints: parity with the real diffusers model, config.json fields, legacy
attention names, refused settings, and a partial port into the U-Net of a DiffuMural run."""

from __future__ import annotations

import json
import pathlib

import diffusers
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
from conftest import load_config

from muraljax import port
from muraljax.models import unet as unet_lib
from muraljax.models.unet import UNet, UNetConfig
from muraljax.port import __main__ as cli
from muraljax.port.convert import abstract_params, expected_tensors
from muraljax.port.families import FAMILIES
from muraljax.port.infer import unet_inputs
from muraljax.port.torch_reference import nchw, nhwc, randomize_
from muraljax.tasks.diffumural import DiffuMuralTask
from muraljax.train import init_from
from muraljax.train.state import TrainState

REPO = pathlib.Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4
TINY = dict(block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1, norm_num_groups=4)
VARIANTS = {
    # config.json-only fields away from their defaults: sin/cos order, frequency shift, epsilon, one head.
    "unconditional": dict(TINY, attention_head_dim=None, norm_eps=1e-6, flip_sin_to_cos=False, freq_shift=1),
    "class-conditional": dict(TINY, attention_head_dim=4, num_class_embeds=5, in_channels=5, out_channels=2),
}


def diffusers_unet(seed: int = 0, **config) -> diffusers.UNet2DModel:
  return randomize_(diffusers.UNet2DModel(**config), seed).eval()


def max_difference(reference: diffusers.UNet2DModel, model: UNet, params: dict, seed: int = 0) -> float:
  rng = np.random.default_rng(seed)
  sample = rng.normal(size=(2, 16, 16, reference.config.in_channels)).astype(np.float32)
  timesteps = np.array([3, 700], np.int32)
  labels = np.array([0, 4], np.int32) if reference.config.num_class_embeds else None
  with torch.no_grad():
    expected = nhwc(reference(nchw(sample), torch.from_numpy(timesteps),
                              class_labels=None if labels is None else torch.from_numpy(labels)).sample)
  output = jax.jit(model.apply)({"params": params}, sample, timesteps, labels)
  return float(np.abs(np.asarray(output) - expected).max())


@pytest.mark.parametrize("variant", VARIANTS)
def test_diffusers_folder_matches_diffusers(tmp_path, capsys, variant):
  reference = diffusers_unet(**VARIANTS[variant])
  reference.save_pretrained(tmp_path / "model")  # config.json + diffusion_pytorch_model.safetensors

  assert cli.main(["--model", "unet", "--src", str(tmp_path / "model"), "--out", str(tmp_path / "out")]) == 0
  report = json.loads((tmp_path / "out" / "port_report.json").read_text())
  assert report["inferred"]["norm_eps"].endswith("(config.json)")
  assert "linear (out, in) -> (in, out)" in {t["transform"] for t in report["tensors"]}
  assert {t["torch"]: tuple(t["torch_shape"]) for t in report["tensors"]} == {
      k: tuple(v.shape) for k, v in reference.state_dict().items()}

  fields = {k: v for k, v in VARIANTS[variant].items() if k != "in_channels"}
  model = UNet(UNetConfig(**fields))
  target = FAMILIES["unet"].target(model, unet_inputs(model.config, reference.config.in_channels))
  params = init_from.restore_params(str(tmp_path / "out"), abstract_params(target))
  assert max_difference(reference, model, params) <= TOLERANCE


def test_legacy_attention_names_are_renamed():
  reference = diffusers_unet(**VARIANTS["unconditional"])
  modern = reference.state_dict()
  legacy = {name.replace("to_q.", "query.").replace("to_k.", "key.").replace("to_v.", "value.")
            .replace("to_out.0.", "proj_attn."): tensor for name, tensor in modern.items()}
  model = UNet(UNetConfig(**VARIANTS["unconditional"]))

  conversion = port.convert_with_report(legacy, model)
  assert sorted(conversion.report["renamed"]) == sorted(set(legacy) - set(modern))
  assert max_difference(reference, model, conversion.params) <= TOLERANCE


def test_expected_tensors_are_the_diffusers_names_and_shapes():
  model = UNet(UNetConfig(**{k: v for k, v in VARIANTS["class-conditional"].items() if k != "in_channels"}))
  target = FAMILIES["unet"].target(model, unet_inputs(model.config, 5))
  params = abstract_params(target)
  layout = {name: slot.torch_shape for name, slot in expected_tensors(params, FAMILIES["unet"]).items()}
  reference = diffusers.UNet2DModel(**VARIANTS["class-conditional"])
  assert layout == {k: tuple(v.shape) for k, v in reference.state_dict().items()} == unet_lib.torch_layout(params)


def test_settings_the_unet_does_not_implement_are_all_refused(tmp_path, capsys):
  diffusers.UNet2DModel(**TINY, downsample_padding=0, act_fn="gelu").save_pretrained(tmp_path / "model")

  assert cli.main(["--model", "unet", "--src", str(tmp_path / "model"), "--out", str(tmp_path / "out")]) == 2
  error = capsys.readouterr().err
  assert "downsample_padding=0" in error and "act_fn='gelu'" in error
  assert not (tmp_path / "out").exists()


def test_fdp_blocks_are_muraljax_additions_that_start_as_the_identity():
  """A UNet2DModel ports into a U-Net with FDP blocks without --allow-partial: the blocks are listed as added
  and, fresh, change nothing."""
  fields = {k: v for k, v in VARIANTS["class-conditional"].items() if k != "in_channels"}
  reference = diffusers_unet(**VARIANTS["class-conditional"])
  model = UNet(UNetConfig(**fields, fdp_levels=(1,)))
  target = FAMILIES["unet"].target(model, unet_inputs(model.config, 5))
  conversion = port.convert_with_report(reference.state_dict(), target)
  assert sorted(conversion.report["added"]) == sorted(
      f"{block}/fdps_{j}/{leaf}" for block, j in (("down_blocks_1", 0), ("mid_block", 0), ("up_blocks_0", 0),
                                                 ("up_blocks_0", 1))
      for leaf in ("norm/bias", "norm/scale", "spectral_in/bias", "spectral_in/kernel", "spectral_out/bias",
                   "spectral_out/kernel"))
  assert not conversion.report["missing"] and not conversion.report["initialised_fresh"]
  assert unet_lib.torch_layout(abstract_params(target)) == {k: tuple(v.shape) for k, v in
                                                            reference.state_dict().items()}
  assert max_difference(reference, model, conversion.params) <= TOLERANCE


def test_partial_port_into_a_diffumural_unet(tmp_path, capsys):
  """An RGB, unconditional UNet2DModel into the coarsest U-Net of a DiffuMural run (conditions in conv_in, damage
  classes, FDP blocks): the rest is ported, conv_in and the class embedding start fresh, the FDP blocks as the
  identity, and init_from loads it into params['scale_16']['unet']."""
  config = load_config("diffumural", "smoke")
  smoke = config.model
  reference = diffusers_unet(block_out_channels=tuple(smoke.block_out_channels),
                             down_block_types=tuple(smoke.down_block_types),
                             up_block_types=tuple(smoke.up_block_types), layers_per_block=smoke.layers_per_block,
                             attention_head_dim=smoke.attention_head_dim, norm_num_groups=smoke.norm_num_groups)
  reference.save_pretrained(tmp_path / "model")
  out = tmp_path / "out"
  assert cli.main(["--model", "unet", "--src", str(tmp_path / "model"), "--out", str(out), "--config",
                   f"{REPO / 'configs' / 'diffumural.py'}:smoke", "--allow-partial"]) == 0
  assert "--config.init_from.into=scale_16/unet" in capsys.readouterr().out

  report = json.loads((out / "port_report.json").read_text())
  assert report["missing"] == ["class_embedding.weight"]
  assert [t["torch"] for t in report["mis_shaped"]] == ["conv_in.weight"]
  assert sorted(report["initialised_fresh"]) == ["class_embedding/embedding", "conv_in/kernel"]
  assert report["added"] and all("/fdps_" in path for path in report["added"])

  task = DiffuMuralTask(config)
  batch = {k: jax.ShapeDtypeStruct((1, 64, 64, c), jnp.float32) for k, c in (("damaged", 3), ("mask", 1))}
  fresh = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), jax.eval_shape(task.init, jax.random.key(0), batch))
  state = TrainState(step=np.zeros((), np.int32), params=fresh, opt_state=None, rng=None)
  state = init_from.initialise(state, ml_collections.ConfigDict({"checkpoint": str(out), "into": "scale_16/unet"}))

  unet = state.params["scale_16"]["unet"]
  np.testing.assert_array_equal(unet["mid_block"]["attentions_0"]["to_q"]["kernel"],
                                reference.state_dict()["mid_block.attentions.0.to_q.weight"].numpy().T)
  assert not np.any(unet["mid_block"]["fdps_0"]["spectral_out"]["kernel"])  # the identity
  assert not np.any(state.params["scale_16"]["controlnet"]["conv_in"]["kernel"])  # untouched
