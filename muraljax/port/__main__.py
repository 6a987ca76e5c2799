"""Port an official PyTorch checkpoint to a muraljax Orbax checkpoint.

    python -m muraljax.port --model hinet --src HINet-GoPro.pth --out ported/hinet-gopro
    python -m muraljax.port --model car --src CAR/models/4x --out ported/car-x4        # kgn.pth + usn.pth
    python -m muraljax.port --model unet --src ddpm-model-folder --out ported/unet

--model     hinet, car_resampler (kgn.pth), car_upscaler (usn.pth), unet (diffusers UNet2DModel), or car: both
            CAR nets from one folder holding kgn.pth and usn.pth, as params {'resampler', 'upscaler'}.
--src       the checkpoint file (.pth, .pt, .bin, .safetensors) or folder (diffusers model; CAR's x2/x4 folder).
--out       a new folder: OUT/checkpoints/0 (Orbax, loadable by config.init_from) and OUT/port_report.json.
--config    a training config, path/to/config.py[:variant], whose model the weights must fit (so they load
            into that run), with field overrides as in muraljax.main (--config.model.wf=32); without it the
            architecture is inferred from the checkpoint.
--allow-partial  keep going when tensors are missing, unexpected or mis-shaped: matching tensors are kept,
            missing or mis-shaped ones initialised fresh, unexpected ones dropped (all listed in the report).

It prints what it inferred and the muraljax.main command that trains from the result. Nothing is written when
anything fails; the error says what to do, in one sentence (exit status 2, as every muraljax command: muraljax.cli).
"""

from __future__ import annotations

import pathlib
import shlex
import sys
from typing import Any

import ml_collections
from absl import flags

from muraljax import cli
from muraljax import config as config_lib
from muraljax import runs
from muraljax.port import families, writing
from muraljax.port.convert import Conversion, convert_with_report
from muraljax.port.errors import PortError
from muraljax.port.reading import read_checkpoint


# The command's own flags, apart from absl's global ones: it also runs in-process, beside other commands.
FLAGS = flags.FlagValues()
flags.DEFINE_enum("model", None, [*families.FAMILIES, *families.BUNDLES], "The model family the checkpoint holds.",
                  required=True, flag_values=FLAGS)
flags.DEFINE_string("src", None, "Checkpoint file or folder.", required=True, flag_values=FLAGS)
flags.DEFINE_string("out", None, "New output folder.", required=True, flag_values=FLAGS)
flags.DEFINE_string("config", None, "Training config path/to/config.py[:variant] the weights must fit.",
                    flag_values=FLAGS)
flags.DEFINE_bool("allow-partial", False, "Initialise missing or mis-shaped tensors fresh and drop unexpected ones.",
                  flag_values=FLAGS)


def load_config(spec: str, overrides: list[str]) -> ml_collections.ConfigDict:
  """`path/to/config.py[:variant]` with `--config.a.b=value` overrides, as `--config` of muraljax.main."""
  try:
    config = config_lib.load(spec)
  except ValueError as e:
    raise PortError(f"--config {e}") from None
  for override in overrides:
    if not override.startswith("--config."):
      raise PortError(f"Unknown argument {override}; config overrides look like --config.model.wf=32.")
    try:
      config_lib.set_field(config, override.removeprefix("--config."))
    except ValueError as e:
      raise PortError(f"--config.{e}") from None
  return config


def port_file(family_name: str, src: str | pathlib.Path, config: ml_collections.ConfigDict | None,
              allow_partial: bool) -> Conversion:
  """Reads and converts one checkpoint; the report also names its source."""
  checkpoint = read_checkpoint(src)
  family = families.FAMILIES[family_name]
  target = families.target_from_config(family, config) if config is not None else family_name
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


def train_command(kind: families.Family | families.Bundle, out: pathlib.Path, config_args: list[str],
                  config: ml_collections.ConfigDict | None) -> str:
  """The muraljax.main command that starts training from the ported checkpoint `out`."""
  if config is None:
    config_args = [kind.config]
    into = next(iter(kind.into.values()))
  else:
    into = kind.into.get(config.task)
  if callable(into):
    into = into(config)
  args = ["--config", *config_args, "--workdir", "WORKDIR", f"--config.init_from.checkpoint={out}"]
  if into:
    args.append(f"--config.init_from.into={into}")
  return "python -m muraljax.main " + " ".join(shlex.quote(arg) for arg in args)


def _summary(report: dict[str, Any], out: pathlib.Path) -> list[str]:
  lines = []
  for part, part_report in report.get("parts", {"": report}).items():
    prefix = f"[{part}] " if part else ""
    lines.append(f"{prefix}{part_report['source']}: {len(part_report['tensors'])} tensors, "
                 f"{part_report['parameters']:,} parameters -> {part_report['target']}")
    lines += [f"{prefix}  inferred {field} = {note}" for field, note in part_report["inferred"].items()]
    if part_report["initialised_fresh"]:
      lines.append(f"{prefix}  initialised fresh (missing or mis-shaped): "
                   f"{', '.join(part_report['initialised_fresh'])}")
    if part_report["unexpected"]:
      lines.append(f"{prefix}  dropped (not in the model): {', '.join(part_report['unexpected'])}")
  lines.append(f"Wrote {runs.checkpoints_dir(out) / str(writing.STEP)} and {out / writing.REPORT_FILE}.")
  return lines


def main(argv: list[str] | None = None) -> int:
  """The command line (`argv` without the program name; default sys.argv[1:]); returns the exit status."""
  return cli.run(_port, FLAGS, __doc__, argv, overrides=True)


def _port(overrides: list[str]) -> None:
  """Ports as FLAGS say; `overrides` are the command line's `--config.field=value` arguments."""
  out = writing.check_output_free(FLAGS.out)
  if overrides and not FLAGS.config:
    raise PortError(f"Unknown arguments {' '.join(overrides)}; config overrides need --config.")
  config = load_config(FLAGS.config, overrides) if FLAGS.config else None
  kind = families.BUNDLES.get(FLAGS.model) or families.FAMILIES[FLAGS.model]
  if isinstance(kind, families.Bundle):
    conversion = port_bundle(kind, FLAGS.src, config, FLAGS["allow-partial"].value)
  else:
    conversion = port_file(FLAGS.model, FLAGS.src, config, FLAGS["allow-partial"].value)
  out = writing.write(out, conversion.params, conversion.report)
  print("\n".join(_summary(conversion.report, out)))
  fits = "" if config else " (with a config whose model has the architecture above)"
  print(f"Train from it{fits}: {train_command(kind, out, [FLAGS.config, *overrides] if config else [], config)}")


if __name__ == "__main__":
  sys.exit(main())
