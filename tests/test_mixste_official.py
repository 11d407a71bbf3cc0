"""Official MixSTE checkpoints: strict key mapping and numerical equality with the official model's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import shared_path

from common.errors import UserError
from common.mixste_official import (
    config_from_official_state_dict,
    is_official_state_dict,
    load_official_checkpoint,
    load_official_weights,
    official_state_dict_to_ours,
    official_to_our_name,
    our_state_dict_to_official,
    our_to_official_name,
    strip_data_parallel_prefix,
)
from common.model import apply_preset, build_model

FIXTURE = ("fixtures", "mixste_official_f27_d64_dep2_s0.bin")
FIXTURE_IO = ("fixtures", "mixste_official_f27_d64_dep2_s0_io.npz")


def small_mixste():
    return build_model(apply_preset("mixste", {"num_frames": 27, "embed_dim": 64, "depth": 2}))


@pytest.fixture(scope="module")
def checkpoint():
    return load_official_checkpoint(shared_path(*FIXTURE), trust=True)


def test_fixture_checkpoint_reproduces_the_official_outputs(checkpoint):
    io = np.load(shared_path(*FIXTURE_IO))
    assert io["config"].tolist() == [27, 64, 2, 8]  # num_frame, embed_dim_ratio, depth, num_heads
    assert set(checkpoint) == {"epoch", "lr", "random_state", "optimizer", "model_pos"}
    config = config_from_official_state_dict(checkpoint["model_pos"], num_heads=int(io["config"][3]))
    assert (config.num_frames, config.embed_dim, config.depth, config.num_heads) == (27, 64, 2, 8)
    assert (config.spatial_mixer, config.temporal_mixer, config.mlp_ratio) == ("attention", "attention", 2.0)
    model = build_model(config).eval()
    load_official_weights(model, shared_path(*FIXTURE))
    with torch.no_grad():  # the blocks' inference path
        output = model(torch.from_numpy(io["input_2d"])).numpy()
    assert output.shape == io["output_3d"].shape == (2, 27, 17, 3)
    np.testing.assert_allclose(output, io["output_3d"], atol=1e-5, rtol=0)
    output_autograd = model(torch.from_numpy(io["input_2d"])).detach().numpy()  # the paper-figure forward
    np.testing.assert_allclose(output_autograd, io["output_3d"], atol=1e-5, rtol=0)


def test_untrusted_loading_refuses_the_pickled_random_state():
    with pytest.raises(UserError, match="trust"):
        load_official_checkpoint(shared_path(*FIXTURE), trust=False)


def test_missing_file_and_non_checkpoint(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_official_checkpoint(tmp_path / "absent.bin")
    torch.save({"model": {}}, tmp_path / "other.bin")
    with pytest.raises(UserError, match="model_pos"):
        load_official_checkpoint(tmp_path / "other.bin")


def test_every_problem_is_listed_at_once(checkpoint):
    weights = dict(checkpoint["model_pos"])
    del weights["module.TTEblocks.1.mlp.fc2.bias"]
    weights["module.STEblocks.0.attn.rel_pos"] = torch.zeros(3)
    weights["module.head.1.weight"] = torch.zeros(51, 64)
    with pytest.raises(UserError) as error:
        official_state_dict_to_ours(weights, small_mixste(), source="ckpt.bin")
    message = str(error.value)
    assert message.startswith("ckpt.bin: ")
    assert "missing 1 key(s): temporal_blocks.1.mlp.fc2.bias" in message
    assert "unexpected 1 key(s): STEblocks.0.attn.rel_pos" in message
    assert "mis-shaped 1 key(s): head.1.weight (51, 64) -> head.weight (3, 64)" in message


@pytest.mark.parametrize("problem", ["missing", "unexpected", "misshaped"])
def test_each_kind_of_problem_alone_is_an_error(checkpoint, problem):
    weights = strip_data_parallel_prefix(checkpoint["model_pos"])
    if problem == "missing":
        del weights["Spatial_norm.weight"]
    elif problem == "unexpected":
        weights["weighted_mean.weight"] = torch.zeros(27, 27, 1)
    else:
        weights["Temporal_pos_embed"] = torch.zeros(1, 81, 64)
    with pytest.raises(UserError, match={"missing": "missing 1 key.*spatial_norm.weight",
                                         "unexpected": "unexpected 1 key.*weighted_mean.weight",
                                         "misshaped": r"Temporal_pos_embed \(1, 81, 64\)"}[problem]):
        official_state_dict_to_ours(weights, small_mixste())


def test_wrong_frame_count_or_prefix_mixture_is_refused(checkpoint):
    other_frames = build_model(apply_preset("mixste", {"num_frames": 243, "embed_dim": 64, "depth": 2}))
    with pytest.raises(UserError, match="Temporal_pos_embed"):
        official_state_dict_to_ours(checkpoint["model_pos"], other_frames)
    mixed = dict(checkpoint["model_pos"])
    mixed["head.1.bias"] = mixed.pop("module.head.1.bias")
    with pytest.raises(UserError, match="unexpected"):
        official_state_dict_to_ours(mixed, small_mixste())


def test_a_pool_model_cannot_take_mixste_weights(checkpoint):
    pool = build_model(apply_preset("poolformer", {"num_frames": 27, "embed_dim": 64, "depth": 2}))
    with pytest.raises(UserError, match="unexpected .*attn.qkv"):
        official_state_dict_to_ours(checkpoint["model_pos"], pool)


def test_names_map_both_ways_and_export_round_trips(checkpoint):
    assert official_to_our_name("STEblocks.3.attn.qkv.weight") == "spatial_blocks.3.mixer.qkv.weight"
    assert official_to_our_name("TTEblocks.0.mlp.fc1.bias") == "temporal_blocks.0.mlp.fc1.bias"
    assert official_to_our_name("head.0.weight") == "head_norm.weight"
    assert official_to_our_name("STEblocks.0.attn.unknown") is None
    assert our_to_official_name("temporal_blocks.7.norm2.bias") == "TTEblocks.7.norm2.bias"
    assert our_to_official_name("spatial_blocks.0.layer_scale1.gamma") is None
    model = small_mixste()
    model.load_state_dict(official_state_dict_to_ours(checkpoint["model_pos"], model))
    exported = our_state_dict_to_official(model.state_dict())
    assert set(exported) == set(checkpoint["model_pos"])
    for key, value in checkpoint["model_pos"].items():
        assert torch.equal(exported[key], value)
    assert is_official_state_dict(exported) and not is_official_state_dict(model.state_dict())
    pool = build_model(apply_preset("poolformer", {"num_frames": 27, "embed_dim": 64, "depth": 2}))
    with pytest.raises(UserError, match="layer_scale1.gamma"):
        our_state_dict_to_official(pool.state_dict())


def test_unprefixed_weights_load_too(checkpoint):
    weights = strip_data_parallel_prefix(checkpoint["model_pos"])
    assert "Spatial_pos_embed" in weights
    model = small_mixste()
    model.load_state_dict(official_state_dict_to_ours(weights, model))
    torch.testing.assert_close(model.spatial_pos, weights["Spatial_pos_embed"])
