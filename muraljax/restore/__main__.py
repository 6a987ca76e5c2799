"""Restore a photograph of a damaged wall with a trained muraljax model, and document the intervention.

    python -m muraljax.restore --checkpoint runs/hinet --image wall.jpg --mask wall-mask.png --out wall-restored
    python -m muraljax.restore --checkpoint runs/hinet --image wall.jpg --detect-damage --out wall-proposal
    python -m muraljax.restore --checkpoint runs/diffumural --image wall.jpg --mask m.png --out r --samples 8 --seed 1

The output folder holds restored.png, mask.png, comparison.png and provenance.json (plus uncertainty.png/.tiff and
samples/ for DiffuMural, damage_score.png with --detect-damage); see muraljax/restore/__init__.py. The folder is
written in one step at the end (nothing half-written), an existing one is replaced only with --overwrite, and the
input files are only read. A mistake stops the command with one sentence saying what to do (exit status 2).
"""

from __future__ import annotations

import json
import signal
import sys
import time
import types

import numpy as np
from absl import flags
from PIL import Image

from muraljax import cli

from muraljax.data.damage_types import DAMAGE_TYPES
from muraljax.metrics.image_files import save_png, to_uint8
from muraljax.restore import api, damage_detection, figures, masks, photo_files, provenance, shipped
from muraljax.restore.errors import RestoreError
from muraljax.restore.model import MODELS, TrainedModel
from muraljax.restore.restoration import Restorer, Result


# The command's own flags, apart from absl's global ones: it also runs in-process, beside other commands.
FLAGS = flags.FlagValues()
flags.DEFINE_string("checkpoint", None, f"A shipped model's name (default: the shipped {shipped.DEFAULT!r}; others: "
                    f"{', '.join(shipped.names()) or 'none'}), or a muraljax training workdir (latest step), its "
                    "checkpoints/ folder or a checkpoints/<step> folder.", flag_values=FLAGS)
flags.DEFINE_string("image", None, "The photograph (JPEG, PNG, TIFF, ...); it is only read.", required=True,
                    flag_values=FLAGS)
flags.DEFINE_string("mask", None, "Damage mask drawn on the upright photograph: white = damaged, black or "
                    f"transparent = intact, grey thresholded at {masks.MASK_THRESHOLD * 100:.0f}% (a coloured or "
                    "mostly grey image is refused).", flag_values=FLAGS)
flags.DEFINE_bool("detect-damage", False, "Propose a mask (saved as mask.png to edit and re-use with --mask) and "
                  "restore with it.", flag_values=FLAGS)
flags.DEFINE_bool("enhance", False, "Global enhancement: replace every pixel by the blind model's output (hinet, "
                  "arin).", flag_values=FLAGS)
flags.DEFINE_string("out", None, "The output folder to create.", required=True, flag_values=FLAGS)
flags.DEFINE_enum("model", None, MODELS, "The family the checkpoint must hold (default: as trained).",
                  flag_values=FLAGS)
flags.DEFINE_integer("samples", None, "DiffuMural restorations to draw for the mean and uncertainty map (default "
                     f"{api.DEFAULT_SAMPLES}; 1 for the deterministic hinet and arin).", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "DiffuMural sampling seed (same seed, same result).", flag_values=FLAGS)
flags.DEFINE_enum("damage-type", "unknown", DAMAGE_TYPES, "DiffuMural's condition: the kind of damage the mask "
                  "marks.", flag_values=FLAGS)
flags.DEFINE_integer("ensemble", None, "hinet and arin: restore each tile and its mirror images (2: left-right; 4: "
                     "also up-down and both) and average their low frequencies, for slightly truer colour and "
                     "shading in the holes at that many times the time; 1 restores the tile alone (default: as the "
                     "model's config.json says, restore.ensemble).", flag_values=FLAGS)
flags.DEFINE_integer("tile", 256, "Tile side in pixels.", flag_values=FLAGS)
flags.DEFINE_integer("overlap", 32, "Least overlap of neighbouring tiles in pixels.", flag_values=FLAGS)
flags.DEFINE_integer("batch", 4, "Tiles per model call (lower it when memory runs out).", flag_values=FLAGS)
flags.DEFINE_bool("overwrite", False, "Replace --out if it exists.", flag_values=FLAGS)
flags.DEFINE_float("max-megapixels", photo_files.MAX_MEGAPIXELS, "Refuse larger photographs before decoding them (about "
                   f"{photo_files.GB_PER_MEGAPIXEL:g} GB of memory per megapixel).", flag_values=FLAGS)
flags.DEFINE_bool("invert-mask", False, "The mask is drawn black = damaged.", flag_values=FLAGS)
flags.DEFINE_float("detect-threshold", damage_detection.THRESHOLD, "--detect-damage: the blind model's per-pixel "
                   "change above which a pixel is proposed.", flag_values=FLAGS)
_DAMAGE_FLAGS = ("mask", "detect-damage", "enhance")


def _options() -> types.SimpleNamespace:
  """The parsed flags as attributes, `--detect-damage` as `.detect_damage`."""
  return types.SimpleNamespace(**{name.replace("-", "_"): FLAGS[name].value for name in FLAGS})


def _log(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def _damage(args: types.SimpleNamespace, photo: photo_files.Photograph, restorer: Restorer,
            model: TrainedModel) -> tuple[masks.Mask, np.ndarray | None, np.ndarray | None]:
  """The mask to restore with, the blind model's whole-image output when detection computed it, and the
  detection's damage score [H, W] (None unless detecting with a blind model)."""
  height, width = photo.pixels.shape[:2]
  if args.mask:
    return masks.read_mask(args.mask, height, width, args.invert_mask), None, None
  if args.enhance:
    return masks.Mask(np.ones((height, width), bool), {"kind": "whole image (--enhance)"}, []), None, None
  image = photo.pixels.astype(np.float32) / 255.0
  prediction = None
  if model.blind:
    _log("Detecting damage: restoring the whole image with the blind model.")
    prediction = restorer.predict(image, np.ones((height, width), bool), list(range(len(restorer.tiling.boxes))))
  damaged, method = damage_detection.propose_mask(image, prediction, args.detect_threshold)
  notes = ["mask.png was proposed by --detect-damage: check it, edit it (white = damaged) and re-run with "
           "--mask to restore with your corrections."]
  if not model.blind:
    notes.append(f"This {model.name} is mask-aware, so only the image cues (exposed plaster, digital black/white "
                 "fills) were used; a blind hinet or arin checkpoint also proposes the damage it recognises.")
  score = None if prediction is None else damage_detection.residual(image, prediction)
  return masks.Mask(damaged, {"kind": "detected", **method}, notes), prediction, score


def _write_outputs(out: photo_files.OutputFolder, photo: photo_files.Photograph, mask: masks.Mask, result: Result,
                   score: np.ndarray | None, threshold: float) -> None:
  """Every image output; damage_score.png shows the detection's `score` with `threshold` as mid-grey."""
  save_png(out.file("restored.png"), photo_files.as_saved(result.restored, photo.grayscale))
  save_png(out.file("mask.png"), np.where(mask.damaged, 255, 0).astype(np.uint8))
  if result.uncertainty is not None:
    save_png(out.file("uncertainty.png"), figures.uncertainty_image(result.uncertainty))
    Image.fromarray(result.uncertainty).save(out.file("uncertainty.tiff"))
  if score is not None:
    save_png(out.file("damage_score.png"), to_uint8(score / (2 * threshold)))
  save_png(out.file("comparison.png"),
           figures.comparison(photo.pixels, mask.damaged, result.restored, result.uncertainty))


def run(argv: list[str]) -> str:
  """Restores as the command line `argv` (without the program name) asks; returns the output folder. A mistake
  raises RestoreError or cli.CommandError."""
  cli.parse(FLAGS, argv)
  return _restore(argv)


def _restore(argv: list[str]) -> str:
  """`run` once FLAGS hold `argv`."""
  args = _options()
  started, clock = provenance.now(), time.perf_counter()
  # Whole-wall photographs exceed PIL's decompression-bomb guard; --max-megapixels is checked on the header instead.
  Image.MAX_IMAGE_PIXELS = None
  if args.max_megapixels <= 0:
    raise RestoreError(f"--max-megapixels must be positive, got {args.max_megapixels:g}.")
  chosen = [f"--{name}" for name in _DAMAGE_FLAGS if FLAGS[name].value]
  if not chosen:
    raise RestoreError("Say which pixels to restore: pass --mask, or --detect-damage to propose a mask, or "
                       "--enhance to restore every pixel.")
  if len(chosen) > 1:
    raise RestoreError(f"Pass only one of --mask, --detect-damage and --enhance, not {' and '.join(chosen)}.")
  protected = [path for path in (args.image, args.mask, args.checkpoint) if path]
  out = photo_files.OutputFolder(args.out, args.overwrite, protected)
  photo = photo_files.read_photograph(args.image, args.max_megapixels)
  loaded = api.load(args.checkpoint, model=args.model, tile=args.tile, overlap=args.overlap, batch=args.batch,
                    samples=args.samples, seed=args.seed, damage_type=args.damage_type, enhance=args.enhance,
                    ensemble=args.ensemble, log=_log, progress=True)
  model, settings = loaded.model, loaded.settings
  restorer = loaded.restorer(*photo.pixels.shape[:2])
  for note in (*model.notes, *photo.notes):
    _log(note)
  with out:
    mask, prediction, score = _damage(args, photo, restorer, model)
    for note in mask.notes:
      _log(note)
    save_sample = lambda k, image: save_png(out.file(f"samples/sample_{k + 1:02d}.png"),
                                            photo_files.as_saved(image, photo.grayscale))
    result = restorer.restore(photo.pixels, mask.damaged, prediction, save_sample)
    for note in result.notes:
      _log(note)
    _write_outputs(out, photo, mask, result, score, args.detect_threshold)
    outputs = out.hashes()
    record = provenance.record(
        command=["python", "-m", "muraljax.restore", *argv], started=started,
        seconds=time.perf_counter() - clock, photo=photo, mask=mask, model=model, settings=settings, result=result,
        compute_seconds=restorer.compute_seconds, outputs=outputs)
    out.file("provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    out.commit()
  _log(f"Wrote {out.path}: {', '.join(sorted([*outputs, 'provenance.json']))}.")
  return str(out.path)


def _interrupt(signum: int, frame: object) -> None:
  raise KeyboardInterrupt  # unwinds like Ctrl-C, so the half-written output folder is removed


def main(argv: list[str] | None = None) -> int:
  """The command line (`argv` without the program name; default sys.argv[1:]). Exit status as muraljax.cli: 0, 2 for a
  mistake (one sentence), 130 when stopped by SIGINT or SIGTERM (nothing written)."""
  argv = sys.argv[1:] if argv is None else argv
  previous = signal.signal(signal.SIGTERM, _interrupt)
  try:
    return cli.run(lambda _: _restore(argv), FLAGS, __doc__, argv)
  except KeyboardInterrupt:
    print("Stopped: nothing was written to --out.", file=sys.stderr)
    return 130
  finally:
    signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
  sys.exit(main())
