"""Photographic corruptions: noise statistics, JPEG quality ordering, determinism, pipeline hook, bad values."""

from __future__ import annotations

import numpy as np
import pytest

from muraljax.data import pipeline, robustness
from muraljax.data.errors import DataError
from muraljax.metrics import psnr_ssim


def _corruption(**fields):
  config = robustness.default_config()
  config.update(fields)
  return config


def _textured_image(seed: int = 0, side: int = 64) -> np.ndarray:
  """Smooth colour gradients plus fine texture, kept away from 0 and 1 so noise is rarely clipped."""
  y, x = np.mgrid[0:side, 0:side] / side
  texture = np.random.default_rng(seed).uniform(-0.1, 0.1, (side, side, 3))
  base = np.stack([0.3 + 0.4 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * np.sin(8 * x)], axis=-1)
  return np.clip(base + texture, 0.1, 0.9).astype(np.float32)


@pytest.mark.parametrize("sigma", [8, 16])
def test_gaussian_noise_has_the_requested_std_and_depends_only_on_the_seed(sigma):
  image = np.full((128, 128, 3), 0.5, np.float32)
  noisy = robustness.corrupt(image, np.random.default_rng(1), _corruption(noise_sigmas=(sigma,)))
  difference = noisy - image
  assert noisy.dtype == np.float32 and noisy.shape == image.shape
  assert abs(difference.mean()) < 0.002
  np.testing.assert_allclose(difference.std(), sigma / 255, rtol=0.03)
  np.testing.assert_array_equal(noisy, robustness.corrupt(image, np.random.default_rng(1),
                                                          _corruption(noise_sigmas=(sigma,))))
  assert not np.array_equal(noisy, robustness.corrupt(image, np.random.default_rng(2),
                                                      _corruption(noise_sigmas=(sigma,))))


def test_jpeg_changes_the_image_more_at_lower_quality_and_is_deterministic():
  image = _textured_image()
  psnr = {}
  for quality in (95, 60, 30, 5):
    encoded = robustness.corrupt(image, np.random.default_rng(0), _corruption(jpeg_qualities=(quality,)))
    assert encoded.dtype == np.float32 and encoded.shape == image.shape
    assert not np.array_equal(encoded, image)
    np.testing.assert_array_equal(encoded, robustness.jpeg_reencode(image, quality))
    psnr[quality] = float(psnr_ssim.psnr(encoded[None], image[None])[0])
  assert psnr[95] > psnr[60] > psnr[30] > psnr[5], psnr


def test_probability_and_choice_are_per_example_and_nothing_configured_leaves_the_rng_alone():
  image = _textured_image()
  config = _corruption(noise_sigmas=(16,), jpeg_qualities=(30,), probability=0.5)
  outcomes = set()
  for seed in range(40):
    out = robustness.corrupt(image, np.random.default_rng(seed), config)
    outcomes.add("clean" if np.array_equal(out, image) else
                 "jpeg" if np.array_equal(out, robustness.jpeg_reencode(image, 30)) else "noise")
  assert outcomes == {"clean", "jpeg", "noise"}

  rng = np.random.default_rng(3)
  assert robustness.corrupt(image, rng, robustness.default_config()) is image
  assert rng.random() == np.random.default_rng(3).random()


def test_pipeline_corrupts_only_the_damaged_input_for_training_and_eval():
  def data_config(**corruption):
    config = pipeline.default_config()
    config.num_images, config.image_size, config.patch_size = 8, 64, 32
    config.eval_images, config.eval_size = 2, 32
    config.corruption.update(corruption)
    return config

  plain, noisy = data_config(), data_config(noise_sigmas=(16,))
  for load in (lambda c: next(iter(pipeline.train_loader(c, global_batch_size=2, seed=0, shard_index=0,
                                                         shard_count=1))),
               lambda c: pipeline.eval_batches(c, batch_size=2)[0]):
    before, after = load(plain), load(noisy)
    np.testing.assert_array_equal(before["clean"], after["clean"])
    np.testing.assert_array_equal(before["mask"], after["mask"])
    np.testing.assert_allclose((after["damaged"] - before["damaged"]).std(), 16 / 255, rtol=0.15)
    np.testing.assert_array_equal(after["damaged"], load(noisy)["damaged"])


@pytest.mark.parametrize("fields, message", [
    (dict(jpeg_qualities=(0,)), "integers from 1 to 95"),
    (dict(jpeg_qualities=(100,)), "integers from 1 to 95"),
    (dict(jpeg_qualities=(60.5,)), "integers from 1 to 95"),
    (dict(noise_sigmas=(-8,)), "finite numbers >= 0"),
    (dict(probability=1.5), r"probability must lie in \[0, 1\]"),
])
def test_bad_corruption_values_raise_data_error(fields, message):
  with pytest.raises(DataError, match=message):
    robustness.check_config(_corruption(**fields))
  config = pipeline.default_config()
  config.corruption.update(fields)
  with pytest.raises(DataError, match=message):
    pipeline.eval_batches(config, batch_size=2)
