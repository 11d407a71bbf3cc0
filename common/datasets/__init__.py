"""Datasets: load 3D ground truth and 2D keypoints (VideoPose3D layout) and build model-ready sequences.

    dataset = load_dataset("h36m", "data/data_3d_h36m.npz")
    keypoints = load_keypoints("data/data_2d_h36m_cpn_ft_h36m_dbb.npz", dataset)
    sequences = build_sequences(dataset, keypoints, subjects=["S9", "S11"], actions=["Walking"])

2D keypoints are converted to the model's 17-joint Human3.6M order whatever their layout
(`common.keypoint_layouts`), normalized with each camera's resolution and trimmed to the 3D length; 3D goes to camera
space and is made root-relative.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from common.camera import normalize_screen_coordinates
from common.datasets.base import (
    CameraParams,
    Keypoints2D,
    MocapDataset,
    Sequence,
    check_finite,
    read_npz,
    unpack_dict,
)
from common.datasets.custom import CustomDataset
from common.datasets.h36m import Human36mDataset
from common.datasets.humaneva import HumanEvaDataset
from common.datasets.mpi_inf_3dhp import MpiInf3dhpDataset
from common.datasets.synthetic import SyntheticDataset
from common.errors import UserError
from common.keypoint_layouts import H36M17_LEFT, H36M17_RIGHT, KeypointLayout, detect_layout, to_h36m17

__all__ = [
    "DATASETS",
    "CameraParams",
    "Keypoints2D",
    "MocapDataset",
    "Sequence",
    "build_sequences",
    "default_paths",
    "load_dataset",
    "load_keypoints",
]

DATASETS: dict[str, type[MocapDataset]] = {
    "h36m": Human36mDataset,
    "humaneva15": HumanEvaDataset,
    "mpi_inf_3dhp": MpiInf3dhpDataset,
    "custom": CustomDataset,
    "synthetic": SyntheticDataset,
}


def load_dataset(name: str, path: str | Path) -> MocapDataset:
    """Load dataset `name` (``h36m``, ``humaneva15``, ``mpi_inf_3dhp``, ``custom``, ``synthetic``) from `path`.

    `path` is the 3D file (``data_3d_<name>.npz``); for ``custom`` the 2D file; for ``mpi_inf_3dhp`` an mmpose
    annotation npz or a directory of them (with ``cameras_train.pkl`` / ``cameras_test.pkl`` beside).
    """
    if name not in DATASETS:
        raise UserError(f"-d/--dataset: unknown dataset {name!r} (expected one of {', '.join(DATASETS)})")
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: {name} dataset file not found")
    return DATASETS[name](path)


def default_paths(name: str, keypoints: str, data_dir: str | Path = "data") -> tuple[Path, Path | None]:
    """VideoPose3D file naming: ``(data_3d_<name>.npz, data_2d_<name>_<keypoints>.npz)`` under `data_dir`.

    ``custom`` uses the 2D file for both; ``mpi_inf_3dhp`` uses `data_dir` itself (mmpose annotations) and, for
    ``keypoints == "gt"``, None as keypoint path (the annotations' own 2D).
    """
    data_dir = Path(data_dir)
    keypoints_path = data_dir / f"data_2d_{name}_{keypoints}.npz"
    if name == "custom":
        return keypoints_path, keypoints_path
    if name == "mpi_inf_3dhp":
        return data_dir, None if keypoints == "gt" else keypoints_path
    return data_dir / f"data_3d_{name}.npz", keypoints_path


def _read_keypoint_file(path: Path) -> tuple[dict, KeypointLayout, dict]:
    """``(positions_2d, layout, video_metadata)`` of a VideoPose3D 2D file, validated at the top level."""
    data = read_npz(path, ("positions_2d", "metadata"), what="2D keypoint file")
    metadata = unpack_dict(data["metadata"], path, "metadata")
    layout = detect_layout(metadata, str(path))
    positions = unpack_dict(data["positions_2d"], path, "positions_2d")
    video_metadata = metadata.get("video_metadata") or {}
    return positions, layout, video_metadata if isinstance(video_metadata, dict) else {}


def load_keypoints(path: str | Path | None, dataset: MocapDataset) -> Keypoints2D:
    """Read 2D keypoints for `dataset`, convert them to the model order, normalize them and trim them to the 3D.

    `path` is a VideoPose3D 2D file (``positions_2d[subject][action] -> list per camera of (T, J, >=2)`` pixels and
    ``metadata``), or None for the dataset's own 2D ground truth (MPI-INF-3DHP annotations, or the projection of the
    3D). Pairs (subject, action) of the file without 3D are left out (listed in ``unmatched``). Any mismatch (cameras,
    joints, shapes, shorter 2D than 3D, NaN) is a `UserError` naming file, subject, action and camera.
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
            if not isinstance(streams, (list, tuple)):
                raise UserError(f"{where}: expected a list with one (T, J, 2) array per camera")
            cameras = dataset.cameras(subject, action)
            if len(streams) != len(cameras):
                raise UserError(f"{where}: {len(streams)} camera streams but the dataset has {len(cameras)} cameras")
            converted: list[np.ndarray | None] = []
            for index, (stream, camera) in enumerate(zip(streams, cameras)):
                if stream is None:
                    converted.append(None)
                    continue
                stream = np.asarray(stream)
                cam_where = f"{where} / camera {index}"
                if (
                    stream.ndim != 3
                    or stream.shape[1] != layout.num_joints
                    or stream.shape[2] < 2
                    or len(stream) == 0
                    or not np.issubdtype(stream.dtype, np.number)
                ):
                    raise UserError(
                        f"{cam_where}: expected a (T, {layout.num_joints}, 2 or more) array of numbers for layout "
                        f"{layout.name!r}, got shape {stream.shape} dtype {stream.dtype}"
                    )
                if with_3d:
                    frames_3d = dataset.num_frames(subject, action, index)
                    if len(stream) < frames_3d:
                        raise UserError(f"{cam_where}: {len(stream)} 2D frames but the 3D has {frames_3d}")
                    stream = stream[:frames_3d]
                xy = stream[..., :2].astype(np.float32)
                check_finite(xy, cam_where)
                model_order = to_h36m17(xy, layout)
                converted.append(
                    normalize_screen_coordinates(model_order, camera.res_w, camera.res_h).astype(np.float32)
                )
            out.setdefault(subject, {})[action] = converted
    if not out:
        raise UserError(f"{source}: no (subject, action) of this file matches the {dataset.name} data ({dataset.path})")
    return Keypoints2D(
        path=source,
        layout=layout,
        positions=out,
        kps_left=H36M17_LEFT,
        kps_right=H36M17_RIGHT,
        unmatched=unmatched,
        video_metadata=video_metadata,
    )


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
    if not subjects:
        raise UserError("subjects: expected at least one subject")
    if int(downsample) != downsample or downsample < 1:
        raise UserError(f"--downsample: expected a positive integer, got {downsample}")
    if not 0 < subset <= 1:
        raise UserError(f"--subset: expected a fraction in (0, 1], got {subset}")
    downsample = int(downsample)
    unmatched_subjects = {s for s, _ in keypoints.unmatched}
    for subject in subjects:
        if subject not in keypoints.positions:
            hint = f" (it has no 3D ground truth in {dataset.path})" if subject in unmatched_subjects else ""
            raise UserError(
                f"{keypoints.path}: subject {subject!r} not available{hint}; "
                f"available: {', '.join(keypoints.subjects())}"
            )
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
                poses_3d = root = None
                if dataset.has_ground_truth():
                    camera_space = dataset.positions_camera(subject, action, index)[: len(poses_2d)]
                    root = camera_space[:, 0].astype(np.float32)
                    poses_3d = (camera_space - camera_space[:, :1]).astype(np.float32)
                frames = _subset_slice(len(poses_2d), subset, downsample, f"{subject}/{action}/{index}", seed)
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
                        eval_joints=tuple(dataset.evaluation_joints),
                        root_3d=None if root is None else np.ascontiguousarray(root[frames]),
                    )
                )
    if wanted is not None:
        missing = [w for w in wanted if w not in used]
        if missing:
            raise UserError(
                f"{keypoints.path}: action(s) {', '.join(missing)} not found for subject(s) {', '.join(subjects)}"
            )
    if not sequences:
        raise UserError(f"{keypoints.path}: no sequence selected for subject(s) {', '.join(subjects)}")
    return sequences
