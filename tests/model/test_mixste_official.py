"""Official MixSTE checkpoints: safe loading, key mapping and numerical equality with the official model's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import shared_path

from common.core.errors import UserError
from common.model.checkpoints import load_checkpoint, load_model_weights, model_with_weights
from common.model.config import apply_preset
from common.model.metaformer import build_model
from common.model.mixste_official import (
    config_from_official_state_dict,
    official_state_dict_to_ours,
    official_to_our_name,
)

FIXTURE = ("fixtures", "mixste_official_f27_d64_dep2_s0.bin")
FIXTURE_IO = ("fixtures", "mixste_official_f27_d64_dep2_s0_io.npz")


def small_mixste():
    return build_model(apply_preset("mixste", {"num_frames": 27, "embed_dim": 64, "depth": 2}))


@pytest.fixture(scope="module")
def checkpoint():
    return load_checkpoint(shared_path(*FIXTURE))  # weights_only, numpy RandomState pieces allow-listed


def test_fixture_checkpoint_reproduces_the_official_outputs(checkpoint):
    io = np.load(shared_path(*FIXTURE_IO))
    assert io["config"].tolist() == [27, 64, 2, 8]  # num_frame, embed_dim_ratio, depth, num_heads
    assert set(checkpoint) == {"epoch", "lr", "random_state", "optimizer", "model_pos"}
    config = config_from_official_state_dict(checkpoint["model_pos"], num_heads=int(io["config"][3]))
    assert (config.num_frames, config.embed_dim, config.depth, config.num_heads) == (27, 64, 2, 8)
    assert (config.spatial_mixer, config.temporal_mixer, config.mlp_ratio) == ("attention", "attention", 2.0)
    assert config.drop_path_rate == 0.1  # MixSTE's training value, for training on from its weights
    model = model_with_weights(config, checkpoint, shared_path(*FIXTURE)).eval()
    with torch.no_grad():
        output = model(torch.from_numpy(io["input_2d"])).numpy()
    assert output.shape == io["output_3d"].shape == (2, 27, 17, 3)
    np.testing.assert_allclose(output, io["output_3d"], atol=1e-5, rtol=0)


def test_every_problem_is_listed_at_once(checkpoint):
    weights = dict(checkpoint["model_pos"])
    del weights["TTEblocks.1.mlp.fc2.bias"]
    weights["STEblocks.0.attn.rel_pos"] = torch.zeros(3)
    weights["head.1.weight"] = torch.zeros(51, 64)
    with pytest.raises(UserError) as error:
        load_model_weights(small_mixste(), official_state_dict_to_ours(weights), "ckpt.bin")
    message = str(error.value)
    assert message.startswith("ckpt.bin: checkpoint of another architecture")
    assert "missing: temporal_blocks.1.mlp.fc2.bias" in message
    assert "unexpected: STEblocks.0.attn.rel_pos" in message  # unknown official names are shown as in the file
    assert "shape (file vs model): head.weight (51, 64) vs (3, 64)" in message


def test_wrong_frame_count_or_prefix_mixture_is_refused(checkpoint):
    other_frames = build_model(apply_preset("mixste", {"num_frames": 243, "embed_dim": 64, "depth": 2}))
    with pytest.raises(UserError, match=r"temporal_pos \(1, 27, 64\) vs \(1, 243, 64\)"):
        load_model_weights(other_frames, official_state_dict_to_ours(checkpoint["model_pos"]), "ckpt.bin")
    mixed = {("module." if i else "") + key: value for i, (key, value) in enumerate(checkpoint["model_pos"].items())}
    with pytest.raises(UserError, match="unexpected: module."):  # only an all-prefixed dict loses its prefix
        load_model_weights(small_mixste(), official_state_dict_to_ours(mixed), "ckpt.bin")


def test_a_pool_model_cannot_take_mixste_weights(checkpoint):
    pool = build_model(apply_preset("poolformer", {"num_frames": 27, "embed_dim": 64, "depth": 2}))
    with pytest.raises(UserError, match=r"unexpected: .*mixer\.qkv"):
        load_model_weights(pool, official_state_dict_to_ours(checkpoint["model_pos"]), "ckpt.bin")


def test_official_names_map_to_ours():
    assert official_to_our_name("STEblocks.3.attn.qkv.weight") == "spatial_blocks.3.mixer.qkv.weight"
    assert official_to_our_name("TTEblocks.0.mlp.fc1.bias") == "temporal_blocks.0.mlp.fc1.bias"
    assert official_to_our_name("Temporal_pos_embed") == "temporal_pos"
    assert official_to_our_name("head.0.weight") == "head_norm.weight"
    assert official_to_our_name("STEblocks.0.attn.unknown") is None
    assert official_to_our_name("weighted_mean.weight") is None


def test_config_inference_needs_the_official_keys():
    with pytest.raises(UserError, match="cannot infer the model shape"):
        config_from_official_state_dict({"Spatial_pos_embed": torch.zeros(1, 17, 64)})
