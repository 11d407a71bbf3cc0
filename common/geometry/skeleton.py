"""Kinematic skeletons: joint tree (parents), left/right symmetry and joint removal.

A `Skeleton` is immutable: `remove_joints` returns a NEW skeleton (plus the kept original indices) and never mutates
the receiver. Factory functions build the skeletons of the supported datasets:

- `h36m_32()`: the full 32-joint Human3.6M motion-capture tree (VideoPose3D's published parents).
- `h36m_17()`: the 17 joints every model in this project predicts (VideoPose3D order, see docs/ARCHITECTURE.md).
- `humaneva15()`: HumanEva-I, 15 joints (VideoPose3D order).
- `mpi_inf_3dhp_17()`: MPI-INF-3DHP, 17 joints in the mmpose annotation order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch


class Skeleton:
    """A joint tree with left/right symmetric joint lists.

    Args:
        parents: parent index of every joint, -1 for the root(s).
        joints_left: indices of the joints on the subject's left side.
        joints_right: indices of their right counterparts (same length; ``joints_left[i]`` mirrors
            ``joints_right[i]``).
        joint_names: optional name of every joint.
    """

    def __init__(
        self,
        parents: Sequence[int],
        joints_left: Sequence[int],
        joints_right: Sequence[int],
        joint_names: Sequence[str] | None = None,
    ) -> None:
        parents = tuple(int(p) for p in parents)
        num = len(parents)
        if len(joints_left) != len(joints_right):
            raise ValueError(f"joints_left ({len(joints_left)}) and joints_right ({len(joints_right)}) lengths differ")
        for index, parent in enumerate(parents):
            if parent < -1 or parent >= num or parent == index:
                raise ValueError(f"joint {index}: invalid parent {parent} for a {num}-joint skeleton")
        for joint in (*joints_left, *joints_right):
            if not 0 <= int(joint) < num:
                raise ValueError(f"left/right joint {joint} out of range for a {num}-joint skeleton")
        if joint_names is not None and len(joint_names) != num:
            raise ValueError(f"{len(joint_names)} joint names for a {num}-joint skeleton")
        self._parents = parents
        self._joints_left = tuple(int(j) for j in joints_left)
        self._joints_right = tuple(int(j) for j in joints_right)
        self._joint_names = tuple(joint_names) if joint_names is not None else None
        self._children = tuple(tuple(c for c, p in enumerate(parents) if p == j) for j in range(num))

    def num_joints(self) -> int:
        """Number of joints."""
        return len(self._parents)

    def parents(self) -> np.ndarray:
        """Parent index of every joint (int64 array, -1 for the root)."""
        return np.array(self._parents, dtype=np.int64)

    def joints_left(self) -> list[int]:
        """Indices of the left-side joints."""
        return list(self._joints_left)

    def joints_right(self) -> list[int]:
        """Indices of the right-side joints, paired with `joints_left()`."""
        return list(self._joints_right)

    def joint_names(self) -> list[str] | None:
        """Joint names, or None when the skeleton was built without names."""
        return list(self._joint_names) if self._joint_names is not None else None

    def children(self) -> list[list[int]]:
        """For every joint, the list of its direct children."""
        return [list(c) for c in self._children]

    def bones(self) -> list[tuple[int, int]]:
        """All bones as ``(child, parent)`` pairs, in child order (the root has no bone)."""
        return [(j, p) for j, p in enumerate(self._parents) if p >= 0]

    def remove_joints(
        self, joints_to_remove: Iterable[int] | None = None, keep: Iterable[int] | None = None
    ) -> tuple[Skeleton, list[int]]:
        """Drop joints, re-parenting every kept joint to its nearest kept ancestor.

        Give exactly one of ``joints_to_remove`` or ``keep``. The receiver is not modified.

        Returns:
            ``(new_skeleton, kept)`` where ``kept`` lists the original indices of the kept joints in their original
            order (use it to slice pose arrays: ``poses[..., kept, :]``).
        """
        if (joints_to_remove is None) == (keep is None):
            raise ValueError("give exactly one of joints_to_remove or keep")
        num = self.num_joints()
        if keep is not None:
            keep_set = {int(j) for j in keep}
        else:
            keep_set = set(range(num)) - {int(j) for j in joints_to_remove}
        if any(not 0 <= j < num for j in keep_set):
            raise ValueError(f"joint index out of range for a {num}-joint skeleton: {sorted(keep_set)}")
        kept = sorted(keep_set)
        new_index = {old: new for new, old in enumerate(kept)}

        new_parents = []
        for old in kept:
            parent = self._parents[old]
            while parent != -1 and parent not in keep_set:
                parent = self._parents[parent]
            new_parents.append(-1 if parent == -1 else new_index[parent])

        new_left = [new_index[j] for j in self._joints_left if j in keep_set]
        new_right = [new_index[j] for j in self._joints_right if j in keep_set]
        if len(new_left) != len(new_right):
            # A left joint survived but its right counterpart did not (or vice versa): keep only complete pairs.
            pairs = [
                (new_index[a], new_index[b])
                for a, b in zip(self._joints_left, self._joints_right)
                if a in keep_set and b in keep_set
            ]
            new_left = [a for a, _ in pairs]
            new_right = [b for _, b in pairs]
        names = [self._joint_names[j] for j in kept] if self._joint_names is not None else None
        return Skeleton(new_parents, new_left, new_right, names), kept

    def with_parents(self, overrides: dict[int, int]) -> Skeleton:
        """A copy with some parents replaced (``{joint: new_parent}``)."""
        parents = list(self._parents)
        for joint, parent in overrides.items():
            parents[joint] = parent
        return Skeleton(parents, self._joints_left, self._joints_right, self._joint_names)

    def __eq__(self, other: object) -> bool:
        """Same tree and left/right lists (joint names are not compared)."""
        if not isinstance(other, Skeleton):
            return NotImplemented
        return (
            self._parents == other._parents
            and self._joints_left == other._joints_left
            and self._joints_right == other._joints_right
        )

    def __hash__(self) -> int:
        return hash((self._parents, self._joints_left, self._joints_right))

    def __repr__(self) -> str:
        return f"Skeleton(num_joints={self.num_joints()}, parents={list(self._parents)})"


def mirror_permutation(num_joints: int, left: Sequence[int], right: Sequence[int]) -> np.ndarray:
    """Joint permutation that swaps every ``left[i]`` with ``right[i]`` (identity elsewhere)."""
    perm = np.arange(num_joints)
    perm[list(left)] = list(right)
    perm[list(right)] = list(left)
    return perm


def flip_poses(poses: np.ndarray | torch.Tensor, left: Sequence[int], right: Sequence[int]):
    """Mirror poses ``(..., J, C)`` horizontally: negate x and swap left/right joints (returns a new array)."""
    flipped = poses[..., mirror_permutation(poses.shape[-2], left, right), :]
    flipped = flipped.clone() if isinstance(flipped, torch.Tensor) else flipped.copy()
    flipped[..., 0] *= -1
    return flipped


# --- Human3.6M ---------------------------------------------------------------------------------------------------

H36M_32_PARENTS = (
    -1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14,
    12, 16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30,
)  # fmt: skip
H36M_32_LEFT = (6, 7, 8, 9, 10, 16, 17, 18, 19, 20, 21, 22, 23)
H36M_32_RIGHT = (1, 2, 3, 4, 5, 24, 25, 26, 27, 28, 29, 30, 31)
H36M_32_NAMES = (
    "Hip", "RHip", "RKnee", "RFoot", "RToe", "RToeSite", "LHip", "LKnee", "LFoot", "LToe", "LToeSite",
    "SpineBase", "Spine", "Thorax", "Neck/Nose", "Head", "LShoulderAnchor", "LShoulder", "LElbow", "LWrist",
    "LThumb", "LThumbSite", "LWristEnd", "LWristEndSite", "RShoulderAnchor", "RShoulder", "RElbow", "RWrist",
    "RThumb", "RThumbSite", "RWristEnd", "RWristEndSite",
)  # fmt: skip
"""Names of the 32 mocap joints (the 17 kept ones carry the names of the model order in docs/ARCHITECTURE.md)."""

H36M_17_KEPT = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
"""Original 32-joint indices of the 17 joints kept (in model order)."""


def h36m_32() -> Skeleton:
    """The full 32-joint Human3.6M mocap skeleton."""
    return Skeleton(H36M_32_PARENTS, H36M_32_LEFT, H36M_32_RIGHT, H36M_32_NAMES)


def h36m_17() -> Skeleton:
    """The 17-joint Human3.6M skeleton (VideoPose3D order) obtained from `h36m_32()` by joint removal.

    Plain removal re-parents both shoulders to the Spine (model index 7), because their removed mocap parents (the
    shoulder anchors 16 and 24) hang from the 32-joint Spine (12). As in VideoPose3D, the shoulders are then re-wired
    to the Thorax (model index 8), giving the parents listed in docs/ARCHITECTURE.md.
    """
    reduced, kept = h36m_32().remove_joints(keep=H36M_17_KEPT)
    assert tuple(kept) == H36M_17_KEPT
    return reduced.with_parents({11: 8, 14: 8})


_H36M_17 = h36m_17()
H36M_17_PARENTS = tuple(_H36M_17.parents().tolist())
"""Parents of the model's 17 joints: ``(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)``."""
H36M_17_LEFT = tuple(_H36M_17.joints_left())
"""Left joints of the model order: ``(4, 5, 6, 11, 12, 13)``, paired with `H36M_17_RIGHT` ``(1, 2, 3, 14, 15, 16)``."""
H36M_17_RIGHT = tuple(_H36M_17.joints_right())
H36M_17_NAMES = tuple(_H36M_17.joint_names())
"""Names of the model's 17 joints (Hip, RHip, ..., RWrist; docs/ARCHITECTURE.md)."""


# --- HumanEva-I --------------------------------------------------------------------------------------------------

HUMANEVA15_NAMES = (
    "Pelvis", "Thorax", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
    "LHip", "LKnee", "LAnkle", "RHip", "RKnee", "RAnkle", "Head",
)  # fmt: skip
HUMANEVA15_PARENTS = (-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1)
HUMANEVA15_LEFT = (2, 3, 4, 8, 9, 10)
HUMANEVA15_RIGHT = (5, 6, 7, 11, 12, 13)


def humaneva15() -> Skeleton:
    """HumanEva-I 15-joint skeleton (VideoPose3D order)."""
    return Skeleton(HUMANEVA15_PARENTS, HUMANEVA15_LEFT, HUMANEVA15_RIGHT, HUMANEVA15_NAMES)


# --- MPI-INF-3DHP --------------------------------------------------------------------------------------------------

MPI_INF_3DHP_17_NAMES = (
    "HeadTop", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "Root", "Spine", "Head",
)  # fmt: skip
MPI_INF_3DHP_17_PARENTS = (16, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1)
MPI_INF_3DHP_17_LEFT = (5, 6, 7, 11, 12, 13)
MPI_INF_3DHP_17_RIGHT = (2, 3, 4, 8, 9, 10)


def mpi_inf_3dhp_17() -> Skeleton:
    """MPI-INF-3DHP 17-joint skeleton in the mmpose annotation order (root = joint 14)."""
    return Skeleton(MPI_INF_3DHP_17_PARENTS, MPI_INF_3DHP_17_LEFT, MPI_INF_3DHP_17_RIGHT, MPI_INF_3DHP_17_NAMES)
