"""The flip self-ensemble: its low-pass and view bookkeeping against NumPy/SciPy, and restoring through it."""

from __future__ import annotations

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import muraljax.restore as R
from muraljax.data.murals import generate_mural
from muraljax.restore import ensemble, shipped
from muraljax.restore.errors import RestoreError

_MIRRORS = (lambda x: x, lambda x: x[:, :, ::-1], lambda x: x[:, ::-1], lambda x: x[:, ::-1, ::-1])


def _low_pass_reference(x: np.ndarray) -> np.ndarray:
  return ndimage.gaussian_filter(x, (0, ensemble.LOW_PASS_SIGMA, ensemble.LOW_PASS_SIGMA, 0), mode="reflect",
                                 truncate=3.5)


def test_low_pass_is_scipys_gaussian_with_mirrored_borders():
  x = np.random.default_rng(0).normal(size=(2, 13, 21, 3)).astype(np.float32)
  np.testing.assert_allclose(ensemble.low_pass(jnp.asarray(x)), _low_pass_reference(x), atol=1e-5)
  np.testing.assert_allclose(ensemble.low_pass(jnp.full((1, 9, 9, 1), 0.3)), 0.3, atol=1e-6)  # constants stay


@pytest.mark.parametrize("size", ensemble.SIZES)
def test_a_mirror_symmetric_model_is_its_own_ensemble(size):
  x = np.random.default_rng(1).uniform(size=(3, 10, 14, 3)).astype(np.float32)
  np.testing.assert_allclose(ensemble.combine(ensemble.views(jnp.asarray(x), size) ** 2, size), x ** 2, atol=1e-6)


@pytest.mark.parametrize("size", [2, 4])
def test_combine_matches_a_numpy_reference_for_a_position_dependent_model(size):
  x = np.random.default_rng(2).uniform(size=(2, 10, 14, 3)).astype(np.float32)
  weights = np.random.default_rng(3).uniform(size=(1, 10, 14, 3)).astype(np.float32)
  model = lambda batch: batch * weights  # not mirror-symmetric, so every view restores differently
  outputs = [mirror(model(mirror(x))) for mirror in _MIRRORS[:size]]  # each mirror is its own inverse
  expected = outputs[0] + _low_pass_reference(np.mean(outputs, axis=0) - outputs[0])
  got = ensemble.combine(model(ensemble.views(jnp.asarray(x), size)), size)
  np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.fixture(scope="module")
def damaged_mural() -> tuple[np.ndarray, np.ndarray]:
  image = generate_mural(11, 64, 96)
  mask = np.zeros((64, 96), bool)
  mask[16:40, 30:70] = True
  return np.where(mask[..., None], 0, image).astype(np.uint8), mask


def test_the_shipped_model_restores_through_the_ensemble_as_the_reference_says(damaged_mural):
  damaged, mask = damaged_mural
  single, paired = R.load(ensemble=1), R.load(ensemble=2)
  restored = paired.restore(damaged, mask)
  np.testing.assert_array_equal(restored[~mask], damaged[~mask])
  first = single.restore(damaged, mask).astype(np.float32)
  mirrored = single.restore(np.ascontiguousarray(damaged[:, ::-1]), np.ascontiguousarray(mask[:, ::-1]))
  mean = (first + mirrored[:, ::-1]) / 2
  expected = first + _low_pass_reference((mean - first)[None])[0]
  assert np.abs(mirrored[:, ::-1] - first)[mask].mean() > 0.5  # the views differ, so the check means something
  assert np.abs(restored - expected)[mask].max() <= 1.5  # the reference rounds each view to uint8 first


@pytest.mark.parametrize("size", [0, 3, 8])
def test_an_ensemble_of_other_sizes_is_refused(size):
  with pytest.raises(RestoreError, match=r"--ensemble .* use one of \[1, 2, 4\]"):
    R.load(ensemble=size)


def test_a_run_restores_with_the_ensemble_its_config_names_unless_told_otherwise(tmp_path):
  run = tmp_path / "run"
  shutil.copytree(shipped.WEIGHTS / shipped.DEFAULT, run)
  config = json.loads((run / "config.json").read_text())
  config["restore"] = {"ensemble": 4}
  (run / "config.json").write_text(json.dumps(config))
  assert R.load(str(run)).settings.ensemble == 4
  assert R.load(str(run), ensemble=1).settings.ensemble == 1
  del config["restore"]  # a run trained before the setting existed restores each tile alone
  (run / "config.json").write_text(json.dumps(config))
  assert R.load(str(run)).settings.ensemble == 1


def test_the_shipped_model_restores_with_the_two_view_ensemble_its_card_documents():
  assert R.load().settings.ensemble == 2
  assert "`restore.ensemble=2`" in (shipped.WEIGHTS / shipped.DEFAULT / shipped.CARD_FILE).read_text()
