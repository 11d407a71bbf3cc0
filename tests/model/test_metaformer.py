"""PoseMetaFormer and MetaFormerBlock: shapes, structure of the presets, state-dict names, stochastic depth."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from common.model.config import PRESETS, ModelConfig, apply_preset
from common.model.metaformer import MetaFormerBlock, SequenceDropPath, build_model, drop_path_rates

TINY = {"num_frames": 9, "embed_dim": 16, "depth": 2}


def tiny(preset: str = "default", **overrides) -> ModelConfig:
    return apply_preset(preset, {**TINY, **overrides})


# --- model: shapes, contents, structure ------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_output_shape_and_clips_are_independent(preset):
    torch.manual_seed(0)
    model = build_model(tiny(preset)).eval()
    clips = torch.randn(3, 9, 17, 2)
    with torch.no_grad():
        out = model(clips)
        alone = model(clips[1:2])
        changed = clips.clone()
        changed[0] += 1.0
        out_changed = model(changed)
    assert out.shape == (3, 9, 17, 3) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(alone[0], out[1], atol=1e-5, rtol=1e-5)  # no mixing across clips
    assert (out_changed[0] - out[0]).abs().max() > 1e-4  # the input matters
    torch.testing.assert_close(out_changed[1:], out[1:], atol=1e-5, rtol=1e-5)


def test_block_forward_is_the_paper_figure():
    # x + LayerScale(mixer(norm1(x))), then + LayerScale(fc2(GELU(fc1(norm2(x))))), written out with torch.nn.functional
    torch.manual_seed(0)
    config = tiny(spatial_mixer="fc", layer_scale_init=0.5)
    block = MetaFormerBlock(config, "spatial", 0, drop_path=0.0).eval()
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
        x = torch.randn(2, 9, 17, 16)
        normed = F.layer_norm(x, (16,), block.norm1.weight, block.norm1.bias, eps=1e-6)
        mixed = torch.einsum("ij,bfjc->bfic", block.mixer.weight, normed) - normed
        y = x + block.layer_scale1.gamma * mixed
        normed = F.layer_norm(y, (16,), block.norm2.weight, block.norm2.bias, eps=1e-6)
        hidden = F.gelu(F.linear(normed, block.mlp.fc1.weight, block.mlp.fc1.bias))
        expected = y + block.layer_scale2.gamma * F.linear(hidden, block.mlp.fc2.weight, block.mlp.fc2.bias)
        torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("preset", "mixer_keys"),
    [
        ("default", {"spatial": ["mixer.weight"], "temporal": []}),
        ("mixste", {axis: ["mixer.qkv.weight", "mixer.qkv.bias", "mixer.proj.weight", "mixer.proj.bias"]
                    for axis in ("spatial", "temporal")}),
        ("poolformer", {"spatial": [], "temporal": []}),
    ],
)
def test_state_dict_names_are_the_checkpoint_format(preset, mixer_keys):
    # checkpoints written by earlier versions store exactly these names: they must not change
    model = build_model(tiny(preset, depth=1, num_heads=4))
    norms = ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
    mlp = ["mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"]
    scales = ["layer_scale1.gamma", "layer_scale2.gamma"] if preset == "poolformer" else []
    expected = {"joint_embed.weight", "joint_embed.bias", "spatial_pos", "temporal_pos", "head_norm.weight",
                "head_norm.bias", "head.weight", "head.bias"}
    if preset != "poolformer":
        expected |= {"spatial_norm.weight", "spatial_norm.bias", "temporal_norm.weight", "temporal_norm.bias"}
    for axis in ("spatial", "temporal"):
        expected |= {f"{axis}_blocks.0.{key}" for key in norms + mlp + scales + mixer_keys[axis]}
    assert set(model.state_dict()) == expected


def test_wrong_number_of_frames_is_a_clear_error():
    model = build_model(tiny())
    with pytest.raises(ValueError, match="9 frames"):
        model(torch.randn(1, 8, 17, 2))
    with pytest.raises(ValueError, match=r"\(B, 9, 17, 2\)"):
        model(torch.randn(9, 17, 2))


def test_moving_one_joint_changes_only_frames_within_the_pooling_reach():
    """Changing one joint of one frame changes that frame's output and its neighbours', nothing further away."""
    torch.manual_seed(1)
    model = build_model(tiny("default", drop_path_rate=0.0)).eval()
    clip = torch.randn(1, 9, 17, 2)
    moved = clip.clone()
    moved[0, 4, 10] += 0.5
    with torch.no_grad():
        difference = (model(moved) - model(clip)).abs().amax(dim=(0, 2, 3))
    assert difference[4] > 1e-4
    # temporal pooling window 3 over 2 layers: frames 2..6 can change, 0, 1, 7, 8 cannot
    assert torch.all(difference[[0, 1, 7, 8]] == 0)


def test_mixste_preset_structure():
    config = tiny("mixste")
    model = build_model(config)
    assert config.spatial_mixer == config.temporal_mixer == "attention"
    assert model.spatial_blocks[0].norm1.eps == 1e-6 and model.head_norm.eps == 1e-5
    assert isinstance(model.spatial_norm, torch.nn.LayerNorm) and isinstance(model.temporal_norm, torch.nn.LayerNorm)
    assert isinstance(model.spatial_blocks[1].layer_scale1, torch.nn.Identity)
    assert torch.count_nonzero(model.temporal_pos) == 0  # MixSTE initialises its position embeddings to zero
    assert model.spatial_blocks[0].mixer.num_heads == 8 and model.spatial_blocks[0].mixer.qkv.bias is not None


def test_poolformer_preset_has_layer_scale_and_no_shared_norms():
    model = build_model(tiny("poolformer"))
    gamma = model.temporal_blocks[1].layer_scale2.gamma
    torch.testing.assert_close(gamma, torch.full((16,), 1e-5))
    assert isinstance(model.spatial_norm, torch.nn.Identity) and isinstance(model.temporal_norm, torch.nn.Identity)
    assert sum(p.numel() for p in model.spatial_blocks[0].mixer.parameters()) == 0
    linear_biases = [m.bias for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(torch.count_nonzero(bias) == 0 for bias in linear_biases)  # trunc_normal init: zero biases
    assert 0.01 < model.spatial_blocks[0].mlp.fc1.weight.std() < 0.03


def test_stochastic_depth_ramps_linearly_per_layer():
    config = tiny(depth=5, drop_path_rate=0.2)
    assert drop_path_rates(config) == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    model = build_model(config)
    assert isinstance(model.spatial_blocks[0].drop_path, torch.nn.Identity)
    for i, expected in enumerate([0.05, 0.1, 0.15, 0.2], start=1):
        assert model.spatial_blocks[i].drop_path.drop_prob == pytest.approx(expected)
        assert model.temporal_blocks[i].drop_path.drop_prob == pytest.approx(expected)


def test_sequence_drop_path_drops_whole_frames_or_joint_tracks():
    torch.manual_seed(0)
    x = torch.ones(4, 9, 17, 3)
    spatial = SequenceDropPath(0.5, "spatial").train()(x)
    temporal = SequenceDropPath(0.5, "temporal").train()(x)
    assert set(spatial.unique().tolist()) == {0.0, 2.0} and set(temporal.unique().tolist()) == {0.0, 2.0}
    assert torch.all(spatial == spatial[:, :, :1, :1])  # one decision per (clip, frame)
    assert torch.all(temporal == temporal[:, :1, :, :1])  # one decision per (clip, joint)
    assert torch.equal(SequenceDropPath(0.5, "spatial").eval()(x), x)


# --- temporal reach ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "reach"), [("fixed", 3), ("growing", 1 + 2 + 4), ("dilated", 1 + 2 + 4)],
)
def test_a_perturbation_travels_as_far_as_the_pooling_windows_reach(schedule, reach):
    # 3 layers of window 3: fixed reaches 1 frame per layer; growing (3, 5, 9) and dilated (3 taps at 1, 2, 4) 1, 2, 4
    config = apply_preset(
        "default", {"num_frames": 31, "embed_dim": 16, "depth": 3, "temporal_pool_schedule": schedule}
    )
    torch.manual_seed(0)
    model = build_model(config).eval()
    clip = torch.randn(1, 31, 17, 2)
    perturbed = clip.clone()
    perturbed[0, 15] += 1.0
    with torch.no_grad():
        changed = (model(perturbed) - model(clip)).abs().amax(dim=(0, 2, 3)) > 1e-6
    assert changed.nonzero().flatten().tolist() == list(range(15 - reach, 15 + reach + 1))


def test_attention_reaches_the_whole_clip():
    torch.manual_seed(0)
    model = build_model(tiny("mixste", num_heads=4)).eval()
    clip = torch.randn(1, 9, 17, 2)
    perturbed = clip.clone()
    perturbed[0, 0] += 1.0
    with torch.no_grad():
        assert ((model(perturbed) - model(clip)).abs().amax(dim=(0, 2, 3)) > 1e-6).all()


# --- causal models ---------------------------------------------------------------------------------------------------

CAUSAL_KINDS = [  # every temporal mixer, every pooling schedule, with learned and pooling spatial mixers
    ("default", {"temporal_pool_schedule": "fixed"}),
    ("default", {"temporal_pool_schedule": "growing"}),
    ("default", {"temporal_pool_schedule": "dilated"}),
    ("poolformer", {"pool_size": 5}),
    ("mixste", {"num_heads": 4}),
    ("default", {"temporal_mixer": "attention", "num_heads": 4}),
]


@pytest.mark.parametrize(("preset", "fields"), CAUSAL_KINDS)
def test_a_causal_model_never_looks_at_future_frames(preset, fields):
    """Changing frames t >= 5 leaves the outputs of frames 0..4 exactly as they were; without --causal they move."""
    clip = torch.randn(2, 11, 17, 2, generator=torch.Generator().manual_seed(1))
    future = clip.clone()
    future[:, 5:] = torch.randn(2, 6, 17, 2, generator=torch.Generator().manual_seed(2))
    outputs = {}
    for causal in (True, False):
        torch.manual_seed(0)
        model = build_model(apply_preset(preset, {**TINY, "num_frames": 11, "depth": 3, **fields, "causal": causal}))
        with torch.no_grad():
            outputs[causal] = model.eval()(clip), model(future)
    before, after = outputs[True]
    assert torch.equal(before[:, :5], after[:, :5])
    assert (before[:, 5:] - after[:, 5:]).abs().max() > 1e-4  # the changed frames themselves do change
    before, after = outputs[False]
    assert (before[:, :5] - after[:, :5]).abs().max() > 1e-6  # a non-causal model looks ahead


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_causal_changes_no_parameter_or_state_dict_key(preset):
    torch.manual_seed(0)
    plain = build_model(tiny(preset)).state_dict()
    torch.manual_seed(0)
    causal = build_model(tiny(preset, causal=True)).state_dict()
    assert list(plain) == list(causal)
    assert all(torch.equal(plain[name], causal[name]) for name in plain)
