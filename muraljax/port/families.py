"""The model families that take ported weights: naming, architecture inference, config reading, example inputs.

A family is data for the one generic converter (`muraljax.port.convert`): how a Flax path becomes the official
PyTorch name (the model module's own `TORCH_NAME_RULES`), which kernels are transposed convs, how to read the
architecture off a checkpoint or a training config, and inputs for `jax.eval_shape` of the model's init.
A bundle is several families saved side by side (CAR's kgn.pth + usn.pth) that one muraljax model holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from muraljax.models import car, edsr, hinet, torch_names, unet
from muraljax.port import infer
from muraljax.port.errors import PortError
from muraljax.port.reading import StateDict
from muraljax.tasks.diffumural import DiffuMuralTask
from muraljax.tasks.diffumural_scales import scale_key

InputShapes = tuple[jax.ShapeDtypeStruct, ...]


@dataclasses.dataclass(frozen=True)
class Target:
  """A model to port into: the Flax module, and the shapes of the inputs its init takes (Flax modules infer
  input widths, such as a U-Net's input channels, from the inputs)."""

  module: nn.Module
  inputs: InputShapes


@dataclasses.dataclass(frozen=True)
class Family:
  """Everything the converter needs to know about one model family."""

  name: str  # as in `--model`
  module_type: type[nn.Module]
  signature: str  # a tensor name that every checkpoint of this family holds and other families' do not
  rules: torch_names.Rules  # Flax module path -> PyTorch module name
  infer: Callable[[StateDict, dict[str, Any] | None], infer.Inferred]  # (tensors, diffusers config) -> model
  from_config: Callable[[ml_collections.ConfigDict], Target]  # the target inside a training config's model
  example_inputs: Callable[[nn.Module], InputShapes]  # init inputs when only the module is given
  config: str  # the training config whose model this family is
  # config.task -> the config.init_from.into that loads a ported checkpoint in that task; `config`'s task first.
  # A callable gets the training config (None: the default one of `config`) and returns it.
  into: Mapping[str, str | Callable[[ml_collections.ConfigDict | None], str]]
  transposed: str | None = None  # regex on Flax module paths ('/'-joined) of transposed convs
  renames: torch_names.Rules = ()  # legacy tensor names -> current ones, applied before matching
  # regex on Flax param paths ('/'-joined) of muraljax's additions, which no official checkpoint holds: they are
  # not expected from it and start as a fresh model's (the U-Net's FDP blocks: the identity).
  extra: str | None = None

  def target(self, module: nn.Module, inputs: InputShapes | None = None) -> Target:
    """`module` with `inputs`, by default the family's example inputs for it."""
    return Target(module, inputs or self.example_inputs(module))


def _image(height: int, width: int, channels: int) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct((1, height, width, channels), jnp.float32)


def model_section(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """`config.model`, or its `name` section in composite configs (ARIN's model.car and model.hinet)."""
  section = config.model
  if name in section and isinstance(section[name], ml_collections.ConfigDict):
    return section[name]
  return section


def _hinet_from_config(config: ml_collections.ConfigDict) -> Target:
  c = model_section(config, "hinet")
  module = hinet.HINet(wf=c.wf, depth=c.depth, relu_slope=c.relu_slope, hin_levels=tuple(c.hin_levels))
  return FAMILIES["hinet"].target(module)


def _car_resampler_from_config(config: ml_collections.ConfigDict) -> Target:
  return FAMILIES["car_resampler"].target(car.KernelGenerationNet(scale=model_section(config, "car").scale))


def _car_upscaler_from_config(config: ml_collections.ConfigDict) -> Target:
  c = model_section(config, "car")
  return FAMILIES["car_upscaler"].target(edsr.EDSR(scale=c.scale, n_resblocks=c.n_resblocks, n_feats=c.n_feats))


def _unet_from_config(config: ml_collections.ConfigDict) -> Target:
  """The coarsest scale's U-Net of a DiffuMural run: its input is [noisy image, conditions]; damage types are its
  classes."""
  task = DiffuMuralTask(config)
  unet = task.scales[0].unet
  return Target(unet, infer.unet_inputs(unet.config, 3 + task.condition_channels))


def _unet_into(config: ml_collections.ConfigDict | None) -> str:
  """Where a ported U-Net goes in a DiffuMural run: the coarsest scale's U-Net (256 px in the default config)."""
  return f"{scale_key(config.model.scales[0] if config else 256)}/unet"


# Attention tensor names of checkpoints saved by older diffusers versions -> today's names.
LEGACY_ATTENTION_NAMES: torch_names.Rules = (
    (r"(attentions\.\d+)\.query\.", r"\1.to_q."),
    (r"(attentions\.\d+)\.key\.", r"\1.to_k."),
    (r"(attentions\.\d+)\.value\.", r"\1.to_v."),
    (r"(attentions\.\d+)\.proj_attn\.", r"\1.to_out.0."),
)

FAMILIES: dict[str, Family] = {
    "hinet": Family(
        name="hinet",
        module_type=hinet.HINet,
        signature="conv_01.weight",
        rules=hinet.TORCH_NAME_RULES,
        transposed=hinet.TORCH_TRANSPOSED,
        infer=lambda tensors, _: infer.hinet(tensors),
        from_config=_hinet_from_config,
        example_inputs=lambda m: (_image(16, 16, m.in_chn),),
        config="configs/hinet.py",
        into={"hinet": "", "arin": "hinet"},
    ),
    "car_resampler": Family(
        name="car_resampler",
        module_type=car.KernelGenerationNet,
        signature="kernels_weight.4.weight",
        rules=car.TORCH_NAME_RULES,
        infer=lambda tensors, _: infer.car_resampler(tensors),
        from_config=_car_resampler_from_config,
        example_inputs=lambda _: (_image(64, 64, 3),),
        config="configs/car.py",
        into={"car": "resampler", "arin": "car/resampler"},
    ),
    "car_upscaler": Family(
        name="car_upscaler",
        module_type=edsr.EDSR,
        signature="head.0.weight",
        rules=edsr.TORCH_NAME_RULES,
        infer=lambda tensors, _: infer.car_upscaler(tensors),
        from_config=_car_upscaler_from_config,
        example_inputs=lambda _: (_image(8, 8, 3),),
        config="configs/car.py",
        into={"car": "upscaler", "arin": "car/upscaler"},
    ),
    "unet": Family(
        name="unet",
        module_type=unet.UNet,
        signature="conv_in.weight",
        rules=unet.TORCH_NAME_RULES,
        infer=infer.unet,
        from_config=_unet_from_config,
        example_inputs=lambda m: infer.unet_inputs(m.config, in_channels=3),
        config="configs/diffumural.py",
        into={"diffumural": _unet_into},
        renames=LEGACY_ATTENTION_NAMES,
        extra=unet.MURALJAX_ONLY,
    ),
}


@dataclasses.dataclass(frozen=True)
class Bundle:
  """Checkpoint files saved side by side in one folder, ported into one params tree {part: params}."""

  name: str
  parts: tuple[tuple[str, str, str], ...]  # (params key, family name, file name in the folder)
  config: str  # as Family's
  into: Mapping[str, str]  # as Family's


BUNDLES: dict[str, Bundle] = {
    "car": Bundle(
        name="car",
        parts=(("resampler", "car_resampler", "kgn.pth"), ("upscaler", "car_upscaler", "usn.pth")),
        config="configs/car.py",
        into={"car": "", "arin": "car"},
    ),
}


def family_named(name: str) -> Family:
  if name not in FAMILIES:
    raise PortError(f"Unknown model family {name!r}; choose one of {', '.join(FAMILIES)}.")
  return FAMILIES[name]


def family_of(module: nn.Module) -> Family:
  """The family whose Flax module `module` is."""
  for family in FAMILIES.values():
    if isinstance(module, family.module_type):
      return family
  raise PortError(f"No PyTorch weights port to a {type(module).__name__}; pass one of "
                  f"{', '.join(f.module_type.__name__ for f in FAMILIES.values())}.")


def families_matching(tensors: StateDict) -> list[Family]:
  """The families whose signature tensor `tensors` holds."""
  return [family for family in FAMILIES.values() if family.signature in tensors]


def target_from_config(family: Family, config: ml_collections.ConfigDict) -> Target:
  """The family's model as a training config builds it."""
  try:
    return family.from_config(config)
  except AttributeError as e:
    raise PortError(f"The config has no field the {family.name} family needs ({e}); pass a config of a model "
                    f"that contains a {family.module_type.__name__}.") from None
