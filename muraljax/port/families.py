"""The model families that take ported weights: naming, architecture inference, config reading, example inputs.

A family is data for the one generic converter (`muraljax.port.convert`): how a Flax path becomes the official
PyTorch name (the model module's own `TORCH_NAME_RULES`), which kernels are transposed convs, how to read the
architecture off a checkpoint or a training config, and inputs for `jax.eval_shape` of the model's init.
A bundle is several families saved side by side (CAR's kgn.pth + usn.pth) that one muraljax model holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from muraljax.models import car, edsr, hinet, naming
from muraljax.port import infer
from muraljax.port.errors import PortError
from muraljax.port.reading import StateDict

InputShapes = tuple[jax.ShapeDtypeStruct, ...]


@dataclasses.dataclass(frozen=True)
class Family:
  """Everything the converter needs to know about one model family."""

  name: str  # as in `--model`
  module_type: type[nn.Module]
  signature: str  # a tensor name that every checkpoint of this family holds and other families' do not
  rules: naming.Rules  # Flax module path -> PyTorch module name
  infer: Callable[[StateDict, dict[str, Any] | None], infer.Inferred]  # (tensors, diffusers config) -> module
  from_config: Callable[[ml_collections.ConfigDict], nn.Module]  # training config's model section -> module
  example_inputs: Callable[[nn.Module], InputShapes]  # for jax.eval_shape(module.init, rng, *inputs)
  config_section: str  # name of this family's section under config.model in composite configs (ARIN)
  load_hint: str  # how to start training from the ported checkpoint
  transposed: str | None = None  # regex on Flax module paths ('/'-joined) of transposed convs
  renames: naming.Rules = ()  # legacy tensor names -> current ones, applied before matching


def _image(height: int, width: int, channels: int) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct((1, height, width, channels), jnp.float32)


FAMILIES: dict[str, Family] = {
    "hinet": Family(
        name="hinet",
        module_type=hinet.HINet,
        signature="conv_01.weight",
        rules=hinet.TORCH_NAME_RULES,
        transposed=hinet.TORCH_TRANSPOSED,
        infer=lambda tensors, _: infer.hinet(tensors),
        from_config=lambda c: hinet.HINet(wf=c.wf, depth=c.depth, relu_slope=c.relu_slope,
                                          hin_levels=tuple(c.hin_levels)),
        example_inputs=lambda m: (_image(16, 16, m.in_chn),),
        config_section="hinet",
        load_hint="--config configs/hinet.py --config.init_from.checkpoint=OUT (in configs/arin.py add "
                  "--config.init_from.into=hinet)",
    ),
    "car_resampler": Family(
        name="car_resampler",
        module_type=car.KernelGenerationNet,
        signature="kernels_weight.4.weight",
        rules=car.TORCH_NAME_RULES,
        infer=lambda tensors, _: infer.car_resampler(tensors),
        from_config=lambda c: car.KernelGenerationNet(scale=c.scale),
        example_inputs=lambda _: (_image(64, 64, 3),),
        config_section="car",
        load_hint="--config configs/car.py --config.init_from.checkpoint=OUT --config.init_from.into=resampler "
                  "(the upscaler starts fresh; port both nets at once with --model car)",
    ),
    "car_upscaler": Family(
        name="car_upscaler",
        module_type=edsr.EDSR,
        signature="head.0.weight",
        rules=edsr.TORCH_NAME_RULES,
        infer=lambda tensors, _: infer.car_upscaler(tensors),
        from_config=lambda c: edsr.EDSR(scale=c.scale, n_resblocks=c.n_resblocks, n_feats=c.n_feats),
        example_inputs=lambda _: (_image(8, 8, 3),),
        config_section="car",
        load_hint="--config configs/car.py --config.init_from.checkpoint=OUT --config.init_from.into=upscaler "
                  "(the resampler starts fresh; port both nets at once with --model car)",
    ),
}


@dataclasses.dataclass(frozen=True)
class Bundle:
  """Checkpoint files saved side by side in one folder, ported into one params tree {part: params}."""

  name: str
  parts: tuple[tuple[str, str, str], ...]  # (params key, family name, file name in the folder)
  load_hint: str


BUNDLES: dict[str, Bundle] = {
    "car": Bundle(
        name="car",
        parts=(("resampler", "car_resampler", "kgn.pth"), ("upscaler", "car_upscaler", "usn.pth")),
        load_hint="--config configs/car.py --config.init_from.checkpoint=OUT (in configs/arin.py add "
                  "--config.init_from.into=car)",
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


def module_from_config(family: Family, config: ml_collections.ConfigDict) -> nn.Module:
  """The family's module as a training config builds it (`config.model`, or its section in ARIN's config)."""
  section = config.model
  if family.config_section in section and isinstance(section[family.config_section], ml_collections.ConfigDict):
    section = section[family.config_section]
  try:
    return family.from_config(section)
  except AttributeError as e:
    raise PortError(f"The config's model section has no field the {family.name} family needs ({e}); pass a "
                    f"config of a model that contains a {family.module_type.__name__}.") from None
