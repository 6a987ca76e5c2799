"""The Python API for notebooks and scripts: load a model once, restore arrays of any size.

    import muraljax.restore as R
    r = R.load()                          # the default shipped model; R.load("NAME") or R.load("runs/x")
    restored = r.restore(image, mask)     # image uint8 [H, W, 3], mask bool [H, W] (True = damaged)

`restore` returns uint8 [H, W, 3]: the damaged pixels restored, every intact pixel bit-identical to `image`. It
tiles large images exactly as `python -m muraljax.restore` does (the command line goes through `load` too), and
compiles the model once per tile batch shape, so restoring many images of one size compiles once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from muraljax.restore import shipped
from muraljax.restore.errors import RestoreError
from muraljax.restore.model import TilePredictor, TrainedModel, load_model
from muraljax.restore.restoration import Restorer, Result, Settings

DEFAULT_SAMPLES = 4
"""Restorations a sampled model (diffumural) draws by default, for their mean and uncertainty map."""


@dataclasses.dataclass
class MuralRestorer:
  """A loaded model and the restoration settings; see `load`."""

  model: TrainedModel
  settings: Settings
  shipped: bool
  log: Callable[[str], None] = lambda message: None
  progress: bool = False
  _predictors: dict[tuple, TilePredictor] = dataclasses.field(default_factory=dict, repr=False)

  def restorer(self, height: int, width: int) -> Restorer:
    """The tiled restoration of one height x width image, sharing compiled models with every other call."""
    return Restorer(self.model, self.settings, height, width, self.log, self._predictors, self.progress)

  def restore_result(self, image: np.ndarray, mask: np.ndarray) -> Result:
    """`restore` with its statistics and notes (a `Result`)."""
    _check_arrays(image, mask)
    return self.restorer(*image.shape[:2]).restore(image, mask)

  def restore(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3]: `image` (uint8 [H, W, 3]) with the pixels where `mask` (bool [H, W]) is True restored."""
    return self.restore_result(image, mask).restored


def load(name_or_path: str | None = None, *, model: str | None = None, tile: int = 256, overlap: int = 32,
         batch: int = 4, samples: int | None = None, seed: int = 0, damage_type: str = "unknown",
         enhance: bool = False, ensemble: int | None = None, log: Callable[[str], None] = lambda message: None,
         progress: bool = False) -> MuralRestorer:
  """The model to restore with: a shipped model's name (`shipped.names()`), a training run's path, or None for
  the default shipped model (`shipped.DEFAULT`). A shipped model whose files do not match its SHA256SUMS is
  refused. `model` names the family the checkpoint must hold; the other arguments are the command line's options
  of the same names (samples default: DEFAULT_SAMPLES for diffumural, else 1; ensemble default: the run's
  config restore.ensemble, 1 for runs that predate it); `log` receives progress notes
  (compilation, time estimates) and `progress` draws a progress bar on stderr. Raises RestoreError (a ValueError) with one
  sentence for anything that cannot be used."""
  path, is_shipped = shipped.resolve(name_or_path)
  trained = load_model(path, model)
  samples = samples or (DEFAULT_SAMPLES if trained.sampled else 1)
  ensemble = trained.config.restore.ensemble if ensemble is None else ensemble
  settings = Settings(tile, overlap, batch, samples, seed, enhance, damage_type, ensemble)
  settings.check(trained)
  return MuralRestorer(trained, settings, is_shipped, log, progress)


def _check_arrays(image: np.ndarray, mask: np.ndarray) -> None:
  if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
    raise RestoreError(f"image must be a uint8 numpy array [H, W, 3], got {_describe(image)}; convert it with "
                       "np.asarray(PIL.Image.open(path).convert('RGB')).")
  if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.ndim != 2:
    raise RestoreError(f"mask must be a bool numpy array [H, W] (True = damaged), got {_describe(mask)}; convert "
                       "it with mask > 127 or mask.astype(bool).")
  if mask.shape != image.shape[:2]:
    raise RestoreError(f"mask is {mask.shape[0]}x{mask.shape[1]} but image is {image.shape[0]}x{image.shape[1]} "
                       "(height x width); give a mask of the image's size.")
  if min(image.shape[:2]) < 1:
    raise RestoreError(f"image is empty ({image.shape[0]}x{image.shape[1]}); give an image with pixels.")


def _describe(value: object) -> str:
  if isinstance(value, np.ndarray):
    return f"{value.dtype} array of shape {value.shape}"
  return type(value).__name__
