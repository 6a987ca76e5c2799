"""Builds a mural dataset as TFDS ArrayRecord files: `python -m muraljax.data.prepare NAME --manual_dir DIR`.

  python -m muraljax.data.prepare dunhuang_challenge --manual_dir ~/data/dunhuang
  python -m muraljax.data.prepare mural_folder --manual_dir ~/photos/cave7 --data_dir ~/murals/cave7

NAME is `dunhuang_challenge` or `mural_folder` (see muraljax.data.datasets). TFDS shows a progress bar per split;
the command ends by printing where the dataset went, what each split holds, what was skipped and why, and the
config fields that train on it. An existing build is kept unless --overwrite is given. Building needs
TensorFlow and tensorflow-datasets, the `datasets` extra (`pip install 'muraljax[datasets]'`); reading the result
needs neither. A mistake stops it with one sentence (exit status 2, as every muraljax command: muraljax.cli).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time

from absl import flags

from muraljax import cli
from muraljax.data.errors import DataError

# Without the `datasets` extra, `build` says what to install instead of failing on an import. TensorFlow is
# checked too: tfds imports it only once building starts.
if all(importlib.util.find_spec(module) for module in ("tensorflow", "tensorflow_datasets")):
  import tensorflow_datasets as tfds

  from muraljax.data import datasets
else:
  tfds = datasets = None

# The command's own flags, apart from absl's global ones: this module is imported by other code.
FLAGS = flags.FlagValues()
flags.DEFINE_string("manual_dir", None, "Folder with the dataset's images (the organisers' files, or photographs).",
                    required=True, flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "Where TFDS datasets live; default $TFDS_DATA_DIR or ~/tensorflow_datasets.",
                    flag_values=FLAGS)
flags.DEFINE_integer("tile_size", 1024, "mural_folder: side of the stored tiles of large photographs; 0 = whole.",
                     flag_values=FLAGS)
flags.DEFINE_bool("overwrite", False, "Rebuild even when the dataset was already prepared in data_dir.",
                  flag_values=FLAGS)
_SHOWN_NAMES = 10  # skipped names printed per reason; the report in metadata.json lists them all


def build(name: str, manual_dir: str, data_dir: str | None = None, tile_size: int = 1024,
          overwrite: bool = False) -> tfds.core.DatasetBuilder:
  """Builds dataset `name` from `manual_dir` as ArrayRecord under `data_dir`; returns the prepared builder,
  whose `report` says what went into each split (empty when an existing build was reused)."""
  _require_datasets_extra()
  if name not in datasets.BUILDERS:
    raise DataError(f"Unknown dataset {name!r}; prepare one of {sorted(datasets.BUILDERS)}.")
  if not os.path.isdir(manual_dir):
    raise DataError(f"--manual_dir {manual_dir!r} is not a directory; pass the folder that holds the images.")
  options = {}
  if name == "mural_folder":  # TFDS takes the predefined configs by name only
    config = datasets.mural_folder.config_for(tile_size)
    predefined = {c.name for c in datasets.MuralFolder.BUILDER_CONFIGS}
    options["config"] = config.name if config.name in predefined else config
  builder = datasets.BUILDERS[name](data_dir=data_dir, file_format="array_record", **options)
  modes = tfds.download.GenerateMode
  mode = modes.FORCE_REDOWNLOAD if overwrite else modes.REUSE_DATASET_IF_EXISTS
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir,
                                                                             download_mode=mode))
  return builder


def _require_datasets_extra() -> None:
  if tfds is None:
    raise DataError("Building a dataset needs TensorFlow and tensorflow-datasets; install them with "
                    "`pip install 'muraljax[datasets]'`.")


def summary(builder: tfds.core.DatasetBuilder, seconds: float) -> str:
  """Where the dataset is, its splits and the build report, as lines for the terminal."""
  name = builder.name if builder.builder_config is None else f"{builder.name}/{builder.builder_config.name}"
  lines = [f"Prepared {name} in {builder.data_dir}"]
  for split, info in builder.info.splits.items():
    lines.append(f"  {split}: {info.num_examples} records, {info.num_bytes / 2**20:.1f} MiB")
    report = builder.report.get(split)
    if report is None:
      continue
    if report["masks_resized"]:
      lines.append(f"    {len(report['masks_resized'])} masks resized to their painting (nearest neighbour)")
    for reason, names in report["skipped"].items():
      more = f", ... ({len(names) - _SHOWN_NAMES} more)" if len(names) > _SHOWN_NAMES else ""
      lines.append(f"    skipped, {reason}: {len(names)}: {', '.join(names[:_SHOWN_NAMES])}{more}")
  if builder.report:
    paintings = sum(report["paintings"] for report in builder.report.values())
    lines.append(f"  built in {seconds:.1f} s ({paintings / max(seconds, 1e-9):.1f} paintings/s); the full report "
                 f"is in {builder.data_dir}/metadata.json")
  else:
    lines.append("  (already prepared: reused; pass --overwrite to rebuild)")
  data_dir = builder.data_dir.split(f"/{builder.name}/")[0]
  lines.append(f"Train on it with --config.data.source=arrayrecord --config.data.dataset={name} "
               f"--config.data.data_dir={data_dir}")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  """`python -m muraljax.data.prepare NAME --manual_dir DIR` (`argv` without the program name; default
  sys.argv[1:]); returns the exit status."""
  return cli.run(_prepare, FLAGS, __doc__, argv, arguments=True)


def _prepare(arguments: list[str]) -> None:
  _require_datasets_extra()
  if len(arguments) != 1:
    raise cli.CommandError(f"Name one dataset to prepare: {' or '.join(sorted(datasets.BUILDERS))}.")
  start = time.perf_counter()
  builder = build(arguments[0], FLAGS.manual_dir, FLAGS.data_dir, FLAGS.tile_size, FLAGS.overwrite)
  print(summary(builder, time.perf_counter() - start))


if __name__ == "__main__":
  sys.exit(main())
