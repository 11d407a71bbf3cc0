"""common/datasets/detector_noise.py: each corruption does what it says, on a constructed pose."""

from __future__ import annotations

import numpy as np
import pytest

from common.datasets.detector_noise import FACE_JOINTS, SWAP_GROUPS, DetectorNoise
from common.geometry.keypoint_layouts import COCO, to_h36m17
from common.geometry.skeleton import H36M_17_NAMES

J = {name: i for i, name in enumerate(H36M_17_NAMES)}
OFF = dict(synthesis_rate=0.0, face_scale=0.0, frame_sigma=0.0, joint_bias=0.0, outlier_rate=0.0, swap_rate=0.0,
           scale=0.0, shift=0.0)


def _poses(batch=4, frames=9, seed=0):
    """Distinct random 2D per joint with a person height of 1 (y spans [-0.5, 0.5] in every frame)."""
    rng = np.random.default_rng(seed)
    poses = rng.uniform(-0.4, 0.4, (batch, frames, 17, 2)).astype(np.float32)
    poses[:, :, J["Head"], 1], poses[:, :, J["RFoot"], 1] = -0.5, 0.5
    return poses


def test_strength_zero_and_all_off_leave_the_2d_unchanged():
    poses = _poses()
    np.testing.assert_array_equal(DetectorNoise(strength=0).apply(poses, np.random.default_rng(1)), poses)
    np.testing.assert_array_equal(DetectorNoise(**OFF).apply(poses, np.random.default_rng(1)), poses)


def test_synthesis_rebuilds_joints_exactly_as_the_video_path_converts_coco():
    """With face_scale 0, synthesized pelvis/spine/thorax equal the COCO conversion of the same hips and shoulders."""
    poses = _poses()
    out = DetectorNoise(**{**OFF, "synthesis_rate": 1.0}).apply(poses, np.random.default_rng(2))
    coco = np.zeros(poses.shape[:2] + (17, 2), np.float32)
    for c, name in enumerate(COCO.joint_names):
        if name[1:] in {"Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"}:
            coco[:, :, c] = poses[:, :, J[name[0] + name[1:].replace("Ankle", "Foot")]]
    converted = to_h36m17(coco, COCO)
    for joint in ("Hip", "Spine", "Thorax"):
        np.testing.assert_allclose(out[:, :, J[joint]], converted[:, :, J[joint]], atol=1e-6)
    untouched = [j for j in range(17) if j not in (J["Hip"], J["Spine"], J["Thorax"])]
    np.testing.assert_array_equal(out[:, :, untouched], poses[:, :, untouched])


def test_face_points_move_along_the_thorax_direction_within_the_factor():
    poses = _poses(batch=64)
    out = DetectorNoise(**{**OFF, "synthesis_rate": 1.0, "face_scale": 0.3}).apply(poses, np.random.default_rng(3))
    thorax = out[:, :, J["Thorax"]]
    for joint in FACE_JOINTS:
        before, after = poses[:, :, joint] - thorax, out[:, :, joint] - thorax
        ratio = after / before
        assert np.allclose(ratio[..., 0], ratio[..., 1], atol=1e-4)  # same direction
        assert np.allclose(ratio, ratio[:, :1], atol=1e-4)  # one factor per clip
        assert 0.7 - 1e-4 <= ratio.min() and ratio.max() <= 1.3 + 1e-4 and ratio.std() > 0.1


def test_jitter_scales_with_the_person_height():
    poses = _poses(batch=200, frames=27)
    small = poses * 0.5
    noise = DetectorNoise(**{**OFF, "frame_sigma": 0.01})
    big_err = np.std(noise.apply(poses, np.random.default_rng(4)) - poses)
    small_err = np.std(noise.apply(small, np.random.default_rng(4)) - small)
    assert small_err == pytest.approx(big_err / 2, rel=1e-4)
    body = [j for j in range(17) if j not in FACE_JOINTS]
    assert np.std(noise.apply(poses, np.random.default_rng(5))[:, :, body] - poses[:, :, body]) == pytest.approx(
        0.01, rel=0.03)


def test_swaps_trade_left_and_right_for_a_run_of_frames():
    poses = _poses(batch=50, frames=27)
    out = DetectorNoise(**{**OFF, "swap_rate": 1.0}).apply(poses, np.random.default_rng(6))
    pairs = np.array(SWAP_GROUPS["both"])
    for clip in range(len(poses)):
        changed = np.flatnonzero(np.any(out[clip] != poses[clip], axis=(1, 2)))
        assert len(changed) and np.all(np.diff(changed) == 1)  # one run of frames
        frames = changed
        left, right = pairs[:, 0], pairs[:, 1]
        swapped = np.all(out[clip][frames][:, left] == poses[clip][frames][:, right], axis=(0, 2))
        assert swapped.any() and np.array_equal(swapped, np.all(out[clip][frames][:, right] ==
                                                                 poses[clip][frames][:, left], axis=(0, 2)))


def test_scale_and_shift_keep_the_pose_shape():
    poses = _poses()
    out = DetectorNoise(**{**OFF, "scale": 0.2, "shift": 0.1}).apply(poses, np.random.default_rng(7))
    for clip in range(len(poses)):
        a, b = poses[clip].reshape(-1, 2), out[clip].reshape(-1, 2)
        factor = np.std(b - b.mean(0)) / np.std(a - a.mean(0))
        assert 0.8 - 1e-5 <= factor <= 1.2 + 1e-5
        np.testing.assert_allclose((b - b.mean(0)) / factor, a - a.mean(0), atol=1e-5)


def test_outliers_are_rare_and_bounded():
    poses = _poses(batch=100, frames=27)
    out = DetectorNoise(**{**OFF, "outlier_rate": 0.01, "outlier_size": 0.15}).apply(poses, np.random.default_rng(8))
    moved = np.linalg.norm(out - poses, axis=-1)
    share = np.mean(moved > 0)
    assert 0.006 < share < 0.014 and moved.max() <= 0.15 + 1e-6
