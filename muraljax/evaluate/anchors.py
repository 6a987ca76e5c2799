"""Classical inpainting beside the models: the same holes filled by OpenCV and scikit-image, scored alike.

A validation set here is held-out photographs, each cut to a centre crop and damaged twice with masks of its own
(seeded): `boxes` (1-3 rectangles, 10-40% of each side) and `strokes` (free-form brush strokes), the usual
inpainting benchmark masks (muraljax.data.degrade). Every method fills the same holes; per case and method:

  psnr_masked   PSNR over the damaged pixels          psnr    PSNR of the whole image
  ssim          SSIM of the whole image               lpips   LPIPS (AlexNet) of the whole image

all from muraljax.metrics.psnr_ssim and muraljax.metrics.lpips, averaged over cases. The classical anchors are
'damaged input' (holes black), OpenCV Telea and Navier-Stokes (`cv2.inpaint`, radius 5) and scikit-image's
biharmonic inpainting, and the harmonic fill the inpainting models start from (muraljax.models.prefill); OpenCV
comes with the `anchors` extra (`pip install -e .[anchors]`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from muraljax.data import degrade
from muraljax.metrics import lpips, psnr_ssim
from muraljax.metrics.image_files import to_uint8
from muraljax.models import prefill

MASK_KINDS = {"boxes": degrade.box_mask, "strokes": degrade.stroke_mask}
SCORES = ("psnr_masked", "psnr", "ssim", "lpips")
INPAINT_RADIUS = 5
Inpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (uint8 [H, W, 3], bool [H, W]) -> uint8 [H, W, 3]


@dataclasses.dataclass(frozen=True)
class Case:
  """One validation image: `clean` uint8 [S, S, 3] and its `mask` bool [S, S] (True = damaged) of `kind`."""

  name: str
  kind: str
  clean: np.ndarray
  mask: np.ndarray


def validation_cases(images: Sequence[np.ndarray], crop: int = 256, seed: int = 0) -> list[Case]:
  """Two cases per image of `images` (uint8 [H, W, 3] each, e.g. an ImageFolder; its centre crop of side `crop`,
  with a boxes and a strokes mask)."""
  cases = []
  for i in range(len(images)):
    image = images[i]
    top, left = (image.shape[0] - crop) // 2, (image.shape[1] - crop) // 2
    clean = np.ascontiguousarray(image[top:top + crop, left:left + crop])
    for k, (kind, make_mask) in enumerate(MASK_KINDS.items()):
      mask = make_mask(np.random.default_rng([seed, i, k]), crop, crop)
      cases.append(Case(f"{i:03d}-{kind}", kind, clean, mask))
  return cases


def damaged_input(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """The holes blacked out, as the Dunhuang challenge presents them."""
  return np.where(mask[..., None], 0, image).astype(np.uint8)


def _opencv(flag_name: str) -> Inpainter:
  import cv2  # pylint: disable=g-import-not-at-top  # the optional 'anchors' extra

  flag = getattr(cv2, flag_name)
  return lambda image, mask: cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8), INPAINT_RADIUS, flag)


def _biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
  from skimage.restoration import inpaint_biharmonic  # pylint: disable=g-import-not-at-top

  filled = inpaint_biharmonic(image.astype(np.float64) / 255.0, mask, channel_axis=-1)
  return np.where(mask[..., None], np.clip(np.round(filled * 255.0), 0, 255), image).astype(np.uint8)


_converged_harmonic_fill = jax.jit(functools.partial(prefill.harmonic_fill, sweeps=prefill.CONVERGED_SWEEPS))


def _harmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
  filled = _converged_harmonic_fill(jnp.asarray(image, jnp.float32)[None] / 255.0,
                                    jnp.asarray(mask, jnp.float32)[None, ..., None])
  return np.where(mask[..., None], to_uint8(filled[0]), image)


def classical_anchors() -> dict[str, Inpainter]:
  """The classical methods by display name (needs opencv-python(-headless) and scikit-image), with the harmonic
  fill the inpainting models start from."""
  try:
    telea, navier_stokes = _opencv("INPAINT_TELEA"), _opencv("INPAINT_NS")
  except ImportError:
    raise ImportError("The classical anchors need OpenCV: pip install -e '.[anchors]' (opencv-python-headless).")
  return {"damaged input": damaged_input, "OpenCV Telea (r=5)": telea, "OpenCV Navier-Stokes (r=5)": navier_stokes,
          "scikit-image biharmonic": _biharmonic, "muraljax harmonic prefill": _harmonic}


def score(restored: np.ndarray, case: Case, lpips_metric: lpips.LPIPS) -> dict[str, float]:
  """SCORES of one restoration uint8 [S, S, 3] of `case`."""
  pred = jnp.asarray(restored, jnp.float32)[None] / 255.0
  clean = jnp.asarray(case.clean, jnp.float32)[None] / 255.0
  mask = jnp.asarray(case.mask, jnp.float32)[None, ..., None]
  return {"psnr_masked": float(psnr_ssim.psnr(pred, clean, mask)[0]), "psnr": float(psnr_ssim.psnr(pred, clean)[0]),
          "ssim": float(psnr_ssim.ssim(pred, clean)[0]), "lpips": float(lpips_metric(pred, clean)[0])}


def compare(methods: dict[str, Inpainter], cases: Sequence[Case],
            log: Callable[[str], None] = lambda message: None) -> dict[str, dict]:
  """{method: {'all' | mask kind: {score: mean}, 'seconds_per_image': s}} over `cases`. Every method gets the
  damaged input (holes black) and the mask, must keep every intact pixel (checked) and return the image's shape
  and dtype."""
  lpips_metric = lpips.LPIPS()
  results = {}
  for name, inpaint in methods.items():
    per_case, seconds = [], 0.0
    for case in cases:
      started = time.perf_counter()
      restored = inpaint(damaged_input(case.clean, case.mask), case.mask)
      seconds += time.perf_counter() - started
      if restored.shape != case.clean.shape or restored.dtype != np.uint8:
        raise ValueError(f"{name} returned {restored.dtype} {restored.shape} for a {case.clean.shape} image.")
      if not np.array_equal(restored[~case.mask], case.clean[~case.mask]):
        raise ValueError(f"{name} changed intact pixels of {case.name}; composite its output into the input.")
      per_case.append((case.kind, score(restored, case, lpips_metric)))
    groups = {"all": [s for _, s in per_case]} | {kind: [s for k, s in per_case if k == kind] for kind in MASK_KINDS}
    results[name] = {group: {key: float(np.mean([s[key] for s in scores])) for key in SCORES}
                     for group, scores in groups.items() if scores}
    results[name]["seconds_per_image"] = seconds / max(len(cases), 1)
    log(f"{name}: " + ", ".join(f"{key} {results[name]['all'][key]:.3f}" for key in SCORES))
  return results


def markdown(results: dict[str, dict], group: str = "all") -> str:
  """The comparison as a Markdown table (one row per method) for the cases of `group`."""
  lines = ["| method | PSNR mask | PSNR | SSIM | LPIPS | s/image |", "|---|---|---|---|---|---|"]
  for name, result in results.items():
    row = result[group]
    lines.append(f"| {name} | {row['psnr_masked']:.2f} | {row['psnr']:.2f} | {row['ssim']:.3f} | "
                 f"{row['lpips']:.3f} | {result['seconds_per_image']:.3f} |")
  return "\n".join(lines)
