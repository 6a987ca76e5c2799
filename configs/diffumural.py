"""DiffuMural on murals: collaborative diffusion at 256/512/1024 px. `--config configs/diffumural.py[:variant]`.

Variants:
  (none) / paper  three scales, 256, 512 and 1024 px, trained jointly on 1024 px crops (muraljax/tasks/diffumural.py).
                  The 256 px U-Net has DDPM's 256 px width (diffusers UNet2DModel layout: channels
                  128-128-256-256-512-512, 2 ResNet blocks per level, self-attention at 16x16); the 512 and 1024 px
                  U-Nets prepend levels of 64 and 32 channels (64-128-...-512 and 32-64-128-...-512), so all three
                  attend at 16x16 and have FDP spectral blocks at 32, 16 and 8 px feature maps. Each has a
                  ControlNet copy of its encoder, conditioned on the masked image, the mask, contours and the
                  damage type (and, above 256, the upsampled coarser estimate). Cosine schedule, v-prediction with
                  min-SNR-5 weighting, frequency-amplitude and cycle-consistency losses at 0.1, 10% condition
                  dropout, AdamW 1e-4, EMA 0.9999, blocks rematerialised; evaluation by collaborative DDIM-50
                  inpainting with damage-depth fusion. About 0.6G parameters.
  single          one scale, 256 px: the 256 px U-Net and ControlNet above alone, trained on 256 px crops and
                  sampled with plain RePaint DDIM (the model a pretrained DDPM-256 ports into best).
  smoke           the paper's structure in miniature: scales 16/32/64 px (channels 16-32-32 at 16 px, attention at
                  4x4, FDP at 8x8 and 4x4, one block per level), 64 px crops, 600 steps, DDIM-20: trains on 2
                  CPU cores in minutes.
"""

import ml_collections

from muraljax.config import base_config
from muraljax.data import pipeline

VARIANTS = ("paper", "single", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "paper"
  if variant not in VARIANTS:
    raise ValueError(f"Unknown diffumural config variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
  c = base_config("diffumural")

  # The U-Nets, in diffusers UNet2DModel's terms (muraljax/models/unet.py maps the params to its names).
  c.model = ml_collections.ConfigDict()
  # Image sides of the scales, coarse to fine, each double the previous; the finest is data.patch_size. Each scale
  # has its own U-Net and ControlNet (params['scale_<side>']). One side = single-scale DiffuMural.
  c.model.scales = (256, 512, 1024)
  # The coarsest scale's U-Net. Each finer scale's U-Net prepends one level of half the first level's width (at
  # least norm_num_groups, ResNet blocks only), so its lower levels see feature maps of the same sizes
  # (muraljax/tasks/diffumural_scales.py).
  c.model.block_out_channels = (128, 128, 256, 256, 512, 512)  # Channels per level; a level halves the size.
  # Block per level: 'DownBlock2D' (ResNet blocks) or 'AttnDownBlock2D' (each followed by self-attention).
  c.model.down_block_types = ("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D")
  # Decoder blocks from the lowest level up: 'UpBlock2D' or 'AttnUpBlock2D'.
  c.model.up_block_types = ("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4
  # Levels of the coarsest U-Net (0 = full size) whose every ResNet/attention layer, in the encoder and the
  # decoder, is followed by an FDP spectral block (FFT -> pointwise convs on real/imaginary parts -> inverse FFT,
  # a global receptive field; muraljax/models/fdp.py); the lowest level also puts one in the mid block. Finer
  # scales put them at the same feature-map sizes. Fresh blocks are the identity. () = no FDP.
  c.model.fdp_levels = (3, 4, 5)
  c.model.layers_per_block = 2  # ResNet blocks per encoder level (the decoder has one more).
  c.model.attention_head_dim = 64  # Channels per attention head; None = one head over all channels.
  c.model.norm_num_groups = 32  # GroupNorm groups; every channel count must divide by it.
  c.model.norm_eps = 1e-5  # GroupNorm epsilon.
  c.model.flip_sin_to_cos = True  # Sinusoidal time features ordered [cos, sin] (diffusers' default).
  c.model.freq_shift = 0  # Time-feature frequency shift (diffusers' downscale_freq_shift).
  c.model.controlnet_conditioning_channels = (16, 32)  # Widths of the ControlNets' condition-embedding convs.
  # Train only the ControlNets, keeping the U-Nets fixed: for U-Nets trained before (init_from.checkpoint).
  c.model.freeze_base = False
  c.model.controlnet_from_base = True  # Start each ControlNet's encoder as a copy of its U-Net's.

  c.diffusion = ml_collections.ConfigDict()
  c.diffusion.schedule = "cosine"  # Noise schedule: 'cosine' (Nichol & Dhariwal) or 'linear' (DDPM).
  c.diffusion.num_timesteps = 1000  # Training timesteps T.
  c.diffusion.prediction = "v"  # What the networks predict: 'epsilon' or 'v'.
  c.diffusion.min_snr_gamma = 5.0  # Min-SNR-gamma loss weighting; 0 = plain MSE.
  # Probability that an example's conditions are zeroed (damage type 'unknown'), for classifier-free guidance.
  c.diffusion.condition_dropout = 0.1
  c.diffusion.scale_loss_weights = (1.0, 1.0, 1.0)  # Weight of each scale's loss, coarse to fine.
  # Frequency-amplitude loss on each scale's x0 estimate (muraljax/diffusion/frequency.py): its weight (0 = off)
  # and whether it compares log(1 + amplitude), which counts fine texture about as much as coarse structure.
  c.diffusion.frequency_weight = 0.1
  c.diffusion.frequency_log_amplitude = False
  # Pixel-space cycle consistency of each scale's x0 estimate (muraljax/diffusion/cycle.py): the weight of its
  # re-extracted soft contours near the damage vs the ground truth's, and of its change of intact pixels (0 = off).
  c.diffusion.cycle_contour_weight = 0.1
  c.diffusion.cycle_known_weight = 0.1

  # How the scales sample together (muraljax/diffusion/collaborative.py, fusion.py).
  c.collaboration = ml_collections.ConfigDict()
  # Depth inside the damage, in a scale's own pixels, that the scale fills best: with 8, the 1024 px scale
  # dominates within ~11 px of intact paint, 512 px up to ~23 px, 256 px deeper.
  c.collaboration.characteristic_length = 8.0
  c.collaboration.temperature = 0.5  # Width (octaves of depth) of the hand-over from one scale to the next.
  # The plain coarse-to-fine ablation: coarser scales only condition the finest, which fills every damaged pixel.
  c.collaboration.cascade = False

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
  c.data.image_size = 2048
  c.data.patch_size = 1024
  c.data.eval_size = 1024
  c.data.contours = True

  c.train.batch_size = 32
  c.train.num_steps = 300_000
  c.train.ema_decay = 0.9999
  c.train.eval_every = 10_000
  c.train.checkpoint_every = 5_000
  c.train.remat = "blocks"  # 1024 px activations: keep only block inputs for the backward pass.
  c.optimizer.learning_rate = 1e-4
  c.optimizer.warmup_steps = 1_000
  c.optimizer.end_learning_rate = 1e-6
  c.optimizer.grad_clip_norm = 1.0

  if variant == "single":
    c.model.scales = (256,)
    c.diffusion.scale_loss_weights = (1.0,)
    c.data.image_size = 512
    c.data.patch_size = c.data.eval_size = 256
    c.train.remat = "none"
  if variant == "smoke":
    c.model.scales = (16, 32, 64)
    c.model.block_out_channels = (16, 32, 32)
    c.model.down_block_types = ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D")
    c.model.up_block_types = ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    c.model.fdp_levels = (1, 2)
    c.model.layers_per_block = 1
    c.model.attention_head_dim = 32  # One head: attention over many tokens is memory-bound on CPUs.
    c.model.norm_num_groups = 8
    c.model.controlnet_conditioning_channels = (8, 16)
    c.sampling.steps = 20
    c.data.image_size = 128
    c.data.patch_size = c.data.eval_size = 64
    c.data.num_images = 2000
    c.data.eval_images = 8
    c.train.batch_size = 8
    c.train.num_steps = 600
    c.train.ema_decay = 0.99
    c.train.remat = "none"
    c.train.log_every = 50
    c.train.eval_every = 200
    c.train.checkpoint_every = 200
    c.optimizer.learning_rate = 2e-3
    c.optimizer.end_learning_rate = 1e-5
    c.optimizer.warmup_steps = 50
  return c
