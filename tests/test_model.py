"""PoseMetaFormer, its config / presets and the token mixers (tiny models, real values)."""

from __future__ import annotations

import json

import pytest
import torch

from common.errors import UserError
from common.mixers import FcMixer, GraphMixer, PoolMixer, skeleton_neighbour_matrix, window_mean
from common.model import (
    H36M_17_PARENTS,
    PRESETS,
    ModelConfig,
    SequenceDropPath,
    apply_preset,
    build_model,
    drop_path_rates,
    temporal_pool_windows,
    temporal_reach,
)

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


INFERENCE_PATH_CASES = [
    ("default", {}),
    ("mixste", {}),
    ("poolformer", {}),
    ("default", {"layer_scale_init": 0.5}),
    ("mixste", {"layer_scale_init": 0.3}),
    ("default", {"spatial_mixer": "graph", "temporal_pool_schedule": "dilated"}),
    ("default", {"spatial_mixer": "attention", "temporal_pool_schedule": "growing"}),
]


@pytest.mark.parametrize("preset,overrides", INFERENCE_PATH_CASES)
def test_inference_path_computes_the_same_function_as_the_autograd_path(preset, overrides):
    # eval mode without autograd takes MetaFormerBlock.forward_inference (residuals folded into the matrix products,
    # layer scale folded into weights, GELU in place); with autograd on, the block runs the paper-figure forward.
    torch.manual_seed(0)
    model = build_model(tiny(preset, num_heads=4, **overrides)).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # move away from the zero / identity initialisation
            parameter.add_(0.2 * torch.randn_like(parameter))
    clips = torch.randn(3, 9, 17, 2)
    reference = model(clips)
    assert reference.requires_grad
    with torch.no_grad():
        fast = model(clips)
    with torch.inference_mode():
        fast_inference_mode = model(clips)
    assert reference.abs().max() > 0.3
    torch.testing.assert_close(fast, reference.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(fast_inference_mode, fast, rtol=0, atol=0)


@pytest.mark.parametrize("preset", ["default", "mixste"])
def test_eval_without_autograd_under_autocast_uses_the_reference_path(preset):
    # mixed dtypes (bf16 activations, fp32 residual) would break the inference path's in-place products
    torch.manual_seed(0)
    model = build_model(tiny(preset, num_heads=4)).eval()
    clips = torch.randn(2, 9, 17, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = model(clips)
        with torch.no_grad():
            out = model(clips)
    torch.testing.assert_close(out, reference.detach(), rtol=0, atol=0)
    full_precision = model(clips).detach()
    assert (out.float() - full_precision).abs().max() < 0.05


@pytest.mark.parametrize("mixer_name", ["pool", "graph", "fc", "attention"])
@pytest.mark.parametrize("with_scale", [False, True])
def test_add_mixed_is_the_scaled_residual_update(mixer_name, with_scale):
    from common.model import build_mixer

    torch.manual_seed(1)
    config = tiny(spatial_mixer=mixer_name, num_heads=4)
    mixer = build_mixer(config, "spatial", 0).eval()
    with torch.no_grad():
        for parameter in mixer.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
        x, normed = torch.randn(2, 9, 17, 16), torch.randn(2, 9, 17, 16)
        scale = 0.5 + torch.rand(16) if with_scale else None
        expected = x + (scale if with_scale else 1.0) * mixer(normed)
        x_before = x.clone()
        got = mixer.add_mixed(x, normed, scale)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert got.shape == x.shape and got.is_contiguous()
    torch.testing.assert_close(x, x_before, rtol=0, atol=0)  # the residual input is not modified in place


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
    ("schedule", "windows", "reach"),
    [("fixed", [(3, 1)] * 3, 3), ("growing", [(3, 1), (5, 1), (9, 1)], 7), ("dilated", [(3, 1), (3, 2), (3, 4)], 7)],
)
def test_temporal_reach_matches_a_perturbation_through_the_untrained_model(schedule, windows, reach):
    config = apply_preset(
        "default", {"num_frames": 31, "embed_dim": 16, "depth": 3, "temporal_pool_schedule": schedule}
    )
    assert temporal_pool_windows(config) == windows
    assert temporal_reach(config) == reach
    torch.manual_seed(0)
    model = build_model(config).eval()
    clip = torch.randn(1, 31, 17, 2)
    perturbed = clip.clone()
    perturbed[0, 15] += 1.0
    with torch.no_grad():
        changed = (model(perturbed) - model(clip)).abs().amax(dim=(0, 2, 3)) > 1e-6
    assert changed.nonzero().flatten().tolist() == list(range(15 - reach, 15 + reach + 1))


def test_reach_of_pooling_over_eight_layers_and_of_attention():
    assert temporal_reach(apply_preset("poolformer")) == 8  # 17 of 243 frames
    assert temporal_reach(apply_preset("default", {"temporal_pool_schedule": "growing"})) == 242
    assert temporal_reach(apply_preset("mixste")) == 242
    growing_5 = apply_preset("default", {"temporal_pool_schedule": "growing", "pool_size": 5})
    assert temporal_pool_windows(growing_5)[:3] == [(5, 1), (9, 1), (17, 1)]


# --- mixers ----------------------------------------------------------------------------------------------------------


def test_pool_mixer_is_window_mean_minus_identity_with_uncounted_padding():
    x = torch.arange(5.0).view(1, 5, 1, 1).expand(1, 5, 2, 2).contiguous() ** 2  # values 0 1 4 9 16 along F
    expected_mean = torch.tensor([0.5, 5 / 3, 14 / 3, 29 / 3, 12.5])  # edges average 2 values, not 3
    out = PoolMixer("temporal", 3)(x)
    torch.testing.assert_close(out[0, :, 0, 0], expected_mean - x[0, :, 0, 0])
    wide = window_mean(x, "temporal", 5)[0, :, 1, 1]
    torch.testing.assert_close(wide, torch.tensor([5 / 3, 7 / 2, 6.0, 15 / 2, 29 / 3]))
    dilated = window_mean(x, "temporal", 3, dilation=2)[0, :, 0, 0]  # t-2, t, t+2
    torch.testing.assert_close(dilated, torch.tensor([2.0, 5.0, 20 / 3, 5.0, 10.0]))
    huge = window_mean(x, "temporal", 99)[0, :, 0, 0]  # wider than the clip: everything in reach
    torch.testing.assert_close(huge, torch.full((5,), 6.0))


def test_spatial_pool_mixes_joint_indices_only():
    x = torch.zeros(1, 2, 4, 3)
    x[0, 0, :, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    out = PoolMixer("spatial", 3)(x)
    torch.testing.assert_close(out[0, 0, :, 0], torch.tensor([1.5, 2.0, 3.0, 3.5]) - x[0, 0, :, 0])
    assert torch.count_nonzero(out[0, 1]) == 0 and torch.count_nonzero(out[0, 0, :, 1:]) == 0


def test_pool_mixer_output_is_contiguous_in_model_layout():
    out = PoolMixer("temporal", 3)(torch.randn(2, 7, 5, 4))
    assert out.shape == (2, 7, 5, 4) and out.is_contiguous()


def test_graph_mixer_uses_skeleton_neighbours_not_index_neighbours():
    matrix = skeleton_neighbour_matrix(H36M_17_PARENTS)
    head, neck, left_shoulder, thorax = 10, 9, 11, 8
    assert matrix[head].nonzero().flatten().tolist() == [neck, head]
    assert matrix[head, left_shoulder] == 0
    torch.testing.assert_close(matrix[head, neck], torch.tensor(0.5))
    # thorax: parent spine (7), children neck (9), left shoulder (11), right shoulder (14), and itself
    assert matrix[thorax].nonzero().flatten().tolist() == [7, 8, 9, 11, 14]
    torch.testing.assert_close(matrix.sum(dim=1), torch.ones(17))
    x = torch.randn(2, 3, 17, 4)
    out = GraphMixer(H36M_17_PARENTS)(x)
    torch.testing.assert_close(out[:, :, head], (x[:, :, head] + x[:, :, neck]) / 2 - x[:, :, head])


def test_fc_mixer_subtracts_the_identity():
    mixer = FcMixer(3)
    x = torch.randn(2, 4, 3, 5)
    with torch.no_grad():
        mixer.weight.copy_(torch.eye(3))
    assert torch.count_nonzero(mixer(x)) == 0
    with torch.no_grad():
        mixer.weight.copy_(torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.0, 0.0, 2.0]]))
    expected = torch.stack([x[:, :, 1], (x[:, :, 0] + x[:, :, 2]) / 2, 2 * x[:, :, 2]], dim=2) - x
    torch.testing.assert_close(mixer(x), expected)
    assert mixer.weight.requires_grad


# --- config and presets ----------------------------------------------------------------------------------------------


def test_default_config_is_the_default_preset():
    assert ModelConfig() == apply_preset("default")
    assert (ModelConfig().spatial_mixer, ModelConfig().temporal_mixer) == ("fc", "pool")


def test_presets_set_mixers_and_flags_override():
    assert (apply_preset("mixste").spatial_mixer, apply_preset("mixste").temporal_mixer) == ("attention", "attention")
    assert (apply_preset("poolformer").spatial_mixer, apply_preset("poolformer").temporal_mixer) == ("pool", "pool")
    config = apply_preset("mixste", {"temporal_mixer": "pool", "pool_size": 5, "depth": None})
    assert config.spatial_mixer == "attention" and config.temporal_mixer == "pool" and config.pool_size == 5
    assert config.depth == 8  # None = flag not given
    with pytest.raises(UserError, match="--preset"):
        apply_preset("transformer")
    with pytest.raises(UserError, match="unknown field.*mixer_name"):
        apply_preset("default", {"mixer_name": "pool"})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spatial_mixer", "conv", "spatial_mixer: expected one of pool, graph, fc, attention"),
        ("temporal_mixer", "graph", "temporal_mixer: .*spatial stream only"),
        ("temporal_mixer", "fc", "temporal_mixer"),
        ("pool_size", 4, "pool_size: expected an odd integer"),
        ("temporal_pool_schedule", "random", "temporal_pool_schedule"),
        ("drop_path_rate", 1.5, "drop_path_rate"),
        ("skeleton_parents", (-1, 0), "skeleton_parents"),
        ("embed_dim", 12, "embed_dim: expected a multiple of num_heads"),
    ],
)
def test_invalid_config_names_the_field(field, value, message):
    overrides = {field: value}
    if field == "embed_dim":
        overrides["spatial_mixer"] = "attention"
    with pytest.raises(UserError, match=message):
        apply_preset("default", overrides)


def test_config_round_trips_through_json():
    config = apply_preset("poolformer", {"num_frames": 81, "temporal_pool_schedule": "dilated", "drop_rate": 0.1})
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert restored.skeleton_parents == H36M_17_PARENTS and isinstance(restored.skeleton_parents, tuple)
    assert restored.layer_scale_init == 1e-5


@pytest.mark.parametrize("axis", ["spatial", "temporal"])
def test_attention_mixer_runs_the_fused_sdpa_kernel(axis):
    # 5-D or otherwise unsupported inputs make scaled_dot_product_attention fall back to its slow "math" path
    from common.mixers import AttentionMixer

    mixer = AttentionMixer(axis, 32, 4).eval()
    with torch.no_grad(), torch.profiler.profile() as profile:
        mixer(torch.randn(2, 9, 17, 32))
    names = {event.key for event in profile.key_averages()}
    assert "aten::_scaled_dot_product_attention_math" not in names
    assert any("flash_attention" in name for name in names), sorted(names)
