"""The trained models that ship inside the package, under muraljax/weights/<name>/.

Each is an ordinary run folder (config.json + checkpoints/<step>/state, params only) with a MODEL_CARD.md (data,
masks, steps, hardware, metrics) and SHA256SUMS (`sha256sum` format: '<hex>  <relative path>' per file). Before a
shipped model is used, every file of its folder is checked against SHA256SUMS: a changed, missing or unlisted
file is refused. `write_sums` writes SHA256SUMS when a model is added (see MODEL_CARD.md for the command).
"""

from __future__ import annotations

from pathlib import Path

from muraljax.restore.errors import RestoreError
from muraljax.restore.io import sha256_file

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
DEFAULT = "inpaint-small"
SUMS_FILE = "SHA256SUMS"
CARD_FILE = "MODEL_CARD.md"


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
