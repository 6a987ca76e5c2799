"""Contour maps that condition DiffuMural: faint outlines inside the damage ("self-guidance") plus intact edges.

The paper pulls faint outlines out of the damaged area with K-means (K = 2) on its colours. `contour_map` does
this on two pixel sets separately, each with its own two-means clustering:

* the damaged pixels themselves: faded or stained paint still shows its outlines with low contrast, and two
  colour clusters separate the figure from its ground whatever the contrast;
* a band of `band` intact pixels around the damage: the outlines that run into it, traced as region boundaries
  right up to the damage's edge.

A contour pixel is one whose right or lower neighbour in the same set has the other cluster label, so the
damage's own edge (where the two sets meet) never counts. A set whose clusters are not clearly apart
(centroid distance below `min_separation` times the within-cluster RMS spread, or below `min_contrast`) is
texture or noise, not two regions, and adds nothing; a flat fill (black holes) gives one cluster and nothing.
Elsewhere in the intact area, edges are the thresholded Sobel gradient magnitude of the luminance, except next
to the damage, whose edge is no contour of the painting.

Everything is NumPy and deterministic: the clusters start at the two extremes of the colours' principal axis.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_KMEANS_ITERATIONS = 10


def contour_map(image: np.ndarray, mask: np.ndarray, *, band: int = 3, edge_threshold: float = 0.15,
                min_separation: float = 4.0, min_contrast: float = 0.01) -> np.ndarray:
  """The contour condition of one damaged image.

  Args:
    image: the damaged image, float [H, W, 3] in [0, 1].
    mask: [H, W, 1] or [H, W], 1 (or True) = damaged; values >= 0.5 count as damaged.
    band: width in pixels of the intact band around the damage that is clustered with its own two-means.
    edge_threshold: Sobel gradient magnitude (in intensity units: 1 = a black-to-white step) above which an intact
      pixel is an edge.
    min_separation: a clustered set counts as two regions only when its centroids are at least this many
      within-cluster RMS spreads apart.
    min_contrast: ... and at least this far apart in RGB (intensity units).

  Returns:
    float32 [H, W, 1], 1 on contours, 0 elsewhere.
  """
  image, mask = np.asarray(image, np.float32), np.asarray(mask)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"contour_map needs an RGB image [H, W, 3], got shape {image.shape}; convert it to RGB.")
  if mask.shape[:2] != image.shape[:2] or mask.size != image.shape[0] * image.shape[1]:
    raise ValueError(f"The mask {mask.shape} does not match the image {image.shape}; pass one mask value per "
                     "pixel, [H, W] or [H, W, 1].")
  damaged = mask.reshape(image.shape[:2]) >= 0.5
  near_damage = ndimage.binary_dilation(damaged, np.ones((2 * band + 1,) * 2, bool)) if band else damaged
  ring = near_damage & ~damaged
  contours = np.zeros(damaged.shape, bool)
  for pixels in (damaged, ring):
    contours |= _two_means_boundaries(image, pixels, min_separation, min_contrast)
  touches_damage = ndimage.binary_dilation(damaged, np.ones((3, 3), bool))
  contours |= (sobel_magnitude(image) > edge_threshold) & ~touches_damage
  return contours[..., None].astype(np.float32)


def _two_means_boundaries(image: np.ndarray, pixels: np.ndarray, min_separation: float,
                          min_contrast: float) -> np.ndarray:
  """bool [H, W]: pixels of the set whose right or lower neighbour in the set has the other two-means cluster."""
  boundaries = np.zeros(pixels.shape, bool)
  colours = image[pixels].astype(np.float64)
  if len(colours) < 2:
    return boundaries
  labels, centroids = _two_means(colours)
  spread = np.sqrt(np.mean(np.sum((colours - centroids[labels]) ** 2, axis=-1)))
  distance = np.linalg.norm(centroids[1] - centroids[0])
  if distance < max(min_contrast, min_separation * spread):
    return boundaries
  label_map = np.full(pixels.shape, -1, np.int8)
  label_map[pixels] = labels
  for neighbour in (label_map[:, 1:], label_map[1:, :]):
    here = label_map[:neighbour.shape[0], :neighbour.shape[1]]
    differs = (here >= 0) & (neighbour >= 0) & (here != neighbour)
    boundaries[:neighbour.shape[0], :neighbour.shape[1]] |= differs
  return boundaries


def _two_means(colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """K-means with K = 2 on colours [N, 3]: (labels int [N], centroids [2, 3]), deterministic.

  The centroids start at the colours with the smallest and largest projection on the principal axis.
  """
  centred = colours - colours.mean(axis=0)
  axis = np.linalg.eigh(centred.T @ centred)[1][:, -1]
  projection = centred @ axis
  centroids = colours[[np.argmin(projection), np.argmax(projection)]]
  labels = np.zeros(len(colours), np.int64)
  for _ in range(_KMEANS_ITERATIONS):
    distances = np.sum((colours[:, None, :] - centroids[None]) ** 2, axis=-1)
    new_labels = np.argmin(distances, axis=-1)
    for k in range(2):
      if np.any(new_labels == k):
        centroids[k] = colours[new_labels == k].mean(axis=0)
    if np.array_equal(new_labels, labels):
      break
    labels = new_labels
  return labels, centroids


def sobel_magnitude(image: np.ndarray) -> np.ndarray:
  """float64 [H, W]: Sobel gradient magnitude of the luminance (mean of the channels) of `image` [H, W, C], borders
  replicated; a unit step edge gives 1."""
  luminance = np.asarray(image, np.float64).mean(axis=-1)
  return np.hypot(ndimage.sobel(luminance, 0, mode="nearest"), ndimage.sobel(luminance, 1, mode="nearest")) / 4.0
