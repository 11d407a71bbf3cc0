"""Tests of the SYNTHETIC dataset: file layout, physical plausibility of the motion, determinism, noise statistics.

Projections are checked against a pinhole + distortion model written out here with rotation matrices (independent of
common/geometry/camera.py); physical checks use thresholds taken from real Human3.6M motion (joint speeds up to ~4 m/s,
accelerations of a few tens of m/s^2, ankles ~7 cm above the floor).
"""

from __future__ import annotations

import numpy as np
import pytest

from common.core.errors import UserError
from common.datasets import synthetic_body as body
from common.datasets import synthetic_motion as sm
from common.datasets.action_names import H36M_ACTION_GROUPS
from common.datasets.h36m import H36M_PROTOCOL_SUBJECTS
from common.geometry.h36m_cameras import h36m_cameras
from data import prepare_data_synthetic

SUBJECTS = ["S1", "S9"]
FRAMES = 150
CAMERA_KEYS = {
    "id", "res_w", "res_h", "azimuth", "center", "focal_length", "radial_distortion", "tangential_distortion",
    "orientation", "translation", "intrinsic",
}  # fmt: skip


def load(path):
    with np.load(path, allow_pickle=True) as data:
        return {key: data[key].item() for key in data.files}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    prepare_data_synthetic.main(
        ["--output-dir", str(out), "--subjects", ",".join(SUBJECTS), "--frames", str(FRAMES), "--seed", "7"]
    )
    return {
        "3d": load(out / "data_3d_synthetic.npz"),
        "gt": load(out / "data_2d_synthetic_gt.npz"),
        "noisy": load(out / "data_2d_synthetic_noisy.npz"),
        "dir": out,
    }


def quaternion_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def reference_projection(points: np.ndarray, camera: dict) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and depths of world points through a camera dict (pixel focal length/centre, distortion)."""
    in_camera = (points.astype(np.float64) - camera["translation"]) @ quaternion_matrix(camera["orientation"])
    x = in_camera[..., :2] / in_camera[..., 2:]
    k, p = camera["radial_distortion"].astype(np.float64), camera["tangential_distortion"].astype(np.float64)
    r2 = (x**2).sum(-1, keepdims=True)
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    distorted = x * (radial + (p * x).sum(-1, keepdims=True)) + p * r2
    return camera["focal_length"] * distorted + camera["center"], in_camera[..., 2]


def test_files_have_the_videopose3d_layout(generated):
    data3d, gt, noisy = generated["3d"], generated["gt"], generated["noisy"]
    assert data3d["metadata"]["synthetic"] is True
    assert data3d["metadata"]["seed"] == 7 and data3d["metadata"]["fps"] == 50
    expected_actions = sorted(f"{g}{s}" for g in sm.ACTIONS for s in ("", " 1"))
    for subject in SUBJECTS:
        assert sorted(data3d["positions_3d"][subject]) == expected_actions
        assert sorted(gt["positions_2d"][subject]) == expected_actions
        cameras = data3d["cameras"][subject]
        assert len(cameras) == 4 and all(set(cam) == CAMERA_KEYS for cam in cameras)
        for cam, reference in zip(cameras, h36m_cameras(subject)):
            for key in CAMERA_KEYS:
                np.testing.assert_array_equal(cam[key], reference[key])
        for action in expected_actions:
            poses = data3d["positions_3d"][subject][action]
            assert poses.dtype == np.float32 and poses.shape == (FRAMES, 17, 3)
            for views in (gt["positions_2d"][subject][action], noisy["positions_2d"][subject][action]):
                assert len(views) == 4
                assert all(v.dtype == np.float32 and v.shape == (FRAMES, 17, 2) for v in views)
    for meta in (gt["metadata"], noisy["metadata"]):
        assert meta["layout_name"] == "h36m" and meta["num_joints"] == 17 and meta["synthetic"] is True
        assert meta["keypoints_symmetry"] == [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
    assert noisy["metadata"]["noise_px"] == 4.0


def test_action_names_follow_human36m(generated):
    groups = {action.split(" ")[0] for action in generated["3d"]["positions_3d"]["S1"]}
    assert groups <= set(H36M_ACTION_GROUPS) and len(groups) == len(sm.ACTIONS) >= 8


def test_2d_ground_truth_is_the_distorted_projection_and_stays_in_view(generated):
    for subject in SUBJECTS:
        for action, poses in generated["3d"]["positions_3d"][subject].items():
            for cam, view in zip(generated["3d"]["cameras"][subject], generated["gt"]["positions_2d"][subject][action]):
                pixels, depth = reference_projection(poses, cam)
                np.testing.assert_allclose(view, pixels, atol=2e-3)
                assert depth.min() > 2.0  # in front of the camera, not too close
                assert (view[..., 0] > 0).all() and (view[..., 0] < cam["res_w"]).all()
                assert (view[..., 1] > 0).all() and (view[..., 1] < cam["res_h"]).all()


def test_bone_lengths_are_constant_within_a_subject_and_differ_between_subjects(generated):
    per_subject = {}
    for subject in SUBJECTS:
        takes = generated["3d"]["positions_3d"][subject].values()
        lengths = np.concatenate([body.bone_lengths(p.astype(np.float64)) for p in takes])
        assert np.ptp(lengths, axis=0).max() < 1e-5
        per_subject[subject] = lengths[0]
        # human proportions: thigh ~0.45 m, upper arm ~0.28 m, left = right
        assert 0.38 < lengths[0, 1] < 0.52 and 0.22 < lengths[0, 11] < 0.34
        np.testing.assert_allclose(lengths[0, [0, 1, 2, 10, 11, 12]], lengths[0, [3, 4, 5, 13, 14, 15]], atol=1e-6)
    assert np.abs(per_subject["S1"] - per_subject["S9"]).max() > 0.005


def test_motion_is_smooth_and_feet_stay_on_the_floor(generated):
    for subject in SUBJECTS:
        for action, poses in generated["3d"]["positions_3d"][subject].items():
            poses = poses.astype(np.float64)
            velocity = np.linalg.norm(np.diff(poses, axis=0), axis=-1) * sm.FPS
            acceleration = np.linalg.norm(np.diff(poses, 2, axis=0), axis=-1) * sm.FPS**2
            assert velocity.max() < 7.0, (subject, action)
            assert acceleration.max() < 100.0, (subject, action)
            lowest_foot = poses[:, [body.R_FOOT, body.L_FOOT], 2].min(axis=1)
            assert lowest_foot.min() > 0.06, (subject, action)  # never through the floor
            if not action.startswith("Posing"):  # everything but jumping keeps a foot on the floor
                assert lowest_foot.max() < sm.ANKLE_HEIGHT + 0.015, (subject, action)
            head_above_hip = poses[:, body.HEAD, 2] - poses[:, body.HIP, 2]
            assert head_above_hip.min() > 0.3, (subject, action)  # upright


def test_actions_do_what_their_names_say(generated):
    positions = generated["3d"]["positions_3d"]["S1"]
    walk = positions["Walking"]
    assert np.linalg.norm(np.diff(walk[:, 0, :2], axis=0), axis=-1).sum() > 0.7 * FRAMES / sm.FPS  # moves ~1 m/s
    stand = positions["Directions"]
    assert np.linalg.norm(stand[-1, 0, :2] - stand[0, 0, :2]) < 0.6
    sit = positions["Sitting"]
    assert 0.45 < sit[:, 0, 2].mean() < 0.75  # pelvis at chair height
    assert 0.85 < positions["Waiting"][:, 0, 2].mean() < 1.1  # standing pelvis height
    jump = positions["Posing"][:, [body.R_FOOT, body.L_FOOT], 2].min(axis=1)
    assert jump.max() > sm.ANKLE_HEIGHT + 0.1  # both feet leave the floor
    seconds = 8
    longer = sm.generate_dataset(["S1"], ["Greeting", "SittingDown"], seconds * sm.FPS, seed=1)["S1"]
    wave = longer["Greeting"]
    hand = np.maximum(wave[:, body.R_WRIST, 2], wave[:, body.L_WRIST, 2])
    assert (hand > wave[:, body.HEAD, 2] - 0.15).any()  # a hand up at head height
    root_height = longer["SittingDown"][:, 0, 2]
    assert root_height.max() - root_height.min() > 0.3


def test_noisy_variant_statistics(generated):
    differences = []
    for subject in SUBJECTS:
        for action, views in generated["gt"]["positions_2d"][subject].items():
            for clean, noisy in zip(views, generated["noisy"]["positions_2d"][subject][action]):
                differences.append((noisy - clean).reshape(-1, 2))
    diff = np.concatenate(differences).astype(np.float64)
    distance = np.linalg.norm(diff, axis=-1)
    outliers = distance > 20.0  # 6-15 x 4 px = 24-60 px, Gaussian 2D distance of 20 px is 5 sigma
    assert 0.007 < outliers.mean() < 0.013
    assert abs(diff[~outliers].std() - 4.0) < 0.2 and abs(diff[~outliers].mean()) < 0.05


def test_loader_reads_the_files(generated):
    from common.datasets.keypoints import load_keypoints
    from common.datasets.registry import load_dataset
    from common.datasets.sequences import build_sequences

    dataset = load_dataset("synthetic", generated["dir"] / "data_3d_synthetic.npz")
    keypoints = load_keypoints(generated["dir"] / "data_2d_synthetic_gt.npz", dataset)
    sequences = build_sequences(dataset, keypoints, ["S9"], ["Walking"])
    assert len(sequences) == 8  # Walking and Walking 1 x 4 cameras
    assert all(s.poses_3d.shape == (FRAMES, 17, 3) and np.all(s.poses_3d[:, 0] == 0) for s in sequences)


def test_flags_are_validated_and_outputs_protected(tmp_path, capsys):
    out = tmp_path
    (out / "data_2d_synthetic_noisy.npz").write_bytes(b"old")
    for argv, message in [
        (["--frames", "20"], "--frames"),
        (["--actions", "Walking,Dancing"], "--actions"),
        (["--subjects", "S1,S1"], "--subjects"),
        (["--noise-px", "-1"], "--noise-px"),
        (["--seed", "-2"], "--seed"),
        ([], "already exists"),
    ]:
        with pytest.raises(UserError, match=message):
            prepare_data_synthetic.main(["--output-dir", str(out), *argv])
    prepare_data_synthetic.main(
        ["--output-dir", str(out), "--overwrite", "--subjects", "S11", "--actions", "Walking", "--frames", "100"]
    )
    printed = capsys.readouterr().out
    assert printed.count("SYNTHETIC dataset") >= 4
    assert "100.00 % of the projected joints inside the camera images" in printed
    assert list(load(out / "data_3d_synthetic.npz")["positions_3d"]) == ["S11"]


def test_every_default_subject_stays_in_view_of_its_cameras():
    subjects = list(H36M_PROTOCOL_SUBJECTS)
    positions = sm.generate_dataset(subjects, list(sm.ACTIONS), 250, seed=11)
    for subject in subjects:
        cameras = h36m_cameras(subject)
        for poses in positions[subject].values():
            for cam in cameras:
                pixels, depth = reference_projection(poses, cam)
                assert depth.min() > 2.0
                assert pixels.min() > 0 and (pixels[..., 0] < cam["res_w"]).all()
                assert (pixels[..., 1] < cam["res_h"]).all()
