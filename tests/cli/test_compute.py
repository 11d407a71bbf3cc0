"""common/cli/compute.py: --device names checked against this machine; the thread policy by model size."""

from __future__ import annotations

import pytest
import torch

from common.cli.compute import apply_thread_policy, default_threads, resolve_device
from common.core.errors import UserError
from common.model.config import ModelConfig


@pytest.mark.parametrize("name", ["banana", "cuda:x", "tpu"])
def test_unknown_device_names_are_one_line_errors(name):
    with pytest.raises(UserError, match=f"--device {name}: expected cpu, cuda or cuda:N"):
        resolve_device(name)


def test_missing_cuda_device_is_an_error():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(UserError, match=f"--device cuda:{count + 4}: this machine has"):
        resolve_device(f"cuda:{count + 4}")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if count else "cpu")


def test_small_models_get_one_thread_large_ones_the_default(monkeypatch):
    assert default_threads(ModelConfig(num_frames=27, embed_dim=64, depth=2)) == 1
    assert default_threads(ModelConfig()) is None  # the paper model (F=243 C=512 depth 8)
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        lines = []
        assert apply_thread_policy(None, ModelConfig(num_frames=27, embed_dim=64, depth=2), torch.device("cpu"),
                                   lines.append) == 1
        assert apply_thread_policy(2, ModelConfig(), torch.device("cpu"), lines.append) == 2
        assert len(lines) == 2 and "--threads" in lines[1]
    finally:
        torch.set_num_threads(before)
