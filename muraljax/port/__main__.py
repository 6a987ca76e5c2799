"""Port an official PyTorch checkpoint to a muraljax Orbax checkpoint.

    python -m muraljax.port --model hinet --src HINet-GoPro.pth --out ported/hinet-gopro
    python -m muraljax.port --model car --src CAR/models/4x --out ported/car-x4        # kgn.pth + usn.pth
    python -m muraljax.port --model unet --src ddpm-model-folder --out ported/unet

--model     hinet, car_resampler (kgn.pth), car_upscaler (usn.pth), unet (diffusers UNet2DModel), or car: both
            CAR nets from one folder holding kgn.pth and usn.pth, as params {'resampler', 'upscaler'}.
--src       the checkpoint file (.pth, .pt, .bin, .safetensors) or folder (diffusers model; CAR's x2/x4 folder).
--out       a new folder: OUT/checkpoints/0 (Orbax, loadable by config.init_from) and OUT/port_report.json.
--config    a training config, path/to/config.py[:variant], whose model the weights must fit (e.g. to check
            they load into that run); without it the architecture is inferred from the checkpoint.
--allow-partial  keep going when tensors are missing, unexpected or mis-shaped: matching tensors are kept,
            missing or mis-shaped ones initialised fresh, unexpected ones dropped (all listed in the report).

Nothing is written when anything fails; the error says what to do.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import sys
from typing import Any

import ml_collections

from muraljax.port import families, writing
from muraljax.port.convert import Conversion, convert_with_report
from muraljax.port.errors import PortError
from muraljax.port.reading import read_checkpoint


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m muraljax.port", description=__doc__.split("\n")[0])
  parser.add_argument("--model", required=True, choices=[*families.FAMILIES, *families.BUNDLES])
  parser.add_argument("--src", required=True, help="checkpoint file or folder")
  parser.add_argument("--out", required=True, help="new output folder")
  parser.add_argument("--config", help="training config path/to/config.py[:variant] the weights must fit")
  parser.add_argument("--allow-partial", action="store_true",
                      help="initialise missing or mis-shaped tensors fresh and drop unexpected ones")
  return parser


def load_config(spec: str) -> ml_collections.ConfigDict:
  """`path/to/config.py[:variant]` loaded as `--config` of muraljax.main loads it."""
  path, _, variant = spec.partition(":")
  if not os.path.isfile(path):
    raise PortError(f"--config {spec}: {path} is not a file; pass a config such as configs/hinet.py:db.")
  module_spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  try:
    return module.get_config(variant) if variant else module.get_config()
  except ValueError as e:
    raise PortError(f"--config {spec}: {e}") from None


def port_file(family_name: str, src: str | pathlib.Path, config: ml_collections.ConfigDict | None,
              allow_partial: bool) -> Conversion:
  """Reads and converts one checkpoint; the report also names its source."""
  checkpoint = read_checkpoint(src)
  family = families.FAMILIES[family_name]
  target = families.module_from_config(family, config) if config is not None else family_name
  conversion = convert_with_report(checkpoint.tensors, target, allow_partial=allow_partial,
                                   checkpoint_config=checkpoint.config)
  return Conversion(conversion.params, {"source": str(checkpoint.path), **conversion.report})


def port_bundle(bundle: families.Bundle, src: str | pathlib.Path, config: ml_collections.ConfigDict | None,
                allow_partial: bool) -> Conversion:
  """Converts each file of a bundle folder into params {part: params} and a report {'parts': {part: report}}."""
  folder = pathlib.Path(src)
  files = {part: folder / file for part, _, file in bundle.parts}
  absent = [str(path) for path in files.values() if not path.is_file()]
  if absent:
    raise PortError(f"--model {bundle.name} needs a folder holding {', '.join(p.name for p in files.values())}; "
                    f"{', '.join(absent)} not found: pass that folder as --src.")
  parts = {part: port_file(family, files[part], config, allow_partial) for part, family, _ in bundle.parts}
  return Conversion({part: c.params for part, c in parts.items()},
                    {"model": bundle.name, "parts": {part: c.report for part, c in parts.items()}})


def _summary(report: dict[str, Any], out: pathlib.Path, load_hint: str) -> str:
  lines = []
  for part, part_report in report.get("parts", {"": report}).items():
    prefix = f"[{part}] " if part else ""
    lines.append(f"{prefix}{part_report['source']}: {len(part_report['tensors'])} tensors, "
                 f"{part_report['parameters']:,} parameters -> {part_report['target']}")
    lines += [f"{prefix}  inferred {field} = {note}" for field, note in part_report["inferred"].items()]
    if part_report["initialised_fresh"]:
      lines.append(f"{prefix}  initialised fresh (missing or mis-shaped): {', '.join(part_report['initialised_fresh'])}")
    if part_report["unexpected"]:
      lines.append(f"{prefix}  dropped (not in the model): {', '.join(part_report['unexpected'])}")
  lines.append(f"Wrote {out / 'checkpoints' / str(writing.STEP)} and {out / writing.REPORT_FILE}.")
  lines.append(f"Train from it: python -m muraljax.main {load_hint.replace('OUT', str(out))} --workdir WORKDIR")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  try:
    out = writing.check_output_free(args.out)
    config = load_config(args.config) if args.config else None
    if args.model in families.BUNDLES:
      bundle = families.BUNDLES[args.model]
      conversion, load_hint = port_bundle(bundle, args.src, config, args.allow_partial), bundle.load_hint
    else:
      conversion = port_file(args.model, args.src, config, args.allow_partial)
      load_hint = families.FAMILIES[args.model].load_hint
    out = writing.write(out, conversion.params, conversion.report)
  except PortError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(_summary(conversion.report, out, load_hint))
  return 0


if __name__ == "__main__":
  sys.exit(main())
