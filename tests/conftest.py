"""Test session setup: 8 host CPU devices so sharding is exercised in-process, fp32 everywhere."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

import pathlib  # noqa: E402

from muraljax import config as config_lib  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_config(name: str, variant: str | None = None):
  """`configs/<name>.py:<variant>`, loaded the way `--config` loads it."""
  return config_lib.load(REPO / "configs" / f"{name}.py:{variant or ''}")


def short_run(c, patch_size: int, train: dict):
  """`c` set up for a few-step test run on one device: 48 px images cut into `patch_size` patches, 2 held-out
  images of that size, a log line every step, evaluation off; then the `train` fields."""
  c.data.image_size = 48
  c.data.patch_size = c.data.eval_size = patch_size
  c.data.eval_images = 2
  c.train.update(log_every=1, eval_every=0)
  c.train.update(train)
  c.mesh.num_devices = 1
  return c


def tiny_diffumural_config(scales: tuple[int, ...] = (4, 8, 16), **train):
  """The smoke config shrunk further: scales 4/8/16 px of two-level U-Nets (8-16 channels at 4 px) with FDP at
  the lowest level and attention in the mid block only, 16 px patches, 4 sampling steps, evaluation off,
  checkpoints only where a run stops, one device."""
  c = load_config("diffumural", "smoke")
  c.model.scales = scales
  c.diffusion.scale_loss_weights = (1.0,) * len(scales)
  c.model.block_out_channels = (8, 16)
  c.model.down_block_types = ("DownBlock2D", "DownBlock2D")
  c.model.up_block_types = ("UpBlock2D", "UpBlock2D")
  c.model.fdp_levels = (1,)
  c.model.norm_num_groups = 4
  c.model.attention_head_dim = None
  c.model.controlnet_conditioning_channels = (8,)
  c.sampling.steps = 4
  return short_run(c, scales[-1], dict(batch_size=4, num_steps=6, checkpoint_every=100) | train)


def claimed_size_png(path: pathlib.Path, width: int, height: int) -> None:
  """A few-byte PNG whose header claims width x height 8-bit grey pixels (its data is one empty row): what a
  decompression bomb looks like to anything that reads the header only."""
  import struct  # pylint: disable=g-import-not-at-top
  import zlib  # pylint: disable=g-import-not-at-top

  chunk = lambda tag, body: struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
  header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) +
                   chunk(b"IEND", b""))
