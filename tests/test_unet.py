"""The diffusion U-Net and its ControlNet: diffusers names, shapes, class labels, zero-initialised residuals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muraljax.models import partitioning
from muraljax.models import unet as unet_lib
from muraljax.models.controlnet import ControlNet, copy_encoder_from_unet
from muraljax.models.unet import UNet, UNetConfig
from muraljax.train.state import compile_once

TINY = UNetConfig(block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                  up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1, attention_head_dim=8,
                  norm_num_groups=4, num_class_embeds=5)
B, SIDE, IN_CHANNELS, COND_CHANNELS = 2, 16, 8, 5


def init(module, *args):
  """Real initial params; the init program is compiled without LLVM optimisation (it runs once)."""
  key = jax.random.PRNGKey(0)
  compiled = compile_once(module.init, key, *args)
  return partitioning.unbox(compiled(key, *args)["params"])


def inputs(seed: int = 0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 3)
  sample = jax.random.normal(keys[0], (B, SIDE, SIDE, IN_CHANNELS))
  condition = jax.random.uniform(keys[1], (B, SIDE, SIDE, COND_CHANNELS))
  return sample, jnp.array([3, 700]), condition, jnp.array([0, 4])


def _resnet(prefix: str, cin: int, cout: int, temb: int = 32) -> dict[str, tuple[int, ...]]:
  names = {f"{prefix}.norm1.weight": (cin,), f"{prefix}.norm1.bias": (cin,),
           f"{prefix}.conv1.weight": (cout, cin, 3, 3), f"{prefix}.conv1.bias": (cout,),
           f"{prefix}.time_emb_proj.weight": (cout, temb), f"{prefix}.time_emb_proj.bias": (cout,),
           f"{prefix}.norm2.weight": (cout,), f"{prefix}.norm2.bias": (cout,),
           f"{prefix}.conv2.weight": (cout, cout, 3, 3), f"{prefix}.conv2.bias": (cout,)}
  if cin != cout:
    names |= {f"{prefix}.conv_shortcut.weight": (cout, cin, 1, 1), f"{prefix}.conv_shortcut.bias": (cout,)}
  return names


def _attention(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
  names = {f"{prefix}.group_norm.weight": (c,), f"{prefix}.group_norm.bias": (c,)}
  for proj in ("to_q", "to_k", "to_v", "to_out.0"):
    names |= {f"{prefix}.{proj}.weight": (c, c), f"{prefix}.{proj}.bias": (c,)}
  return names


def expected_diffusers_layout() -> dict[str, tuple[int, ...]]:
  """The state dict of diffusers' UNet2DModel(in_channels=8, out_channels=3, block_out_channels=(8, 16),
  down_block_types=('DownBlock2D', 'AttnDownBlock2D'), up_block_types=('AttnUpBlock2D', 'UpBlock2D'),
  layers_per_block=1, attention_head_dim=8, norm_num_groups=4, num_class_embeds=5)."""
  layout = {"conv_in.weight": (8, 8, 3, 3), "conv_in.bias": (8,),
            "time_embedding.linear_1.weight": (32, 8), "time_embedding.linear_1.bias": (32,),
            "time_embedding.linear_2.weight": (32, 32), "time_embedding.linear_2.bias": (32,),
            "class_embedding.weight": (5, 32),
            "down_blocks.0.downsamplers.0.conv.weight": (8, 8, 3, 3), "down_blocks.0.downsamplers.0.conv.bias": (8,),
            "up_blocks.0.upsamplers.0.conv.weight": (16, 16, 3, 3), "up_blocks.0.upsamplers.0.conv.bias": (16,),
            "conv_norm_out.weight": (8,), "conv_norm_out.bias": (8,),
            "conv_out.weight": (3, 8, 3, 3), "conv_out.bias": (3,)}
  layout |= _resnet("down_blocks.0.resnets.0", 8, 8)
  layout |= _resnet("down_blocks.1.resnets.0", 8, 16) | _attention("down_blocks.1.attentions.0", 16)
  layout |= _resnet("mid_block.resnets.0", 16, 16) | _attention("mid_block.attentions.0", 16)
  layout |= _resnet("mid_block.resnets.1", 16, 16)
  # Up block 0 (AttnUpBlock2D): [16 + skip 16] and [16 + skip 8] in; up block 1: [16 + 8] and [8 + 8].
  layout |= _resnet("up_blocks.0.resnets.0", 32, 16) | _attention("up_blocks.0.attentions.0", 16)
  layout |= _resnet("up_blocks.0.resnets.1", 24, 16) | _attention("up_blocks.0.attentions.1", 16)
  layout |= _resnet("up_blocks.1.resnets.0", 24, 8) | _resnet("up_blocks.1.resnets.1", 16, 8)
  return layout


def test_param_names_and_shapes_are_diffusers_unet2dmodel():
  sample, t, _, labels = inputs()
  params = partitioning.unbox(jax.eval_shape(UNet(TINY).init, jax.random.PRNGKey(0), sample, t, labels)["params"])
  assert unet_lib.torch_layout(params) == expected_diffusers_layout()


def test_controlnet_names_add_the_condition_embedding_and_zero_convs_to_the_encoder():
  sample, t, condition, labels = inputs()
  params = partitioning.unbox(jax.eval_shape(ControlNet(TINY, (8, 16)).init, jax.random.PRNGKey(0), sample, t, condition,
                          labels)["params"])
  layout = unet_lib.torch_layout(params)
  unet_layout = expected_diffusers_layout()
  encoder = {k: v for k, v in unet_layout.items()
             if k.split(".")[0] in ("conv_in", "time_embedding", "class_embedding", "down_blocks", "mid_block")}
  extra = {"controlnet_cond_embedding.conv_in.weight": (8, 5, 3, 3), "controlnet_cond_embedding.conv_in.bias": (8,),
           "controlnet_cond_embedding.blocks.0.weight": (8, 8, 3, 3), "controlnet_cond_embedding.blocks.0.bias": (8,),
           "controlnet_cond_embedding.blocks.1.weight": (16, 8, 3, 3), "controlnet_cond_embedding.blocks.1.bias": (16,),
           "controlnet_cond_embedding.conv_out.weight": (8, 16, 3, 3), "controlnet_cond_embedding.conv_out.bias": (8,),
           "controlnet_mid_block.weight": (16, 16, 1, 1), "controlnet_mid_block.bias": (16,)}
  for i, c in enumerate((8, 8, 8, 16)):  # conv_in, down 0 resnet, down 0 downsampler, down 1 resnet
    extra |= {f"controlnet_down_blocks.{i}.weight": (c, c, 1, 1), f"controlnet_down_blocks.{i}.bias": (c,)}
  assert layout == encoder | extra


@pytest.fixture(scope="module")
def unet_and_params():
  sample, t, _, labels = inputs()
  return UNet(TINY), init(UNet(TINY), sample, t, labels)


def test_forward_shapes_with_and_without_class_labels(unet_and_params):
  model, params = unet_and_params
  sample, t, _, labels = inputs()
  apply = jax.jit(model.apply)
  out = apply({"params": params}, sample, t, labels)
  assert out.shape == (B, SIDE, SIDE, 3) and np.all(np.isfinite(out))
  other = apply({"params": params}, sample, t, jnp.array([1, 2]))
  assert not np.allclose(out, other)  # the damage type steers the prediction
  with pytest.raises(ValueError, match="class-conditioned .* pass class_labels"):
    model.apply({"params": params}, sample, t)

  unconditional = UNet(UNetConfig(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                                  out_channels=4))
  shapes = partitioning.unbox(jax.eval_shape(unconditional.init, jax.random.PRNGKey(0), sample, t))
  assert "class_embedding" not in shapes["params"]
  assert jax.eval_shape(unconditional.apply, shapes, sample, t).shape == (B, SIDE, SIDE, 4)


def test_image_sides_that_do_not_divide_are_refused_with_valid_sizes():
  config = UNetConfig(block_out_channels=(8, 16, 16), down_block_types=("DownBlock2D",) * 3,
                      up_block_types=("UpBlock2D",) * 3, layers_per_block=1, norm_num_groups=4)
  sample = jnp.zeros((1, 18, 16, 3))
  with pytest.raises(ValueError, match="multiples of 4; got 18x16: pad or crop to 16 or 20 x 16"):
    jax.eval_shape(UNet(config).init, jax.random.PRNGKey(0), sample, jnp.zeros(1))


def test_bad_architectures_are_refused():
  with pytest.raises(ValueError, match="same, non-zero length"):
    UNetConfig(block_out_channels=(8, 16), down_block_types=("DownBlock2D",))
  with pytest.raises(ValueError, match="Unknown block types"):
    UNetConfig(block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"))
  with pytest.raises(ValueError, match="multiples of norm_num_groups=32"):
    UNetConfig(block_out_channels=(8, 16))
  with pytest.raises(ValueError, match=r"levels with attention, \[24\], must be multiples of attention_head_dim=16"):
    UNetConfig(block_out_channels=(16, 24), attention_head_dim=16, norm_num_groups=8)
  UNetConfig(block_out_channels=(16, 32), down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2,
             attention_head_dim=32, norm_num_groups=8)  # 16 channels, but no attention at that level


def test_a_fresh_controlnet_leaves_the_unet_output_exactly_unchanged(unet_and_params):
  model, unet_params = unet_and_params
  sample, t, condition, labels = inputs()
  controlnet = ControlNet(TINY, (8, 16))
  controlnet_params = copy_encoder_from_unet(init(controlnet, sample, t, condition, labels), unet_params)
  np.testing.assert_array_equal(controlnet_params["down_blocks_1"]["resnets_0"]["conv1"]["kernel"],
                                unet_params["down_blocks_1"]["resnets_0"]["conv1"]["kernel"])

  @jax.jit
  def base_and_conditioned(unet_params, controlnet_params):
    down, mid = controlnet.apply({"params": controlnet_params}, sample, t, condition, labels)
    base = model.apply({"params": unet_params}, sample, t, labels)
    return base, model.apply({"params": unet_params}, sample, t, labels, down, mid), down, mid

  base, conditioned, down, mid = base_and_conditioned(unet_params, controlnet_params)
  assert len(down) == 4 and mid.shape == (B, SIDE // 2, SIDE // 2, 16)
  assert all(not np.any(r) for r in (*down, mid))
  np.testing.assert_array_equal(conditioned, base)


FDP = UNetConfig(**{**TINY.__dict__, "fdp_levels": (1,)})


def test_fdp_blocks_follow_every_layer_of_the_chosen_levels_and_have_no_diffusers_name():
  sample, t, condition, labels = inputs()
  params = partitioning.unbox(jax.eval_shape(UNet(FDP).init, jax.random.PRNGKey(0), sample, t, labels)["params"])
  paths = {jax.tree_util.keystr(p, simple=True, separator="/").rsplit("/", 2)[0]
           for p, _ in jax.tree_util.tree_flatten_with_path(params)[0] if "fdps" in jax.tree_util.keystr(p)}
  # Level 1 (the lowest): its down block's layer, the mid block, its up block's two layers; not level 0.
  assert paths == {"down_blocks_1/fdps_0", "mid_block/fdps_0", "up_blocks_0/fdps_0", "up_blocks_0/fdps_1"}
  assert unet_lib.torch_layout(params) == expected_diffusers_layout()
  top = UNetConfig(**{**TINY.__dict__, "fdp_levels": (0,)})
  top_params = jax.eval_shape(UNet(top).init, jax.random.PRNGKey(0), sample, t, labels)["params"]
  assert "fdps_0" in top_params["down_blocks_0"] and "fdps_2" not in top_params["up_blocks_1"]
  assert "fdps_1" in top_params["up_blocks_1"] and "fdps_0" not in top_params["mid_block"]
  controlnet = jax.eval_shape(ControlNet(FDP, (8, 16)).init, jax.random.PRNGKey(0), sample, t, condition, labels)
  assert "fdps_0" in controlnet["params"]["mid_block"] and "fdps_0" in controlnet["params"]["down_blocks_1"]
  with pytest.raises(ValueError, match=r"fdp_levels \(2,\) must be levels of the U-Net, 0 \(full size\) to 1"):
    UNetConfig(**{**TINY.__dict__, "fdp_levels": (2,)})


def test_fresh_fdp_blocks_leave_the_unet_and_controlnet_exactly_unchanged(unet_and_params):
  model, _ = unet_and_params
  sample, t, condition, labels = inputs()
  with_fdp = init(UNet(FDP), sample, t, labels)
  without = {block: {name: p for name, p in params.items() if not name.startswith("fdps_")}
             for block, params in with_fdp.items()}
  controlnet = ControlNet(FDP, (8, 16))
  controlnet_params = copy_encoder_from_unet(init(controlnet, sample, t, condition, labels), with_fdp)
  np.testing.assert_array_equal(controlnet_params["mid_block"]["fdps_0"]["spectral_in"]["kernel"],
                                with_fdp["mid_block"]["fdps_0"]["spectral_in"]["kernel"])
  # Random residuals, so the skips the FDP blocks see are not zero.
  residuals = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(5), x.shape), controlnet_params)

  @jax.jit
  def outputs(with_fdp, without, residuals):
    down, mid = controlnet.apply({"params": residuals}, sample, t, condition, labels)
    return (UNet(FDP).apply({"params": with_fdp}, sample, t, labels, down, mid),
            model.apply({"params": without}, sample, t, labels, down, mid))

  fdp_out, plain_out = outputs(with_fdp, without, residuals)
  np.testing.assert_array_equal(fdp_out, plain_out)
