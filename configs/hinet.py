"""HINet on murals. `--config configs/hinet.py[:variant]`.

Variants:
  (none) / paper  the paper's HINet: wf 64, depth 5, HIN at every level ("DR", as the deraining model),
                  256 px patches, global batch 64, Adam 2e-4 with cosine decay to 1e-7 over 400k steps,
                  gradient norm clipped at 0.01, PSNR loss weight 0.5 on both stages.
  db              as paper, with HIN only at levels 3-4 and Adam betas (0.9, 0.99) ("DB", as the deblurring model).
  smoke           a miniature (wf 8, depth 3, 64 px patches, 300 steps) that trains on 2 CPU cores in minutes.
"""

import ml_collections

from muraljax.config import base_config
from muraljax.data import pipeline


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "paper"
  if variant not in ("paper", "db", "smoke"):
    raise ValueError(f"Unknown hinet config variant {variant!r}; choose paper, db or smoke.")
  c = base_config("hinet")

  c.model = ml_collections.ConfigDict()
  c.model.wf = 64  # Width of the first level; level i has wf * 2**i channels.
  c.model.depth = 5  # Encoder levels; inputs are padded to multiples of 2**(depth - 1).
  c.model.relu_slope = 0.2  # LeakyReLU negative slope.
  c.model.hin_levels = (0, 1, 2, 3, 4)  # Encoder levels whose first conv is followed by Half Instance Norm.

  c.loss = ml_collections.ConfigDict()
  c.loss.psnr_weight = 0.5  # Weight of the PSNR loss on each stage's output.

  c.data = pipeline.default_config()
  c.data.patch_size = 256

  c.train.batch_size = 64
  c.train.num_steps = 400_000
  c.optimizer.learning_rate = 2e-4
  c.optimizer.end_learning_rate = 1e-7
  c.optimizer.grad_clip_norm = 0.01

  if variant == "db":
    c.model.hin_levels = (3, 4)
    c.optimizer.b2 = 0.99
  if variant == "smoke":
    c.model.wf = 8
    c.model.depth = 3
    c.data.image_size = 128
    c.data.patch_size = 64
    c.data.num_images = 2000
    c.data.eval_images = 8
    c.data.eval_size = 64
    c.train.batch_size = 8
    c.train.num_steps = 300
    c.train.log_every = 25
    c.train.eval_every = 100
    c.train.checkpoint_every = 100
    c.optimizer.learning_rate = 2e-3
    c.optimizer.end_learning_rate = 1e-5
    c.optimizer.warmup_steps = 20
    c.optimizer.grad_clip_norm = 1.0
  return c
