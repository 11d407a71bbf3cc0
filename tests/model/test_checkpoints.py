"""Checkpoints: atomic save, weights_only round trip, no module. prefix, RNG states, bad files, official MixSTE."""

from __future__ import annotations

import argparse
import errno
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path
from torch import nn

from common.core.errors import UserError
from common.model import checkpoints as checkpoint
from common.model.config import ModelConfig
from common.model.metaformer import build_model

TINY = dict(num_frames=9, embed_dim=16, depth=1)


def _tiny_model(**overrides) -> tuple[nn.Module, ModelConfig]:
    config = ModelConfig(**{**TINY, **overrides})
    torch.manual_seed(0)
    return build_model(config), config


def _save(path, model, config, optimizer=None, **extra):
    values = dict(epoch=3, lr=1e-3, model=model, optimizer=optimizer, model_config=config.to_dict(), best_val=0.05,
                  loader_state={"seed": 1, "epoch": 3, "consumed": 0}, history={"epoch": [1, 2, 3]})
    values.update(extra)
    return checkpoint.save_checkpoint(path, **values)


def test_round_trip_with_weights_only(tmp_path):
    model, config = _tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 9, 17, 2)).sum().backward()
    optimizer.step()
    path = _save(tmp_path / "a.bin", model, config, optimizer)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # our files need no unpickling of objects
    assert raw["epoch"] == 3 and raw["lr"] == 1e-3 and raw["best_val"] == 0.05
    assert raw["model_config"] == config.to_dict()
    assert raw["loader_state"] == {"seed": 1, "epoch": 3, "consumed": 0}
    loaded = checkpoint.load_checkpoint(path)
    other, _ = _tiny_model()
    torch.manual_seed(5)
    for p in other.parameters():
        nn.init.normal_(p)
    checkpoint.load_model_weights(other, loaded["model_pos"], path)
    for name, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[name], value), name
    new_optimizer = torch.optim.AdamW(other.parameters(), lr=1e-3)
    new_optimizer.load_state_dict(loaded["optimizer"])
    assert new_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert not list(tmp_path.glob("*.tmp*")), "atomic write left a temporary file"


def test_data_parallel_state_dict_has_no_module_prefix(tmp_path):
    model, config = _tiny_model()
    wrapped = nn.DataParallel(model)
    path = _save(tmp_path / "dp.bin", wrapped, config)
    keys = list(torch.load(path, weights_only=True)["model_pos"])
    assert keys == list(model.state_dict()) and not any(k.startswith("module.") for k in keys)
    assert checkpoint.strip_module_prefix({"module.a": 1, "module.b": 2}) == {"a": 1, "b": 2}
    assert checkpoint.strip_module_prefix({"module.a": 1, "b": 2}) == {"module.a": 1, "b": 2}


def test_random_state_round_trip():
    torch.manual_seed(3)
    np.random.seed(3)  # noqa: NPY002
    random.seed(3)
    state = checkpoint.capture_random_state()
    expected = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])  # noqa: NPY002
    torch.manual_seed(99)
    np.random.seed(99)  # noqa: NPY002
    random.seed(99)
    checkpoint.restore_random_state(state)
    again = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])  # noqa: NPY002
    assert torch.equal(expected[0], again[0])
    np.testing.assert_array_equal(expected[1], again[1])
    assert expected[2] == again[2]


def test_not_a_checkpoint_is_a_user_error(tmp_path):
    text = tmp_path / "notes.bin"
    text.write_text("hello, I am not a checkpoint\n")
    with pytest.raises(UserError, match="notes.bin: not a checkpoint"):
        checkpoint.load_checkpoint(text)
    tensor_only = tmp_path / "tensor.bin"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(UserError, match="model_pos"):
        checkpoint.load_checkpoint(tensor_only)
    with pytest.raises(UserError, match="not found"):
        checkpoint.load_checkpoint(tmp_path / "missing.bin")


def test_pickled_objects_outside_the_allow_list_are_refused(tmp_path):
    # loading is weights_only: a file that would need arbitrary unpickling (here an argparse.Namespace) is refused
    model, _ = _tiny_model()
    path = tmp_path / "pickled.bin"
    torch.save({"model_pos": model.state_dict(), "args": argparse.Namespace(lr=1e-3)}, path)
    with pytest.raises(UserError, match=r"pickled.bin: refused to load argparse\.Namespace: ") as caught:
        checkpoint.load_checkpoint(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("content", "expected"), [
    (b"hello, I am not a checkpoint\n", "not a checkpoint (a text file); expected a checkpoint written by run.py"),
    (b"", "not a checkpoint (the file is empty)"),
    (b"\x00\xff\x13binary", "not a checkpoint (not a torch checkpoint (neither a zip archive nor a pickle))"),
])
def test_unreadable_files_are_described_in_one_line(tmp_path, content, expected):
    path = tmp_path / "file.bin"
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        checkpoint.load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: {expected}")
    assert "\n" not in str(caught.value)
    with pytest.raises(UserError, match=r": is a directory; expected a checkpoint written by run\.py"):
        checkpoint.load_checkpoint(tmp_path)


def test_non_finite_weights_are_refused_on_load(tmp_path):
    model, config = _tiny_model()
    path = _save(tmp_path / "diverged.bin", model, config)
    stored = torch.load(path, weights_only=True)
    name = next(iter(stored["model_pos"]))
    stored["model_pos"][name][...] = float("nan")
    torch.save(stored, path)
    assert checkpoint.non_finite_tensors(stored["model_pos"]) == [name]
    with pytest.raises(UserError, match=rf"diverged.bin: not a usable model: 1 weight tensor\(s\) are not finite "
                                        rf"\(NaN or infinity; first: {re.escape(name)}\)"):
        checkpoint.load_checkpoint(path)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux) to fill a disk")
def test_checkpoint_writer_reports_a_full_disk_as_an_os_error():
    # through a Python file handle the writer raises ENOSPC itself (a path makes torch raise an opaque RuntimeError)
    with pytest.raises(OSError) as caught:
        checkpoint._write_state({"w": torch.zeros(256, 256)}, "/dev/full")
    assert caught.value.errno == errno.ENOSPC


def test_architecture_mismatch_lists_keys(tmp_path):
    model, config = _tiny_model()
    path = _save(tmp_path / "small.bin", model, config)
    bigger, _ = _tiny_model(depth=2, embed_dim=32)
    with pytest.raises(UserError) as error:
        checkpoint.load_model_weights(bigger, checkpoint.load_checkpoint(path)["model_pos"], path)
    message = str(error.value)
    assert "small.bin: checkpoint of another architecture" in message
    assert "missing: spatial_blocks.1." in message  # depth 2 has blocks the file lacks
    assert re.search(r"shape \(file vs model\): \S+ \([0-9, ]*16\) vs \([0-9, ]*32\)", message), message
    assert "in all)" in message  # long lists are truncated with the total count


def test_resolve_checkpoint_path(tmp_path):
    (tmp_path / "best_epoch.bin").write_bytes(b"x")
    assert checkpoint.resolve_checkpoint_path("best_epoch.bin", tmp_path, "--evaluate") == tmp_path / "best_epoch.bin"
    direct = tmp_path / "best_epoch.bin"
    assert checkpoint.resolve_checkpoint_path(str(direct), "elsewhere", "--evaluate") == direct
    with pytest.raises(UserError, match="--evaluate nope.bin: checkpoint not found"):
        checkpoint.resolve_checkpoint_path("nope.bin", tmp_path, "--evaluate")


def test_official_mixste_checkpoint_loads_safely():
    path = shared_path("fixtures", "mixste_official_f27_d64_dep2_s0.bin")
    data = checkpoint.load_checkpoint(path)  # weights_only with only numpy's RandomState pieces allowed
    assert checkpoint.is_official_mixste(data)
    assert data["epoch"] == 7
    assert "Spatial_patch_to_embedding.weight" in data["model_pos"]  # module. prefix stripped
    assert not any(key.startswith("module.") for key in data["model_pos"])
    _, config = _tiny_model()
    assert not checkpoint.is_official_mixste({"model_pos": {}, "model_config": config.to_dict()})


def test_model_with_weights_rebuilds_a_project_checkpoint(tmp_path):
    model, config = _tiny_model(spatial_mixer="graph")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
    path = _save(tmp_path / "graph.bin", model, config)
    data = checkpoint.load_checkpoint(path)
    rebuilt = checkpoint.model_with_weights(ModelConfig.from_dict(data["model_config"]), data, path)
    clip = torch.randn(1, 9, 17, 2)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(clip), model.eval()(clip), rtol=0, atol=0)
    with pytest.raises(UserError, match="graph.bin: checkpoint of another architecture"):
        checkpoint.model_with_weights(ModelConfig(**TINY, spatial_mixer="fc"), data, path)
