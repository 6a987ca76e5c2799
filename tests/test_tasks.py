"""The task interface the tools share: what each family reads to restore, whether it is blind or sampled, the
multiple its input sides need, and the example batch params are initialised from."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config, tiny_diffumural_config

from muraljax import tasks
from muraljax.data import damage_types
from muraljax.data.contours import contour_map
from muraljax.data.murals import generate_mural
from muraljax.restore.model import MODELS


def spec(task, side: int = 32) -> dict[str, tuple]:
  return {name: (value.shape, value.dtype) for name, value in task.inputs(2, side, side + 8).items()}


@pytest.mark.parametrize("family, variant, blind", [("hinet", "smoke", True), ("hinet", "inpaint_small", False),
                                                     ("car", "smoke", True), ("arin", "smoke", True)])
def test_deterministic_families_read_the_image_and_the_mask_unless_blind(family, variant, blind):
  task = tasks.get_task(load_config(family, variant))
  assert task.blind == blind and not task.sampled and task.size_multiple == 1
  expected = {"damaged": ((2, 32, 40, 3), jnp.float32)} | ({} if blind else {"mask": ((2, 32, 40, 1), jnp.float32)})
  assert spec(task) == expected


@pytest.mark.parametrize("contours", [False, True])
def test_diffumural_is_sampled_and_also_reads_contours_and_the_damage_type(contours):
  config = tiny_diffumural_config()
  config.data.contours = contours
  task = tasks.get_task(config)
  assert not task.blind and task.sampled and task.size_multiple == task.scales[-1].unet_config.size_multiple
  assert set(spec(task)) == {"damaged", "mask", "damage_type"} | ({"contour"} if contours else set())
  assert spec(task)["damage_type"] == ((2,), jnp.int32)


def test_the_example_batch_is_one_training_patch_of_the_inputs():
  config = load_config("hinet", "inpaint_small")
  batch = tasks.example_batch(tasks.get_task(config), config)
  side = config.data.patch_size
  assert {name: value.shape for name, value in batch.items()} == {"damaged": (1, side, side, 3),
                                                                  "mask": (1, side, side, 1)}


def test_restore_offers_the_families_that_say_they_restore():
  assert set(tasks.names()) == {"hinet", "car", "arin", "diffumural"}
  assert MODELS == ("hinet", "arin", "diffumural")
  with pytest.raises(ValueError, match="Unknown task 'nope'"):
    tasks.task_type("nope")


def test_a_host_batch_is_completed_with_the_inputs_the_task_derives():
  images = np.stack([generate_mural(seed, 24, 32) for seed in range(2)]).astype(np.float32) / 255
  masks = np.zeros((2, 24, 32, 1), np.float32)
  masks[:, 8:16, 10:20] = 1.0
  batch = {"damaged": images * (1 - masks), "mask": masks, "clean": images}
  names = tasks.get_task(tiny_diffumural_config()).inputs(2, 24, 32).keys()
  cracks = damage_types.DAMAGE_TYPES.index("cracks")
  completed = tasks.complete_batch(names, batch, cracks)
  assert set(completed) == {"damaged", "mask", "contour", "damage_type"}
  for i in range(2):
    np.testing.assert_array_equal(completed["contour"][i], contour_map(batch["damaged"][i], masks[i]))
  np.testing.assert_array_equal(completed["damage_type"], [cracks, cracks])
  assert tasks.complete_batch(names, completed)["contour"] is completed["contour"]  # given entries are kept
  assert set(tasks.complete_batch(["damaged"], batch)) == {"damaged"}  # a blind task reads the image alone
