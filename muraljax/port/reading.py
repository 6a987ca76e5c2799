"""Safe reading of PyTorch checkpoints into flat {name: float32 NumPy array} state dicts.

Only two readers are used: safetensors, and `torch.load(..., weights_only=True)`, which unpickles tensors,
containers and numbers but refuses any other class (a pickle can otherwise run arbitrary code). Wrappers are
removed: `{'params': state_dict}` (BasicSR, HINet), `{'state_dict': ...}`, and the `module.` prefix that
`nn.DataParallel` adds (CAR). A directory is read as a diffusers model folder: `diffusion_pytorch_model.*`
plus its `config.json` (or the `unet/` folder of a pipeline).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import pickle
import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from muraljax.port.errors import PortError

StateDict = dict[str, np.ndarray]

WRAPPER_KEYS = ("params", "state_dict")
DATA_PARALLEL_PREFIX = "module."
# Weight files of a diffusers model folder, in order of preference.
DIRECTORY_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """A state dict read from `path`, with the model's `config.json` when it came from a diffusers folder."""

  tensors: StateDict
  path: pathlib.Path
  config: dict[str, Any] | None = None


def read_checkpoint(src: str | pathlib.Path) -> Checkpoint:
  """Reads a `.pth`/`.pt`/`.bin`/`.safetensors` file or a diffusers model folder; raises PortError otherwise."""
  path = pathlib.Path(src)
  if not path.exists():
    raise PortError(f"{path} does not exist; pass the checkpoint file (or diffusers folder) as --src.")
  config = None
  if path.is_dir():
    path, config = _resolve_directory(path)
  raw = _read_safetensors(path) if path.suffix == ".safetensors" else _read_torch(path)
  return Checkpoint(as_state_dict(raw, str(path)), path, config)


def as_state_dict(checkpoint: Mapping, source: str = "the checkpoint") -> StateDict:
  """A loaded checkpoint (tensors or arrays, possibly wrapped) as a flat {name: NumPy array} without wrappers.

  Floating-point tensors become float32 (the dtype of muraljax params); others keep their dtype.
  """
  while isinstance(checkpoint, Mapping) and not _all_tensors(checkpoint):
    wrapper = next((k for k in WRAPPER_KEYS if isinstance(checkpoint.get(k), Mapping)), None)
    if wrapper is None:
      break
    checkpoint = checkpoint[wrapper]
  if not isinstance(checkpoint, Mapping) or not checkpoint:
    raise PortError(f"{source} holds no state dict (found {type(checkpoint).__name__}); pass a file saved with "
                    "torch.save(model.state_dict(), ...) or safetensors.")
  others = sorted(f"{k} ({type(v).__name__})" for k, v in checkpoint.items() if not _is_tensor(v))
  if others:
    raise PortError(f"{source} mixes non-tensor entries into its state dict: {', '.join(others)}; pass a plain "
                    f"state dict, or one wrapped as {{'params': ...}} or {{'state_dict': ...}}.")
  names = list(checkpoint)
  if all(name.startswith(DATA_PARALLEL_PREFIX) for name in names):
    names = [name[len(DATA_PARALLEL_PREFIX):] for name in names]
  return {name: _to_numpy(value) for name, value in zip(names, checkpoint.values())}


def _is_tensor(value: Any) -> bool:
  return hasattr(value, "shape") and hasattr(value, "dtype")


def _all_tensors(mapping: Mapping) -> bool:
  return all(_is_tensor(v) for v in mapping.values())


def _to_numpy(value: Any) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch.Tensor; bfloat16 has no NumPy dtype, so go through float32.
    value = value.detach().cpu()
    value = value.float() if value.is_floating_point() else value
    return value.numpy()
  array = np.asarray(value)
  return array.astype(np.float32) if np.issubdtype(array.dtype, np.floating) else array


def _resolve_directory(path: pathlib.Path) -> tuple[pathlib.Path, dict[str, Any] | None]:
  """The weight file and config of a diffusers model folder (or of a pipeline folder's `unet/`)."""
  if not (path / "config.json").exists() and (path / "unet" / "config.json").exists():
    path = path / "unet"
  weights = next((path / name for name in DIRECTORY_WEIGHTS if (path / name).exists()), None)
  if weights is None:
    found = sorted(p.name for p in path.iterdir()) or ["nothing"]
    raise PortError(f"{path} is a folder without {' or '.join(DIRECTORY_WEIGHTS)} (it holds {', '.join(found)}); "
                    "pass a diffusers model folder or the checkpoint file itself.")
  config_file = path / "config.json"
  if not config_file.exists():
    return weights, None
  try:
    return weights, json.loads(config_file.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise PortError(f"{config_file} is not valid JSON ({e}); restore the model folder's config.json.") from None


def _read_safetensors(path: pathlib.Path) -> dict[str, Any]:
  from safetensors import SafetensorError, safe_open  # pylint: disable=g-import-not-at-top

  try:
    with safe_open(str(path), framework="pt") as f:
      return {name: f.get_tensor(name) for name in f.keys()}
  except (SafetensorError, OSError) as e:
    raise PortError(f"Could not read {path} as safetensors ({e}); the file is truncated or not a safetensors "
                    "file: download it again.") from None


def _read_torch(path: pathlib.Path) -> Any:
  import torch  # pylint: disable=g-import-not-at-top

  try:
    with warnings.catch_warnings():  # torch warns about other pickle protocols; we refuse them ourselves
      warnings.filterwarnings("ignore", message="Detected pickle protocol")
      return torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    unsafe = re.search(r"GLOBAL ([\w.]+)", str(e))
    if unsafe:
      raise PortError(f"{path} can only be loaded by unpickling arbitrary objects (it stores {unsafe.group(1)}), "
                      "which could run code, so it is refused; if you trust its source, re-save its state dict "
                      "with torch.save(model.state_dict(), ...) or as safetensors.") from None
    if "Weights only load failed" in str(e):  # e.g. pickle protocol 4's opcodes, which the safe unpickler refuses
      raise PortError(f"{path} holds pickle instructions the safe loader does not accept, so it is refused as "
                      "possibly unsafe and was not run; if you trust its source, re-save its state dict with "
                      "torch.save(model.state_dict(), ...) or as safetensors.") from None
    raise _unreadable(path, e) from None
  except Exception as e:  # torch raises RuntimeError, EOFError, KeyError, ... on damaged files.
    raise _unreadable(path, e) from None


def _unreadable(path: pathlib.Path, error: Exception) -> PortError:
  first_sentence = str(error).strip().split(". ")[0].splitlines()[0] if str(error).strip() else ""
  reason = f"{type(error).__name__}: {first_sentence}" if first_sentence else type(error).__name__
  return PortError(f"Could not read {path} as a PyTorch checkpoint ({reason}); the file is truncated or not a "
                   "checkpoint: download it again.")
