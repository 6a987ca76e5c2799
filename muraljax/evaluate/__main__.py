"""`python -m muraljax.evaluate --checkpoint WORKDIR [--config FILE[:variant]] [--data NAME[:SPLIT]]`.

Evaluates a trained model with the protocol of muraljax.evaluate.protocol (PSNR, SSIM, DSSIM, LPIPS whole and
inside the mask, CCON/TCON/ECON, hole-ratio buckets, the robustness conditions, the published ARIN/HINet rows
beside ours) and writes results.json, results.md and cases.png to --output_dir (default
<workdir>/evaluation/<step>). The model's config is the run's <workdir>/config.json unless --config is given.

  python -m muraljax.evaluate --checkpoint runs/arin --data dunhuang_challenge:test
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "The model's config, path/to/config.py[:variant]; default: the "
                                "config.json the training run wrote to its workdir.", lock_config=True)
flags.DEFINE_string("checkpoint", None, "A training workdir, its checkpoints/ folder or one checkpoints/<step> folder.")
flags.DEFINE_string("data", "", "Prepared dataset to evaluate on, NAME[:SPLIT] or DIR[:SPLIT] (whole images); "
                    "default: the config's held-out set.")
flags.DEFINE_string("data_dir", "", "TFDS data_dir of --data; default: the config's data.data_dir.")
flags.DEFINE_string("output_dir", None, "Where the results go; default <workdir>/evaluation/<step>.")
flags.DEFINE_integer("max_images", 0, "Evaluate on the first N images only; 0 = all.")
flags.DEFINE_integer("seed", 0, "Seeds synthetic damage and the noise of the robustness conditions.")
flags.DEFINE_list("conditions", ["clean", "gn8", "gn16", "jpeg60", "jpeg30"], "Robustness conditions to run.")
flags.mark_flag_as_required("checkpoint")


def main(argv: list[str]) -> None:
  del argv
  from muraljax.data.errors import DataError  # pylint: disable=g-import-not-at-top
  from muraljax.evaluate import protocol  # pylint: disable=g-import-not-at-top
  from muraljax.train import init_from  # pylint: disable=g-import-not-at-top

  options = flags.FLAGS
  try:
    step_dir = Path(init_from.state_item_dir(options.checkpoint)).parent
    config = options.config if options.config is not None else protocol.run_config(step_dir)
    output_dir = options.output_dir or os.path.join(step_dir.parent.parent, "evaluation", step_dir.name)
    results = protocol.run(config, options.checkpoint, output_dir, data=options.data, data_dir=options.data_dir,
                           max_images=options.max_images, seed=options.seed, conditions=tuple(options.conditions))
  except (DataError, ValueError) as error:
    sys.exit(f"Error: {error}")
  print((Path(output_dir) / "results.md").read_text())
  print(f"Wrote results.json, results.md and cases.png ({results['images']} images) to {output_dir}")


if __name__ == "__main__":
  app.run(main)
