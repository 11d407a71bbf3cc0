"""Dataset building blocks: cameras, the motion-capture dataset base class and the npz readers every dataset uses.

Every dataset exposes its 3D ground truth in the model's 17-joint Human3.6M order (docs/ARCHITECTURE.md); datasets
whose skeleton lacks some of those joints synthesize them and list the real ones in ``evaluation_joints``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.core.errors import UserError
from common.geometry.camera import camera_to_pixels, intrinsic_from_pixels, world_to_camera
from common.geometry.keypoint_layouts import H36M, KeypointLayout
from common.geometry.skeleton import Skeleton, h36m_17

ALL_JOINTS = tuple(range(17))

CAMERA_KEYS = (
    "id", "res_w", "res_h", "azimuth", "center", "focal_length", "radial_distortion", "tangential_distortion",
    "orientation", "translation",
)  # fmt: skip
"""Keys of a VideoPose3D-style camera dict (as `common.geometry.h36m_cameras.h36m_cameras` returns, and as stored in the
``cameras`` entry of a synthetic dataset's 3D file)."""


@dataclass
class CameraParams:
    """One camera: resolution, normalized intrinsics and (optional) extrinsics.

    ``intrinsic`` is ``[fx, fy, cx, cy, k1, k2, k3, p1, p2]`` in normalized units; ``orientation`` is the
    camera-to-world quaternion (w, x, y, z) and ``translation`` the camera position in metres (None when unknown,
    e.g. MPI-INF-3DHP whose ground truth is already in camera space).
    """

    id: str
    res_w: int
    res_h: int
    azimuth: float
    intrinsic: np.ndarray
    orientation: np.ndarray | None = None
    translation: np.ndarray | None = None


def camera_from_dict(camera: Mapping, source: str) -> CameraParams:
    """A `CameraParams` from a VideoPose3D-style camera dict (pixels, metres); `source` is named in errors."""
    if not isinstance(camera, Mapping):
        raise UserError(f"{source}: expected a camera dict with keys {', '.join(CAMERA_KEYS)}")
    missing = [key for key in CAMERA_KEYS if key not in camera]
    if missing:
        raise UserError(f"{source}: camera lacks the key(s) {', '.join(missing)}")
    try:
        res_w, res_h = int(camera["res_w"]), int(camera["res_h"])
        parts = {
            key: np.asarray(camera[key], dtype=np.float64).reshape(size)
            for key, size in (
                ("focal_length", 2),
                ("center", 2),
                ("radial_distortion", 3),
                ("tangential_distortion", 2),
                ("orientation", 4),
                ("translation", 3),
            )  # fmt: skip
        }
    except (TypeError, ValueError):
        raise UserError(
            f"{source}: camera values must be numbers (focal_length/center 2, radial_distortion 3, "
            "tangential_distortion 2, orientation 4, translation 3)"
        ) from None
    if res_w <= 0 or res_h <= 0 or not all(np.isfinite(v).all() for v in parts.values()):
        raise UserError(f"{source}: camera needs a positive resolution and finite parameters")
    intrinsic = intrinsic_from_pixels(
        parts["focal_length"], parts["center"], parts["radial_distortion"], parts["tangential_distortion"], res_w, res_h
    )
    return CameraParams(
        id=str(camera["id"]),
        res_w=res_w,
        res_h=res_h,
        azimuth=float(camera["azimuth"]),
        intrinsic=intrinsic,
        orientation=parts["orientation"].astype(np.float32),
        translation=parts["translation"].astype(np.float32),
    )


def check_finite(array: np.ndarray, source: str) -> None:
    """`UserError` naming `source` when `array` holds NaN/inf values."""
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise UserError(f"{source}: NaN/inf coordinate (first at index {tuple(int(i) for i in bad)})")


MAX_BODY_RADIUS_M = 2.0
"""A person's joints lie within about 1 m of the body's centre: a median distance beyond this is not metres."""


def check_metres(array: np.ndarray, source: str) -> None:
    """`UserError` naming `source` when ``(T, J, 3)`` positions look like millimetres (the median distance of a joint
    from its frame's centre, over at most ~100 frames, beyond `MAX_BODY_RADIUS_M`)."""
    frames = array[:: max(1, len(array) // 100)]
    spread = float(np.median(np.linalg.norm(frames - frames.mean(axis=1, keepdims=True), axis=-1)))
    if spread > MAX_BODY_RADIUS_M:
        raise UserError(f"{source}: positions look like millimetres (joints lie {spread:.0f} units from the body's "
                        "centre on median, a person spans about 2 m); the VideoPose3D layout stores metres")


class MocapDataset:
    """A motion-capture dataset: subjects, actions, cameras and 3D ground truth in the model's joint order.

    Attributes:
        name: dataset name (``h36m``, ``humaneva15``, ...). path: the file it was loaded from.
        fps: frame rate. skeleton: the model-space skeleton (Human3.6M 17 joints) the 3D is expressed in.
        evaluation_joints: model joints that are real ground truth in this dataset (the others are synthesized).
        train_subjects / test_subjects: the standard split.
    """

    name = "mocap"
    fps = 50.0
    train_subjects: tuple[str, ...] = ()
    test_subjects: tuple[str, ...] = ()
    evaluation_joints: tuple[int, ...] = ALL_JOINTS

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.skeleton: Skeleton = h36m_17()
        self._positions: dict[str, dict[str, np.ndarray]] = {}
        self._cameras: dict[str, list[CameraParams]] = {}

    # --- queries -----------------------------------------------------------------------------------------------------
    def subjects(self) -> list[str]:
        return list(self._cameras if not self._positions else self._positions)

    def has_subject(self, subject: str) -> bool:
        return subject in self.subjects()

    def actions(self, subject: str) -> list[str]:
        self._require_subject(subject)
        return list(self._positions.get(subject, {}))

    def cameras(self, subject: str, action: str | None = None) -> list[CameraParams]:
        """Cameras of a subject (``action`` matters only for datasets calibrated per sequence)."""
        self._require_subject(subject)
        return self._cameras[subject]

    def has_ground_truth(self) -> bool:
        return bool(self._positions)

    def positions_world(self, subject: str, action: str) -> np.ndarray | None:
        """``(T, 17, 3)`` float32 world positions in metres (None for datasets without world coordinates)."""
        self._require_action(subject, action)
        return self._positions[subject][action]

    def positions_camera(self, subject: str, action: str, camera_index: int) -> np.ndarray:
        """``(T, 17, 3)`` float32 positions in the camera's space (metres, not root-relative)."""
        camera = self.cameras(subject, action)[camera_index]
        world = self.positions_world(subject, action)
        return world_to_camera(world, camera.orientation, camera.translation).astype(np.float32)

    def num_frames(self, subject: str, action: str, camera_index: int) -> int:
        """Number of ground-truth frames of a (subject, action, camera) stream."""
        world = self.positions_world(subject, action)
        return len(world) if world is not None else len(self.positions_camera(subject, action, camera_index))

    def ground_truth_2d(self) -> tuple[dict[str, dict[str, list[np.ndarray]]], KeypointLayout]:
        """2D ground truth ``[subject][action] -> list per camera (T, 17, 2)`` pixels and its layout: by default the
        projection of the 3D through each camera's full model (with distortion)."""
        if not self.has_ground_truth():
            raise UserError(f"{self.path}: the {self.name} dataset has no ground truth; give a 2D keypoint file")
        out: dict[str, dict[str, list[np.ndarray]]] = {}
        for subject in self.subjects():
            for action in self.actions(subject):
                streams = []
                for index, camera in enumerate(self.cameras(subject, action)):
                    points = self.positions_camera(subject, action, index)
                    pixels = camera_to_pixels(points, camera.intrinsic, camera.res_w, camera.res_h)
                    streams.append(pixels.astype(np.float32))
                out.setdefault(subject, {})[action] = streams
        return out, H36M

    # --- errors ------------------------------------------------------------------------------------------------------
    def _require_subject(self, subject: str) -> None:
        if subject not in self.subjects():
            raise UserError(
                f"{self.path}: subject {subject!r} not in the {self.name} data (has {', '.join(self.subjects())})"
            )

    def _require_action(self, subject: str, action: str) -> None:
        self._require_subject(subject)
        if action not in self._positions.get(subject, {}):
            raise UserError(
                f"{self.path}: action {action!r} of subject {subject} not in the {self.name} data "
                f"(has {', '.join(self.actions(subject))})"
            )


def unpack_dict(value: np.ndarray, path: Path, key: str) -> dict:
    """The dict stored (pickled) under `key` of an npz file, or a `UserError`."""
    try:
        obj = value.item() if isinstance(value, np.ndarray) and value.dtype == object and value.shape == () else None
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise UserError(
            f"{path}: {key!r} must be a pickled dict (VideoPose3D layout), got an array of shape {value.shape}"
        )
    return obj


def read_positions_3d(path: Path, data: dict, joint_counts: tuple[int, ...]) -> dict[str, dict]:
    """Validate ``positions_3d[subject][action] -> (T, J, 3)`` (J in `joint_counts`, finite); float32 arrays."""
    positions = unpack_dict(data["positions_3d"], path, "positions_3d")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in positions.items():
        if not isinstance(actions, dict):
            raise UserError(f"{path}: positions_3d[{subject!r}] must be a dict action -> (T, J, 3) array")
        out[str(subject)] = {}
        for action, array in actions.items():
            where = f"{path}: positions_3d[{subject!r}][{action!r}]"
            array = np.asarray(array)
            if array.ndim != 3 or array.shape[1] not in joint_counts or array.shape[2] != 3 or len(array) == 0:
                counts = " or ".join(str(c) for c in joint_counts)
                raise UserError(f"{where}: expected a (T, {counts}, 3) array, got shape {array.shape}")
            if not np.issubdtype(array.dtype, np.number):
                raise UserError(f"{where}: expected numbers, got dtype {array.dtype}")
            array = array.astype(np.float32)
            check_finite(array, where)
            check_metres(array, where)
            out[str(subject)][str(action)] = array
    if not out:
        raise UserError(f"{path}: positions_3d is empty")
    return out
