"""CAR (content-adaptive resampler + EDSR upscaler) restoring murals. `--config configs/car.py[:variant]`.

The input is the damaged image and the target the clean one (see muraljax/tasks/car.py).

Variants:
  (none) / x4  the paper setting at x4: the official nets (resampler with 13x13 kernels, EDSR 32 x 256), trained
               as ARIN fine-tunes CAR on Dunhuang murals: 128 px patches, batch 10, 6k steps, Adam (eps 1e-6)
               at 1e-4 decaying (cosine) to 1e-6, CAR loss weights 1 / 0.005 / 0.001.
  x2           as x4 at scale 2 (7x7 kernels).
  smoke        x4 with a 4-block, 32-wide EDSR on 48 px patches, 200 steps: trains on 2 CPU cores in minutes.
               The resampler net has no width setting: it keeps its official size (9.9M parameters).
"""

import ml_collections

from muraljax.config import base_config
from muraljax.data import pipeline


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "x4"
  if variant not in ("x4", "x2", "smoke"):
    raise ValueError(f"Unknown car config variant {variant!r}; choose x4, x2 or smoke.")
  c = base_config("car")

  c.model = ml_collections.ConfigDict()
  c.model.scale = 2 if variant == "x2" else 4  # Downscaling factor s, 2 or 4; kernels have (3s + 1)^2 taps.
  c.model.n_resblocks = 32  # Residual blocks of the EDSR upscaler (official: 32).
  c.model.n_feats = 256  # Width of the EDSR upscaler (official: 256).

  c.loss = ml_collections.ConfigDict()
  c.loss.l1_weight = 1.0  # Weight of L1(restoration, clean).
  c.loss.tv_weight = 0.005  # Weight of the kernel-weighted total variation of the offsets.
  c.loss.offset_weight = 0.001  # Weight of the distance-weighted offset length.

  c.data = pipeline.default_config()
  c.data.patch_size = 128  # Must be a multiple of 8.

  c.train.batch_size = 10
  c.train.num_steps = 6_000  # ARIN's best CAR fine-tuning length; train longer from scratch (no init_from).
  c.train.eval_every = 1_000
  c.train.checkpoint_every = 1_000
  c.optimizer.learning_rate = 1e-4
  c.optimizer.end_learning_rate = 1e-6
  c.optimizer.eps = 1e-6

  if variant == "smoke":
    c.model.n_resblocks = 4
    c.model.n_feats = 32
    c.data.image_size = 128
    c.data.patch_size = 48
    c.data.num_images = 2000
    c.data.eval_images = 8
    c.data.eval_size = 64
    c.train.batch_size = 8
    c.train.num_steps = 200
    c.train.log_every = 25
    c.train.eval_every = 100
    c.train.checkpoint_every = 100
    c.optimizer.learning_rate = 1e-3
    c.optimizer.end_learning_rate = 1e-5
    c.optimizer.warmup_steps = 20
    c.optimizer.grad_clip_norm = 1.0
  return c
