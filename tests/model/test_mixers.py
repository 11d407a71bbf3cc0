"""Token mixers: each one against an independent computation (numpy loops / explicit products) on small tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.core.errors import UserError
from common.model.config import ModelConfig, apply_preset
from common.model.mixers import (
    TOKEN_MIXERS,
    AttentionMixer,
    FcMixer,
    GraphMixer,
    PoolMixer,
    create_mixer,
    mixer_names,
    temporal_pool_windows,
    window_mean,
)

# a 5-joint chain with a branch: 0 is the root, 1 and 3 hang from 0, 2 from 1, 4 from 3
PARENTS = (-1, 0, 1, 0, 3)


def small_config(**overrides) -> ModelConfig:
    values = {"num_frames": 7, "num_joints": 5, "embed_dim": 8, "depth": 3, "num_heads": 2,
              "skeleton_parents": PARENTS}
    return apply_preset("default", {**values, **overrides})


def numpy_window_mean(x: np.ndarray, axis: int, window: int, dilation: int) -> np.ndarray:
    """Loop over every token: the mean of the in-range tokens ``t + m * dilation``, ``|m| <= window // 2``."""
    out = np.empty_like(x)
    length, radius = x.shape[axis], window // 2
    for t in range(length):
        taps = [t + m * dilation for m in range(-radius, radius + 1) if 0 <= t + m * dilation < length]
        np.put_along_axis(out, np.full([1 if d == axis else n for d, n in enumerate(x.shape)], t),
                          np.take(x, taps, axis=axis).mean(axis=axis, keepdims=True), axis=axis)
    return out


@pytest.mark.parametrize(("axis", "dim"), [("temporal", 1), ("spatial", 2)])
@pytest.mark.parametrize(("window", "dilation"), [(3, 1), (5, 1), (3, 2), (5, 3), (99, 1)])
def test_window_mean_matches_a_numpy_loop_with_uncounted_edges(axis, dim, window, dilation):
    x = torch.randn(2, 7, 5, 3, dtype=torch.float64)
    expected = numpy_window_mean(x.numpy(), dim, window, dilation)
    np.testing.assert_allclose(window_mean(x, axis, window, dilation).numpy(), expected, rtol=0, atol=1e-12)


def test_window_mean_edges_by_hand():
    x = torch.tensor([0.0, 1.0, 4.0, 9.0, 16.0]).view(1, 5, 1, 1)
    # window 3: the edge tokens average 2 values, not 3 (no zero padding counted)
    expected = torch.tensor([0.5, 5 / 3, 14 / 3, 29 / 3, 12.5])
    torch.testing.assert_close(window_mean(x, "temporal", 3).flatten(), expected)
    # dilation 2: t-2, t, t+2
    expected = torch.tensor([2.0, 5.0, 20 / 3, 5.0, 10.0])
    torch.testing.assert_close(window_mean(x, "temporal", 3, 2).flatten(), expected)


@pytest.mark.parametrize("schedule", ["fixed", "growing", "dilated"])
def test_pool_mixer_is_window_mean_minus_identity_with_the_layer_window(schedule):
    config = small_config(temporal_pool_schedule=schedule, spatial_mixer="pool")
    x = torch.randn(2, 7, 5, 8, dtype=torch.float64)
    windows = {"fixed": [(3, 1)] * 3, "growing": [(3, 1), (5, 1), (9, 1)], "dilated": [(3, 1), (3, 2), (3, 4)]}
    assert temporal_pool_windows(config) == windows[schedule]
    for layer, (window, dilation) in enumerate(windows[schedule]):
        mixed = PoolMixer(config, "temporal", layer)(x)
        np.testing.assert_allclose(mixed.numpy(), numpy_window_mean(x.numpy(), 1, window, dilation) - x.numpy(),
                                   rtol=0, atol=1e-12)
        assert mixed.is_contiguous()
    spatial = PoolMixer(config, "spatial", 2)(x)  # spatial pooling: pool_size joints at every layer
    np.testing.assert_allclose(spatial.numpy(), numpy_window_mean(x.numpy(), 2, 3, 1) - x.numpy(), rtol=0, atol=1e-12)
    assert len(list(PoolMixer(config, "spatial", 0).parameters())) == 0


def test_graph_mixer_averages_skeleton_neighbours_not_index_neighbours():
    x = torch.randn(2, 3, 5, 4)
    mixed = GraphMixer(small_config(spatial_mixer="graph"), "spatial", 0)(x)
    neighbours = {0: [0, 1, 3], 1: [0, 1, 2], 2: [1, 2], 3: [0, 3, 4], 4: [3, 4]}  # parent, children, itself
    for joint, group in neighbours.items():
        torch.testing.assert_close(mixed[:, :, joint], x[:, :, group].mean(dim=2) - x[:, :, joint])


def test_graph_mixer_on_the_h36m_skeleton():
    config = apply_preset("default", {"num_frames": 3, "embed_dim": 4, "depth": 1, "spatial_mixer": "graph"})
    x = torch.randn(1, 3, 17, 4)
    mixed = GraphMixer(config, "spatial", 0)(x)
    head, neck, thorax = 10, 9, 8
    # the head (10) mixes with the neck (9) only, not with its index neighbour the left shoulder (11)
    torch.testing.assert_close(mixed[:, :, head], (x[:, :, head] + x[:, :, neck]) / 2 - x[:, :, head])
    # the thorax: spine (7), itself, neck (9), both shoulders (11, 14)
    torch.testing.assert_close(mixed[:, :, thorax], x[:, :, [7, 8, 9, 11, 14]].mean(dim=2) - x[:, :, thorax])


def test_fc_mixer_is_the_explicit_matrix_product_minus_identity():
    mixer = FcMixer(small_config(), "spatial", 0)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    weight = mixer.weight.detach().double().numpy()
    expected = np.einsum("ij,bfjc->bfic", weight, x.numpy()) - x.numpy()
    np.testing.assert_allclose(mixer.double()(x).detach().numpy(), expected, rtol=0, atol=1e-12)
    assert mixer.weight.requires_grad and mixer.weight.shape == (5, 5)


def numpy_attention(tokens: np.ndarray, mixer: AttentionMixer) -> np.ndarray:
    """softmax(Q K^T / sqrt(d)) V per head over the rows of ``tokens`` (L, C), then the output projection."""
    w_qkv, b_qkv = mixer.qkv.weight.detach().numpy(), mixer.qkv.bias.detach().numpy()
    q, k, v = np.split(tokens @ w_qkv.T + b_qkv, 3, axis=-1)
    heads, head_dim = mixer.num_heads, tokens.shape[-1] // mixer.num_heads
    outputs = []
    for h in range(heads):
        part = slice(h * head_dim, (h + 1) * head_dim)
        scores = q[:, part] @ k[:, part].T / np.sqrt(head_dim)
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        outputs.append(weights / weights.sum(axis=1, keepdims=True) @ v[:, part])
    return np.concatenate(outputs, axis=1) @ mixer.proj.weight.detach().numpy().T + mixer.proj.bias.detach().numpy()


@pytest.mark.parametrize("axis", ["spatial", "temporal"])
def test_attention_equals_an_independent_softmax_computation(axis):
    torch.manual_seed(0)
    mixer = AttentionMixer(small_config(), axis, 0).eval()
    x = torch.randn(2, 7, 5, 8)
    with torch.no_grad():
        mixed = mixer(x).numpy()
    xs = x.numpy()
    for b in range(2):
        if axis == "spatial":  # every frame attends over its joints
            for f in range(7):
                np.testing.assert_allclose(mixed[b, f], numpy_attention(xs[b, f], mixer), rtol=0, atol=1e-5)
        else:  # every joint attends over its frames
            for j in range(5):
                np.testing.assert_allclose(mixed[b, :, j], numpy_attention(xs[b, :, j], mixer), rtol=0, atol=1e-5)


@pytest.mark.parametrize("axis", ["spatial", "temporal"])
def test_attention_mixer_runs_the_fused_sdpa_kernel(axis):
    # 5-D or otherwise unsupported inputs make scaled_dot_product_attention fall back to its slow "math" path
    mixer = AttentionMixer(apply_preset("mixste", {"num_frames": 9, "embed_dim": 32, "num_heads": 4}), axis, 0).eval()
    with torch.no_grad(), torch.profiler.profile() as profile:
        mixer(torch.randn(2, 9, 17, 32))
    names = {event.key for event in profile.key_averages()}
    assert "aten::_scaled_dot_product_attention_math" not in names
    assert any("flash_attention" in name for name in names), sorted(names)


def test_registry_builds_every_name_on_every_allowed_axis():
    config = small_config()
    assert mixer_names("spatial") == ("pool", "graph", "fc", "attention")
    assert mixer_names("temporal") == ("pool", "attention")
    x = torch.randn(1, 7, 5, 8)
    for axis in ("spatial", "temporal"):
        for name in mixer_names(axis):
            mixer = create_mixer(name, config, axis, 1)
            assert type(mixer) is TOKEN_MIXERS[name]
            assert mixer(x).shape == x.shape


@pytest.mark.parametrize(("name", "axis"), [("conv", "spatial"), ("graph", "temporal"), ("fc", "temporal")])
def test_unknown_or_misplaced_mixer_is_a_user_error(name, axis):
    with pytest.raises(UserError, match=f"{axis} mixer: expected one of"):
        create_mixer(name, small_config(), axis, 0)


# --- causal temporal mixers ----------------------------------------------------------------------------------------


def numpy_causal_window_mean(x: np.ndarray, axis: int, window: int, dilation: int) -> np.ndarray:
    """Loop over every token: the mean of the in-range tokens ``t - m * dilation``, ``0 <= m < window``."""
    out = np.empty_like(x)
    for t in range(x.shape[axis]):
        taps = [t - m * dilation for m in range(window) if t - m * dilation >= 0]
        np.put_along_axis(out, np.full([1 if d == axis else n for d, n in enumerate(x.shape)], t),
                          np.take(x, taps, axis=axis).mean(axis=axis, keepdims=True), axis=axis)
    return out


@pytest.mark.parametrize(("window", "dilation"), [(3, 1), (5, 1), (3, 2), (5, 3), (99, 1), (3, 99)])
def test_causal_window_mean_matches_a_numpy_loop(window, dilation):
    x = torch.randn(2, 7, 5, 3, dtype=torch.float64)
    expected = numpy_causal_window_mean(x.numpy(), 1, window, dilation)
    np.testing.assert_allclose(window_mean(x, "temporal", window, dilation, causal=True).numpy(), expected,
                               rtol=0, atol=1e-12)


def test_causal_window_mean_by_hand():
    x = torch.tensor([0.0, 1.0, 4.0, 9.0, 16.0]).view(1, 5, 1, 1)
    # window 3: t, t-1, t-2 (the first tokens average over fewer, real, tokens)
    torch.testing.assert_close(window_mean(x, "temporal", 3, causal=True).flatten(),
                               torch.tensor([0.0, 0.5, 5 / 3, 14 / 3, 29 / 3]))
    # dilation 2: t, t-2, t-4
    torch.testing.assert_close(window_mean(x, "temporal", 3, 2, causal=True).flatten(),
                               torch.tensor([0.0, 1.0, 2.0, 5.0, 20 / 3]))


@pytest.mark.parametrize("schedule", ["fixed", "growing", "dilated"])
def test_causal_pool_mixer_pools_only_the_past_in_time_and_nothing_changes_in_space(schedule):
    config = small_config(temporal_pool_schedule=schedule, spatial_mixer="pool", causal=True)
    x = torch.randn(2, 7, 5, 8, dtype=torch.float64)
    for layer, (window, dilation) in enumerate(temporal_pool_windows(config)):
        mixer = PoolMixer(config, "temporal", layer)
        assert mixer.causal and "causal=True" in repr(mixer)
        expected = numpy_causal_window_mean(x.numpy(), 1, window, dilation) - x.numpy()
        np.testing.assert_allclose(mixer(x).numpy(), expected, rtol=0, atol=1e-12)
    spatial = PoolMixer(config, "spatial", 0)
    assert not spatial.causal  # a frame's joints are all "now"
    np.testing.assert_allclose(spatial(x).numpy(), numpy_window_mean(x.numpy(), 2, 3, 1) - x.numpy(), rtol=0,
                               atol=1e-12)


def test_causal_temporal_attention_is_a_masked_softmax():
    torch.manual_seed(0)
    mixer = AttentionMixer(small_config(causal=True), "temporal", 0).eval()
    x = torch.randn(1, 7, 5, 8)
    with torch.no_grad():
        mixed = mixer(x).numpy()
    for t in range(7):  # frame t attends over frames 0..t only: the attention of the prefix, at its last row
        for j in range(5):
            np.testing.assert_allclose(mixed[0, t, j], numpy_attention(x.numpy()[0, : t + 1, j], mixer)[-1],
                                       rtol=0, atol=1e-5)
    assert not AttentionMixer(small_config(causal=True), "spatial", 0).causal


def test_causal_attention_runs_the_fused_sdpa_kernel():
    config = apply_preset("mixste", {"num_frames": 9, "embed_dim": 32, "num_heads": 4, "causal": True})
    mixer = AttentionMixer(config, "temporal", 0).eval()
    with torch.no_grad(), torch.profiler.profile() as profile:
        mixer(torch.randn(2, 9, 17, 32))
    names = {event.key for event in profile.key_averages()}
    assert "aten::_scaled_dot_product_attention_math" not in names
    assert any("flash_attention" in name for name in names), sorted(names)
