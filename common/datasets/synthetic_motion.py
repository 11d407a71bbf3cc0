"""Procedural human motion on the Human3.6M 17-joint skeleton (the embedded SYNTHETIC dataset).

Everything is generated from joint-angle trajectories through forward kinematics, so bone lengths are exactly constant
within a subject. Trajectories are sums of eased keyframes and low-frequency sinusoids (smooth velocities and
accelerations); feet are kept on the floor by placing the root above the lowest foot (a soft minimum, so the root
height stays smooth when the support foot changes), except during the flight phase of jumps.

The body, rest pose and forward kinematics are in `common.datasets.synthetic_body`; the action generators in
`common.datasets.synthetic_actions`. This module puts a take together (root placement on the floor) and generates the
whole dataset.

Public API: `ACTIONS` (name -> generator), `FPS`, `generate_take`, `generate_dataset`, `add_detection_noise`.
"""

from __future__ import annotations

import numpy as np

from common.datasets.synthetic_actions import ACTIONS, FPS, Motion
from common.datasets.synthetic_body import (
    HIP,
    L_FOOT,
    R_FOOT,
    SubjectBody,
    forward_kinematics,
    joint_rotations,
    make_subject,
    rotation,
)

ANKLE_HEIGHT = 0.075
"""Height of the ankle joint (the H36M "foot" joint) above the floor when the foot is flat, metres."""
GROUND_SOFTNESS = 0.012
"""Temperature (metres) of the soft minimum over the two feet that decides the root height."""


def _soft_min(a: np.ndarray, b: np.ndarray, softness: float) -> np.ndarray:
    """Smooth minimum (log-sum-exp), at most ``softness * log 2`` below ``min(a, b)``."""
    low = np.minimum(a, b)
    return low - softness * np.log(np.exp(-(a - low) / softness) + np.exp(-(b - low) / softness))


def generate_take(body: SubjectBody, action: str, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """World positions (T, 17, 3) float32 metres (Human3.6M frame: z up, floor at 0) of one take at 50 fps."""
    if action not in ACTIONS:
        raise KeyError(f"unknown synthetic action {action!r}; expected one of {', '.join(ACTIONS)}")
    t = np.arange(num_frames) / FPS
    motion = Motion(t)
    ACTIONS[action](motion, rng, body)

    rotations = joint_rotations(motion.angles)
    rotations[:, HIP] = rotation(2, motion.yaw) @ rotations[:, HIP]
    local = forward_kinematics(body.offsets(), rotations, np.zeros((num_frames, 3)))  # root at the origin

    feet = local[:, [R_FOOT, L_FOOT]]
    root_z = ANKLE_HEIGHT - _soft_min(feet[:, 0, 2], feet[:, 1, 2], GROUND_SOFTNESS) + motion.lift
    if motion.anchor_feet:
        root_xy = motion.ground_xy - feet[:, :, :2].mean(axis=1)
    else:
        root_xy = motion.ground_xy
    root = np.concatenate([root_xy, root_z[:, None]], axis=1)
    return (local + root[:, None, :]).astype(np.float32)


# --- the dataset ----------------------------------------------------------------------------------------------------

TAKES_PER_ACTION = 2
"""Like Human3.6M: every action group has two takes, named ``<Group>`` and ``<Group> 1``."""


def take_name(group: str, take: int) -> str:
    """Human3.6M-style take name: take 0 -> ``Walking``, take 1 -> ``Walking 1``."""
    return group if take == 0 else f"{group} {take}"


def subject_number(subject: str) -> int:
    """``S11`` -> 11 (subjects must be named ``S<number>``)."""
    if not (subject.startswith("S") and subject[1:].isdigit()):
        raise ValueError(f"synthetic subject {subject!r}: expected a name like S1")
    return int(subject[1:])


def generate_dataset(
    subjects: list[str], actions: list[str], num_frames: int, seed: int, progress=None
) -> dict[str, dict[str, np.ndarray]]:
    """``{subject: {take name: (T, 17, 3) float32 world metres}}`` for every subject, action group and take.

    Each subject's body and each take's motion have their own random stream derived from ``(seed, subject number,
    action group, take)``, so a take does not change when other subjects or actions are added or removed.
    ``progress`` optionally wraps the iterable of (subject, action, take) jobs (e.g. ``tqdm``).
    """
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise KeyError(f"unknown synthetic action(s) {', '.join(unknown)}; expected some of {', '.join(ACTIONS)}")
    action_ids = {name: index for index, name in enumerate(ACTIONS)}
    bodies = {s: make_subject(s, np.random.default_rng([seed, 0, subject_number(s)])) for s in subjects}
    jobs = [(s, a, k) for s in subjects for a in actions for k in range(TAKES_PER_ACTION)]
    positions: dict[str, dict[str, np.ndarray]] = {s: {} for s in subjects}
    for subject, action, take in progress(jobs) if progress else jobs:
        rng = np.random.default_rng([seed, 1, subject_number(subject), action_ids[action], take])
        positions[subject][take_name(action, take)] = generate_take(bodies[subject], action, num_frames, rng)
    return positions


def add_detection_noise(
    keypoints: np.ndarray, rng: np.random.Generator, noise_px: float, outlier_fraction: float
) -> np.ndarray:
    """Simulated detector errors on pixel keypoints (..., 2): Gaussian jitter of ``noise_px`` pixels (per coordinate)
    plus, on a random ``outlier_fraction`` of the joints, a displacement of 6-15 times ``noise_px`` in a random
    direction (missed or swapped joints)."""
    noisy = keypoints + rng.normal(0.0, noise_px, keypoints.shape)
    outliers = rng.random(keypoints.shape[:-1]) < outlier_fraction
    count = int(outliers.sum())
    angle = rng.uniform(0, 2 * np.pi, count)
    radius = rng.uniform(6.0, 15.0, count) * noise_px
    noisy[outliers] += np.stack([np.cos(angle), np.sin(angle)], -1) * radius[:, None]
    return noisy.astype(np.float32)
