"""common/datasets/sequences.py: selection by subject and action prefix, root-relative 3D, downsampling/subsets."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import H36M_METADATA, save_npz

from common.core.errors import UserError
from common.datasets.keypoints import load_keypoints
from common.datasets.registry import load_dataset
from common.datasets.sequences import build_sequences
from common.geometry.h36m_cameras import h36m_cameras


@pytest.fixture
def data(tmp_path):
    """Two subjects, actions Walking / Walking 1 / WalkDog (40 frames), 2D = the projected 3D."""
    rng = np.random.default_rng(3)
    actions = ("Walking", "Walking 1", "WalkDog")
    positions = {s: {a: (rng.normal(scale=0.3, size=(40, 17, 3)) + [0, 0, 1]).astype(np.float32) for a in actions}
                 for s in ("S1", "S9")}  # fmt: skip
    keys = ("id", "res_w", "res_h", "azimuth", "center", "focal_length", "radial_distortion", "tangential_distortion",
            "orientation", "translation")  # fmt: skip
    cameras = {s: [{k: cam[k] for k in keys} for cam in h36m_cameras(s)] for s in positions}
    save_npz(tmp_path / "data_3d_synthetic.npz", positions_3d=positions, cameras=cameras)
    dataset = load_dataset("synthetic", tmp_path / "data_3d_synthetic.npz")
    save_npz(tmp_path / "gt.npz", positions_2d=dataset.ground_truth_2d()[0], metadata=H36M_METADATA)
    return dataset, load_keypoints(tmp_path / "gt.npz", dataset)


def test_selection_by_action_prefix_and_root_relative_3d(data):
    dataset, keypoints = data
    walking = build_sequences(dataset, keypoints, ["S9"], actions=["Walking"])
    assert [(s.action, s.camera_index) for s in walking] == [(a, i) for a in ("Walking", "Walking 1") for i in range(4)]
    assert len(build_sequences(dataset, keypoints, ["S1", "S9"], actions=["Walk"])) == 2 * 3 * 4
    seq = walking[5]
    camera_space = dataset.positions_camera("S9", "Walking 1", 1)
    np.testing.assert_allclose(seq.poses_3d, camera_space - camera_space[:, :1], atol=1e-6)
    np.testing.assert_array_equal(seq.poses_2d, keypoints.positions["S9"]["Walking 1"][1])
    assert seq.camera is dataset.cameras("S9")[1] and len(seq) == 40


def test_downsample_and_deterministic_subset(data):
    dataset, keypoints = data
    full = build_sequences(dataset, keypoints, ["S1"], actions=["WalkDog"])[0]
    half = build_sequences(dataset, keypoints, ["S1"], actions=["WalkDog"], downsample=2)[0]
    np.testing.assert_array_equal(half.poses_2d, full.poses_2d[::2])
    part = build_sequences(dataset, keypoints, ["S1"], actions=["WalkDog"], subset=0.25, seed=5)[0]
    again = build_sequences(dataset, keypoints, ["S1"], actions=["WalkDog"], subset=0.25, seed=5)[0]
    assert len(part) == 10
    np.testing.assert_array_equal(part.poses_3d, again.poses_3d)
    start = np.flatnonzero((full.poses_2d == part.poses_2d[0]).all(axis=(1, 2)))[0]
    np.testing.assert_array_equal(part.poses_2d, full.poses_2d[start : start + 10])  # one contiguous chunk


def test_selection_errors(data):
    dataset, keypoints = data
    with pytest.raises(UserError, match=r"gt\.npz: subject 'S5' not available; available: S1, S9"):
        build_sequences(dataset, keypoints, ["S5"])
    with pytest.raises(UserError, match=r"action\(s\) Sitting not found for subject\(s\) S1"):
        build_sequences(dataset, keypoints, ["S1"], actions=["Walking", "Sitting"])
    with pytest.raises(UserError, match="subjects: expected at least one subject"):
        build_sequences(dataset, keypoints, [])
    with pytest.raises(UserError, match="--downsample"):
        build_sequences(dataset, keypoints, ["S1"], downsample=1.5)
