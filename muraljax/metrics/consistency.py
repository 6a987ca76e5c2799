"""How well a restored region fits its surroundings: colour (CCON), texture (TCON) and edge (ECON) consistency.

No ground truth is needed, so the same scores rate restorations of real murals; on a benchmark, the ground
truth's own scores (the same functions on the clean image) say how consistent the real painting is there. Each
score lies in [0, 1], 1 = the restored region is indistinguishable from its surroundings in that respect.

Regions, for an image with damage mask M (values >= 0.5 = restored pixels):
  R    the restored pixels, M;
  S    the surroundings: intact pixels within `band` (default 8) pixels of R (chessboard distance);
  R_b  the rim of R: restored pixels within `rim` (default 3) pixels of an intact one;
  S_b  the rim of S: intact pixels within `rim` pixels of a restored one.

Definitions (images float in [0, 1], luminance L = mean of R, G, B):
  CCON = sum_b min(h_R(b), h_S(b)), the intersection of the normalised colour histograms of R and S over
         8 x 8 x 8 RGB bins (a channel value v falls in bin min(floor(8 v), 7)): the share of the restored
         colours that the surroundings also show.
  TCON = min(t_R, t_S) / max(t_R, t_S), t_X = mean over the pixels of X of the local standard deviation of L
         (population standard deviation over the 5x5 window around the pixel, image borders reflected): equal
         texture energy scores 1; a blurred (too smooth) or noisy (too busy) fill scores low. Two flat regions
         (both t < 1e-6) score 1.
  ECON = the F1 score 2 P Rc / (P + Rc) of edge continuation across the boundary. Edge pixels: where the Sobel
         gradient magnitude of L (scipy.ndimage.sobel along both axes, borders replicated, hypot, / 4, so a
         black-to-white step is 1) exceeds `edge_threshold` (0.15). Recall Rc: the share of edge pixels of S_b
         with an edge pixel of R_b within `rim` pixels (chessboard distance; the lines that reach the damage go
         on into it); precision P: the share of edge pixels of R_b with an edge pixel of S_b within `rim` pixels
         (the restoration draws no lines that start from nothing). No edge on either rim scores 1; edges on one
         rim only score 0.

Local standard deviations and edges of a region are computed on that region alone: every pixel outside it
takes the value of its nearest pixel inside, so the boundary between R and S (a seam) is neither texture nor an
edge of either side.

An image without restored pixels, or without intact surroundings, has nothing to score: NaN, counted out by
`score_batch`'s means.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from muraljax.data.contours import sobel_magnitude

BAND = 8
RIM = 3
EDGE_THRESHOLD = 0.15
_BINS = 8
_TEXTURE_WINDOW = 5


def regions(mask: np.ndarray, band: int = BAND, rim: int = RIM) -> dict[str, np.ndarray]:
  """R, S, R_b and S_b (see the module docstring) of a mask [H, W] or [H, W, 1], bool [H, W] each."""
  restored = np.asarray(mask).reshape(mask.shape[:2]) >= 0.5
  intact = ~restored
  near_restored = ndimage.binary_dilation(restored, np.ones((2 * band + 1,) * 2, bool))
  rim_structure = np.ones((2 * rim + 1,) * 2, bool)
  return {"restored": restored, "surroundings": near_restored & intact,
          "restored_rim": restored & ndimage.binary_dilation(intact, rim_structure),
          "surroundings_rim": intact & ndimage.binary_dilation(restored, rim_structure)}


def ccon(image: np.ndarray, mask: np.ndarray, band: int = BAND) -> float:
  """Colour consistency of the restored region of `image` [H, W, 3] with its surroundings (see module doc)."""
  parts = regions(mask, band)
  if not parts["restored"].any() or not parts["surroundings"].any():
    return float("nan")
  return float(np.minimum(_histogram(image[parts["restored"]]), _histogram(image[parts["surroundings"]])).sum())


def tcon(image: np.ndarray, mask: np.ndarray, band: int = BAND) -> float:
  """Texture consistency of the restored region of `image` [H, W, 3] with its surroundings (see module doc)."""
  parts = regions(mask, band)
  if not parts["restored"].any() or not parts["surroundings"].any():
    return float("nan")
  inside, around = (_local_std(_seen_from(image, parts[name]))[parts[name]].mean()
                    for name in ("restored", "surroundings"))
  if max(inside, around) < 1e-6:
    return 1.0
  return float(min(inside, around) / max(inside, around))


def econ(image: np.ndarray, mask: np.ndarray, rim: int = RIM, edge_threshold: float = EDGE_THRESHOLD) -> float:
  """Edge consistency across the boundary of the restored region of `image` [H, W, 3] (see module doc)."""
  parts = regions(mask, rim=rim)
  if not parts["restored_rim"].any() or not parts["surroundings_rim"].any():
    return float("nan")
  inner, outer = (parts[f"{name}_rim"] & (sobel_magnitude(_seen_from(image, parts[name])) > edge_threshold)
                  for name in ("restored", "surroundings"))
  if not inner.any() and not outer.any():
    return 1.0
  if not inner.any() or not outer.any():
    return 0.0
  reach = np.ones((2 * rim + 1,) * 2, bool)
  recall = (outer & ndimage.binary_dilation(inner, reach)).sum() / outer.sum()
  precision = (inner & ndimage.binary_dilation(outer, reach)).sum() / inner.sum()
  return float(0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision))


SCORES = {"ccon": ccon, "tcon": tcon, "econ": econ}


def score_batch(images: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
  """CCON, TCON and ECON of every image of a batch [B, H, W, 3] with masks [B, H, W, 1]: {name: [B]}, NaN where
  an image has nothing to score (average with np.nanmean)."""
  images, masks = np.asarray(images, np.float32), np.asarray(masks)
  return {name: np.array([score(image, mask) for image, mask in zip(images, masks)])
          for name, score in SCORES.items()}


def _histogram(pixels: np.ndarray) -> np.ndarray:
  """Normalised 8x8x8-bin RGB histogram of pixels [N, 3] in [0, 1]."""
  bins = np.clip((pixels * _BINS).astype(np.int64), 0, _BINS - 1)
  counts = np.bincount((bins[:, 0] * _BINS + bins[:, 1]) * _BINS + bins[:, 2], minlength=_BINS ** 3)
  return counts / counts.sum()


def _seen_from(image: np.ndarray, region: np.ndarray) -> np.ndarray:
  """`image` with every pixel outside `region` replaced by its nearest pixel inside."""
  _, (rows, cols) = ndimage.distance_transform_edt(~region, return_indices=True)
  return np.asarray(image)[rows, cols]


def _local_std(image: np.ndarray) -> np.ndarray:
  """Standard deviation of the luminance in the 5x5 window around every pixel, [H, W]."""
  luminance = np.asarray(image, np.float64).mean(axis=-1)
  mean = ndimage.uniform_filter(luminance, _TEXTURE_WINDOW, mode="reflect")
  mean_of_squares = ndimage.uniform_filter(luminance ** 2, _TEXTURE_WINDOW, mode="reflect")
  return np.sqrt(np.maximum(mean_of_squares - mean ** 2, 0.0))
