"""HINet on murals. `--config configs/hinet.py[:variant]`.

Variants:
  (none) / paper  the paper's HINet: wf 64, depth 5, HIN at every level ("DR", as the deraining model),
                  256 px patches, global batch 64, Adam 2e-4 with cosine decay to 1e-7 over 400k steps,
                  gradient norm clipped at 0.01, PSNR loss weight 0.5 on both stages.
  db              as paper, with HIN only at levels 3-4 and Adam betas (0.9, 0.99) ("DB", as the deblurring model).
  smoke           a miniature (wf 8, depth 3, 64 px patches, 300 steps) that trains on 2 CPU cores in minutes.
  inpaint         as paper, made an inpainting model: the mask as an input channel, holes prefilled by the
                  harmonic fill (256 sweeps per level), hole-weighted L1 + PSNR + LPIPS losses, damage masks
                  like the Dunhuang challenge's (random walks, strokes, boxes) plus cracks and flaking, fp32
                  Adam 2e-4 with gradients clipped at 1.
  inpaint_small   inpaint at a width that trains on 2 CPU cores (wf 16, depth 4, 128 px patches, batch 8): the
                  shipped `inpaint-small` model (muraljax/weights).
"""

import ml_collections

from muraljax.config import base_config
from muraljax.data import pipeline
from muraljax.models import prefill

VARIANTS = ("paper", "db", "smoke", "inpaint", "inpaint_small")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "paper"
  if variant not in VARIANTS:
    raise ValueError(f"Unknown hinet config variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
  c = base_config("hinet")

  c.model = ml_collections.ConfigDict()
  c.model.wf = 64  # Width of the first level; level i has wf * 2**i channels.
  c.model.depth = 5  # Encoder levels; inputs are padded to multiples of 2**(depth - 1).
  c.model.relu_slope = 0.2  # LeakyReLU negative slope.
  c.model.hin_levels = (0, 1, 2, 3, 4)  # Encoder levels whose first conv is followed by Half Instance Norm.
  c.model.mask_input = False  # Give the network the damage mask as a 4th input channel.
  # 'harmonic': fill the holes with the classical harmonic fill (muraljax.models.prefill) before the network, which
  # then learns a correction; 'none': the network sees the damaged pixels as they are.
  c.model.prefill = "none"
  c.model.prefill_sweeps = 16  # Jacobi sweeps per pyramid level of the harmonic prefill.

  # Loss terms (muraljax.tasks.hinet); 0 switches a term off. The paper uses the PSNR loss alone.
  c.loss = ml_collections.ConfigDict()
  c.loss.psnr_weight = 0.5  # Weight of the PSNR loss (-PSNR in dB) on each stage's output.
  c.loss.hole_l1_weight = 0.0  # Weight of the hole-weighted L1 loss on each stage's output.
  c.loss.hole_weight = 6.0  # In that L1, a damaged pixel counts this many times an intact one.
  c.loss.perceptual_weight = 0.0  # Weight of the LPIPS (AlexNet) loss on the final output.

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
  if variant.startswith("inpaint"):
    c.model.mask_input = True
    c.model.prefill = "harmonic"
    c.model.prefill_sweeps = prefill.CONVERGED_SWEEPS
    c.loss.psnr_weight = 0.05
    c.loss.hole_l1_weight = 1.0
    c.loss.perceptual_weight = 0.5
    c.optimizer.grad_clip_norm = 1.0
    c.optimizer.warmup_steps = 1000
    c.data.degradation.weights = ml_collections.ConfigDict({
        "random_walk": 2.0, "strokes": 2.0, "boxes": 1.5, "cracks": 1.0, "flaking": 1.0, "collapse": 0.5,
        "fading": 0.0, "real": 0.0})
    # The challenge's own masks damage 1.5-13% of a painting (10th-90th percentile, median 4.4%); the upper limit
    # is higher so that large box holes are trained too. Add real masks with degradation.mask_folder and a weight
    # for 'real' (see docs/inpainting.md).
    c.data.degradation.min_hole_ratio = 0.02
    c.data.degradation.max_hole_ratio = 0.4
  if variant == "inpaint_small":
    c.model.wf = 16
    c.model.depth = 4
    c.data.patch_size = 128
    c.data.eval_images = 16
    c.train.batch_size = 8
    c.train.num_steps = 4000
    c.train.log_every = 50
    c.train.eval_every = 500
    c.train.checkpoint_every = 250
    c.train.ema_decay = 0.999
    c.optimizer.learning_rate = 1e-3
    c.optimizer.end_learning_rate = 1e-5
    c.optimizer.warmup_steps = 200
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
