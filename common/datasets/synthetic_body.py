"""The synthetic subjects' bodies: the rest pose and bone lengths of the Human3.6M 17-joint skeleton, per-subject
proportions, joint rotations and forward kinematics (used by `common.datasets.synthetic_actions` and
`common.datasets.synthetic_motion`).

Coordinate frames:

- Body frame (rest pose, joint-angle definitions): x = the subject's right, y = forward, z = up. The rest pose stands
  upright with the arms hanging.
- World frame: Human3.6M's (metres, z up, floor at z = 0); the subject moves inside the Human3.6M capture area, so
  the real Human3.6M cameras see it.

Local joint rotations are ``Ry(abduction) @ Rx(flexion) @ Rz(twist)`` (twist about the bone's own axis first). The root
additionally turns by the heading ``yaw`` about the world vertical. All randomness comes from the ``numpy`` generator
passed in, so a motion is a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.geometry.skeleton import H36M_17_LEFT, H36M_17_PARENTS, H36M_17_RIGHT

NUM_JOINTS = len(H36M_17_PARENTS)
PARENTS = H36M_17_PARENTS

# Joint indices (Human3.6M 17-joint order, see docs/ARCHITECTURE.md)
HIP, R_HIP, R_KNEE, R_FOOT, L_HIP, L_KNEE, L_FOOT = 0, 1, 2, 3, 4, 5, 6
SPINE, THORAX, NECK, HEAD = 7, 8, 9, 10
L_SHOULDER, L_ELBOW, L_WRIST, R_SHOULDER, R_ELBOW, R_WRIST = 11, 12, 13, 14, 15, 16

_REST_DIRECTIONS = np.array(
    [
        [0, 0, 0],  # hip (root)
        [1, 0, -0.12], [0, 0, -1], [0, 0, -1],  # right hip, knee, ankle
        [-1, 0, -0.12], [0, 0, -1], [0, 0, -1],  # left hip, knee, ankle
        [0, 0.02, 1], [0, -0.03, 1], [0, 0.3, 1], [0, -0.25, 1],  # spine, thorax, neck/nose, head
        [-1, 0, -0.2], [0, 0, -1], [0, 0, -1],  # left shoulder, elbow, wrist
        [1, 0, -0.2], [0, 0, -1], [0, 0, -1],  # right shoulder, elbow, wrist
    ],
    dtype=np.float64,
)  # fmt: skip
REST_DIRECTIONS = _REST_DIRECTIONS / np.maximum(np.linalg.norm(_REST_DIRECTIONS, axis=1, keepdims=True), 1e-12)
"""Unit direction of every bone (joint minus parent) in the rest pose, body frame."""

MEAN_BONE_LENGTHS = np.array(
    [0.0, 0.13, 0.45, 0.45, 0.13, 0.45, 0.45, 0.235, 0.255, 0.12, 0.115, 0.15, 0.28, 0.25, 0.15, 0.28, 0.25]
)
"""Average Human3.6M bone lengths (metres) of the 17-joint skeleton; joint 0 has no bone."""

_MIRRORED_BONES = tuple((min(a, b), max(a, b)) for a, b in zip(H36M_17_LEFT, H36M_17_RIGHT))
"""Left/right bone pairs ``(lower index, higher index)``; the higher one gets the lower one's length."""


# --- subjects -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectBody:
    """One synthetic subject: its bone lengths and personal motion style."""

    name: str
    bone_lengths: np.ndarray  # (17,) metres, left = right
    gait_frequency: float  # strides per second at normal walking speed
    arm_swing: float  # multiplier of the arm swing amplitude
    tempo: float  # multiplier of gesture speeds

    @property
    def leg_length(self) -> float:
        """Hip-to-ankle length (thigh + shin), metres."""
        return float(self.bone_lengths[R_KNEE] + self.bone_lengths[R_FOOT])

    def offsets(self) -> np.ndarray:
        """(17, 3) bone vectors of the rest pose (body frame)."""
        return REST_DIRECTIONS * self.bone_lengths[:, None]


def make_subject(name: str, rng: np.random.Generator) -> SubjectBody:
    """A subject with a random overall size (about +-5 %) and per-bone proportions (about +-3 %), symmetric."""
    scale = float(np.clip(rng.normal(1.0, 0.05), 0.9, 1.1))
    factors = np.clip(1.0 + rng.normal(0.0, 0.03, NUM_JOINTS), 0.92, 1.08)
    for left, right in _MIRRORED_BONES:
        factors[right] = factors[left]
    lengths = MEAN_BONE_LENGTHS * scale * factors
    return SubjectBody(
        name=name,
        bone_lengths=lengths,
        gait_frequency=float(rng.uniform(0.85, 1.0)),
        arm_swing=float(rng.uniform(0.7, 1.3)),
        tempo=float(rng.uniform(0.85, 1.15)),
    )


# --- rotations and forward kinematics -------------------------------------------------------------------------------


def rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about a coordinate axis (0 = x, 1 = y, 2 = z) by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == 0:
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == 1:
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def joint_rotations(angles: np.ndarray) -> np.ndarray:
    """Local rotations ``Ry(a[1]) @ Rx(a[0]) @ Rz(a[2])`` for angles (..., 3) = (flexion x, abduction y, twist z)."""
    return rotation(1, angles[..., 1]) @ rotation(0, angles[..., 0]) @ rotation(2, angles[..., 2])


def forward_kinematics(offsets: np.ndarray, rotations: np.ndarray, root_positions: np.ndarray) -> np.ndarray:
    """Joint positions from bone offsets, local rotations and root positions.

    Args:
        offsets: (J, 3) rest-pose bone vectors (joint minus parent, in the parent's frame).
        rotations: (T, J, 3, 3) local rotation of every joint; the rotation of a joint orients the bones to its
            children (the root's rotation is the global body orientation).
        root_positions: (T, 3).
    Returns:
        (T, J, 3) positions.
    """
    num_frames = rotations.shape[0]
    positions = np.zeros((num_frames, NUM_JOINTS, 3))
    global_rotations = np.zeros_like(rotations)
    positions[:, 0] = root_positions
    global_rotations[:, 0] = rotations[:, 0]
    for joint in range(1, NUM_JOINTS):
        parent = PARENTS[joint]
        positions[:, joint] = positions[:, parent] + global_rotations[:, parent] @ offsets[joint]
        global_rotations[:, joint] = global_rotations[:, parent] @ rotations[:, joint]
    return positions


def bone_lengths(positions: np.ndarray) -> np.ndarray:
    """(T, 16) length of every bone (child order 1..16) of 17-joint positions (T, 17, 3)."""
    children = np.arange(1, NUM_JOINTS)
    return np.linalg.norm(positions[:, children] - positions[:, [PARENTS[j] for j in children]], axis=-1)
