"""ModelConfig, its validation and the named presets."""

from __future__ import annotations

import json

import pytest

from common.core.errors import UserError
from common.model.config import PRESETS, SPATIAL_MIXERS, TEMPORAL_MIXERS, ModelConfig, apply_preset


def test_default_config_is_the_default_preset():
    assert ModelConfig() == apply_preset("default")
    assert (ModelConfig().spatial_mixer, ModelConfig().temporal_mixer) == ("fc", "pool")


def test_a_new_model_has_no_stochastic_depth():
    # the command line's default for a new model; the presets leave it alone
    assert ModelConfig().drop_path_rate == 0.0
    assert {apply_preset(name).drop_path_rate for name in PRESETS} == {0.0}


def test_default_skeleton_is_the_h36m_17_joint_tree():
    # VideoPose3D's 17 joints: hip root, right leg 1-3, left leg 4-6, spine 7, thorax 8, neck 9, head 10,
    # left arm 11-13 and right arm 14-16 hanging from the thorax
    assert ModelConfig().skeleton_parents == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)


def test_mixer_names_per_stream():
    assert SPATIAL_MIXERS == ("pool", "graph", "fc", "attention")
    assert TEMPORAL_MIXERS == ("pool", "attention")


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
        ("pool_size", True, "pool_size"),
        ("temporal_pool_schedule", "random", "temporal_pool_schedule: expected one of fixed, growing, dilated"),
        ("weight_init", "xavier", "weight_init"),
        ("drop_path_rate", 1.5, "drop_path_rate"),
        ("depth", 0, "depth: expected a positive integer"),
        ("layer_scale_init", -1.0, "layer_scale_init"),
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
    assert isinstance(restored.skeleton_parents, tuple)
    assert (restored.layer_scale_init, restored.temporal_pool_schedule, restored.num_frames) == (1e-5, "dilated", 81)


def test_mixer_of_each_stream():
    config = apply_preset("default", {"spatial_mixer": "graph", "temporal_mixer": "attention"})
    assert (config.mixer("spatial"), config.mixer("temporal")) == ("graph", "attention")


def test_causal_defaults_to_false_and_is_checked():
    assert ModelConfig().causal is False
    data = ModelConfig(num_frames=9).to_dict()
    assert data["causal"] is False
    del data["causal"]  # a checkpoint written before the field existed
    assert ModelConfig.from_dict(data).causal is False
    assert apply_preset("default", {"causal": True}).causal is True
    with pytest.raises(UserError, match="model config causal: expected True or False, got 1"):
        ModelConfig(causal=1)
