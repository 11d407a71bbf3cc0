"""2D/3D keypoint layouts and their conversion into the model's 17-joint Human3.6M token order.

Every layout is described by its joint names, its left/right symmetry (as VideoPose3D's ``keypoints_symmetry``) and a
linear recipe that builds each of the 17 Human3.6M joints (docs/ARCHITECTURE.md order) as a weighted sum of the
layout's joints. The weights of every recipe sum to 1 (affine combination), so a conversion commutes with translation,
scaling and screen normalization, and it works on 2D pixels and 3D points alike. Recipes are left/right symmetric, so
converting a mirrored pose gives the mirrored converted pose.

Registered layouts: ``h36m`` (17, identity), ``coco`` (17), ``mpii`` (16, the Stacked Hourglass order of
VideoPose3D's ``data_2d_h36m_sh_pt_mpii.npz``), ``humaneva15`` (15) and ``mpi_inf_3dhp`` (17, mmpose order).

Synthesized joints:
- mpii: the MPII thorax (index 7) lies below the Human3.6M thorax and the MPII upper neck (index 8) matches it, so
  Thorax = upper neck; Spine = 0.4 pelvis + 0.6 MPII thorax; Neck/Nose = 0.7 upper neck + 0.3 head top;
  Head = 0.45 upper neck + 0.55 head top. The weights were fitted (then rounded) on Stacked Hourglass detections of
  Human3.6M S1/S5 against the projected ground truth; on S9 the median errors are about 6-8 px (see
  tests/test_keypoint_layouts.py).
- coco: with S the shoulders' and H the hips' midpoint: Hip = H, Thorax = S + 0.12 (S - H), Spine = H + 0.55 (S - H)
  (least-squares fits on the 3D of Human3.6M S1, S5-S8: the Human3.6M thorax lies 0.12 torso lengths above the
  shoulders' midpoint; median error 23 mm, against 59 mm for Thorax = S), Neck/Nose = nose, Head = eyes' midpoint
  moved away from S by 0.25 of the S-to-eyes vector (the Human3.6M head joint is about 1.25 times as far from S as
  the eyes; an earlier 0.6 put the head point far above the head, like an antenna).
- humaneva15: Spine = mean of pelvis and thorax, Neck/Nose = mean of thorax and head (Human3.6M thorax-nose and
  nose-head bones have about the same length, 0.12 m).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from common.core.errors import UserError
from common.geometry.skeleton import (
    H36M_17_LEFT,
    H36M_17_NAMES,
    H36M_17_RIGHT,
    HUMANEVA15_LEFT,
    HUMANEVA15_NAMES,
    HUMANEVA15_RIGHT,
    MPI_INF_3DHP_17_LEFT,
    MPI_INF_3DHP_17_NAMES,
    MPI_INF_3DHP_17_RIGHT,
    mirror_permutation,
)

NUM_MODEL_JOINTS = len(H36M_17_NAMES)


@dataclass(frozen=True)
class KeypointLayout:
    """A keypoint layout: names, symmetry and the recipe to build the 17 Human3.6M joints from it.

    ``recipe[h36m_joint] = {layout_joint: weight, ...}`` (weights sum to 1). A joint whose recipe is a single
    weight-1 source is "real"; the others are synthesized from neighbours.
    """

    name: str
    joint_names: tuple[str, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    recipe: Mapping[int, Mapping[int, float]] = field(repr=False)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def symmetry(self) -> list[list[int]]:
        """VideoPose3D ``keypoints_symmetry``: ``[sorted left joints, sorted right joints]``.

        ``left``/``right`` themselves are paired (``left[i]`` mirrors ``right[i]``); VideoPose3D's lists are sets
        (its MPII file lists RAnkle, RKnee, RHip in that order against LHip, LKnee, LAnkle)."""
        return [sorted(self.left), sorted(self.right)]

    def conversion_matrix(self) -> np.ndarray:
        """``(17, num_joints)`` float64 matrix M with ``h36m = M @ keypoints``."""
        matrix = np.zeros((NUM_MODEL_JOINTS, self.num_joints))
        for target, sources in self.recipe.items():
            for source, weight in sources.items():
                matrix[target, source] = weight
        return matrix

    def real_joints(self) -> tuple[int, ...]:
        """Indices (model order) of the joints copied from a joint of this layout (not synthesized)."""
        return tuple(
            sorted(t for t, sources in self.recipe.items() if len(sources) == 1 and next(iter(sources.values())) == 1)
        )


def _copy(*pairs: tuple[int, int]) -> dict[int, dict[int, float]]:
    return {target: {source: 1.0} for target, source in pairs}


def _validate(layout: KeypointLayout) -> KeypointLayout:
    """Check a layout definition (every model joint defined, weights sum to 1, symmetric recipe)."""
    matrix = layout.conversion_matrix()
    assert set(layout.recipe) == set(range(NUM_MODEL_JOINTS)), layout.name
    assert np.allclose(matrix.sum(axis=1), 1.0), layout.name
    src_perm = mirror_permutation(layout.num_joints, layout.left, layout.right)
    dst_perm = mirror_permutation(NUM_MODEL_JOINTS, H36M_17_LEFT, H36M_17_RIGHT)
    assert np.allclose(matrix[dst_perm][:, src_perm], matrix), f"{layout.name}: recipe is not left/right symmetric"
    return layout


H36M = _validate(
    KeypointLayout(
        name="h36m",
        joint_names=H36M_17_NAMES,
        left=H36M_17_LEFT,
        right=H36M_17_RIGHT,
        recipe=_copy(*((j, j) for j in range(NUM_MODEL_JOINTS))),
    )
)

COCO = _validate(
    KeypointLayout(
        name="coco",
        joint_names=(
            "Nose", "LEye", "REye", "LEar", "REar", "LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist",
            "RWrist", "LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle",
        ),  # fmt: skip
        left=(1, 3, 5, 7, 9, 11, 13, 15),
        right=(2, 4, 6, 8, 10, 12, 14, 16),
        recipe={
            **_copy((1, 12), (2, 14), (3, 16), (4, 11), (5, 13), (6, 15), (9, 0)),
            **_copy((11, 5), (12, 7), (13, 9), (14, 6), (15, 8), (16, 10)),
            0: {11: 0.5, 12: 0.5},
            7: {11: 0.225, 12: 0.225, 5: 0.275, 6: 0.275},
            8: {5: 0.56, 6: 0.56, 11: -0.06, 12: -0.06},
            10: {1: 0.625, 2: 0.625, 5: -0.125, 6: -0.125},
        },
    )
)

MPII = _validate(
    KeypointLayout(
        name="mpii",
        joint_names=(
            "RAnkle", "RKnee", "RHip", "LHip", "LKnee", "LAnkle", "Pelvis", "Thorax", "UpperNeck", "HeadTop",
            "RWrist", "RElbow", "RShoulder", "LShoulder", "LElbow", "LWrist",
        ),  # fmt: skip
        left=(3, 4, 5, 13, 14, 15),
        right=(2, 1, 0, 12, 11, 10),
        recipe={
            **_copy((0, 6), (1, 2), (2, 1), (3, 0), (4, 3), (5, 4), (6, 5), (8, 8)),
            **_copy((11, 13), (12, 14), (13, 15), (14, 12), (15, 11), (16, 10)),
            7: {6: 0.4, 7: 0.6},
            9: {8: 0.7, 9: 0.3},
            10: {8: 0.45, 9: 0.55},
        },
    )
)

HUMANEVA15 = _validate(
    KeypointLayout(
        name="humaneva15",
        joint_names=HUMANEVA15_NAMES,
        left=HUMANEVA15_LEFT,
        right=HUMANEVA15_RIGHT,
        recipe={
            **_copy((0, 0), (1, 11), (2, 12), (3, 13), (4, 8), (5, 9), (6, 10), (8, 1), (10, 14)),
            **_copy((11, 2), (12, 3), (13, 4), (14, 5), (15, 6), (16, 7)),
            7: {0: 0.5, 1: 0.5},
            9: {1: 0.5, 14: 0.5},
        },
    )
)

MPI_INF_3DHP = _validate(
    KeypointLayout(
        name="mpi_inf_3dhp",
        joint_names=MPI_INF_3DHP_17_NAMES,
        left=MPI_INF_3DHP_17_LEFT,
        right=MPI_INF_3DHP_17_RIGHT,
        recipe=_copy(
            (0, 14), (1, 8), (2, 9), (3, 10), (4, 11), (5, 12), (6, 13), (7, 15), (8, 1),
            (9, 16), (10, 0), (11, 5), (12, 6), (13, 7), (14, 2), (15, 3), (16, 4),
        ),  # fmt: skip
    )
)

LAYOUTS: dict[str, KeypointLayout] = {layout.name: layout for layout in (H36M, COCO, MPII, HUMANEVA15, MPI_INF_3DHP)}
"""Registry of the supported layouts, by name (the ``layout_name`` of a 2D npz's metadata)."""


def get_layout(name: str, source: str = "layout") -> KeypointLayout:
    """The registered layout called `name`; a `UserError` naming `source` otherwise."""
    if name not in LAYOUTS:
        raise UserError(f"{source}: unknown keypoint layout {name!r} (expected one of {', '.join(LAYOUTS)})")
    return LAYOUTS[name]


def keypoint_metadata(name: str, source: str = "--layout", **extra) -> dict:
    """The ``metadata`` dict a VideoPose3D-layout 2D file of layout `name` carries (``layout_name``, ``num_joints``,
    ``keypoints_symmetry``), with the `extra` entries added; `source` is named in the error for an unknown name."""
    layout = get_layout(name, source)
    return {"layout_name": layout.name, "num_joints": layout.num_joints, "keypoints_symmetry": layout.symmetry, **extra}


def detect_layout(metadata: Mapping, source: str = "metadata") -> KeypointLayout:
    """Layout of a VideoPose3D 2D file from its ``metadata``: ``layout_name`` if present, else the layout whose joint
    count and ``keypoints_symmetry`` match. `source` (usually the file name) is named in errors."""
    if not isinstance(metadata, Mapping):
        raise UserError(f"{source}: metadata must be a dict with num_joints and keypoints_symmetry")
    num_joints = metadata.get("num_joints")
    name = metadata.get("layout_name")
    if name is not None:
        layout = get_layout(str(name), source)
        if num_joints is not None and int(num_joints) != layout.num_joints:
            raise UserError(
                f"{source}: layout {layout.name!r} has {layout.num_joints} joints "
                f"but metadata says num_joints={num_joints}"
            )
        return layout
    symmetry = metadata.get("keypoints_symmetry")
    if num_joints is None or symmetry is None:
        raise UserError(f"{source}: metadata needs layout_name, or num_joints and keypoints_symmetry")
    try:
        symmetry = [sorted(int(j) for j in side) for side in symmetry]
    except (TypeError, ValueError):
        raise UserError(f"{source}: keypoints_symmetry must be two lists of joint indices") from None
    for layout in LAYOUTS.values():
        if layout.num_joints == int(num_joints) and symmetry == layout.symmetry:
            return layout
    raise UserError(
        f"{source}: unknown keypoint layout (num_joints={num_joints}, keypoints_symmetry={symmetry}); "
        f"set metadata layout_name to one of {', '.join(LAYOUTS)}"
    )


def to_h36m17(keypoints: np.ndarray, layout: KeypointLayout | str, coordinate_dims: int = 2) -> np.ndarray:
    """Convert ``(..., J, C)`` keypoints of `layout` into ``(..., 17, C)`` in the model's Human3.6M order.

    The first `coordinate_dims` channels (x, y or x, y, z) are combined with the layout's recipe; any further channel
    (detection scores, visibility) of a synthesized joint is the minimum over the joints it is made of. The result
    has the input's floating dtype (float32 for integer input).
    """
    if isinstance(layout, str):
        layout = get_layout(layout)
    keypoints = np.asarray(keypoints)
    if keypoints.ndim < 2 or keypoints.shape[-2] != layout.num_joints or keypoints.shape[-1] < coordinate_dims:
        raise ValueError(
            f"layout {layout.name!r} expects (..., {layout.num_joints}, >={coordinate_dims}) keypoints, "
            f"got {keypoints.shape}"
        )
    dtype = keypoints.dtype if np.issubdtype(keypoints.dtype, np.floating) else np.float32
    if layout is H36M:
        return keypoints.astype(dtype, copy=True)
    matrix = layout.conversion_matrix().astype(dtype)
    coords = np.matmul(matrix, keypoints[..., :coordinate_dims].astype(dtype))
    if keypoints.shape[-1] == coordinate_dims:
        return coords
    extra = keypoints[..., coordinate_dims:].astype(dtype)
    extra_out = np.stack(
        [extra[..., sorted(layout.recipe[t]), :].min(axis=-2) for t in range(NUM_MODEL_JOINTS)], axis=-2
    )
    return np.concatenate([coords, extra_out], axis=-1)
