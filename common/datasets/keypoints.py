"""2D keypoints for a dataset: read a VideoPose3D 2D file (or the dataset's own 2D ground truth), convert it to the
model's 17-joint order, normalize it with each camera's resolution and trim it to the 3D length.

    keypoints = load_keypoints("data/data_2d_h36m_cpn_ft_h36m_dbb.npz", dataset)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.core.errors import UserError
from common.core.files import load_npz
from common.datasets.base import CameraParams, MocapDataset, check_finite, unpack_dict
from common.geometry.camera import normalize_screen_coordinates
from common.geometry.keypoint_layouts import KeypointLayout, detect_layout, to_h36m17
from common.geometry.skeleton import H36M_17_LEFT, H36M_17_RIGHT


@dataclass
class Keypoints2D:
    """2D keypoints ready for the model: ``positions[subject][action]`` -> list per camera of ``(T, 17, 2)`` float32
    normalized screen coordinates in the model's joint order (trimmed to the 3D length; None for a missing camera).

    ``layout`` is the file's source layout; ``kps_left``/``kps_right`` are the left/right joints of the converted
    (model-order) keypoints; ``unmatched`` lists the ``(subject, action)`` pairs of the file without 3D ground truth
    (left out); ``video_metadata`` is the file's optional per-video metadata.
    """

    path: Path
    layout: KeypointLayout
    positions: dict[str, dict[str, list[np.ndarray | None]]]
    kps_left: tuple[int, ...] = H36M_17_LEFT
    kps_right: tuple[int, ...] = H36M_17_RIGHT
    unmatched: list[tuple[str, str]] = field(default_factory=list)
    video_metadata: dict = field(default_factory=dict)

    def subjects(self) -> list[str]:
        return list(self.positions)


def _read_keypoint_file(path: Path) -> tuple[dict, KeypointLayout, dict]:
    """``(positions_2d, layout, video_metadata)`` of a VideoPose3D 2D file, validated at the top level."""
    data = load_npz(path, ("positions_2d", "metadata"), what="2D keypoint file")
    metadata = unpack_dict(data["metadata"], path, "metadata")
    layout = detect_layout(metadata, str(path))
    positions = unpack_dict(data["positions_2d"], path, "positions_2d")
    video_metadata = metadata.get("video_metadata") or {}
    return positions, layout, video_metadata if isinstance(video_metadata, dict) else {}


NORMALIZED_LIMIT = 1.5
"""Normalized screen coordinates lie in about [-1, 1]; pixel files of a camera of `MIN_PIXEL_RESOLUTION` or more
pixels do not all lie within this many pixels of the image corner."""
MIN_PIXEL_RESOLUTION = 100


def check_pixels(xy: np.ndarray, camera: CameraParams, where: str) -> None:
    """`UserError` naming `where` when a stream of pixel coordinates is all zeros or looks already normalized."""
    largest = float(np.abs(xy).max())
    if largest == 0:
        raise UserError(f"{where}: every 2D coordinate is 0 (no detections?); expected keypoints in pixels")
    if largest <= NORMALIZED_LIMIT and min(camera.res_w, camera.res_h) >= MIN_PIXEL_RESOLUTION:
        raise UserError(f"{where}: every 2D coordinate lies within [-{NORMALIZED_LIMIT}, {NORMALIZED_LIMIT}]: the "
                        f"keypoints look normalized already; expected pixels of the {camera.res_w}x{camera.res_h} "
                        "camera (VideoPose3D layout)")


def _convert_stream(stream, layout: KeypointLayout, camera: CameraParams, frames_3d: int | None, where: str):
    """One camera's ``(T, J, >=2)`` pixels -> ``(T', 17, 2)`` float32 normalized model-order keypoints.

    With ground truth (`frames_3d` given), the stream is trimmed to the 3D length and may not be shorter.
    """
    stream = np.asarray(stream)
    if (
        stream.ndim != 3
        or stream.shape[1] != layout.num_joints
        or stream.shape[2] < 2
        or len(stream) == 0
        or not np.issubdtype(stream.dtype, np.number)
    ):
        raise UserError(
            f"{where}: expected a (T, {layout.num_joints}, 2 or more) array of numbers for layout "
            f"{layout.name!r}, got shape {stream.shape} dtype {stream.dtype}"
        )
    if frames_3d is not None:
        if len(stream) < frames_3d:
            raise UserError(f"{where}: {len(stream)} 2D frames but the 3D has {frames_3d}")
        stream = stream[:frames_3d]
    xy = stream[..., :2].astype(np.float32)
    check_finite(xy, where)
    check_pixels(xy, camera, where)
    return normalize_screen_coordinates(to_h36m17(xy, layout), camera.res_w, camera.res_h).astype(np.float32)


def _convert_action(dataset: MocapDataset, subject: str, action: str, streams, layout: KeypointLayout, where: str):
    """Every camera stream of one (subject, action) through `_convert_stream` (None streams stay None)."""
    if not isinstance(streams, (list, tuple)):
        raise UserError(f"{where}: expected a list with one (T, J, 2) array per camera")
    cameras = dataset.cameras(subject, action)
    if len(streams) != len(cameras):
        raise UserError(f"{where}: {len(streams)} camera streams but the dataset has {len(cameras)} cameras")
    converted: list[np.ndarray | None] = []
    for index, (stream, camera) in enumerate(zip(streams, cameras)):
        frames_3d = dataset.num_frames(subject, action, index) if dataset.has_ground_truth() else None
        cam_where = f"{where} / camera {index}"
        converted.append(None if stream is None else _convert_stream(stream, layout, camera, frames_3d, cam_where))
    return converted


def load_keypoints(path: str | Path | None, dataset: MocapDataset) -> Keypoints2D:
    """Read 2D keypoints for `dataset`, convert them to the model order, normalize them and trim them to the 3D.

    `path` is a VideoPose3D 2D file (``positions_2d[subject][action] -> list per camera of (T, J, >=2)`` pixels and
    ``metadata``), or None for the dataset's own 2D ground truth (MPI-INF-3DHP annotations, or the projection of the
    3D). Pairs (subject, action) of the file without 3D are left out (listed in ``unmatched``). Any mismatch (cameras,
    joints, shapes, shorter 2D than 3D, NaN, a stream of zeros or of already normalized coordinates: `check_pixels`)
    is a `UserError` naming file, subject, action and camera.
    """
    if path is None:
        positions, layout = dataset.ground_truth_2d()
        source = Path(f"{dataset.path} (ground-truth 2D)")
        video_metadata: dict = {}
    else:
        source = Path(path)
        positions, layout, video_metadata = _read_keypoint_file(source)
    with_3d = dataset.has_ground_truth()
    out: dict[str, dict[str, list[np.ndarray | None]]] = {}
    unmatched: list[tuple[str, str]] = []
    for subject, actions in positions.items():
        if not isinstance(actions, dict):
            raise UserError(f"{source}: positions_2d[{subject!r}] must be a dict action -> list of camera arrays")
        if not dataset.has_subject(subject):
            if with_3d:
                unmatched.extend((subject, action) for action in actions)
                continue
            dataset.cameras(subject)  # raises the UserError naming the subject
        for action, streams in actions.items():
            if with_3d and action not in dataset.actions(subject):
                unmatched.append((subject, action))
                continue
            where = f"{source}: {subject} / {action}"
            out.setdefault(subject, {})[action] = _convert_action(dataset, subject, action, streams, layout, where)
    if not out:
        raise UserError(f"{source}: no (subject, action) of this file matches the {dataset.name} data ({dataset.path})")
    return Keypoints2D(path=source, layout=layout, positions=out, unmatched=unmatched, video_metadata=video_metadata)
