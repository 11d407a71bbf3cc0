"""MPI-INF-3DHP (common/datasets/mpi_inf_3dhp.py): the shared mmpose annotations and a hand-made annotation file."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import shared_path

from common.core.errors import UserError
from common.datasets.keypoints import load_keypoints
from common.datasets.registry import load_dataset
from common.datasets.sequences import build_sequences
from common.geometry.camera import image_coordinates, normalize_screen_coordinates, project_to_2d


def test_mpi_inf_3dhp_from_mmpose_annotations():
    directory = shared_path("data", "mpi_inf_3dhp")
    dataset = load_dataset("mpi_inf_3dhp", directory)
    assert sorted(dataset.subjects()) == ["S4", "S8", "TS1", "TS2"]
    assert dataset.actions("S4") == ["Seq2"] and dataset.actions("TS1") == ["Test"]
    keypoints = load_keypoints(None, dataset)
    sequences = build_sequences(dataset, keypoints, ["S4", "TS2"])
    train, test = sequences
    assert train.camera.id == "S4_Seq2_Cam0" and (train.camera.res_w, train.camera.res_h) == (2048, 2048)
    assert (test.camera.res_w, test.camera.res_h) == (2048, 2048)
    with np.load(directory / "test_3dhp_train.npz") as data:
        s, part = data["S"][0, :, :3], data["part"][0, :, :2]
    camera_space = dataset.positions_camera("S4", "Seq2", 0)
    np.testing.assert_allclose(camera_space[0, 0], s[14], atol=1e-6)
    np.testing.assert_allclose(train.poses_3d[0, 10], s[0] - s[14], atol=1e-6)  # Head <- head top
    np.testing.assert_allclose(train.poses_2d[0, 16], normalize_screen_coordinates(part[4], 2048, 2048), atol=1e-6)
    # the 3D projects onto the annotated 2D with the pickled intrinsics (derived joints within 3 px)
    projected = project_to_2d(camera_space, train.camera.intrinsic)
    assert np.abs(image_coordinates(projected, 2048, 2048) - image_coordinates(train.poses_2d, 2048, 2048)).max() < 3


def test_mpi_inf_3dhp_groups_and_orders_frames(tmp_path):
    rng = np.random.default_rng(0)
    names = ["S1_Seq1_Cam2_000007.jpg", "S1_Seq1_Cam0_000005.jpg", "S1_Seq1_Cam2_000003.jpg", "S1_Seq2_Cam0_000001.jpg"]
    points = rng.normal(size=(4, 17, 4)) + [0, 0, 5, 0]
    part = rng.uniform(100, 1900, size=(4, 17, 3))
    np.savez(
        tmp_path / "ann.npz", imgname=np.array(names), part=part, S=points, center=part[:, 0, :2], scale=np.ones(4)
    )
    cam = {"f": np.array([[1500.0], [1500.0]]), "c": np.array([[1000.0], [1000.0]]), "w": 2048, "h": 2048}
    with open(tmp_path / "cameras_train.pkl", "wb") as handle:
        pickle.dump({"S1_Seq1_Cam0": cam, "S1_Seq1_Cam2": cam, "S1_Seq2_Cam0": cam}, handle)
    dataset = load_dataset("mpi_inf_3dhp", tmp_path / "ann.npz")
    assert dataset.actions("S1") == ["Seq1", "Seq2"]
    assert [c.id for c in dataset.cameras("S1", "Seq1")] == ["S1_Seq1_Cam0", "S1_Seq1_Cam2"]
    # camera 2's frames sorted by frame number (3 then 7); the root (Pelvis, 3DHP joint 14) becomes model joint 0
    np.testing.assert_allclose(dataset.positions_camera("S1", "Seq1", 1)[:, 0], points[[2, 0], 14, :3], rtol=1e-6)
    with pytest.raises(UserError, match="several sequences"):
        dataset.cameras("S1")
    np.savez(tmp_path / "bad.npz", imgname=np.array(["frame_1.jpg"]), part=part[:1], S=points[:1])
    with pytest.raises(UserError, match="bad.npz: imgname 'frame_1.jpg' is neither"):
        load_dataset("mpi_inf_3dhp", tmp_path / "bad.npz")
