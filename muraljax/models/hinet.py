"""HINet (Chen et al., CVPRW 2021): two-stage U-Net with Half Instance Normalization, NHWC.

Port of the official `basicsr/models/archs/hinet_arch.py` (megvii-model/HINet), module for module, so a
PyTorch state dict maps one-to-one onto this parameter tree:

| Flax path                               | PyTorch name                            |
|-----------------------------------------|-----------------------------------------|
| `conv_01/kernel` [3, 3, I, O]           | `conv_01.weight` (O, I, 3, 3)           |
| `down_path_1_0/conv_1/kernel`           | `down_path_1.0.conv_1.weight`           |
| `down_path_2_0/norm/scale`, `.../bias`  | `down_path_2.0.norm.weight`, `...bias`  |
| `up_path_1_0/up/kernel` [2, 2, I, O]    | `up_path_1.0.up.weight` (I, O, 2, 2)    |
| `up_path_1_0/conv_block/identity/bias`  | `up_path_1.0.conv_block.identity.bias`  |
| `skip_conv_2_3/kernel`                  | `skip_conv_2.3.weight`                  |
| `sam12/conv1/kernel`, `cat12`, `last`   | `sam12.conv1.weight`, `cat12`, `last`   |

i.e. '/' -> '.', list element `name_i` -> `name.i` (`TORCH_NAME_RULES`), `kernel`/`scale` -> `weight`, conv
kernels HWIO <-> OIHW and the transposed `up` kernels HWIO <-> (in, out, kH, kW). `torch_layout(params)`
gives {PyTorch name: PyTorch shape} for a param tree.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from muraljax.models import partitioning, torch_names
from muraljax.models.layers import HalfInstanceNorm, UpConv2x2, conv2d
from muraljax.models.ops import crop_to, pad_to_multiple
from muraljax.models.prefill import harmonic_fill

Dtype = Any

TORCH_NAME_RULES: torch_names.Rules = ((r"^(down_path_[12]|up_path_[12]|skip_conv_[12])_(\d+)", r"\1.\2"),)
PREFILLS = ("none", "harmonic")
# Flax module paths ('/'-joined) of the ConvTranspose2d layers.
TORCH_TRANSPOSED = r"^up_path_[12]_\d+/up$"


def torch_layout(params: Mapping) -> dict[str, tuple[int, ...]]:
  """{official PyTorch name: PyTorch shape} of a HINet param tree (arrays or ShapeDtypeStructs)."""
  return torch_names.torch_layout(params, TORCH_NAME_RULES, transposed=TORCH_TRANSPOSED)


class UNetConvBlock(nn.Module):
  """Two 3x3 convs (+ optional HIN) with a 1x1 residual, optional CSFF and 4x4 stride-2 downsampling.

  __call__(x [B, H, W, C], enc, dec [B, H, W, features] or None) -> (out [B, H, W, features],
  down [B, H/2, W/2, features] or None). `enc`/`dec` (stage-1 encoder/decoder features) are added through
  `csff_enc`/`csff_dec` when `use_csff`. The official block returns (down, out), or out alone.
  """

  features: int
  downsample: bool
  relu_slope: float
  use_csff: bool = False
  use_hin: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(
      self, x: jax.Array, enc: jax.Array | None = None, dec: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array | None]:
    conv = functools.partial(conv2d, self.features, dtype=self.dtype, param_dtype=self.param_dtype)
    act = functools.partial(nn.leaky_relu, negative_slope=self.relu_slope)

    out = conv(3, name="conv_1")(x)
    if self.use_hin:
      out = HalfInstanceNorm(dtype=self.dtype, param_dtype=self.param_dtype, name="norm")(out)
    out = act(conv(3, name="conv_2")(act(out)))
    out = out + conv(1, name="identity")(x)
    if self.use_csff:
      if enc is None or dec is None:
        raise ValueError("A UNetConvBlock with use_csff needs the stage-1 `enc` and `dec` features.")
      out = out + conv(3, name="csff_enc")(enc) + conv(3, name="csff_dec")(dec)
    if not self.downsample:
      return out, None
    return out, conv(4, stride=2, padding=1, use_bias=False, name="downsample")(out)


class UNetUpBlock(nn.Module):
  """2x2 stride-2 transposed conv, concat with the skip `bridge`, then a UNetConvBlock without HIN.

  __call__(x [B, H, W, C], bridge [B, 2H, 2W, features]) -> [B, 2H, 2W, features].
  """

  features: int
  relu_slope: float
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, bridge: jax.Array) -> jax.Array:
    up = UpConv2x2(self.features, dtype=self.dtype, param_dtype=self.param_dtype, name="up")(x)
    block = UNetConvBlock(
        self.features, False, self.relu_slope, dtype=self.dtype, param_dtype=self.param_dtype, name="conv_block"
    )
    return block(jnp.concatenate([up, bridge], axis=-1))[0]


class SAM(nn.Module):
  """Supervised attention module between the stages.

  __call__(x [B, H, W, C], image [B, H, W, C_img]) -> (features [B, H, W, C], restored [B, H, W, C_img]):
    restored = conv2(x) + image; features = conv1(x) * sigmoid(conv3(restored)) + x.
  """

  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, image: jax.Array) -> tuple[jax.Array, jax.Array]:
    conv = functools.partial(conv2d, kernel_size=3, dtype=self.dtype, param_dtype=self.param_dtype)
    features = x.shape[-1]
    restored = conv(image.shape[-1], name="conv2")(x) + image
    attention = nn.sigmoid(conv(features, name="conv3")(restored))
    return conv(features, name="conv1")(x) * attention + x, restored


class HINet(nn.Module):
  """HINet: image [B, H, W, in_chn] (RGB in [0, 1]) -> (out_1, out_2), both [B, H, W, in_chn].

  out_1 is stage 1's restoration (from SAM), out_2 the final one used at inference. Encoder level i has
  wf * 2^i channels; `hin_levels` are the encoder levels (of both stages) that use Half Instance Norm:
  (0, ..., 4) for deraining/denoising, (3, 4) for GoPro deblurring; levels >= depth are ignored.

  `remat` recomputes each block's activations in the backward pass instead of storing them (memory for time).
  `mask_input` and `prefill` make it an inpainting model (see `__call__`); the official HINet has neither.
  The image is cast to `dtype`, the compute dtype of every layer, so the outputs are in `dtype`. H and W are
  padded at the bottom/right to multiples of 2^(depth - 1) (reflection, or edge replication when the image
  is smaller than the pad) and the outputs cropped back; the padding takes part in the instance-norm
  statistics.
  """

  in_chn: int = 3
  wf: int = 64
  depth: int = 5
  relu_slope: float = 0.2
  hin_levels: Sequence[int] = (0, 1, 2, 3, 4)
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  remat: str = "none"  # Rematerialisation of each encoder/decoder block (partitioning.REMAT_POLICIES).
  mask_input: bool = False  # The damage mask is a 4th input channel of conv_01 and conv_02.
  prefill: str = "none"  # 'harmonic': holes are filled by prefill.harmonic_fill before the network (PREFILLS).
  prefill_sweeps: int = 16  # Jacobi sweeps per pyramid level of the harmonic prefill.

  def setup(self):
    if self.depth < 1:
      raise ValueError(f"HINet depth must be at least 1, got {self.depth}.")
    conv = functools.partial(conv2d, dtype=self.dtype, param_dtype=self.param_dtype)
    shared = dict(relu_slope=self.relu_slope, dtype=self.dtype, param_dtype=self.param_dtype)
    block = functools.partial(partitioning.remat(UNetConvBlock, self.remat), **shared)
    up_block = functools.partial(partitioning.remat(UNetUpBlock, self.remat), **shared)
    widths = [self.wf * 2**i for i in range(self.depth)]
    downsamples = [i + 1 < self.depth for i in range(self.depth)]
    hin = [i in self.hin_levels for i in range(self.depth)]
    decoder_widths = widths[-2::-1]

    self.conv_01 = conv(self.wf, 3)
    self.conv_02 = conv(self.wf, 3)
    self.down_path_1 = [block(w, down, use_hin=h) for w, down, h in zip(widths, downsamples, hin)]
    self.down_path_2 = [block(w, down, use_csff=down, use_hin=h) for w, down, h in zip(widths, downsamples, hin)]
    self.up_path_1 = [up_block(w) for w in decoder_widths]
    self.up_path_2 = [up_block(w) for w in decoder_widths]
    self.skip_conv_1 = [conv(w, 3) for w in decoder_widths]
    self.skip_conv_2 = [conv(w, 3) for w in decoder_widths]
    self.sam12 = SAM(dtype=self.dtype, param_dtype=self.param_dtype)
    self.cat12 = conv(self.wf, 1)
    # A mask-aware model starts as its prefill: the final residual is zero until trained.
    self.last = conv(self.in_chn, 3, kernel_init=nn.initializers.zeros if self.mask_aware else
                     nn.initializers.lecun_normal())

  @property
  def mask_aware(self) -> bool:
    """Whether the model takes the damage mask (and then only restores the damaged pixels)."""
    return self.mask_input or self.prefill != "none"

  def __call__(self, image: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """image [B, H, W, in_chn]; mask [B, H, W, 1] (1 = damaged), required exactly when `mask_aware`.

    A mask-aware model starts from the prefilled image (when `prefill` is set), sees the mask (when `mask_input`),
    and returns its outputs inside the mask and the input image outside it, so intact pixels pass unchanged.
    """
    if self.prefill not in PREFILLS:
      raise ValueError(f"Unknown HINet prefill {self.prefill!r}; use one of {list(PREFILLS)}.")
    if self.mask_aware != (mask is not None):
      raise ValueError("A HINet with mask_input or prefill needs the damage mask, and a blind one takes none.")
    if self.prefill == "harmonic":
      image = harmonic_fill(image, mask, self.prefill_sweeps)
    image, size = pad_to_multiple(image.astype(self.dtype), 2 ** (self.depth - 1))
    net_input = image
    if self.mask_input:
      net_input = jnp.concatenate([image, pad_to_multiple(mask.astype(self.dtype), 2 ** (self.depth - 1))[0]], -1)

    x, encs_1 = self._encode(self.down_path_1, self.conv_01(net_input))
    x, decs_1 = self._decode(self.up_path_1, self.skip_conv_1, x, encs_1)
    sam_features, out_1 = self.sam12(x, image)

    x = self.cat12(jnp.concatenate([self.conv_02(net_input), sam_features], axis=-1))
    x, encs_2 = self._encode(self.down_path_2, x, encs_1, decs_1[::-1])
    x, _ = self._decode(self.up_path_2, self.skip_conv_2, x, encs_2)
    out_2 = self.last(x) + image
    out_1, out_2, image = crop_to(out_1, size), crop_to(out_2, size), crop_to(image, size)
    if self.mask_aware:
      damaged = mask > 0.5
      out_1, out_2 = jnp.where(damaged, out_1, image), jnp.where(damaged, out_2, image)
    return out_1, out_2

  @staticmethod
  def _encode(
      blocks: Sequence[UNetConvBlock],
      x: jax.Array,
      csff_encs: Sequence[jax.Array] | None = None,
      csff_decs: Sequence[jax.Array] | None = None,
  ) -> tuple[jax.Array, list[jax.Array]]:
    """Runs an encoder; returns the bottleneck and the pre-downsampling features of levels 0 .. depth - 2.

    In stage 2, level i also gets stage 1's encoder features and decoder output at its resolution (CSFF).
    """
    no_csff = [None] * (len(blocks) - 1)
    encs = []
    for block, enc, dec in zip(blocks[:-1], csff_encs or no_csff, csff_decs or no_csff):
      out, x = block(x, enc, dec)
      encs.append(out)
    return blocks[-1](x)[0], encs

  @staticmethod
  def _decode(
      blocks: Sequence[UNetUpBlock], skip_convs: Sequence[nn.Conv], x: jax.Array, encs: Sequence[jax.Array]
  ) -> tuple[jax.Array, list[jax.Array]]:
    """Runs a decoder from the bottleneck; returns the full-size output and every level's output, coarse to fine."""
    decs = []
    for block, skip_conv, enc in zip(blocks, skip_convs, reversed(encs)):
      x = block(x, skip_conv(enc))
      decs.append(x)
    return x, decs
