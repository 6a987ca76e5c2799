"""The generic PyTorch state dict -> Flax params converter, driven by each family's naming rules.

For every leaf of the target model's param tree (from `jax.eval_shape` of its init, so nothing is allocated)
the official tensor name and shape follow from the Flax path and the leaf kind:

| Flax leaf                                | PyTorch tensor             | to Flax                 |
|------------------------------------------|----------------------------|-------------------------|
| conv `kernel` [kH, kW, I, O]             | `weight` (O, I, kH, kW)    | transpose (2, 3, 1, 0)  |
| transposed conv `kernel` [kH, kW, I, O]  | `weight` (I, O, kH, kW)    | transpose (2, 3, 0, 1)  |
| dense `kernel` [I, O]                    | `weight` (O, I)            | transpose (1, 0)        |
| `scale`, `embedding`, `bias`             | `weight`, `weight`, `bias` | as is                   |

Names follow from the family's rules (`torch_names.torch_name`); which convs are transposed from its regex.
Every tensor must be present with exactly that shape, and the checkpoint must hold nothing else; otherwise one
PortError lists every missing, unexpected and mis-shaped tensor. With `allow_partial` the matching tensors are
kept, the others initialised as a fresh model would be, and the unexpected ones dropped; the report lists them.
Params the family marks as muraljax's own additions (`Family.extra`, e.g. the U-Net's FDP blocks) are not
expected from the checkpoint: they start as a fresh model's, listed in the report under 'added'.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

from muraljax.models import partitioning, torch_names
from muraljax.port import families
from muraljax.port.errors import PortError
from muraljax.port.reading import StateDict, as_state_dict
from muraljax.train import state

# (report label, axes) per leaf kind: the Flax array is np.transpose(PyTorch tensor, axes).
CONV = ("conv OIHW -> HWIO", (2, 3, 1, 0))
TRANSPOSED_CONV = ("transposed conv IOHW -> HWIO", (2, 3, 0, 1))
DENSE = ("linear (out, in) -> (in, out)", (1, 0))
AS_IS = ("as is", None)
# torch_names.torch_name knows kernel/scale/bias; an embedding table is PyTorch's `weight` too.
_LEAF_ALIASES = {"embedding": "scale"}


@dataclasses.dataclass(frozen=True)
class Slot:
  """One leaf of the target param tree and the PyTorch tensor it is read from."""

  flax_path: tuple[str, ...]
  flax_shape: tuple[int, ...]
  torch_shape: tuple[int, ...]
  dtype: Any
  transform: str
  axes: tuple[int, ...] | None  # flax = torch.transpose(axes); None = as is

  def to_flax(self, tensor: np.ndarray) -> np.ndarray:
    array = tensor if self.axes is None else np.transpose(tensor, self.axes)
    return np.ascontiguousarray(array, dtype=self.dtype)


@dataclasses.dataclass(frozen=True)
class Conversion:
  """Converted `params` (NumPy leaves, the model's tree) and the JSON-able `report` of the mapping."""

  params: dict
  report: dict[str, Any]


def abstract_params(target: families.Target) -> dict:
  """The target's param tree as ShapeDtypeStructs (jax.eval_shape of its init)."""
  return partitioning.unbox(jax.eval_shape(target.module.init, jax.random.key(0), *target.inputs)["params"])


def expected_tensors(params: Mapping, family: families.Family) -> dict[str, Slot]:
  """{PyTorch name: Slot} for a param tree (arrays or ShapeDtypeStructs), names without the official prefix; the
  family's `extra` params have no PyTorch name and are left out."""
  slots = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = tuple(str(getattr(k, "key", k)) for k in path)
    if _is_extra(names, family):
      continue
    if names[-1] != "kernel":
      transform, axes = AS_IS
    elif len(leaf.shape) == 2:
      transform, axes = DENSE
    else:
      transposed = family.transposed and re.search(family.transposed, "/".join(names[:-1]))
      transform, axes = TRANSPOSED_CONV if transposed else CONV
    torch_shape = tuple(leaf.shape) if axes is None else tuple(leaf.shape[int(i)] for i in np.argsort(axes))
    leaf_name = _LEAF_ALIASES.get(names[-1], names[-1])
    slots[torch_names.torch_name(names[:-1] + (leaf_name,), family.rules)] = Slot(
        names, tuple(leaf.shape), torch_shape, leaf.dtype, transform, axes)
  return slots


def _is_extra(flax_path: tuple[str, ...], family: families.Family) -> bool:
  return bool(family.extra and re.search(family.extra, "/".join(flax_path)))


# Module fields that do not change the parameters: how the model runs, not what it is.
_NOT_ARCHITECTURE = ("parent", "name", "dtype", "param_dtype", "remat")


def architecture(module: nn.Module) -> dict[str, Any]:
  """The module's architecture fields (dataclass-valued fields, like a U-Net's config, expanded)."""
  fields = {}
  for field in dataclasses.fields(module):
    if field.name in _NOT_ARCHITECTURE:
      continue
    value = getattr(module, field.name)
    fields.update(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else {field.name: value})
  return {name: value for name, value in fields.items() if name not in _NOT_ARCHITECTURE}


def describe(module: nn.Module) -> str:
  """'HINet(in_chn=3, wf=64, ...)'."""
  return f"{type(module).__name__}({', '.join(f'{k}={v!r}' for k, v in architecture(module).items())})"


def convert(state_dict: Mapping, model_config: nn.Module | families.Target | str, *,
            allow_partial: bool = False) -> dict:
  """PyTorch state dict -> Flax params of `model_config`; see `convert_with_report`."""
  return convert_with_report(state_dict, model_config, allow_partial=allow_partial).params


def convert_with_report(
    state_dict: Mapping,
    model_config: nn.Module | families.Target | str,
    *,
    allow_partial: bool = False,
    checkpoint_config: Mapping[str, Any] | None = None,
) -> Conversion:
  """Converts an official PyTorch state dict into the params of a muraljax model.

  Args:
    state_dict: {name: torch.Tensor or array}, as saved (wrapped in {'params': ...} or {'state_dict': ...} and
      `module.`-prefixed names are fine).
    model_config: the target architecture: the Flax module that will run the params (`HINet(wf=32)`,
      `KernelGenerationNet(scale=2)`, `EDSR(scale=4)`, `UNet(UNetConfig(...))` for RGB input), a
      `families.Target` (module and init input shapes, e.g. a U-Net with other input channels), or a family
      name ('hinet', 'car_resampler', 'car_upscaler', 'unet') to infer the architecture from the checkpoint.
    allow_partial: keep going when tensors are missing, unexpected or mis-shaped (see the module docstring).
    checkpoint_config: the `config.json` of a diffusers model folder, for the fields tensors do not show.

  Returns:
    Conversion(params, report); `params` has the tree and dtypes of `module.init(...)['params']`.
  """
  tensors = as_state_dict(state_dict)
  family = _family(model_config)
  tensors, renamed = _rename(tensors, family.renames)
  _check_signature(family, tensors)
  target, notes = _target(model_config, family, tensors, checkpoint_config)
  module = target.module
  abstract = abstract_params(target)
  slots = expected_tensors(abstract, family)
  added = [path for path in traverse_util.flatten_dict(abstract) if _is_extra(path, family)]
  missing = [name for name in slots if name not in tensors]
  unexpected = [name for name in tensors if name not in slots]
  mis_shaped = [name for name in slots if name in tensors and tuple(tensors[name].shape) != slots[name].torch_shape]
  if (missing or unexpected or mis_shaped) and not allow_partial:
    raise PortError(_mismatch_message(module, family, tensors, slots, missing, unexpected, mis_shaped,
                                      inferred=isinstance(model_config, str), checkpoint_config=checkpoint_config))

  fresh = set(missing + mis_shaped)
  initial = _fresh_params(target) if fresh or added else {}
  params = traverse_util.unflatten_dict({
      slot.flax_path: np.asarray(initial[slot.flax_path]) if name in fresh else slot.to_flax(tensors[name])
      for name, slot in slots.items()} | {path: np.asarray(initial[path]) for path in added})
  return Conversion(params, _report(family, module, notes, tensors, slots, renamed, missing, unexpected, mis_shaped,
                                    added))


def _report(family: families.Family, module: nn.Module, notes: dict[str, str], tensors: StateDict,
            slots: dict[str, Slot], renamed: dict[str, str], missing: list[str], unexpected: list[str],
            mis_shaped: list[str], added: list[tuple[str, ...]]) -> dict[str, Any]:
  """The JSON-able record of a conversion: target, inference, every mapped tensor and every problem."""
  fresh = set(missing + mis_shaped)
  return {
      "model": family.name,
      "target": describe(module),
      "architecture": architecture(module),
      "inferred": notes,
      "parameters": sum(math.prod(slot.flax_shape) for slot in slots.values()),
      "tensors": [{"torch": name, "flax": "/".join(slot.flax_path), "torch_shape": list(slot.torch_shape),
                   "flax_shape": list(slot.flax_shape), "transform": slot.transform}
                  for name, slot in slots.items() if name not in fresh],
      "renamed": renamed,
      "missing": missing,
      "unexpected": unexpected,
      "mis_shaped": [{"torch": name, "checkpoint": list(tensors[name].shape), "model": list(slots[name].torch_shape)}
                     for name in mis_shaped],
      "initialised_fresh": ["/".join(slot.flax_path) for name, slot in slots.items() if name in fresh],
      "added": ["/".join(path) for path in added],
  }


def _family(model_config: nn.Module | families.Target | str) -> families.Family:
  if isinstance(model_config, str):
    return families.family_named(model_config)
  return families.family_of(model_config.module if isinstance(model_config, families.Target) else model_config)


def _target(model_config: nn.Module | families.Target | str, family: families.Family, tensors: StateDict,
            checkpoint_config: Mapping[str, Any] | None) -> tuple[families.Target, dict[str, str]]:
  """(target, inference notes) for a module, a target or a family name (inferred from `tensors`)."""
  if isinstance(model_config, families.Target):
    return model_config, {}
  if isinstance(model_config, nn.Module):
    return family.target(model_config), {}
  inferred = family.infer(tensors, checkpoint_config)
  return family.target(inferred.module, inferred.inputs), inferred.notes


def _check_signature(family: families.Family, tensors: StateDict) -> None:
  if family.signature in tensors:
    return
  others = families.families_matching(tensors)
  looks = (f"it looks like a {others[0].name} checkpoint: port it as --model {others[0].name}" if others else
           f"its first tensors are {', '.join(list(tensors)[:4])}")
  raise PortError(f"The checkpoint has no {family.signature}, so it is not a {family.name} checkpoint ({looks}).")


def _rename(tensors: StateDict, rules: torch_names.Rules) -> tuple[StateDict, dict[str, str]]:
  """Applies the family's legacy-name rules; returns the renamed tensors and {old name: new name}."""
  renamed, out = {}, {}
  for name, tensor in tensors.items():
    new = name
    for pattern, replacement in rules:
      new = re.sub(pattern, replacement, new)
    if new != name:
      renamed[name] = new
    out[new] = tensor
  return out, renamed


def _fresh_params(target: families.Target) -> dict[tuple[str, ...], Any]:
  """The flattened params of a freshly initialised model (seed 0), for the tensors a partial port lacks."""
  key = jax.random.key(0)
  inputs = [np.zeros(x.shape, x.dtype) for x in target.inputs]
  init = state.compile_once(target.module.init, key, *inputs)
  return traverse_util.flatten_dict(partitioning.unbox(init(key, *inputs)["params"]))


def _mismatch_message(module: nn.Module, family: families.Family, tensors: StateDict, slots: dict[str, Slot],
                      missing: list[str], unexpected: list[str], mis_shaped: list[str], *, inferred: bool,
                      checkpoint_config: Mapping[str, Any] | None) -> str:
  problems = []
  if missing:
    problems.append(f"{len(missing)} missing: " + ", ".join(f"{n} {slots[n].torch_shape}" for n in missing))
  if unexpected:
    problems.append(f"{len(unexpected)} unexpected: " + ", ".join(f"{n} {tuple(tensors[n].shape)}"
                                                                for n in unexpected))
  if mis_shaped:
    problems.append(f"{len(mis_shaped)} mis-shaped: " + ", ".join(
        f"{n} checkpoint {tuple(tensors[n].shape)} vs model {slots[n].torch_shape}" for n in mis_shaped))
  hint = ""
  if not inferred:
    try:
      fits = describe(family.infer(tensors, checkpoint_config).module)
      hint = f" (the checkpoint looks like {fits})" if fits != describe(module) else ""
    except PortError:
      pass
  return (f"The checkpoint does not fit {describe(module)}{hint}: {'; '.join(problems)}. Port a checkpoint of this "
          "architecture (or let the architecture be inferred: no --config), or pass --allow-partial "
          "(allow_partial=True) to keep the matching tensors and initialise the others fresh.")
