"""Official PyTorch parameter names and shapes for muraljax's Flax parameter trees.

Each model family keeps its module tree one-to-one with the official PyTorch one. A Flax path differs from
the PyTorch name only in three mechanical ways, which this module undoes:

* separators: Flax joins path entries with '/', PyTorch with '.';
* list elements: Flax names the i-th module of a list attribute `name_i`, PyTorch `name.i` (which attributes
  are lists is model-specific, so each model passes its own regex rules);
* leaves: Flax `kernel` / `scale` are PyTorch `weight`, and kernels are stored HWIO instead of OIHW
  (transposed convolutions: PyTorch (in, out, kH, kW), Flax (kH, kW, in, out)).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import jax

_LEAF_NAMES = {"kernel": "weight", "scale": "weight", "bias": "bias"}

Rules = Sequence[tuple[str, str]]


def torch_name(path: Sequence[str], rules: Rules = (), prefix: str = "") -> str:
  """('down_path_1_0', 'conv_1', 'kernel') -> 'down_path_1.0.conv_1.weight' (given the list rule)."""
  module = ".".join(path[:-1])
  for pattern, replacement in rules:
    module = re.sub(pattern, replacement, module)
  leaf = _LEAF_NAMES[path[-1]]
  return f"{prefix}{module}.{leaf}" if module else f"{prefix}{leaf}"


def torch_shape(flax_shape: Sequence[int], transposed: bool = False) -> tuple[int, ...]:
  """Flax HWIO kernel shape -> PyTorch OIHW (or (in, out, kH, kW) for a transposed conv)."""
  if len(flax_shape) != 4:
    return tuple(flax_shape)
  kh, kw, cin, cout = flax_shape
  return (cin, cout, kh, kw) if transposed else (cout, cin, kh, kw)


def _path_names(path: Iterable) -> tuple[str, ...]:
  return tuple(str(getattr(k, "key", k)) for k in path)


def torch_layout(
    params: Mapping,
    rules: Rules = (),
    prefix: str = "",
    transposed: str | None = None,
) -> dict[str, tuple[int, ...]]:
  """Maps a Flax param tree (arrays or ShapeDtypeStructs) to {official PyTorch name: PyTorch shape}.

  `transposed` is a regex on the Flax module path ('/'-joined) that marks transposed-conv kernels.
  """
  layout = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = _path_names(path)
    is_transposed = bool(transposed and re.search(transposed, "/".join(names[:-1])))
    layout[torch_name(names, rules, prefix)] = torch_shape(leaf.shape, is_transposed)
  return layout


def read_layout_file(path: str) -> dict[str, tuple[int, ...]]:
  """Reads an official name list: one `name<TAB>(d0, d1, ...)` line per tensor."""
  layout = {}
  with open(path) as f:
    for line in f:
      if line.strip():
        name, shape = line.rstrip("\n").split("\t")
        layout[name] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
  return layout
