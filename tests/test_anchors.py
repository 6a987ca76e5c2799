"""Classical inpainting anchors and the comparison table they share with the models."""

from __future__ import annotations

import numpy as np
import pytest

from muraljax.data.murals import generate_mural
from muraljax.evaluate import anchors


@pytest.fixture(scope="module")
def cases() -> list[anchors.Case]:
  images = [generate_mural(seed, 80, 90) for seed in range(2)]
  return anchors.validation_cases(images, crop=64, seed=0)


def test_validation_cases_are_seeded_centre_crops_with_box_and_stroke_masks(cases):
  assert [case.kind for case in cases] == ["boxes", "strokes"] * 2
  assert all(case.clean.shape == (64, 64, 3) and case.mask.shape == (64, 64) and case.mask.any() for case in cases)
  np.testing.assert_array_equal(cases[0].clean, generate_mural(0, 80, 90)[8:72, 13:77])
  again = anchors.validation_cases([generate_mural(seed, 80, 90) for seed in range(2)], crop=64, seed=0)
  assert all(np.array_equal(a.mask, b.mask) for a, b in zip(cases, again))


def test_every_anchor_fills_holes_better_than_the_damaged_input(cases):
  methods = anchors.classical_anchors()
  assert set(methods) == {"damaged input", "OpenCV Telea (r=5)", "OpenCV Navier-Stokes (r=5)",
                          "scikit-image biharmonic", "muraljax harmonic prefill"}
  results = anchors.compare(methods, cases)
  damaged = results["damaged input"]["all"]
  for name, result in results.items():
    assert set(result) == {"all", "boxes", "strokes", "seconds_per_image"}
    if name != "damaged input":
      assert result["all"]["psnr_masked"] > damaged["psnr_masked"] + 5
      assert result["all"]["lpips"] < damaged["lpips"] and result["all"]["ssim"] > damaged["ssim"]
  table = anchors.markdown(results, "boxes").splitlines()
  assert table[0] == "| method | PSNR mask | PSNR | SSIM | LPIPS | s/image |" and len(table) == 2 + len(methods)


def test_a_method_that_changes_intact_pixels_is_refused(cases):
  with pytest.raises(ValueError, match="changed intact pixels"):
    anchors.compare({"blur": lambda image, mask: (image // 2).astype(np.uint8)}, cases[:1])
  with pytest.raises(ValueError, match="returned float64"):
    anchors.compare({"float": lambda image, mask: image / 255.0}, cases[:1])
