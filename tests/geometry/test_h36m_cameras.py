"""Tests for common/h36m_cameras.py: embedded constants vs the archive/mmpose calibration files and real 2D data."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from conftest import shared_path

from common.core.errors import UserError
from common.geometry.camera import image_coordinates, project_to_2d, qrot, world_to_camera
from common.geometry.h36m_cameras import H36M_CAMERA_IDS, H36M_SUBJECTS, h36m_cameras
from common.geometry.skeleton import H36M_17_KEPT

# MPII (Stacked Hourglass) joint -> H36M-17 joint, for the joints both define the same way:
# feet, knees, hips, wrists, elbows, shoulders (MPII's spine/head/pelvis sit elsewhere than the mocap markers).
MPII_TO_H36M17 = {0: 3, 1: 2, 2: 1, 3: 4, 4: 5, 5: 6, 10: 16, 11: 15, 12: 14, 13: 11, 14: 12, 15: 13}


@pytest.fixture(scope="module")
def archive_cameras():
    h5py = pytest.importorskip("h5py")
    path = shared_path("data", "h36m", "archive_sample", "h36m", "cameras.h5")
    cameras = {}
    with h5py.File(path, "r") as f:
        for subject_number in (1, 5, 6, 7, 8, 9, 11):
            for index in range(4):
                group = f[f"subject{subject_number}/camera{index + 1}"]
                cameras[(f"S{subject_number}", index)] = {key: group[key][()] for key in ("R", "T", "f", "c", "k", "p")}
                name = "".join(chr(int(v)) for v in group["Name"][()].ravel())
                cameras[(f"S{subject_number}", index)]["id"] = name
    return cameras


@pytest.fixture(scope="module")
def mmpose_cameras():
    with open(shared_path("data", "h36m", "mmpose", "cameras.pkl"), "rb") as f:
        return pickle.load(f)


def _check_against_calibration(camera, rotation, translation_m, focal, center, radial, tangential_stored):
    # The quaternion rotates the basis vectors onto the columns of the stored camera-to-world matrix.
    rotated = qrot(np.tile(camera["orientation"].astype(np.float64), (3, 1)), np.eye(3))
    np.testing.assert_allclose(rotated.T, rotation, atol=1e-6)
    np.testing.assert_allclose(camera["translation"], np.ravel(translation_m), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(camera["focal_length"], np.ravel(focal), rtol=1e-6)
    np.testing.assert_allclose(camera["center"], np.ravel(center), rtol=1e-6)
    np.testing.assert_allclose(camera["radial_distortion"], np.ravel(radial), rtol=1e-6)
    np.testing.assert_allclose(camera["tangential_distortion"], np.ravel(tangential_stored)[::-1], rtol=1e-6)


def test_constants_match_the_archive_cameras_h5(archive_cameras):
    for (subject, index), stored in archive_cameras.items():
        camera = h36m_cameras(subject)[index]
        assert camera["id"] == stored["id"] == H36M_CAMERA_IDS[index]
        _check_against_calibration(
            camera, stored["R"], stored["T"] / 1000.0, stored["f"], stored["c"], stored["k"], stored["p"]
        )


def test_constants_match_mmpose_cameras_pkl_for_all_subjects(mmpose_cameras):
    assert set(H36M_SUBJECTS) == {subject for subject, _ in mmpose_cameras}
    for (subject, camera_id), stored in mmpose_cameras.items():
        camera = {c["id"]: c for c in h36m_cameras(subject)}[camera_id]
        assert (camera["res_w"], camera["res_h"]) == (int(stored["w"]), int(stored["h"]))
        _check_against_calibration(
            camera, stored["R"], stored["T"], stored["f"], stored["c"], stored["k"], stored["p"]
        )


def test_camera_dict_contents():
    cameras = h36m_cameras("S1")
    assert [c["id"] for c in cameras] == list(H36M_CAMERA_IDS)
    assert [(c["res_w"], c["res_h"]) for c in cameras] == [(1000, 1002), (1000, 1000), (1000, 1000), (1000, 1002)]
    assert [c["azimuth"] for c in cameras] == [70, -70, 110, -110]
    first = cameras[0]
    # VideoPose3D's published S1 / 54138969 calibration.
    np.testing.assert_allclose(first["orientation"], [0.14070565, -0.15007018, -0.7552408, 0.62232804], atol=1e-6)
    np.testing.assert_allclose(first["translation"], [1.8411070, 4.9552847, 1.5634454], atol=1e-6)
    expected_intrinsic = [
        1145.0494 / 1000 * 2, 1143.7811 / 1000 * 2, 512.54150 / 1000 * 2 - 1, 515.45149 / 1000 * 2 - 1.002,
        -0.20709891, 0.24777518, -0.0030751503, -0.00097569887, -0.0014244716,
    ]  # fmt: skip
    np.testing.assert_allclose(first["intrinsic"], expected_intrinsic, rtol=2e-6, atol=1e-7)
    for subject in H36M_SUBJECTS:
        for camera in h36m_cameras(subject):
            assert camera["intrinsic"].shape == (9,) and camera["intrinsic"].dtype == np.float32
            assert abs(np.linalg.norm(camera["orientation"]) - 1) < 1e-6 and camera["orientation"][0] >= 0
            assert 3.0 < np.linalg.norm(camera["translation"]) < 7.0
    cameras[0]["translation"][:] = 0  # callers get fresh arrays
    assert np.linalg.norm(h36m_cameras("S1")[0]["translation"]) > 3
    with pytest.raises(UserError, match="S12"):
        h36m_cameras("S12")


def test_mmpose_sample_projects_exactly():
    sample = np.load(shared_path("data", "h36m", "mmpose", "test_h36m_body3d.npz"))
    for index, name in enumerate(sample["imgname"]):
        base = os.path.basename(str(name))  # e.g. S1_Directions_1.54138969_000001.jpg
        subject, camera_id = base.split("_")[0], base.split(".")[1].split("_")[0]
        camera = {c["id"]: c for c in h36m_cameras(subject)}[camera_id]
        points = sample["S"][index, :, :3]
        pixels = image_coordinates(project_to_2d(points, camera["intrinsic"]), camera["res_w"], camera["res_h"])
        error = np.abs(pixels - sample["part"][index, :, :2]).max()
        assert error < 1e-3, (base, error)  # measured ~3e-5 px (float32 constants)


@pytest.fixture(scope="module")
def h36m_3d():
    with np.load(shared_path("data", "h36m", "data_3d_h36m.npz"), allow_pickle=True) as data:
        return data["positions_3d"].item()


def test_world_data_transforms_to_the_mmpose_camera_frames(h36m_3d):
    sample = np.load(shared_path("data", "h36m", "mmpose", "test_h36m_body3d.npz"))
    # mmpose frame numbers are 1-based; S1 Directions 1 frame 1 and S5 SittingDown frame 2061 (cameras 54138969).
    for index, subject, action, frame in [(0, "S1", "Directions 1", 0), (1, "S5", "SittingDown", 2060)]:
        camera = h36m_cameras(subject)[0]
        world = h36m_3d[subject][action][frame][list(H36M_17_KEPT)]
        in_camera = world_to_camera(world, camera["orientation"], camera["translation"])
        np.testing.assert_allclose(in_camera, sample["S"][index, :, :3], atol=1e-5)


def _median_pixel_error(world, detections, camera):
    frames = min(len(world), len(detections))
    in_camera = world_to_camera(world[:frames, list(H36M_17_KEPT)], camera["orientation"], camera["translation"])
    pixels = image_coordinates(project_to_2d(in_camera, camera["intrinsic"]), camera["res_w"], camera["res_h"])
    mpii, h36m = list(MPII_TO_H36M17), list(MPII_TO_H36M17.values())
    return float(np.median(np.linalg.norm(pixels[:, h36m] - detections[:frames, mpii], axis=-1)))


def test_projected_ground_truth_matches_stacked_hourglass_detections(h36m_3d):
    with np.load(shared_path("data", "h36m", "data_2d_h36m_sh_pt_mpii.npz"), allow_pickle=True) as data:
        detections = data["positions_2d"].item()
    errors = {}
    for subject, action in [("S1", "Directions 1"), ("S1", "Walking"), ("S9", "Directions 1"), ("S9", "Walking")]:
        world = h36m_3d[subject][action][::4]
        for index, camera in enumerate(h36m_cameras(subject)):
            detected = detections[subject][action][index][::4]
            errors[(subject, action, index)] = _median_pixel_error(world, detected, camera)
    assert max(errors.values()) < 15.0, errors  # measured: 6-10 px
    assert 4.0 < np.median(list(errors.values())) < 12.0, errors
    # A wrong camera (another subject's/camera's calibration) is far off: the check can fail.
    wrong = h36m_cameras("S1")[1]
    assert _median_pixel_error(h36m_3d["S1"]["Walking"][::4], detections["S1"]["Walking"][0][::4], wrong) > 100.0
