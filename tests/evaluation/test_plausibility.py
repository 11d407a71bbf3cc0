"""common/evaluation/plausibility.py: each measurement against values constructed or computed independently."""

from __future__ import annotations

import numpy as np
import pytest

from common.core.errors import UserError
from common.evaluation.plausibility import format_report, plausibility_report, weak_perspective_reprojection
from common.geometry.skeleton import h36m_17

SKELETON = h36m_17()
# a standing pose (metres, camera frame: x right, y down, z forward), one row per H36M-17 joint
STANDING = np.array([
    [0, 0, 3], [-.13, 0, 3], [-.13, .45, 3], [-.13, .9, 3], [.13, 0, 3], [.13, .45, 3], [.13, .9, 3],
    [0, -.25, 3], [0, -.5, 3], [0, -.6, 3], [0, -.72, 3], [.18, -.48, 3], [.45, -.48, 3], [.7, -.48, 3],
    [-.18, -.48, 3], [-.45, -.48, 3], [-.7, -.48, 3],
])


def rotated(pose: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """The pose turned about the vertical axis through its root, one angle per frame (rigid: lengths unchanged)."""
    c, s = np.cos(angles), np.sin(angles)
    rot = np.stack([np.stack([c, 0 * c, s], -1), np.stack([0 * c, 1 + 0 * c, 0 * c], -1),
                    np.stack([-s, 0 * c, c], -1)], 1)
    relative = pose - pose[0]
    return np.einsum("tij,kj->tki", rot, relative) + pose[0]


def test_rigid_motion_has_no_bone_variation_and_the_standing_pose_is_symmetric():
    poses = rotated(STANDING, np.linspace(0, 1.5, 40))
    report = plausibility_report(poses, SKELETON)
    assert report.bone_variation_max == pytest.approx(0, abs=1e-12)
    assert report.asymmetry_max == pytest.approx(0, abs=1e-12)
    assert report.reprojection_px is None and report.jitter_m_s2 is None


def test_bone_variation_and_asymmetry_values():
    poses = np.repeat(STANDING[None], 10, axis=0).copy()
    poses[1::2, 13, 0] += 0.05  # left forearm (12 -> 13): 0.25 m and 0.30 m on alternate frames
    report = plausibility_report(poses, SKELETON)
    # std of two equally frequent values a, b is |a - b| / 2; the median of an even count is their mean
    assert report.bone_variation_max == pytest.approx(0.025 / 0.275)
    assert report.worst_bone == "LElbow-LWrist"
    # left forearm median 0.275 m against the right forearm's 0.25 m
    assert report.asymmetry_max == pytest.approx(0.025 / 0.2625)
    assert "LWrist" in report.worst_pair and "RWrist" in report.worst_pair


def test_reprojection_is_zero_for_an_exact_weak_perspective_view_and_matches_a_lstsq_fit():
    poses = rotated(STANDING, np.linspace(0, 0.5, 5))
    exact = 400 * poses[..., :2] + np.array([320.0, 240.0])
    report = plausibility_report(poses, SKELETON, keypoints_2d=exact)
    assert report.reprojection_px == pytest.approx(0, abs=1e-9)

    rng = np.random.default_rng(0)
    noisy = exact + rng.normal(0, 5, exact.shape)
    fitted = weak_perspective_reprojection(poses, noisy)
    for t in range(len(poses)):  # independent fit: least squares on [x y 1] -> scale and translation per frame
        rows = np.concatenate([np.stack([poses[t, :, 0], np.ones(17), np.zeros(17)], -1),
                               np.stack([poses[t, :, 1], np.zeros(17), np.ones(17)], -1)])
        solution, *_ = np.linalg.lstsq(rows, np.concatenate([noisy[t, :, 0], noisy[t, :, 1]]), rcond=None)
        expected = np.stack([solution[0] * poses[t, :, 0] + solution[1], solution[0] * poses[t, :, 1] + solution[2]],
                            -1)
        np.testing.assert_allclose(fitted[t], expected, atol=1e-9)
    report = plausibility_report(poses, SKELETON, keypoints_2d=noisy)
    errors = np.linalg.norm(fitted - noisy, axis=-1).mean(1)
    assert report.reprojection_px == pytest.approx(errors.mean())
    assert report.reprojection_height_fraction == pytest.approx((errors / np.ptp(noisy[..., 1], axis=1)).mean())


def test_jitter_of_a_constant_acceleration():
    fps, accel = 50.0, 2.0
    t = np.arange(30) / fps
    poses = np.repeat(STANDING[None], len(t), axis=0).copy()
    poses[:, 16, 2] += 0.5 * accel * t**2  # one wrist accelerates forward at 2 m/s^2, the others stay still
    report = plausibility_report(poses, SKELETON, fps=fps)
    assert report.jitter_m_s2 == pytest.approx(accel / 17)  # mean over the 17 joints


def test_bad_input_is_a_user_error():
    with pytest.raises(UserError, match=r"\(T, 17, 3\)"):
        plausibility_report(np.zeros((5, 16, 3)), SKELETON)
    poses = np.repeat(STANDING[None], 5, axis=0)
    with pytest.raises(UserError, match="NaN"):
        plausibility_report(np.where(np.arange(17)[None, :, None] == 3, np.nan, poses), SKELETON)
    with pytest.raises(UserError, match="do not match"):
        plausibility_report(poses, SKELETON, keypoints_2d=np.zeros((4, 17, 2)))


def test_format_report_names_every_measurement():
    poses = rotated(STANDING, np.linspace(0, 1, 10))
    text = format_report(plausibility_report(poses, SKELETON, fps=50, keypoints_2d=300 * poses[..., :2]))
    for words in ("bone length variation", "asymmetry", "reprojection", "jitter"):
        assert words in text
