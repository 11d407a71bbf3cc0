"""-r resumes exactly: a run SIGKILLed after epoch 1 and resumed ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, make_tiny_synthetic


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_synthetic(tmp_path_factory)


def _command(tiny_data: Path, checkpoint_dir: Path, *extra: str) -> list[str]:
    # drop path on (the default 0.1 would do, but a deeper model uses more random numbers), flips on, 1 worker
    return [sys.executable, str(ROOT / "run.py"), "-d", "synthetic", "-k", "gt", "--data-dir", str(tiny_data),
            "-str", "S1", "-ste", "S9", "-f", "9", "-cs", "16", "-dep", "2", "--drop-path", "0.2", "-b", "45",
            "--workers", "1", "--no-progress", "-gpu", "cpu", "--seed", "7", "-e", "2", "-cf", "1",
            "-c", str(checkpoint_dir), "--nolog", *extra]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_weights(tiny_data, tmp_path):
    straight = subprocess.run(_command(tiny_data, tmp_path / "straight"), capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]

    killed_dir = tmp_path / "killed"
    process = subprocess.Popen(_command(tiny_data, killed_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (killed_dir / "epoch_1.bin").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # after epoch 1 (if it already finished, epoch_1.bin is resumed all the same)
    process.wait()
    assert (killed_dir / "epoch_1.bin").is_file()
    resumed = subprocess.run(_command(tiny_data, killed_dir, "-r", "epoch_1.bin"), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout and "after epoch 1" in resumed.stdout

    expected = torch.load(tmp_path / "straight" / "last_epoch.bin", weights_only=True)
    actual = torch.load(killed_dir / "last_epoch.bin", weights_only=True)
    assert actual["epoch"] == expected["epoch"] == 2
    for name, value in expected["model_pos"].items():
        difference = (actual["model_pos"][name] - value).abs().max().item()
        assert torch.equal(actual["model_pos"][name], value), f"{name}: max difference {difference:.3g}"
    assert actual["best_val"] == expected["best_val"]
    assert actual["history"] == expected["history"]
    epoch_1 = torch.load(killed_dir / "epoch_1.bin", weights_only=True)["model_pos"]
    assert not all(torch.equal(epoch_1[n], v) for n, v in expected["model_pos"].items())  # epoch 2 changed weights
