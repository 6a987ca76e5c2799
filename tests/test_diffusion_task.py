"""DiffuMural's task on the generic trainer: three scales trained in one step (finite per-scale losses,
overfitting, frozen base), collaborative inpainting (intact pixels exact, the cascade ablation), one scale, exact
resume, crop sizes and config errors, and the paper config traced with abstract inputs."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config, tiny_diffumural_config

from muraljax import tasks
from muraljax.data import damage_types, pipeline
from muraljax.train import loop
from muraljax.train.state import TrainState, compile_once, create_train_state, make_optimizer

SCALES = tuple(tiny_diffumural_config().model.scales)


def first_batch(config):
  batch = next(iter(pipeline.train_loader(config.data, global_batch_size=config.train.batch_size, seed=0)))
  return jax.tree.map(jnp.asarray, batch)


@pytest.fixture(scope="module")
def trained():
  """(task, batch, initial params, frozen-base params after one step, params after 60 steps on one batch with
  fixed timesteps and noise, the losses and the first step's metrics), sharing one compiled gradient program."""
  config = tiny_diffumural_config()
  config.diffusion.condition_dropout = 0.0
  config.optimizer.warmup_steps = 0
  task = tasks.get_task(config)
  batch = first_batch(config)
  state = create_train_state(task, make_optimizer(config.optimizer, num_steps=60), jax.random.PRNGKey(0), batch)
  initial = jax.tree.map(np.asarray, state.params)
  rng = jax.random.PRNGKey(1)  # The same timesteps and noise every step: one fixed regression problem.
  grad_fn = jax.jit(jax.value_and_grad(task.loss, has_aux=True))

  config.model.freeze_base = True
  frozen_tx = make_optimizer(config.optimizer, num_steps=60, trainable=tasks.get_task(config).trainable)
  frozen = TrainState.create(state.params, frozen_tx, state.rng)
  frozen = frozen.apply_gradients(grad_fn(frozen.params, batch, rng)[1])

  apply_gradients = jax.jit(TrainState.apply_gradients)
  losses, first_metrics = [], None
  for _ in range(60):
    (loss, metrics), grads = grad_fn(state.params, batch, rng)
    first_metrics = first_metrics or jax.tree.map(float, metrics)
    state = apply_gradients(state, grads)
    losses.append(float(loss))
  return task, batch, initial, frozen.params, state.params, losses, first_metrics


def test_one_step_trains_every_scale_and_every_loss_is_finite(trained):
  task, _, initial, _, _, losses, metrics = trained
  assert sorted(initial) == ["scale_16", "scale_4", "scale_8"]
  assert all(sorted(initial[key]) == ["controlnet", "unet"] for key in initial)
  expected = {f"scale_{side}/{name}" for side in SCALES
              for name in ("loss", "mse", "frequency", "cycle_contour", "cycle_known")}
  assert set(metrics) == expected
  assert all(np.isfinite(value) for value in metrics.values()) and np.isfinite(losses[0])
  assert losses[0] == pytest.approx(sum(metrics[f"scale_{side}/loss"] for side in SCALES), rel=1e-5)
  # The finer scales see the coarser estimate: their U-Nets take 3 more input channels.
  conv_in = [initial[s.key]["unet"]["conv_in"]["kernel"].shape[2] for s in task.scales]
  assert conv_in == [8, 11, 11]


def test_overfitting_one_batch_drives_the_loss_down(trained):
  losses = trained[-2]
  assert np.mean(losses[-5:]) < 0.3 * losses[0], losses


def test_frozen_base_trains_only_the_controlnets(trained):
  _, _, initial, frozen, _, _, _ = trained
  for key in initial:
    jax.tree.map(np.testing.assert_array_equal, frozen[key]["unet"], initial[key]["unet"])
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), frozen[key]["controlnet"],
                           initial[key]["controlnet"])
    assert changed["controlnet_mid_block"]["kernel"] and all(jax.tree.leaves(changed["controlnet_down_blocks_0"]))


def restored_and_intact(task, params, batch):
  restored = np.asarray(jax.jit(task.predict)(params, batch))
  intact = np.broadcast_to(np.asarray(batch["mask"]) < 0.5, restored.shape)
  return restored, intact


def test_predict_inpaints_only_the_damaged_pixels(trained):
  task, batch, _, _, params, _, _ = trained
  restored, intact = restored_and_intact(task, params, batch)
  damaged = np.asarray(batch["damaged"])
  np.testing.assert_array_equal(restored[intact], damaged[intact])
  assert np.all(np.isfinite(restored)) and restored.min() >= 0 and restored.max() <= 1
  assert not np.array_equal(restored[~intact], damaged[~intact])


def test_the_cascade_switch_changes_sampling(trained):
  task, batch, _, _, params, _, _ = trained
  config = tiny_diffumural_config()
  config.collaboration.cascade = True
  cascade = tasks.get_task(config)
  collaborative, intact = restored_and_intact(task, params, batch)
  plain, _ = restored_and_intact(cascade, params, batch)
  np.testing.assert_array_equal(plain[intact], collaborative[intact])
  assert np.abs(plain - collaborative)[~intact].mean() > 1e-3


def test_the_damage_type_the_pipeline_labels_conditions_every_scale():
  config = tiny_diffumural_config(scales=(8, 16))
  config.diffusion.condition_dropout = 0.0
  config.data.degradation.weights.update(random_walk=0.0, strokes=0.0, boxes=0.0)  # only the named types
  task, batch, rng = tasks.get_task(config), first_batch(config), jax.random.PRNGKey(2)
  assert batch["damage_type"].dtype == jnp.int32 and bool(jnp.all(batch["damage_type"] != damage_types.UNKNOWN_DAMAGE))
  params = compile_once(task.init, rng, batch)(rng, batch)
  per_scale = jax.jit(lambda b: task.loss(params, b, rng)[1])
  labelled = per_scale(batch)
  unknown = per_scale(batch | {"damage_type": jnp.full_like(batch["damage_type"], damage_types.UNKNOWN_DAMAGE)})
  for side in config.model.scales:
    assert labelled[f"scale_{side}/mse"] != unknown[f"scale_{side}/mse"], side
  # A batch without labels (a restoration, a dataset's own damage) is 'unknown' throughout.
  without = {k: v for k, v in batch.items() if k != "damage_type"}
  assert per_scale(without) == unknown


@pytest.fixture
def compilation_cache(tmp_path):
  """A persistent XLA cache for one test: runs of the same config compile each program once."""
  options = {"jax_compilation_cache_dir": str(tmp_path / "xla_cache"),
             "jax_persistent_cache_min_compile_time_secs": 0.0, "jax_persistent_cache_min_entry_size_bytes": 0}
  previous = {name: getattr(jax.config, name) for name in options}
  for name, value in options.items():
    jax.config.update(name, value)
  yield
  for name, value in previous.items():
    jax.config.update(name, value)


def read_losses(workdir: pathlib.Path) -> dict[int, float]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return {r["step"]: r["train/loss"] for r in map(json.loads, lines) if "train/loss" in r}


def test_one_scale_runs_through_the_trainer_and_evaluation_scores_consistency(tmp_path):
  """model.scales=(16,) is the plain single-scale model; the trainer logs its losses and evaluates masked quality
  and the consistency scores."""
  state = loop.run(tiny_diffumural_config(scales=(16,), num_steps=2, eval_every=2), str(tmp_path))
  assert sorted(state.params) == ["scale_16"] and state.params["scale_16"]["unet"]["conv_in"]["kernel"].shape[2] == 8
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train = next(r for r in records if "train/loss" in r)
  assert {k for k in train if k.startswith("train/scale_")} == {
      f"train/scale_16/{name}" for name in ("loss", "mse", "frequency", "cycle_contour", "cycle_known")}
  evaluation = next(r for r in records if "eval/psnr_masked" in r)
  for name in ("psnr_masked", "ssim_masked", "ccon", "tcon", "econ"):
    assert np.isfinite(evaluation[f"eval/{name}"]) and np.isfinite(evaluation[f"eval/damaged_{name}"]), name
  assert all(0 <= evaluation[f"eval/clean_{name}"] <= 1 for name in ("ccon", "tcon", "econ"))


@pytest.mark.slow  # The trainer's exact resume is tested fast with HINet (test_train.py).
def test_resumed_run_matches_an_uninterrupted_one(tmp_path, compilation_cache):
  config = tiny_diffumural_config(ema_decay=0.9)
  straight = loop.run(config, str(tmp_path / "straight"))
  loop.run(config, str(tmp_path / "resumed"), stop_after_step=4)
  resumed = loop.run(config, str(tmp_path / "resumed"))

  assert int(resumed.step) == int(straight.step) == 6
  assert read_losses(tmp_path / "resumed") == read_losses(tmp_path / "straight")
  jax.tree.map(np.testing.assert_array_equal, resumed.params, straight.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.ema_params, straight.ema_params)


@pytest.mark.parametrize("change, message", [
    (dict(patch_size=1000), r"data.patch_size=1000 does not fit model.scales=\(256, 512, 1024\): the training crop "
                            r"is the finest scale, so crop 1024 px, .* a multiple of 128 \(896 or 1024\)"),
    (dict(scales=(256, 500, 1024)), r"model.scales=\(256, 500, 1024\) must double .* e.g. \(256, 512, 1024\)"),
    (dict(scales=(200, 400, 800), patch_size=800),
     r"the coarsest side must be a multiple of 32 .* use e.g. \(192, 384, 768\) or \(224, 448, 896\)"),
    (dict(eval_size=300), r"data.eval_size=300 .* multiples of 128; use 256 or 384"),
    (dict(scales=(512, 1024)), r"scale_loss_weights=\(1.0, 1.0, 1.0\) must give one non-negative weight per scale"),
])
def test_crop_sizes_that_do_not_fit_the_scales_are_refused_naming_valid_ones(change, message):
  config = load_config("diffumural", "paper")
  config.model.scales = change.get("scales", config.model.scales)
  config.data.patch_size = change.get("patch_size", config.data.patch_size)
  config.data.eval_size = change.get("eval_size", config.data.eval_size)
  with pytest.raises(ValueError, match=message):
    tasks.get_task(config)


def test_bad_settings_and_missing_contours_are_refused():
  config = tiny_diffumural_config()
  config.sampling.sampler = "euler"
  with pytest.raises(ValueError, match="Unknown sampling.sampler 'euler'"):
    tasks.get_task(config)
  config = tiny_diffumural_config()
  config.diffusion.prediction = "x0"
  with pytest.raises(ValueError, match="Unknown prediction type 'x0'"):
    tasks.get_task(config)
  config = tiny_diffumural_config()
  config.collaboration.temperature = 0.0
  with pytest.raises(ValueError, match="must be positive"):
    tasks.get_task(config)
  config = tiny_diffumural_config()
  config.model.fdp_levels = (2,)
  with pytest.raises(ValueError, match=r"fdp_levels \(2,\) must be levels of the U-Net, 0 \(full size\) to 1"):
    tasks.get_task(config)
  task = tasks.get_task(tiny_diffumural_config())
  batch = {"damaged": jnp.zeros((1, 16, 16, 3)), "mask": jnp.zeros((1, 16, 16, 1))}
  with pytest.raises(ValueError, match="config.data.contours is set but the batch has no 'contour'"):
    task.conditions(batch)
  with pytest.raises(ValueError, match="Unknown diffumural config variant 'huge'"):
    load_config("diffumural", "huge")


def test_the_paper_train_step_traces_with_abstract_inputs():
  """The three-scale 1024 px config builds its params and gradients as shapes only (what ahead-of-time
  compilation starts from)."""
  config = load_config("diffumural", "paper")
  task = tasks.get_task(config)
  batch = {name: jax.ShapeDtypeStruct((2, 1024, 1024, channels), jnp.float32)
           for name, channels in (("damaged", 3), ("clean", 3), ("mask", 1), ("contour", 1))}
  params = jax.eval_shape(task.init, jax.random.PRNGKey(0), batch)
  assert [s.side for s in task.scales] == [256, 512, 1024] and task.size_multiple == 128
  assert sum(x.size for x in jax.tree.leaves(params)) > 500_000_000
  (loss, metrics), grads = jax.eval_shape(jax.value_and_grad(task.loss, has_aux=True), params, batch,
                                          jax.random.PRNGKey(1))
  assert loss.shape == () and "scale_1024/cycle_contour" in metrics
  assert jax.tree.map(lambda g: g.shape, grads) == jax.tree.map(lambda p: p.shape, params)
