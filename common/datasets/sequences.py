"""Model-ready sequences: one (subject, action, camera) stream of normalized 2D keypoints with its root-relative,
camera-space 3D ground truth.

    sequences = build_sequences(dataset, keypoints, subjects=["S9", "S11"], actions=["Walking"])
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from common.core.errors import UserError
from common.datasets.base import CameraParams, MocapDataset
from common.datasets.keypoints import Keypoints2D


@dataclass
class Sequence:
    """One (subject, action, camera) stream ready for the model.

    ``poses_2d`` ``(T, 17, 2)`` normalized; ``poses_3d`` ``(T, 17, 3)`` camera space, metres, root-relative (None
    without ground truth); ``camera`` the stream's camera (None when unknown).
    """

    subject: str
    action: str
    camera_index: int
    poses_2d: np.ndarray
    poses_3d: np.ndarray | None
    camera: CameraParams | None

    def __len__(self) -> int:
        return len(self.poses_2d)


def _action_matches(action: str, wanted: str) -> bool:
    """VideoPose3D's filter (`-a`): an action matches every wanted name it starts with.

    So `Walk` selects Walking, WalkDog and WalkTogether on Human3.6M, and `Walking` selects `Walking 1 chunk0` on
    HumanEva.
    """
    return action.startswith(wanted)


def _subset_slice(length: int, subset: float, downsample: int, key: str, seed: int) -> slice:
    """Frames kept by ``subset`` (one contiguous chunk at a deterministic random start) and ``downsample``."""
    if subset >= 1:
        return slice(0, length, downsample)
    count = int(round(length // downsample * subset)) * downsample
    rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(key.encode())])
    start = int(rng.integers(0, length - count + 1))
    return slice(start, start + count, downsample)


def _check_selection(keypoints: Keypoints2D, dataset: MocapDataset, subjects: list[str], downsample, subset) -> None:
    """`UserError` for an empty subject list, a bad ``--downsample``/``--subset`` or a subject without keypoints."""
    if not subjects:
        raise UserError("subjects: expected at least one subject")
    if int(downsample) != downsample or downsample < 1:
        raise UserError(f"--downsample: expected a positive integer, got {downsample}")
    if not 0 < subset <= 1:
        raise UserError(f"--subset: expected a fraction in (0, 1], got {subset}")
    unmatched_subjects = {s for s, _ in keypoints.unmatched}
    for subject in subjects:
        if subject not in keypoints.positions:
            hint = f" (it has no 3D ground truth in {dataset.path})" if subject in unmatched_subjects else ""
            raise UserError(
                f"{keypoints.path}: subject {subject!r} not available{hint}; "
                f"available: {', '.join(keypoints.subjects())}"
            )


def _root_relative_3d(dataset: MocapDataset, subject: str, action: str, index: int, length: int) -> np.ndarray | None:
    """Camera-space ground truth of a stream minus its root joint, float32 (None without ground truth)."""
    if not dataset.has_ground_truth():
        return None
    camera_space = dataset.positions_camera(subject, action, index)[:length]
    return (camera_space - camera_space[:, :1]).astype(np.float32)


def build_sequences(
    dataset: MocapDataset,
    keypoints: Keypoints2D,
    subjects: Iterable[str],
    actions: Iterable[str] | None = None,
    downsample: int = 1,
    subset: float = 1.0,
    seed: int = 1234,
) -> list[Sequence]:
    """One `Sequence` per (subject, action, camera) of `subjects` (and `actions`, matched by full or base name).

    ``downsample`` keeps every n-th frame; ``subset`` (0, 1] keeps a contiguous fraction of every sequence, chosen
    deterministically from `seed` and the sequence name (VideoPose3D's ``--subset``).
    """
    subjects = list(subjects)
    wanted = None if actions is None else list(actions)
    _check_selection(keypoints, dataset, subjects, downsample, subset)
    used = set()
    sequences: list[Sequence] = []
    for subject in subjects:
        for action, streams in keypoints.positions[subject].items():
            if wanted is not None:
                hits = [w for w in wanted if _action_matches(action, w)]
                if not hits:
                    continue
                used.update(hits)
            cameras = dataset.cameras(subject, action)
            for index, poses_2d in enumerate(streams):
                if poses_2d is None:
                    continue
                poses_3d = _root_relative_3d(dataset, subject, action, index, len(poses_2d))
                frames = _subset_slice(len(poses_2d), subset, int(downsample), f"{subject}/{action}/{index}", seed)
                if len(range(len(poses_2d))[frames]) == 0:
                    continue
                sequences.append(
                    Sequence(
                        subject=subject,
                        action=action,
                        camera_index=index,
                        poses_2d=np.ascontiguousarray(poses_2d[frames]),
                        poses_3d=None if poses_3d is None else np.ascontiguousarray(poses_3d[frames]),
                        camera=cameras[index],
                    )
                )
    missing = [] if wanted is None else [w for w in wanted if w not in used]
    if missing:
        raise UserError(
            f"{keypoints.path}: action(s) {', '.join(missing)} not found for subject(s) {', '.join(subjects)}"
        )
    if not sequences:
        raise UserError(f"{keypoints.path}: no sequence selected for subject(s) {', '.join(subjects)}")
    return sequences
