"""The conservator's tool: restore a photograph of a whole wall, with uncertainty and a provenance record.

In Python (muraljax/restore/api.py):

    import muraljax.restore as R
    r = R.load()                          # the default shipped model, or R.load(NAME_OR_RUN_PATH)
    restored = r.restore(image, mask)     # uint8 [H, W, 3], bool [H, W] -> uint8 [H, W, 3]

`python -m muraljax.restore [--checkpoint NAME_OR_RUN] --image wall.jpg (--mask mask.png | --detect-damage |
--enhance) --out FOLDER` (see __main__.py for every option; without --checkpoint the default shipped model)
writes FOLDER with:

  restored.png          the restoration: exactly the photograph's upright size; intact pixels bit-identical to the
                        decoded photograph (every pixel replaced only with --enhance)
  mask.png              the mask used, white = damaged (the proposal to edit, with --detect-damage)
  comparison.png        input | damage in red | restored (| uncertainty), each panel at most 1024 px
  provenance.json       hashes of input, mask, checkpoint and outputs; model, config, seed, mask statistics,
                        settings, software versions, times and notes (muraljax/restore/provenance.py)
  uncertainty.png/.tiff DiffuMural with several samples: per-pixel spread of the samples (PNG for viewing, TIFF
                        with the float values)
  samples/sample_NN.png DiffuMural: each sample; restored.png is their per-pixel mean
  damage_score.png      --detect-damage with a blind model: how much the model changed each pixel

Modules: api (`load`, the Python entry point), shipped (the models in muraljax/weights, checked against their
SHA256SUMS), io (reading the photograph, hashing, atomic output folder), masks (reading and checking the mask),
tiling (tiles, blending weights, batches, progress), model (checkpoint + config.json -> compiled tile predictor),
restoration (tiles -> composited result, samples), damage_detection (mask proposal), figures (comparison,
uncertainty view), provenance (the record), example (a self-contained walkthrough on a procedural mural).
"""

from muraljax.restore.api import MuralRestorer, load

__all__ = ["MuralRestorer", "load"]
