"""common/datasets/synthetic_body.py: rotations, forward kinematics and symmetric subject proportions."""

from __future__ import annotations

import numpy as np

from common.datasets.synthetic_body import (
    NUM_JOINTS,
    bone_lengths,
    forward_kinematics,
    joint_rotations,
    make_subject,
    rotation,
)
from common.geometry.skeleton import H36M_17_LEFT, H36M_17_RIGHT


def test_rotation_about_z_and_joint_rotation_order():
    quarter = rotation(2, np.array(np.pi / 2))
    np.testing.assert_allclose(quarter @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    flexion, abduction, twist = 0.3, -0.2, 0.5
    expected = rotation(1, np.array(abduction)) @ rotation(0, np.array(flexion)) @ rotation(2, np.array(twist))
    np.testing.assert_allclose(joint_rotations(np.array([flexion, abduction, twist])), expected, atol=1e-12)


def test_forward_kinematics_keeps_the_subject_bone_lengths():
    rng = np.random.default_rng(0)
    subject = make_subject("S1", rng)
    angles = rng.uniform(-1.0, 1.0, size=(6, NUM_JOINTS, 3))
    positions = forward_kinematics(subject.offsets(), joint_rotations(angles), rng.normal(size=(6, 3)))
    lengths = bone_lengths(positions)
    np.testing.assert_allclose(lengths, np.broadcast_to(subject.bone_lengths[1:], lengths.shape), atol=1e-12)
    left, right = list(H36M_17_LEFT), list(H36M_17_RIGHT)
    np.testing.assert_array_equal(subject.bone_lengths[left], subject.bone_lengths[right])
    assert subject.bone_lengths[2] != subject.bone_lengths[1]  # proportions vary between bones
