"""`python -m muraljax.evaluate --checkpoint WORKDIR [--config FILE[:variant]] [--data NAME[:SPLIT]]`.

Evaluates a trained model with the protocol of muraljax.evaluate.protocol (PSNR, SSIM, DSSIM, LPIPS whole and
inside the mask, CCON/TCON/ECON, hole-ratio buckets, the robustness conditions, the published ARIN/HINet rows
beside ours) and writes results.json, results.md and cases.png to --out (default
<workdir>/evaluation/<step>). The model's config is the run's <workdir>/config.json unless --config is given.
With --anchors it also compares the model with classical inpainting on the same images (muraljax.evaluate.anchors)
and writes anchors.md and anchors.json.

  python -m muraljax.evaluate --checkpoint runs/arin --data dunhuang_challenge:test
  python -m muraljax.evaluate --checkpoint runs/inpaint --anchors

A mistake stops it with one sentence (exit status 2, as every muraljax command: muraljax.cli).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from muraljax import cli

# The command's own flags, apart from absl's global ones. config_flags reads --config.field=value overrides from
# sys.argv, so overrides reach the command only from the command line.
FLAGS = flags.FlagValues()
config_flags.DEFINE_config_file("config", None, "The model's config, path/to/config.py[:variant]; default: the "
                                "config.json the training run wrote to its workdir.", flag_values=FLAGS,
                                lock_config=True)
flags.DEFINE_string("checkpoint", None, "A training workdir, its checkpoints/ folder or one checkpoints/<step> folder.",
                    required=True, flag_values=FLAGS)
flags.DEFINE_string("data", "", "Prepared dataset to evaluate on, NAME[:SPLIT] or DIR[:SPLIT] (whole images); "
                    "default: the config's held-out set.", flag_values=FLAGS)
flags.DEFINE_string("data_dir", "", "TFDS data_dir of --data; default: the config's data.data_dir.", flag_values=FLAGS)
flags.DEFINE_string("out", None, "Where the results go; default <workdir>/evaluation/<step>.", flag_values=FLAGS)
flags.DEFINE_alias("output_dir", "out", flag_values=FLAGS)  # its first name, before every command said --out
flags.DEFINE_integer("max_images", 0, "Evaluate on the first N images only; 0 = all.", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Seeds synthetic damage and the noise of the robustness conditions.", flag_values=FLAGS)
flags.DEFINE_list("conditions", ["clean", "gn8", "gn16", "jpeg60", "jpeg30"], "Robustness conditions to run.",
                  flag_values=FLAGS)
flags.DEFINE_bool("anchors", False, "Also fill the clean images' centre crops (at most 256 px) with box and stroke "
                  "holes by the model (through muraljax.restore.load) and by classical inpainting (OpenCV Telea and "
                  "Navier-Stokes, biharmonic, harmonic; needs the anchors extra), and write anchors.md/.json.",
                  flag_values=FLAGS)


def main(argv: list[str] | None = None) -> int:
  """The command line (`argv` without the program name; default sys.argv[1:]); returns the exit status."""
  return cli.run(_evaluate, FLAGS, __doc__, argv)


def _evaluate(arguments: list[str]) -> None:
  del arguments  # none: `cli.run` refuses them
  from muraljax import paths  # pylint: disable=g-import-not-at-top
  from muraljax import runs  # pylint: disable=g-import-not-at-top
  from muraljax.evaluate import protocol  # pylint: disable=g-import-not-at-top

  options = FLAGS
  step_dir = protocol.checkpoint_folder(options.checkpoint)
  config = cli.loaded_config(FLAGS)
  config = config if config is not None else protocol.run_config(step_dir)
  output_dir = options.out or os.path.join(runs.run_folder(step_dir), "evaluation", step_dir.name)
  reason = paths.unwritable_reason(output_dir)
  if reason is not None:
    raise ValueError(f"--out {output_dir} cannot be written ({reason}); choose a folder you can write to.")
  results = protocol.run(config, step_dir, output_dir, data=options.data, data_dir=options.data_dir,
                         max_images=options.max_images, seed=options.seed, conditions=tuple(options.conditions))
  print((Path(output_dir) / "results.md").read_text())
  print(f"Wrote results.json, results.md and cases.png ({results['images']} images) to {output_dir}")
  if options.anchors:
    try:
      _anchors(config, options.checkpoint, output_dir)
    except ImportError as error:  # the anchors extra is missing; the message says what to install
      raise cli.CommandError(str(error)) from None


def _anchors(config, checkpoint: str, output_dir: str) -> None:
  """The --anchors comparison on the held-out images of the protocol."""
  import json  # pylint: disable=g-import-not-at-top
  import muraljax.restore as R  # pylint: disable=g-import-not-at-top
  from muraljax.evaluate import anchors, protocol  # pylint: disable=g-import-not-at-top
  from muraljax.metrics.image_files import to_uint8  # pylint: disable=g-import-not-at-top

  options = FLAGS
  cases, _ = protocol.load_cases(config.data, options.data, options.data_dir, options.max_images, options.seed)
  images = [to_uint8(case.clean) for case in cases]
  crop = min(256, *(min(image.shape[:2]) for image in images))
  methods = anchors.classical_anchors() | {f"muraljax {checkpoint}": R.load(checkpoint).restore}
  results = anchors.compare(methods, anchors.validation_cases(images, crop, options.seed))
  table = "\n\n".join(f"{group} ({crop} px centre crops):\n\n{anchors.markdown(results, group)}"
                        for group in ("all", *anchors.MASK_KINDS))
  (Path(output_dir) / "anchors.md").write_text(table + "\n")
  (Path(output_dir) / "anchors.json").write_text(json.dumps(results, indent=1) + "\n")
  print(table)
  print(f"Wrote anchors.md and anchors.json to {output_dir}")


if __name__ == "__main__":
  sys.exit(main())
