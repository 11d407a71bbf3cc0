"""Shared test helpers: location of ../shared, a skip marker for tests that need it, tiny data and models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared; skips the calling test with a clear reason when the file is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the licensed shared data/fixtures are not on this machine)")
    return path


def make_tiny_synthetic(tmp_path_factory, actions: str = "Walking") -> Path:
    """Tiny synthetic data from data/prepare_data_synthetic.py: S1 (train), S9 (test), 100 frames per take."""
    from data import prepare_data_synthetic

    directory = tmp_path_factory.mktemp("synthetic")
    prepare_data_synthetic.main(["--output-dir", str(directory), "--frames", "100", "--subjects", "S1,S9",
                                 "--actions", actions])
    return directory


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint trained by this project's run.py (tiny model, 27-frame windows, 1 epoch on tiny synthetic data)."""
    import subprocess

    directory = make_tiny_synthetic(tmp_path_factory)
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-d", "synthetic", "-k", "gt", "--data-dir", str(directory),
         "-str", "S1", "-ste", "S9", "-f", "27", "-cs", "16", "-dep", "1", "-e", "1", "--workers", "0",
         "--no-progress", "--nolog", "-c", str(directory / "checkpoint")],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return directory / "checkpoint" / "best_epoch.bin"


class OffsetModel(nn.Module):
    """prediction = input lifted to 3D (z = 0) + a learned offset: its gradient is easy to compute by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.zeros_like(x[..., :1])], dim=-1) + self.offset
