"""The synthetic dataset format (common/datasets/synthetic.py): 3D file with camera dicts, round trip to sequences."""

from __future__ import annotations

import numpy as np
from conftest import write_synthetic_files

from common.datasets.keypoints import load_keypoints
from common.datasets.sequences import build_sequences
from common.geometry.camera import project_to_2d
from common.geometry.h36m_cameras import h36m_cameras
from common.geometry.skeleton import h36m_17


def test_synthetic_dataset_round_trip(tmp_path):
    positions, dataset = write_synthetic_files(tmp_path, frames_2d=45)  # 2D longer than 3D: trimmed
    assert dataset.subjects() == ["S1", "S9"] and dataset.skeleton == h36m_17()
    keypoints = load_keypoints(tmp_path / "data_2d_synthetic_gt.npz", dataset)
    seq = build_sequences(dataset, keypoints, ["S9"])[3]
    assert len(seq) == 30
    expected = h36m_cameras("S9")[3]
    np.testing.assert_allclose(seq.camera.intrinsic, expected["intrinsic"], atol=1e-6)
    projected = project_to_2d(dataset.positions_camera("S9", "Walk", 3), seq.camera.intrinsic)
    np.testing.assert_allclose(projected, seq.poses_2d, atol=1e-5)
