"""Parameter and MAC counts: closed-form values and a FlopCounterMode measurement of the real forward pass."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from common.model.config import apply_preset
from common.model.cost import count_macs, count_parameters, describe_model
from common.model.metaformer import build_model


def expected_parameters(config) -> int:
    """Closed form, written independently of the model code."""
    c, h, j, f = config.embed_dim, int(config.embed_dim * config.mlp_ratio), config.num_joints, config.num_frames
    mlp = c * h + h + h * c + c
    attention = 3 * c * c + 3 * c + c * c + c
    mixer = {"attention": attention, "fc": j * j, "pool": 0, "graph": 0}
    layer_scale = 0 if config.layer_scale_init is None else 2 * c
    streams = (("s", config.spatial_mixer), ("t", config.temporal_mixer))
    block = {s: 4 * c + mlp + layer_scale + mixer[m] for s, m in streams}
    shared_norms = 4 * c if config.shared_stream_norms else 0
    embed = config.in_chans * c + c + (j + f) * c
    head = 2 * c + c * config.out_chans + config.out_chans
    return embed + config.depth * (block["s"] + block["t"]) + shared_norms + head


@pytest.mark.parametrize("preset", ["mixste", "poolformer", "default"])
def test_parameter_count_matches_closed_form(preset):
    config = apply_preset(preset, {"num_frames": 27, "embed_dim": 32, "depth": 3})
    assert count_parameters(build_model(config)) == expected_parameters(config)


def test_paper_mixste_has_the_published_33_78m_parameters():
    config = apply_preset("mixste")
    model = build_model(config)
    assert count_parameters(model) == expected_parameters(config)
    assert round(count_parameters(model) / 1e4) == 3378  # MixSTE paper: 33.78M
    for p in model.head.parameters():
        p.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - (512 * 3 + 3)


@pytest.mark.parametrize(
    ("spatial", "temporal"), [("attention", "attention"), ("pool", "pool"), ("fc", "pool"), ("graph", "attention")]
)
def test_analytic_macs_equal_measured_flops(spatial, temporal):
    config = apply_preset(
        "default", {"num_frames": 27, "embed_dim": 32, "depth": 2, "spatial_mixer": spatial, "temporal_mixer": temporal}
    )
    model = build_model(config).eval()
    # the math backend runs attention as explicit matmuls, which FlopCounterMode counts (QK^T and AV included)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 27, 17, 2))
    macs = count_macs(config)
    assert counter.get_total_flops() == 2 * macs["per_clip"]
    assert macs["per_frame"] == macs["per_clip"] / 27


def test_mac_breakdown_by_hand():
    config = apply_preset("mixste", {"num_frames": 4, "embed_dim": 8, "depth": 1, "num_heads": 2, "num_joints": 3,
                                     "skeleton_parents": (-1, 0, 1)})
    macs = count_macs(config)
    tokens = 12
    assert macs["embed"] == tokens * 2 * 8
    assert macs["mlp"] == 2 * tokens * 2 * 8 * 16
    assert macs["spatial_mixer"] == tokens * 4 * 64 + 4 * 2 * 3 * 3 * 8  # projections + QK^T, AV over 4 frames
    assert macs["temporal_mixer"] == tokens * 4 * 64 + 3 * 2 * 4 * 4 * 8  # over 3 joint tracks of 4 frames
    assert macs["head"] == tokens * 8 * 3
    assert macs["pool_adds"] == 0


def test_pool_adds_are_reported_separately():
    config = apply_preset("poolformer", {"num_frames": 5, "embed_dim": 2, "depth": 1})
    macs = count_macs(config)
    assert macs["spatial_mixer"] == macs["temporal_mixer"] == 0
    # window 3 without counting padding: a sequence of L tokens sums 3L - 2 taps, i.e. 2L - 2 additions
    spatial = 5 * 2 * (2 * 17 - 2)  # 5 frames x 2 channels
    temporal = 17 * 2 * (2 * 5 - 2)  # 17 joints x 2 channels
    assert macs["pool_adds"] == spatial + temporal


def test_paper_configuration_costs():
    mixste, pool = count_macs(apply_preset("mixste")), count_macs(apply_preset("poolformer"))
    tokens, c = 243 * 17, 512
    assert pool["per_clip"] == tokens * (2 * c + c * 3) + 8 * 2 * tokens * 2 * c * 1024
    attention = 8 * (2 * tokens * 4 * c * c + 243 * 2 * 17 * 17 * c + 17 * 2 * 243 * 243 * c)
    assert mixste["per_clip"] == pool["per_clip"] + attention


def test_describe_model_line():
    config = apply_preset("default", {"num_frames": 27, "embed_dim": 32, "depth": 2})
    model = build_model(config)
    line = describe_model(model, config)
    params = count_parameters(model)
    assert f"{params / 1e6:.3f}M params" in line
    assert f"{count_macs(config)['per_clip'] / 1e6:.2f}MMACs/clip" in line
    assert "fc+pool" in line and "F=27" in line and "\n" not in line
    assert "causal" not in line
    causal = apply_preset("default", {"num_frames": 27, "embed_dim": 32, "depth": 2, "causal": True})
    assert describe_model(build_model(causal), causal).startswith("model fc+pool(pool 3, fixed) causal: F=27 ")


def test_causal_pooling_adds_count_the_past_taps():
    # F=5, one layer of window 3: centred taps per frame 2,3,3,3,2 (13) vs causal 1,2,3,3,3 (12); minus one per frame
    base = {"num_frames": 5, "embed_dim": 1, "depth": 1, "spatial_mixer": "fc", "num_joints": 2,
            "skeleton_parents": (-1, 0)}
    assert count_macs(apply_preset("default", base))["pool_adds"] == 2 * (13 - 5)
    assert count_macs(apply_preset("default", {**base, "causal": True}))["pool_adds"] == 2 * (12 - 5)
