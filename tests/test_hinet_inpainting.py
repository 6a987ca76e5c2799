"""HINet as an inpainting model: mask input, harmonic prefill, composited output, and the inpainting losses."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config

from muraljax import tasks
from muraljax.metrics import lpips
from muraljax.models import partitioning
from muraljax.models.hinet import HINet
from muraljax.models.prefill import harmonic_fill
from muraljax.tasks.hinet import hole_l1, perceptual_loss, psnr_loss

TINY = dict(wf=4, depth=2, hin_levels=(0,))


def _batch(side: int = 32, seed: int = 0) -> dict[str, jnp.ndarray]:
  rng = np.random.default_rng(seed)
  clean = rng.random((2, side, side, 3)).astype(np.float32)
  mask = np.zeros((2, side, side, 1), np.float32)
  mask[:, 8:20, 6:22] = 1
  return {"clean": jnp.asarray(clean), "mask": jnp.asarray(mask), "damaged": jnp.asarray(clean * (1 - mask))}


def _tiny_inpaint_config(**loss):
  config = load_config("hinet", "inpaint_small")
  config.model.update(wf=4, depth=2, hin_levels=(0,))
  config.loss.update(loss)
  return config


@pytest.mark.parametrize("mask_input, prefill", [(True, "harmonic"), (True, "none"), (False, "harmonic")])
def test_all_intact_mask_returns_the_input_exactly(mask_input, prefill):
  model = HINet(**TINY, mask_input=mask_input, prefill=prefill)
  image = jnp.asarray(np.random.default_rng(1).random((1, 24, 40, 3)), jnp.float32)
  intact = jnp.zeros((1, 24, 40, 1))
  params = model.init(jax.random.PRNGKey(0), image, intact)
  params = jax.tree.map(lambda p: p + 0.1, params)  # a trained-looking model, whose residual is not zero
  for out in model.apply(params, image, intact):
    np.testing.assert_array_equal(np.asarray(out), np.asarray(image))


def test_untrained_model_is_its_prefill_and_trained_outputs_change_only_holes():
  batch = _batch()
  model = HINet(**TINY, mask_input=True, prefill="harmonic")
  params = model.init(jax.random.PRNGKey(0), batch["damaged"], batch["mask"])
  _, out = model.apply(params, batch["damaged"], batch["mask"])
  np.testing.assert_allclose(np.asarray(out), np.asarray(harmonic_fill(batch["damaged"], batch["mask"])), atol=1e-6)
  shifted = jax.tree.map(lambda p: p + 0.05, params)
  _, out = model.apply(shifted, batch["damaged"], batch["mask"])
  intact = np.broadcast_to(np.asarray(batch["mask"]) < 0.5, out.shape)
  np.testing.assert_array_equal(np.asarray(out)[intact], np.asarray(batch["damaged"])[intact])
  assert np.abs(np.asarray(out) - np.asarray(harmonic_fill(batch["damaged"], batch["mask"])))[~intact].max() > 1e-3


def test_mask_channel_adds_an_input_channel_and_the_mask_is_required():
  image, mask = jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 16, 1))
  params = partitioning.maybe_unbox(HINet(**TINY, mask_input=True).init(jax.random.PRNGKey(0), image, mask)["params"],
                                     False)
  assert params["conv_01"]["kernel"].shape == (3, 3, 4, 4) and params["conv_02"]["kernel"].shape == (3, 3, 4, 4)
  with pytest.raises(ValueError, match="needs the damage mask"):
    HINet(**TINY, mask_input=True).init(jax.random.PRNGKey(0), image)
  with pytest.raises(ValueError, match="blind one takes none"):
    HINet(**TINY).init(jax.random.PRNGKey(0), image, mask)
  with pytest.raises(ValueError, match="Unknown HINet prefill 'telea'"):
    HINet(**TINY, prefill="telea").init(jax.random.PRNGKey(0), image, mask)


def test_gradients_reach_every_parameter_through_the_prefill():
  config = _tiny_inpaint_config(perceptual_weight=0.0)
  task = tasks.get_task(config)
  batch = _batch()
  params = task.init(jax.random.PRNGKey(0), batch)
  grads = jax.grad(lambda p: task.loss(p, batch, jax.random.PRNGKey(1))[0])(params)
  norms = {"/".join(str(k.key) for k in path): float(jnp.linalg.norm(g))
           for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]}
  assert all(np.isfinite(list(norms.values())))
  assert norms["last/kernel"] > 0 and norms["sam12/conv2/kernel"] > 0


def test_overfitting_one_batch_lowers_the_inpainting_loss():
  config = _tiny_inpaint_config(perceptual_weight=0.1)
  task = tasks.get_task(config)
  batch = _batch(seed=3)
  params = task.init(jax.random.PRNGKey(0), batch)
  loss_fn = jax.jit(jax.value_and_grad(lambda p: task.loss(p, batch, jax.random.PRNGKey(0))[0]))
  first, _ = loss_fn(params)
  for _ in range(30):
    loss, grads = loss_fn(params)
    params = jax.tree.map(lambda p, g: p - 3e-3 * g / (jnp.linalg.norm(g) + 1e-8), params, grads)
  assert float(loss) < float(first) - 0.05


def test_hole_l1_on_hand_checked_values():
  pred = jnp.zeros((1, 2, 2, 1))
  target = jnp.asarray([[[[0.1], [0.2]], [[0.3], [0.4]]]])
  mask = jnp.asarray([[[[1.0], [0.0]], [[0.0], [0.0]]]])
  # (6 * 0.1 + 0.2 + 0.3 + 0.4) / 4
  assert float(hole_l1(pred, target, mask, 6.0)) == pytest.approx(1.5 / 4)
  assert float(hole_l1(pred, target, mask, 1.0)) == pytest.approx(1.0 / 4)


def test_psnr_loss_is_the_papers_and_perceptual_loss_is_lpips():
  target = jnp.full((2, 32, 32, 3), 0.5)
  pred = target + jnp.asarray([0.1, 0.01])[:, None, None, None]
  expected = 0.5 * 10 / math.log(10) * np.mean(np.log([0.01 + 1e-8, 1e-4 + 1e-8]))
  assert float(psnr_loss(pred, target, 0.5)) == pytest.approx(expected, rel=1e-5)
  params = {"params": lpips.load_params()}
  assert float(perceptual_loss(params, target, target)) == pytest.approx(0.0, abs=1e-6)
  noisy = jnp.clip(target + 0.2 * jax.random.normal(jax.random.PRNGKey(0), target.shape), 0, 1)
  assert float(perceptual_loss(params, noisy, target)) == pytest.approx(float(lpips.LPIPS()(noisy, target).mean()),
                                                                         rel=1e-5)


def test_loss_reports_each_configured_term():
  batch = _batch()
  task = tasks.get_task(_tiny_inpaint_config())
  _, metrics = task.loss(task.init(jax.random.PRNGKey(0), batch), batch, jax.random.PRNGKey(0))
  assert set(metrics) == {"loss_stage1", "loss_stage2", "loss_hole_l1", "loss_perceptual"}
  blind = tasks.get_task(load_config("hinet", "smoke"))
  assert blind.blind and not task.blind
  with pytest.raises(ValueError, match="must be >= 0"):
    tasks.get_task(_tiny_inpaint_config(hole_l1_weight=-1.0))


@pytest.mark.parametrize("variant", ["inpaint", "inpaint_small"])
def test_inpaint_configs_are_mask_aware_and_the_paper_stays_blind(variant):
  config = load_config("hinet", variant)
  assert config.model.mask_input and config.model.prefill == "harmonic"
  assert config.loss.hole_l1_weight > 0 and config.loss.perceptual_weight > 0
  paper = load_config("hinet")
  assert not paper.model.mask_input and paper.model.prefill == "none"
  assert paper.loss.hole_l1_weight == 0 and paper.loss.perceptual_weight == 0 and paper.loss.psnr_weight == 0.5
  assert load_config("arin").model.hinet.prefill == "none"
