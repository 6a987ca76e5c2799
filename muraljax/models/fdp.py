"""FDP: DiffuMural's frequency-domain processing block, a residual spectral block with a global receptive field.

  y = x + irfft2( W_out relu( W_in [Re F, Im F] + b_in ) + b_out ),   F = rfft2(GroupNorm(x))

over the two spatial axes. F has [B, H, W // 2 + 1, C] complex coefficients; their real and imaginary parts,
concatenated to 2C channels, go through two pointwise (1x1) convs, i.e. dense layers over channels shared by
every frequency; the first C outputs are the real parts and the last C the imaginary parts of the spectrum that
irfft2 (with the input's H and W, so odd widths come back) turns into the residual. This
is the Fourier unit of Fast Fourier Convolution (Chi et al. 2020, as in LaMa): every output pixel depends on
every input pixel. The ReLU between the convs matters: an affine map of the spectrum alone is only a 1x1 conv
plus a 1x1 conv of the point-reflected image.

The FFTs run in float32 even with a bf16 compute dtype (bf16 sums over H W terms lose the high frequencies);
the pointwise convs run in the compute dtype. The transforms are orthonormal (norm='ortho'), so coefficients
keep the scale of the normalised features at every image size. `spectral_out` is zero-initialised: a fresh
block is the identity.

Params (logical axis names for sharding, muraljax.models.partitioning): norm/{scale, bias} [C] ('channels',),
spectral_in/kernel and spectral_out/kernel [2C, 2C] ('channels_in', 'channels_out'), their biases [2C]
('channels',).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from muraljax.models import partitioning

Dtype = Any


class SpectralBlock(nn.Module):
  """[B, H, W, C] -> [B, H, W, C] (see the module docstring). C must be a multiple of norm_num_groups."""

  norm_num_groups: int = 32
  norm_eps: float = 1e-5
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _, height, width, channels = x.shape
    if channels % self.norm_num_groups:
      raise ValueError(f"SpectralBlock: {channels} channels do not split into norm_num_groups="
                       f"{self.norm_num_groups} groups; use a divisor of {channels}.")
    h = partitioning.GroupNorm(num_groups=self.norm_num_groups, epsilon=self.norm_eps, dtype=self.dtype,
                               param_dtype=self.param_dtype, name="norm")(x)
    spectrum = jnp.fft.rfft2(h.astype(jnp.float32), axes=(1, 2), norm="ortho")
    z = jnp.concatenate([spectrum.real, spectrum.imag], axis=-1)
    z = nn.relu(partitioning.Dense(2 * channels, dtype=self.dtype, param_dtype=self.param_dtype,
                                   name="spectral_in")(z))
    z = nn.Dense(2 * channels, dtype=self.dtype, param_dtype=self.param_dtype,
                 kernel_init=partitioning.annotated(nn.initializers.zeros, partitioning.DENSE),
                 bias_init=partitioning.annotated(nn.initializers.zeros, partitioning.VECTOR),
                 name="spectral_out")(z).astype(jnp.float32)
    spectrum = jax.lax.complex(z[..., :channels], z[..., channels:])
    residual = jnp.fft.irfft2(spectrum, s=(height, width), axes=(1, 2), norm="ortho")
    return x + residual.astype(x.dtype)
