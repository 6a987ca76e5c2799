"""DiffuMural on murals, one scale (256 px) for now. `--config configs/diffumural.py[:variant]`.

Variants:
  (none) / paper  a pixel-space diffusion U-Net of DDPM's 256 px width (diffusers UNet2DModel layout: channels
                  128-128-256-256-512-512, 2 ResNet blocks per level, self-attention at 16x16, ~114M params)
                  with a ControlNet copy of its encoder, conditioned on the masked image, the mask, contours
                  and the damage type; cosine schedule, v-prediction with min-SNR-5 weighting, 10% condition
                  dropout, AdamW 1e-4, EMA 0.9999, DDIM-50 inpainting for evaluation.
  smoke           a miniature (channels 16-32-32, one block per level, attention at 1/4 size, 32 px patches, 600
                  steps, DDIM-20) that trains on 2 CPU cores in minutes.
"""

import ml_collections

from muraljax.config import base_config
from muraljax.data import pipeline


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "paper"
  if variant not in ("paper", "smoke"):
    raise ValueError(f"Unknown diffumural config variant {variant!r}; choose paper or smoke.")
  c = base_config("diffumural")

  # The U-Net, in diffusers UNet2DModel's terms (muraljax/models/unet.py maps the params to its names).
  c.model = ml_collections.ConfigDict()
  c.model.block_out_channels = (128, 128, 256, 256, 512, 512)  # Channels per level; a level halves the size.
  # Block per level: 'DownBlock2D' (ResNet blocks) or 'AttnDownBlock2D' (each followed by self-attention).
  c.model.down_block_types = ("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D")
  # Decoder blocks from the lowest level up: 'UpBlock2D' or 'AttnUpBlock2D'.
  c.model.up_block_types = ("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4
  c.model.layers_per_block = 2  # ResNet blocks per encoder level (the decoder has one more).
  c.model.attention_head_dim = 64  # Channels per attention head; None = one head over all channels.
  c.model.norm_num_groups = 32  # GroupNorm groups; every channel count must divide by it.
  c.model.norm_eps = 1e-5  # GroupNorm epsilon.
  c.model.flip_sin_to_cos = True  # Sinusoidal time features ordered [cos, sin] (diffusers' default).
  c.model.freq_shift = 0  # Time-feature frequency shift (diffusers' downscale_freq_shift).
  c.model.controlnet_conditioning_channels = (16, 32)  # Widths of the ControlNet's condition-embedding convs.
  # Train only the ControlNet, keeping the U-Net fixed: for a U-Net trained before (init_from.checkpoint).
  c.model.freeze_base = False
  c.model.controlnet_from_base = True  # Start the ControlNet's encoder as a copy of the U-Net's.

  c.diffusion = ml_collections.ConfigDict()
  c.diffusion.schedule = "cosine"  # Noise schedule: 'cosine' (Nichol & Dhariwal) or 'linear' (DDPM).
  c.diffusion.num_timesteps = 1000  # Training timesteps T.
  c.diffusion.prediction = "v"  # What the network predicts: 'epsilon' or 'v'.
  c.diffusion.min_snr_gamma = 5.0  # Min-SNR-gamma loss weighting; 0 = plain MSE.
  # Probability that an example's conditions are zeroed (damage type 'unknown'), for classifier-free guidance.
  c.diffusion.condition_dropout = 0.1

  # Inpainting for evaluation (and restoration): see muraljax/diffusion/samplers.py.
  c.sampling = ml_collections.ConfigDict()
  c.sampling.sampler = "ddim"  # 'ddim' (eta below) or 'ddpm' (eta = 1; steps = num_timesteps is the original).
  c.sampling.steps = 50  # Denoising steps (noise levels).
  c.sampling.eta = 0.0  # DDIM stochasticity: 0 = deterministic.
  c.sampling.guidance_scale = 1.0  # Classifier-free guidance on the conditions; 1 = none (one pass per step).
  c.sampling.jump_length = 1  # RePaint resampling: levels jumped back ...
  c.sampling.jump_n_sample = 1  # ... and passes over each stretch; 1 = no resampling.
  c.sampling.seed = 0  # Sampling noise seed (evaluation is deterministic).

  c.data = pipeline.default_config()
  c.data.patch_size = 256
  c.data.contours = True

  c.train.batch_size = 32
  c.train.num_steps = 300_000
  c.train.ema_decay = 0.9999
  c.train.eval_every = 10_000
  c.train.checkpoint_every = 5_000
  c.optimizer.learning_rate = 1e-4
  c.optimizer.warmup_steps = 1_000
  c.optimizer.end_learning_rate = 1e-6
  c.optimizer.grad_clip_norm = 1.0

  if variant == "smoke":
    c.model.block_out_channels = (16, 32, 32)
    c.model.down_block_types = ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D")
    c.model.up_block_types = ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    c.model.layers_per_block = 1
    c.model.attention_head_dim = 32  # One head: attention over many tokens is memory-bound on CPUs.
    c.model.norm_num_groups = 8
    c.model.controlnet_conditioning_channels = (8, 16)
    c.sampling.steps = 20
    c.data.image_size = 128
    c.data.patch_size = 32
    c.data.num_images = 2000
    c.data.eval_images = 8
    c.data.eval_size = 32
    c.train.batch_size = 8
    c.train.num_steps = 600
    c.train.ema_decay = 0.99
    c.train.log_every = 50
    c.train.eval_every = 200
    c.train.checkpoint_every = 200
    c.optimizer.learning_rate = 2e-3
    c.optimizer.end_learning_rate = 1e-5
    c.optimizer.warmup_steps = 50
  return c
