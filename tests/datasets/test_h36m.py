"""Human3.6M through the dataset loaders (common/datasets/h36m.py, keypoints.py, sequences.py) on the shared files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from common.core.errors import UserError
from common.datasets.keypoints import load_keypoints
from common.datasets.registry import load_dataset
from common.datasets.sequences import build_sequences
from common.geometry.camera import image_coordinates, project_to_2d
from common.geometry.skeleton import H36M_17_KEPT, h36m_17


@pytest.fixture(scope="module")
def h36m():
    return load_dataset("h36m", shared_path("data", "h36m", "data_3d_h36m.npz"))


@pytest.fixture(scope="module")
def h36m_sh(h36m):
    return load_keypoints(shared_path("data", "h36m", "data_2d_h36m_sh_pt_mpii.npz"), h36m)


def test_h36m_joints_and_camera_space_match_mmpose(h36m):
    assert h36m.subjects() == ["S1", "S5", "S9"]
    assert h36m.skeleton == h36m_17() and h36m.fps == 50
    with np.load(shared_path("data", "h36m", "data_3d_h36m.npz"), allow_pickle=True) as data:
        raw = data["positions_3d"].item()["S1"]["Directions 1"]
    np.testing.assert_array_equal(h36m.positions_world("S1", "Directions 1"), raw[:, list(H36M_17_KEPT)])
    # mmpose's sample: S1 'Directions 1', camera 54138969, first frame; S = camera-space metres, part = pixels
    with np.load(shared_path("data", "h36m", "mmpose", "test_h36m_body3d.npz")) as data:
        mm_3d, mm_2d = data["S"][0, :, :3], data["part"][0, :, :2]
    np.testing.assert_allclose(h36m.positions_camera("S1", "Directions 1", 0)[0], mm_3d, atol=1e-5)
    camera = h36m.cameras("S1")[0]
    projected = project_to_2d(h36m.positions_camera("S1", "Directions 1", 0)[:1], camera.intrinsic)
    np.testing.assert_allclose(image_coordinates(projected[0], camera.res_w, camera.res_h), mm_2d, atol=0.01)


def test_h36m_sh_keypoints(h36m, h36m_sh):
    assert h36m_sh.layout.name == "mpii"
    assert set(h36m_sh.unmatched) == {("S5", "Discussion 2"), ("S5", "Discussion 3"), ("S9", "Discussion 1")}
    stream = h36m_sh.positions["S9"]["Walking"][2]
    assert stream.shape == (len(h36m.positions_world("S9", "Walking")), 17, 2) and stream.dtype == np.float32
    with np.load(shared_path("data", "h36m", "data_2d_h36m_sh_pt_mpii.npz"), allow_pickle=True) as data:
        raw = data["positions_2d"].item()["S9"]["Walking"][2]
    # RWrist is MPII joint 10, normalized with the camera's 1000x1000 resolution
    np.testing.assert_allclose(stream[:, 16], raw[:, 10] / 1000 * 2 - 1, atol=1e-6)


def test_h36m_sequences(h36m, h36m_sh):
    sequences = build_sequences(h36m, h36m_sh, ["S9"], actions=["Walking"])
    assert [(s.action, s.camera_index) for s in sequences] == [("Walking", i) for i in range(4)] + [
        ("Walking 1", i) for i in range(4)
    ]
    seq = sequences[1]
    camera_space = h36m.positions_camera("S9", "Walking", 1)
    np.testing.assert_array_equal(seq.poses_3d[:, 0], 0)
    np.testing.assert_allclose(seq.poses_3d, camera_space - camera_space[:, :1], atol=1e-6)
    assert seq.camera.id == "55011271" and h36m.evaluation_joints == tuple(range(17))
    # the camera-space 3D projects close to the sequence's 2D detections (median SH error ~10 px = 0.02 normalized)
    projected = project_to_2d(camera_space[: len(seq)], seq.camera.intrinsic)
    assert np.median(np.linalg.norm(projected - seq.poses_2d, axis=-1)) < 0.03
    short = build_sequences(h36m, h36m_sh, ["S9"], actions=["Walking 1"], downsample=2, subset=0.5, seed=3)
    full = build_sequences(h36m, h36m_sh, ["S9"], actions=["Walking 1"])
    assert len(short[0]) == round(len(full[0]) // 2 * 0.5)
    again = build_sequences(h36m, h36m_sh, ["S9"], actions=["Walking 1"], downsample=2, subset=0.5, seed=3)
    np.testing.assert_array_equal(short[0].poses_2d, again[0].poses_2d)
    start = np.flatnonzero((full[0].poses_2d == short[0].poses_2d[0]).all(axis=(1, 2)))[0]
    np.testing.assert_array_equal(short[0].poses_2d, full[0].poses_2d[start : start + 2 * len(short[0]) : 2])


def test_h36m_selection_errors(h36m, h36m_sh):
    with pytest.raises(UserError, match=r"data_2d_h36m_sh_pt_mpii\.npz: subject 'S11' not available"):
        build_sequences(h36m, h36m_sh, ["S11"])
    with pytest.raises(UserError, match="action\\(s\\) Dancing not found for subject\\(s\\) S9"):
        build_sequences(h36m, h36m_sh, ["S9"], actions=["Dancing"])
    with pytest.raises(UserError, match="--downsample"):
        build_sequences(h36m, h36m_sh, ["S9"], downsample=0)
    with pytest.raises(UserError, match="--subset"):
        build_sequences(h36m, h36m_sh, ["S9"], subset=1.5)
    with pytest.raises(UserError, match="action 'Dancing' of subject S9 not in the h36m data"):
        h36m.positions_world("S9", "Dancing")
