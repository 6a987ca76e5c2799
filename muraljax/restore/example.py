"""A restoration walkthrough that needs nothing but this repository, with the images it shows.

    python -m muraljax.restore.example --out restore-example                             # trains the smoke HINet
    python -m muraljax.restore.example --out restore-example --checkpoint runs/hinet-smoke

paints a procedural mural (clean.png, the ground truth a real wall never has), damages it the way the checkpoint's
training data was damaged (wall.png, the "photograph"; wall-mask.png, the damage a conservator would draw, white =
damaged), trains the smoke HINet into OUT/run unless --checkpoint names a run, then restores the photograph twice
with `python -m muraljax.restore`: with the drawn mask (OUT/restored/) and with a detected one (OUT/proposal/). It
prints the commands it runs and the PSNR inside the damage, before and after.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags
from PIL import Image

from muraljax import cli
from muraljax import config as config_lib
from muraljax.data import degrade
from muraljax.data.murals import generate_mural
from muraljax.metrics.image_files import save_png, to_uint8
from muraljax.metrics.psnr_ssim import psnr
from muraljax.restore.__main__ import main as restore_main
from muraljax.restore.errors import RestoreError
from muraljax.restore.model import read_run
from muraljax.train import loop

SMOKE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "hinet.py"
# The command's own flags, apart from absl's global ones: it also runs in-process, beside other commands.
FLAGS = flags.FlagValues()
flags.DEFINE_string("out", None, "A new folder for the example's images and results.", required=True,
                    flag_values=FLAGS)
flags.DEFINE_string("checkpoint", None, "Restore with this training run instead of training the smoke HINet.",
                    flag_values=FLAGS)
flags.DEFINE_integer("steps", 300, "Training steps of the smoke HINet.", flag_values=FLAGS)
flags.DEFINE_integer("height", 768, "Height of the painted mural in pixels.", flag_values=FLAGS)
flags.DEFINE_integer("width", 1024, "Width of the painted mural in pixels.", flag_values=FLAGS)
flags.DEFINE_integer("seed", 2024, "Which mural is painted and how it is damaged.", flag_values=FLAGS)


def _smoke_config(steps: int) -> ml_collections.ConfigDict:
  if not SMOKE_CONFIG.is_file():
    raise RestoreError(f"{SMOKE_CONFIG} is missing (the example trains with it); run from a checkout of the "
                       "repository or pass --checkpoint.")
  config = config_lib.load(f"{SMOKE_CONFIG}:smoke")
  config.train.num_steps = steps
  return config


def _masked_psnr(image: np.ndarray, clean: np.ndarray, damaged: np.ndarray) -> float:
  as_batch = lambda x: jnp.asarray(x, jnp.float32)[None] / 255.0
  return float(psnr(as_batch(image), as_batch(clean), jnp.asarray(damaged, jnp.float32)[None, ..., None])[0])


def _restore(args: list[str]) -> None:
  print("$ python -m muraljax.restore " + shlex.join(args), flush=True)
  if restore_main(args):
    raise SystemExit(2)


def run(out: Path, checkpoint: str | None, steps: int, height: int, width: int, seed: int) -> None:
  if out.exists():
    raise RestoreError(f"{out} exists; pass a new --out folder for the example.")
  if checkpoint is None:
    checkpoint = str(out / "run")
    print(f"Training the smoke HINet for {steps} steps into {checkpoint} (a few minutes on 2 CPU cores).")
    loop.run(_smoke_config(steps), checkpoint)
  degradation = read_run(checkpoint)[1].data.degradation

  clean = generate_mural(seed, height, width)
  example = degrade.degrade(clean, np.random.default_rng(seed), degradation)
  wall, damaged = to_uint8(example["damaged"]), example["mask"][..., 0] >= 0.5
  save_png(out / "clean.png", clean)
  save_png(out / "wall.png", wall)
  save_png(out / "wall-mask.png", np.where(damaged, 255, 0).astype(np.uint8))

  common = ["--checkpoint", checkpoint, "--image", str(out / "wall.png")]
  _restore([*common, "--mask", str(out / "wall-mask.png"), "--out", str(out / "restored")])
  _restore([*common, "--detect-damage", "--out", str(out / "proposal")])
  proposal = np.asarray(load_png(out / "proposal" / "mask.png")) == 255
  print(f"PSNR inside the damage: photograph {_masked_psnr(wall, clean, damaged):.2f} dB, restored with the drawn "
        f"mask {_masked_psnr(load_png(out / 'restored' / 'restored.png'), clean, damaged):.2f} dB, with the "
        f"detected mask {_masked_psnr(load_png(out / 'proposal' / 'restored.png'), clean, damaged):.2f} dB. The "
        f"detected mask finds {proposal[damaged].mean():.0%} of the damage; {proposal[~damaged].mean():.1%} of the "
        "intact pixels are proposed too.")


def load_png(path: Path) -> np.ndarray:
  with Image.open(path) as image:
    return np.asarray(image)


def main(argv: list[str] | None = None) -> int:
  """The command line (`argv` without the program name; default sys.argv[1:]); returns the exit status."""
  return cli.run(lambda _: run(Path(FLAGS.out), FLAGS.checkpoint, FLAGS.steps, FLAGS.height, FLAGS.width, FLAGS.seed),
                 FLAGS, __doc__, argv)


if __name__ == "__main__":
  sys.exit(main())
