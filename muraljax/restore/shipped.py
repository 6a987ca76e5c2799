"""The trained models that ship inside the package, under muraljax/weights/<name>/.

Each is an ordinary run folder (config.json + checkpoints/<step>/state, params only) with a MODEL_CARD.md (data,
masks, steps, hardware, metrics) and SHA256SUMS (`sha256sum` format: '<hex>  <relative path>' per file). Before a
shipped model is used, every file of its folder is checked against SHA256SUMS: a changed, missing or unlisted
file is refused.

A trained run becomes a shipped model with

    python -m muraljax.restore.shipped --checkpoint RUN --name NAME --card CARD.md [--set model.prefill_sweeps=256]

(or, as first written, `python -m muraljax.restore.shipped RUN NAME --card CARD.md`)

which writes muraljax/weights/NAME: the run's config.json (its local data paths cut to their last
`_PATH_PARTS` components; each `--set field=value` changes a setting the model is run with, such as the prefill's
sweeps, and a change the trained params do not fit is refused), its latest params (EMA when kept) as a
params-only checkpoint at the same step, CARD.md as MODEL_CARD.md with the files' SHA-256 digests appended, and
SHA256SUMS.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from absl import flags

from muraljax import cli
from muraljax.restore.errors import RestoreError
from muraljax.restore.photo_files import sha256_file

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
DEFAULT = "inpaint-small"
SUMS_FILE = "SHA256SUMS"
CARD_FILE = "MODEL_CARD.md"
_PATH_FIELDS = ("data.folder", "data.data_dir", "data.degradation.mask_folder", "init_from.checkpoint")
_PATH_PARTS = 3
# The command's own flags, apart from absl's global ones: this module is imported by other commands.
FLAGS = flags.FlagValues()
flags.DEFINE_string("checkpoint", None, "The training run to ship: its workdir (latest step), checkpoints/ folder "
                    "or one checkpoints/<step> folder.", flag_values=FLAGS)
flags.DEFINE_string("name", None, "The shipped model's name: the folder muraljax/weights/NAME.", flag_values=FLAGS)
flags.DEFINE_string("card", None, "The model card (Markdown) to ship with it.", required=True, flag_values=FLAGS)
flags.DEFINE_multi_string("set", [], "field=value: a config field the shipped model is run with instead of the "
                          "run's (repeatable), e.g. model.prefill_sweeps=256.", flag_values=FLAGS)


def names() -> list[str]:
  """The shipped models, sorted."""
  return sorted(p.name for p in WEIGHTS.iterdir() if (p / SUMS_FILE).is_file()) if WEIGHTS.is_dir() else []


def resolve(name_or_path: str | None) -> tuple[str, bool]:
  """(run folder path, whether it is a shipped model) for a shipped model's name, a path, or None (the default
  shipped model). An existing path wins over a shipped name; a shipped model is verified first (`verify`)."""
  if name_or_path is not None and Path(name_or_path).exists():
    return name_or_path, False
  name = DEFAULT if name_or_path is None else name_or_path
  if name not in names():
    raise RestoreError(f"{name!r} is neither an existing checkpoint path nor a shipped model; pass a training "
                       f"workdir or one of {names()}.")
  verify(WEIGHTS / name)
  return str(WEIGHTS / name), True


def _files(folder: Path) -> list[str]:
  return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != SUMS_FILE)


def write_sums(folder: str | Path) -> str:
  """Writes `folder`/SHA256SUMS for every other file of the folder; returns its text."""
  folder = Path(folder)
  text = "".join(f"{sha256_file(folder / name)}  {name}\n" for name in _files(folder))
  (folder / SUMS_FILE).write_text(text)
  return text


def verify(folder: str | Path) -> None:
  """Raises RestoreError unless the files of `folder` are exactly those SHA256SUMS lists, with those digests."""
  folder = Path(folder)
  expected = {}
  for line in (folder / SUMS_FILE).read_text().splitlines():
    digest, _, name = line.partition("  ")
    expected[name] = digest
  found = _files(folder)
  problems = [f"{name} is missing" for name in sorted(expected.keys() - set(found))]
  problems += [f"{name} is not listed" for name in found if name not in expected]
  problems += [f"{name} has changed" for name in found if name in expected and sha256_file(folder / name) !=
               expected[name]]
  if problems:
    raise RestoreError(f"The shipped model {folder.name!r} does not match its model card ({'; '.join(problems)}); "
                       "reinstall muraljax to get the published weights.")


def ship(run: str, name: str, card: str, weights: Path = WEIGHTS, settings: Sequence[str] = ()) -> Path:
  """Writes the shipped model `weights`/`name` from the training run `run` and the model card text `card`, its
  config changed by the `settings` ('field=value', as `muraljax.config.set_field` reads them)."""
  from muraljax import config as config_lib, runs  # pylint: disable=g-import-not-at-top
  from muraljax.restore.model import load_model  # pylint: disable=g-import-not-at-top

  model = load_model(run)
  config = model.config.copy_and_resolve_references()
  for setting in settings:
    try:
      config_lib.set_field(config, setting)
    except ValueError as error:
      raise RestoreError(f"--set {error}") from None
  folder = weights / name
  if folder.exists():
    raise RestoreError(f"{folder} exists already; remove it or choose another name.")
  try:
    folder.mkdir(parents=True)
    runs.write_config(folder, json.dumps(_portable(config.to_dict()), indent=2) + "\n")
    runs.write_params(folder, model.params, int(model.step_dir.name))
    load_model(str(folder))  # a setting that changes the architecture is refused here
    digests = "".join(f"| `{file}` | `{sha256_file(folder / file)}` |\n" for file in _files(folder))
    (folder / CARD_FILE).write_text(f"{card.rstrip()}\n\n## Files (SHA-256)\n\n| file | sha256 |\n|---|---|\n"
                                    f"{digests}")
    write_sums(folder)
  except BaseException:
    shutil.rmtree(folder, ignore_errors=True)
    raise
  return folder


def _portable(config: dict) -> dict:
  """`config` with the paths of `_PATH_FIELDS` cut to their last `_PATH_PARTS` components (no training machine's
  folders in the package)."""
  for dotted in _PATH_FIELDS:
    *sections, key = dotted.split(".")
    section = config
    for name in sections:
      section = section.get(name, {})
    if section.get(key):
      section[key] = "/".join(Path(section[key]).parts[-_PATH_PARTS:])
  return config


def main(argv: list[str] | None = None) -> int:
  """`python -m muraljax.restore.shipped --checkpoint RUN --name NAME --card CARD.md` (`argv` without the program
  name; default sys.argv[1:]); returns the exit status."""
  return cli.run(_ship, FLAGS, __doc__, argv, arguments=True)


def _ship(arguments: list[str]) -> None:
  run, name = _run_and_name(arguments)
  if not Path(FLAGS.card).is_file():
    raise RestoreError(f"--card {FLAGS.card} is not a file; pass the model card (Markdown) to ship.")
  print(ship(run, name, Path(FLAGS.card).read_text(), settings=FLAGS.set))


def _run_and_name(arguments: list[str]) -> tuple[str, str]:
  """--checkpoint and --name, or the positional RUN NAME of the first version of this command."""
  if len(arguments) == 2 and not (FLAGS.checkpoint or FLAGS.name):
    return arguments[0], arguments[1]
  if not arguments and FLAGS.checkpoint and FLAGS.name:
    return FLAGS.checkpoint, FLAGS.name
  raise cli.CommandError("Name the training run and the shipped model: --checkpoint RUN --name NAME --card CARD.md.")


if __name__ == "__main__":
  sys.exit(main())
