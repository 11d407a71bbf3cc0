"""Shared test helpers: location of ../shared, a skip marker for tests that need it, tiny data and models."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import numpy as np
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


H36M_METADATA = {
    "layout_name": "h36m",
    "num_joints": 17,
    "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
}
"""The metadata of a VideoPose3D 2D file in the model's Human3.6M order, written out independently of the library."""


def save_npz(path: Path, **arrays) -> Path:
    """``np.savez`` with dict values pickled as 0-d object arrays (the VideoPose3D layout)."""
    np.savez(path, **{k: np.array(v, dtype=object) if isinstance(v, dict) else v for k, v in arrays.items()})
    return path


def detections_file(directory: Path, payload=None) -> Path:
    """An infer_video.py-style detections file ``directory/clip.mp4.npz`` (COCO keypoints in pixels + video
    metadata); ``payload`` (e.g. a `ShellPayload`) is planted in the metadata when given."""
    rng = np.random.default_rng(0)
    keypoints = np.concatenate([rng.uniform(50, 400, (30, 17, 2)), np.ones((30, 17, 1))], axis=-1).astype(np.float32)
    metadata = {"w": 640, "h": 480, "fps": 25.0, "video_name": "clip.mp4"}
    if payload is not None:
        metadata["note"] = payload
    directory.mkdir(exist_ok=True)
    return save_npz(directory / "clip.mp4.npz", keypoints=keypoints, metadata=metadata)


@pytest.fixture(scope="session")
def reference_metrics():
    """The public VideoPose3D / MixSTE functions' values on one prediction (../shared/fixtures)."""
    with np.load(shared_path("fixtures", "reference_metrics_0.npz")) as data:
        return {key: data[key] for key in data.files}


def write_synthetic_files(tmp_path: Path, frames_2d: int | None = None):
    """A tiny synthetic 3D file (S1, S9; one 30-frame action ``Walk``; Human3.6M cameras) and its projected 2D file
    ``data_2d_synthetic_gt.npz`` (`frames_2d` frames per stream when given). Returns ``(positions_3d, dataset)``."""
    from common.datasets.base import CAMERA_KEYS
    from common.datasets.registry import load_dataset
    from common.geometry.h36m_cameras import h36m_cameras

    rng = np.random.default_rng(1)
    positions = {
        s: {"Walk": (rng.normal(scale=0.3, size=(30, 17, 3)) + [0, 0, 1]).astype(np.float32)} for s in ("S1", "S9")
    }
    cameras = {s: [{key: cam[key] for key in CAMERA_KEYS} for cam in h36m_cameras(s)] for s in positions}
    save_npz(tmp_path / "data_3d_synthetic.npz", positions_3d=positions, cameras=cameras)
    dataset = load_dataset("synthetic", tmp_path / "data_3d_synthetic.npz")
    gt, _ = dataset.ground_truth_2d()
    if frames_2d is not None:
        gt = {
            s: {a: [np.concatenate([c, c])[:frames_2d] for c in cams] for a, cams in acts.items()}
            for s, acts in gt.items()
        }
    save_npz(tmp_path / "data_2d_synthetic_gt.npz", positions_2d=gt, metadata=H36M_METADATA)
    return positions, dataset


def object_array(values: list) -> np.ndarray:
    """A 1-D object array holding ``values`` as they are (per-frame lists, as Detectron writes them)."""
    array = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        array[index] = value
    return array


def detectron2_file(path: Path, rng: np.random.Generator, frames: int, empty: set[int]) -> np.ndarray:
    """VideoPose3D ``infer_video_d2.py`` layout (two people per frame); returns the expected best person (T, 17, 3)."""
    boxes, keypoints, expected = [], [], []
    for frame in range(frames):
        if frame in empty:
            boxes.append([[], []])
            keypoints.append([[], []])
            expected.append(np.full((17, 3), np.nan))
            continue
        box = np.concatenate([rng.uniform(0, 500, (2, 4)), [[0.3], [0.9]]], axis=1).astype(np.float32)
        kps = rng.uniform(0, 1000, (2, 4, 17)).astype(np.float32)  # x, y, logit, prob
        boxes.append([[], box])
        keypoints.append([[], kps])
        expected.append(np.stack([kps[1, 0], kps[1, 1], kps[1, 3]], axis=-1))
    np.savez_compressed(path, boxes=object_array(boxes), segments=object_array([None] * frames),
                        keypoints=object_array(keypoints), metadata={"w": 1000, "h": 1002})  # fmt: skip
    return np.asarray(expected, dtype=np.float32)


# --- crafted pickle payloads: objects that run a shell command when a loader unpickles them ---

class ShellPayload:
    """Unpickling this object runs ``touch MARKER`` through ``os.system``, as a crafted file from a stranger would.

    A loader is safe when, after reading a file that carries it, ``MARKER`` does not exist.
    """

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class EvalPayload(ShellPayload):
    """The same through ``builtins.eval``: a builtin that is not plain data must be refused too."""

    def __reduce__(self):
        return eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",)


@pytest.fixture()
def one_thread():
    """Tiny models on one torch thread (several wait for each other on a busy machine); restored afterwards (the
    scripts under test also set the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_checkpoint(path: Path, **overrides) -> Path:
    """A project checkpoint of a tiny model with random weights (27-frame windows unless overridden)."""
    from common.model.checkpoints import save_checkpoint
    from common.model.config import ModelConfig
    from common.model.metaformer import build_model

    config = ModelConfig(**{"num_frames": 27, "embed_dim": 16, "depth": 1, **overrides})
    save_checkpoint(path, epoch=1, lr=1e-3, model=build_model(config), optimizer=None, model_config=config.to_dict(),
                    best_val=None, loader_state=None)
    return path
