"""common/cli/model_setup.py: one reconciliation of flags with checkpoints (project and official MixSTE files)."""

from __future__ import annotations

import pytest
import torch
from conftest import shared_path

from common.cli.model_setup import build_from_checkpoint, new_model_config
from common.core.errors import UserError
from common.model.checkpoints import save_checkpoint
from common.model.config import ModelConfig
from common.model.metaformer import build_model


def _project_checkpoint(path, **fields):
    config = ModelConfig(**{"num_frames": 9, "embed_dim": 16, "depth": 1, **fields})
    model = build_model(config)
    save_checkpoint(path, epoch=3, lr=1e-3, model=model, optimizer=None, model_config=config.to_dict(),
                    best_val=None, loader_state=None)
    return model


def test_new_model_takes_preset_then_flags():
    config = new_model_config({"embed_dim": 32, "pool_size": 5}, "poolformer", 17)
    assert (config.embed_dim, config.pool_size, config.spatial_mixer, config.temporal_mixer) == (32, 5, "pool", "pool")
    assert config.drop_path_rate == ModelConfig().drop_path_rate  # ModelConfig is the one source of defaults


def test_project_checkpoint_restores_its_model_and_refuses_contradicting_flags(tmp_path):
    original = _project_checkpoint(tmp_path / "a.bin")
    loaded = build_from_checkpoint(tmp_path / "a.bin", {"embed_dim": 16}, None, 17)
    assert not loaded.official and loaded.stored["epoch"] == 3 and not loaded.model.training
    for name, value in original.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], value)
    with pytest.raises(UserError, match=r"flags contradict .*: -f/--number-of-frames=27 \(checkpoint: 9\)"):
        build_from_checkpoint(tmp_path / "a.bin", {"num_frames": 27})
    with pytest.raises(UserError, match="model predicts 17 joints, the data has 15"):
        build_from_checkpoint(tmp_path / "a.bin", num_joints=15)
    with pytest.raises(UserError, match="--spatial-mixer='attention'"):
        build_from_checkpoint(tmp_path / "a.bin", preset="mixste")


def test_official_checkpoint_takes_heads_from_flags_and_refuses_shape_flags():
    path = shared_path("fixtures", "mixste_official_f27_d64_dep2_s0.bin")
    loaded = build_from_checkpoint(path, {"num_heads": 4})
    assert loaded.official and (loaded.config.num_frames, loaded.config.embed_dim, loaded.config.num_heads) == \
        (27, 64, 4)
    with pytest.raises(UserError, match=r"official MixSTE weights do not match the flags: num_frames=81 \(file: 27\)"):
        build_from_checkpoint(path, {"num_frames": 81})


def test_compile_with_data_parallel_is_refused_before_compiling():
    from common.cli.model_setup import place_model
    from common.training.distributed import DeviceContext

    model = build_model(ModelConfig(num_frames=9, embed_dim=16, depth=1))
    ctx = DeviceContext(device=torch.device("cpu"), device_ids=[0, 1])
    with pytest.raises(UserError, match=r"--compile with -gpu 0,1: .*torchrun"):
        place_model(model, ctx, compile_model=True, training=True, log=print)


def test_causal_is_stored_and_checkpoints_without_it_are_non_causal(tmp_path):
    _project_checkpoint(tmp_path / "causal.bin", causal=True)
    loaded = build_from_checkpoint(tmp_path / "causal.bin")
    assert loaded.config.causal and loaded.model.temporal_blocks[0].mixer.causal
    assert build_from_checkpoint(tmp_path / "causal.bin", {"causal": True}).config.causal
    # a checkpoint written before the field existed: the same weights, non-causal
    original = _project_checkpoint(tmp_path / "old.bin")
    stored = torch.load(tmp_path / "old.bin", weights_only=False)
    del stored["model_config"]["causal"]
    torch.save(stored, tmp_path / "old.bin")
    old = build_from_checkpoint(tmp_path / "old.bin")
    assert not old.config.causal and not old.model.temporal_blocks[0].mixer.causal
    assert all(torch.equal(old.model.state_dict()[k], v) for k, v in original.state_dict().items())
    with pytest.raises(UserError, match="flags contradict the model stored in the checkpoint: --causal=True"):
        build_from_checkpoint(tmp_path / "old.bin", {"causal": True})


def test_official_checkpoint_is_non_causal_and_refuses_causal():
    path = shared_path("fixtures", "mixste_official_f27_d64_dep2_s0.bin")
    assert not build_from_checkpoint(path).config.causal
    with pytest.raises(UserError, match=r"official MixSTE weights do not match the flags: causal=True"):
        build_from_checkpoint(path, {"causal": True})
