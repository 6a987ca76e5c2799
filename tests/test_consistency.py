"""CCON / TCON / ECON: a faithful restoration scores as its ground truth does; wrong colour, texture or lines
score low; seams are not edges; nothing to score gives NaN."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from muraljax.metrics import consistency


def _stripes() -> np.ndarray:
  """Vertical black/white stripes 4 px wide on a textured ground, [64, 64, 3]."""
  rng = np.random.default_rng(0)
  columns = (np.arange(64) // 4) % 2
  image = np.repeat(np.repeat(columns[None, :, None], 64, 0), 3, 2).astype(np.float32) * 0.8 + 0.1
  return np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1).astype(np.float32)


def _hole() -> np.ndarray:
  mask = np.zeros((64, 64, 1), np.float32)
  mask[20:44, 20:44] = 1
  return mask


def _filled(image: np.ndarray, values) -> np.ndarray:
  out = image.copy()
  out[20:44, 20:44] = values
  return out


def test_a_faithful_restoration_is_consistent():
  image, mask = _stripes(), _hole()
  for score in consistency.SCORES.values():
    assert score(image, mask) > 0.85


def test_wrong_colour_texture_and_lines_score_low():
  image, mask = _stripes(), _hole()
  black = _filled(image, 0.0)
  grey = _filled(image, image[20:44, 20:44].mean())
  blurred = _filled(image, ndimage.uniform_filter(image, (1, 9, 1))[20:44, 20:44])
  assert consistency.ccon(black, mask) < 0.3 < 0.9 < consistency.ccon(image, mask)
  assert consistency.tcon(blurred, mask) < 0.5 * consistency.tcon(image, mask)
  assert consistency.tcon(grey, mask) < 0.1
  # A flat fill meets the stripes in a seam of strong steps, which is not an edge of either side.
  assert consistency.econ(grey, mask) == 0.0
  horizontal = _filled(image, np.swapaxes(image, 0, 1)[20:44, 20:44])
  assert consistency.econ(horizontal, mask) < 0.3 < 0.85 < consistency.econ(image, mask)


def test_batches_and_nothing_to_score():
  image, mask = _stripes(), _hole()
  scores = consistency.score_batch(np.stack([image, image]), np.stack([mask, np.zeros_like(mask)]))
  assert set(scores) == {"ccon", "tcon", "econ"}
  for values in scores.values():
    assert values.shape == (2,) and np.isfinite(values[0]) and np.isnan(values[1])
  flat = np.full((32, 32, 3), 0.5, np.float32)
  assert consistency.tcon(flat, _hole()[:32, :32]) == 1.0 and consistency.econ(flat, _hole()[:32, :32]) == 1.0
