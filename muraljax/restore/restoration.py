"""Restoring a whole photograph with a trained model: tiled predictions, blended, composited into the input.

Inpainting (the default) runs the model only on the tiles that hold damaged pixels and replaces only those pixels:
every intact pixel of the result is the input's pixel, bit for bit. `enhance` replaces every pixel with the
model's output (global enhancement, as ARIN does on photographs with diffuse damage). DiffuMural draws `samples`
restorations with seeds derived from `seed`; the result is their per-pixel mean and the uncertainty map their
per-pixel standard deviation (averaged over RGB, in intensity units, 0 on intact pixels).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import numpy as np

from muraljax.data.damage_types import DAMAGE_TYPES
from muraljax.metrics.image_files import to_uint8
from muraljax.restore import ensemble
from muraljax.restore.errors import RestoreError
from muraljax.restore.model import TilePredictor, TrainedModel
from muraljax.restore.tiling import ProgressBar, make_tiling, run_tiles

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Settings:
  """How a photograph is restored (the command-line options of the same names)."""

  tile: int = 256
  overlap: int = 32
  batch: int = 4
  samples: int = 1
  seed: int = 0
  enhance: bool = False
  damage_type: str = "unknown"  # DiffuMural's condition: one of muraljax.data.damage_types.DAMAGE_TYPES
  ensemble: int = 1  # mirrored views of each tile a deterministic model restores (muraljax.restore.ensemble)

  def check(self, model: TrainedModel) -> None:
    """Raises RestoreError for settings that cannot work with `model`."""
    if self.tile < 16:
      raise RestoreError(f"--tile {self.tile} is too small for the models' downsampling; use 16 or more (256 is "
                         "the paper's patch size).")
    if not 0 <= 2 * self.overlap <= self.tile:
      raise RestoreError(f"--overlap {self.overlap} must be between 0 and half of --tile {self.tile}; use e.g. "
                         f"{self.tile // 8}.")
    if self.batch < 1 or self.samples < 1:
      raise RestoreError("--batch and --samples must be at least 1.")
    if not model.sampled and self.samples > 1:
      raise RestoreError(f"{model.name} is deterministic, so --samples {self.samples} would repeat one result; "
                         "drop --samples or use a diffumural checkpoint for an uncertainty map.")
    if self.damage_type not in DAMAGE_TYPES:
      raise RestoreError(f"Unknown --damage-type {self.damage_type!r}; use one of {list(DAMAGE_TYPES)}.")
    if not model.sampled and self.damage_type != "unknown":
      raise RestoreError(f"{model.name} takes no damage type (only diffumural is conditioned on one); drop "
                         "--damage-type.")
    if self.ensemble not in ensemble.SIZES:
      raise RestoreError(f"--ensemble {self.ensemble} is not a number of mirrored views; use one of "
                         f"{list(ensemble.SIZES)}.")
    if model.sampled and self.ensemble > 1:
      raise RestoreError(f"{model.name} draws restorations at random and averages --samples of them, so drop "
                         "--ensemble (it is for the deterministic hinet and arin).")
    if self.enhance and not model.blind:
      raise RestoreError(f"--enhance needs a blind model (the paper's hinet or arin), which restores every pixel; "
                         f"this {model.name} only inpaints the masked ones, so drop --enhance.")


@dataclasses.dataclass(frozen=True)
class Result:
  """`restored` uint8 [H, W, 3]; `uncertainty` float32 [H, W] (DiffuMural with samples > 1) or None."""

  restored: np.ndarray
  uncertainty: np.ndarray | None
  statistics: dict[str, object]
  notes: list[str]


def _duration(seconds: float) -> str:
  return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class Restorer:
  """Restores one height x width photograph with `model`; the model is compiled on first use."""

  def __init__(self, model: TrainedModel, settings: Settings, height: int, width: int, log: Log,
               predictors: dict[tuple, TilePredictor] | None = None, progress: bool = True):
    """`predictors`: compiled models to share with other Restorers of `model` (keyed by batch and tile shape);
    `progress`: draw a progress bar on stderr."""
    settings.check(model)
    self.model, self.settings, self.log, self.progress = model, settings, log, progress
    self.tiling = make_tiling(height, width, settings.tile, settings.overlap)
    self._predictors = {} if predictors is None else predictors
    self.compute_seconds = 0.0

  @property
  def batch(self) -> int:
    """Tiles per model call: `settings.batch`, or fewer when the photograph has fewer tiles."""
    return min(self.settings.batch, len(self.tiling.boxes))

  @property
  def predictor(self) -> TilePredictor:
    key = (self.batch, self.tiling.tile_shape, self.settings.damage_type, self.settings.ensemble)
    if key not in self._predictors:
      predictor = TilePredictor(self.model, self.batch, self.tiling.tile_shape,
                                DAMAGE_TYPES.index(self.settings.damage_type), self.settings.ensemble)
      self.log(f"Compiled {self.model.name} for batches of {self.batch} tiles of "
               f"{self.tiling.tile_shape[0]}x{self.tiling.tile_shape[1]} in {predictor.compile_seconds:.1f} s.")
      self._predictors[key] = predictor
    return self._predictors[key]

  def predict(self, image: np.ndarray, damaged: np.ndarray, indices: list[int], sample: int = 0) -> np.ndarray:
    """The blended model output float32 [H, W, 3] on the tiles `indices` of `image` float32 [H, W, 3] in [0, 1]
    (0 where no such tile reaches), with DiffuMural sample number `sample`."""
    inputs = {"damaged": image}
    if not self.model.blind:
      inputs["mask"] = damaged[..., None].astype(np.float32)
    batches = -(-len(indices) // self.batch)

    def on_batch(number: int, seconds: float) -> None:
      if number == 0 and sample == 0 and self.model.sampled:
        self._report_estimate(seconds, batches)

    label = f"sample {sample + 1}/{self.settings.samples}" if self.model.sampled else "tiles"
    started = time.perf_counter()
    fn = self.predictor.tile_fn(self.settings.seed, sample)
    progress = ProgressBar(len(indices), label) if self.progress else None
    output = run_tiles(fn, inputs, self.tiling, indices, self.batch, progress, on_batch)
    self.compute_seconds += time.perf_counter() - started
    return output

  def _report_estimate(self, first_batch_seconds: float, batches: int) -> None:
    total = first_batch_seconds * batches * self.settings.samples
    sampling = self.model.config.sampling
    self.log(f"Estimated time: {_duration(total)} on {jax.devices()[0].platform} for {self.settings.samples} "
             f"sample(s) x {batches} batch(es) of {self.batch} tiles, {sampling.sampler.upper()} with "
             f"{sampling.steps} steps (the first batch took {first_batch_seconds:.1f} s); press Ctrl-C to stop.")

  def restore(self, pixels: np.ndarray, damaged: np.ndarray, prediction: np.ndarray | None = None,
              save_sample: Callable[[int, np.ndarray], None] | None = None) -> Result:
    """Restores `pixels` uint8 [H, W, 3] where `damaged` bool [H, W] (everywhere when enhancing).

    `prediction`: the blind model's output over the whole image when already computed (by damage detection).
    `save_sample(k, uint8 [H, W, 3])` receives each DiffuMural sample, composited, as it is finished.
    """
    replaced = np.ones_like(damaged) if self.settings.enhance else damaged
    all_tiles = list(range(len(self.tiling.boxes)))
    indices = all_tiles if self.settings.enhance or prediction is not None else self.tiling.touching(damaged)
    statistics = {"tiles": len(all_tiles), "tiles_restored": len(indices), "tiles_per_call": self.batch,
                  "tile_shape": list(self.tiling.tile_shape)}
    if not replaced.any():
      return Result(pixels.copy(), None, statistics,
                    ["The mask is empty: there is nothing to restore, so restored.png is the input unchanged."])
    if prediction is not None:
      mean, spread = prediction, None
    else:
      self.log(f"Restoring {len(indices)} of {len(all_tiles)} tiles ({len(all_tiles) - len(indices)} hold no "
               f"damage) with {self.model.name} on {jax.devices()[0].platform}.")
      image = pixels.astype(np.float32) / 255.0
      mean, spread = self._sample(pixels, image, damaged, replaced, indices, save_sample)
    restored = np.where(replaced[..., None], to_uint8(mean), pixels)
    return Result(restored, spread, statistics, [])

  def _sample(self, pixels: np.ndarray, image: np.ndarray, damaged: np.ndarray, replaced: np.ndarray,
              indices: list[int], save_sample: Callable[[int, np.ndarray], None] | None
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-pixel mean float32 [H, W, 3] and RGB-averaged standard deviation [H, W] (None for one sample) of the
    model's outputs, by Welford's running update so only two images are held."""
    mean = np.zeros_like(image)
    sum_squares = np.zeros_like(image)
    for k in range(self.settings.samples):
      output = self.predict(image, damaged, indices, sample=k)
      if save_sample is not None and self.settings.samples > 1:
        save_sample(k, np.where(replaced[..., None], to_uint8(output), pixels))
      delta = output - mean
      mean += delta / (k + 1)
      sum_squares += delta * (output - mean)
    if self.settings.samples == 1:
      return mean, None
    spread = np.sqrt(sum_squares / self.settings.samples).mean(axis=-1)
    return mean, np.where(replaced, spread, 0.0).astype(np.float32)
