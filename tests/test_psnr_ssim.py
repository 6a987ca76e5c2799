"""PSNR / SSIM / DSSIM against NumPy formulas and scikit-image."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from muraljax.metrics import psnr_ssim

SSIM_TOLERANCE = 1e-4


def _noisy_pair(rng: np.random.Generator, shape: tuple[int, ...], noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
  target = rng.random(shape, dtype=np.float32)
  pred = np.clip(target + noise * rng.standard_normal(shape), 0.0, 1.0).astype(np.float32)
  return pred, target


def _structured_pair(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
  """Smooth gradients and a sinusoid (realistic local statistics), with a noisy, darkened prediction."""
  batch, height, width, channels = shape
  rows = np.linspace(0.0, 1.0, height)[:, None, None]
  cols = np.linspace(0.0, 1.0, width)[None, :, None]
  phases = np.linspace(0.0, 2.0, channels)[None, None, :]
  image = 0.5 * rows + 0.3 * cols + 0.2 * np.sin(12.0 * rows * cols + phases)
  target = np.clip(image[None] + 0.05 * rng.standard_normal(shape), 0.0, 1.0).astype(np.float32)
  pred = np.clip(0.9 * target + 0.08 * rng.standard_normal(shape), 0.0, 1.0).astype(np.float32)
  return pred, target


def _random_mask(rng: np.random.Generator, shape: tuple[int, ...], fraction: float = 0.3) -> np.ndarray:
  return (rng.random((*shape[:3], 1)) < fraction).astype(np.float32)


def _skimage_ssim(pred: np.ndarray, target: np.ndarray, full: bool = False):
  return structural_similarity(
      pred,
      target,
      gaussian_weights=True,
      sigma=1.5,
      use_sample_covariance=False,
      data_range=1.0,
      channel_axis=-1,
      full=full,
  )


def _crop(ssim_map: np.ndarray) -> np.ndarray:
  border = psnr_ssim.SSIM_BORDER
  return ssim_map[border:-border, border:-border]


# PSNR


def test_psnr_matches_numpy_and_skimage():
  pred, target = _noisy_pair(np.random.default_rng(0), (3, 17, 23, 3))
  ours = np.asarray(psnr_ssim.psnr(pred, target))
  mse = np.mean((pred.astype(np.float64) - target) ** 2, axis=(1, 2, 3))
  np.testing.assert_allclose(ours, 10.0 * np.log10(1.0 / mse), rtol=1e-5)
  reference = [peak_signal_noise_ratio(target[i], pred[i], data_range=1.0) for i in range(3)]
  np.testing.assert_allclose(ours, reference, rtol=1e-5)


def test_psnr_respects_max_val():
  pred, target = _noisy_pair(np.random.default_rng(1), (2, 8, 8, 3))
  ours = psnr_ssim.psnr(255.0 * pred, 255.0 * target, max_val=255.0)
  np.testing.assert_allclose(ours, psnr_ssim.psnr(pred, target), rtol=1e-5)


def test_masked_psnr_uses_only_damaged_pixels():
  rng = np.random.default_rng(2)
  pred, target = _noisy_pair(rng, (3, 16, 20, 3))
  mask = _random_mask(rng, pred.shape)
  # Intact pixels must not matter: corrupt them heavily.
  pred_outside_damage = np.where(mask == 1, pred, 1.0 - target)
  ours = np.asarray(psnr_ssim.psnr(pred_outside_damage, target, mask))
  for i in range(3):
    damaged = mask[i, ..., 0] == 1
    mse = np.mean((pred[i][damaged].astype(np.float64) - target[i][damaged]) ** 2)
    np.testing.assert_allclose(ours[i], 10.0 * np.log10(1.0 / mse), rtol=1e-5)
  np.testing.assert_array_equal(psnr_ssim.damaged_pixel_count(mask), mask.sum(axis=(1, 2, 3)))


def test_identical_images_give_the_psnr_cap_not_inf_or_nan():
  image = np.random.default_rng(3).random((2, 8, 8, 3), dtype=np.float32)
  np.testing.assert_array_equal(psnr_ssim.psnr(image, image), [psnr_ssim.PSNR_CAP_DB] * 2)
  np.testing.assert_array_equal(psnr_ssim.psnr(image, image, max_val=255.0), [psnr_ssim.PSNR_CAP_DB] * 2)


def test_empty_mask_is_finite_and_has_zero_count():
  pred, target = _noisy_pair(np.random.default_rng(4), (2, 16, 16, 3))
  mask = np.zeros((2, 16, 16, 1), np.float32)
  mask[1, 4:9, 4:9] = 1.0
  psnr = np.asarray(psnr_ssim.psnr(pred, target, mask))
  ssim = np.asarray(psnr_ssim.ssim(pred, target, mask))
  assert np.all(np.isfinite(psnr)) and np.all(np.isfinite(ssim))
  assert psnr[0] == psnr_ssim.PSNR_CAP_DB and ssim[0] == 1.0
  np.testing.assert_array_equal(psnr_ssim.damaged_pixel_count(mask), [0.0, 25.0])
  np.testing.assert_array_equal(psnr_ssim.ssim_scored_pixel_count(mask), [0.0, 16.0])


def test_mean_over_scored_skips_images_with_nothing_to_score():
  values = jnp.array([100.0, 20.0, 30.0])
  np.testing.assert_allclose(psnr_ssim.mean_over_scored(values, jnp.array([0.0, 5.0, 1.0])), 25.0)
  assert psnr_ssim.mean_over_scored(values, jnp.zeros(3)) == 0.0


def test_scored_counts_out_images_without_damage_a_metric_can_see():
  mask = np.zeros((3, 16, 16, 1), np.float32)
  mask[1, 0:2, 0:2] = 1.0  # damage only within the SSIM border
  mask[2, 6:9, 6:9] = 1.0
  scored = {name: np.asarray(values).tolist() for name, values in psnr_ssim.scored(mask).items()}
  assert scored == {"psnr_masked": [False, True, True], "ssim_masked": [False, False, True],
                    "dssim_masked": [False, False, True], "lpips_masked": [False, True, True]}


def test_whole_and_masked_are_the_single_metrics():
  pred, target = _noisy_pair(np.random.default_rng(12), (2, 16, 16, 3))
  mask = _random_mask(np.random.default_rng(13), pred.shape)
  values = psnr_ssim.whole_and_masked(pred, target, mask)
  for name, metric in (("psnr", psnr_ssim.psnr), ("ssim", psnr_ssim.ssim), ("dssim", psnr_ssim.dssim)):
    np.testing.assert_allclose(values[name], metric(pred, target), rtol=1e-6)
    np.testing.assert_allclose(values[f"{name}_masked"], metric(pred, target, mask), rtol=1e-6)


def test_wrong_mask_shape_says_what_to_do():
  image = np.zeros((1, 16, 16, 3), np.float32)
  with pytest.raises(ValueError, match=r"\[B, H, W, 1\]"):
    psnr_ssim.psnr(image, image, np.zeros((1, 16, 16, 3), np.float32))


# SSIM


@pytest.mark.parametrize("shape", [(2, 11, 11, 3), (2, 32, 32, 3), (1, 24, 57, 3), (2, 40, 19, 1)])
@pytest.mark.parametrize("make_pair", [_noisy_pair, _structured_pair], ids=["random", "structured"])
def test_ssim_matches_skimage(shape, make_pair):
  pred, target = make_pair(np.random.default_rng(5), shape)
  ours = np.asarray(psnr_ssim.ssim(pred, target))
  reference = [_skimage_ssim(pred[i], target[i]) for i in range(shape[0])]
  np.testing.assert_allclose(ours, reference, atol=SSIM_TOLERANCE)
  np.testing.assert_allclose(psnr_ssim.dssim(pred, target), 1.0 - ours, atol=1e-6)


def test_ssim_map_is_skimage_full_map_without_the_border():
  pred, target = _structured_pair(np.random.default_rng(6), (1, 30, 26, 3))
  _, reference_map = _skimage_ssim(pred[0], target[0], full=True)
  ours = np.asarray(psnr_ssim.ssim_map(pred, target))[0]
  np.testing.assert_allclose(ours, _crop(reference_map), atol=SSIM_TOLERANCE)


def test_ssim_of_an_image_with_itself_is_one():
  image = _structured_pair(np.random.default_rng(7), (2, 20, 20, 3))[1]
  np.testing.assert_allclose(psnr_ssim.ssim(image, image), 1.0, atol=1e-6)
  np.testing.assert_allclose(psnr_ssim.dssim(image, image), 0.0, atol=1e-6)


def test_masked_ssim_with_full_mask_equals_unmasked():
  pred, target = _noisy_pair(np.random.default_rng(8), (2, 24, 31, 3))
  mask = np.ones((2, 24, 31, 1), np.float32)
  np.testing.assert_allclose(psnr_ssim.ssim(pred, target, mask), psnr_ssim.ssim(pred, target), atol=1e-6)


def test_masked_ssim_is_skimage_map_mean_over_damaged_interior_pixels():
  rng = np.random.default_rng(9)
  pred, target = _structured_pair(rng, (2, 28, 33, 3))
  mask = _random_mask(rng, pred.shape, fraction=0.4)
  ours = np.asarray(psnr_ssim.ssim(pred, target, mask))
  for i in range(2):
    _, reference_map = _skimage_ssim(pred[i], target[i], full=True)
    damaged = _crop(mask[i, ..., 0]) == 1
    np.testing.assert_allclose(ours[i], _crop(reference_map)[damaged].mean(), atol=SSIM_TOLERANCE)


def test_ssim_rejects_images_smaller_than_the_window():
  image = np.zeros((1, 10, 32, 3), np.float32)
  with pytest.raises(ValueError, match="at least 11x11"):
    psnr_ssim.ssim(image, image)


# jit and dtypes


def test_metrics_jit_and_accept_bfloat16():
  pred, target = _noisy_pair(np.random.default_rng(10), (2, 16, 16, 3))
  mask = _random_mask(np.random.default_rng(11), pred.shape)
  for metric in (psnr_ssim.psnr, psnr_ssim.ssim, psnr_ssim.dssim):
    eager = metric(pred, target, mask)
    np.testing.assert_allclose(jax.jit(metric)(pred, target, mask), eager, rtol=1e-5, atol=1e-6)
    low_precision = metric(jnp.asarray(pred, jnp.bfloat16), jnp.asarray(target, jnp.bfloat16), mask)
    assert low_precision.dtype == jnp.float32
    assert np.all(np.isfinite(low_precision))
  identical = jnp.asarray(target, jnp.bfloat16)
  np.testing.assert_array_equal(psnr_ssim.psnr(identical, identical), [psnr_ssim.PSNR_CAP_DB] * 2)
