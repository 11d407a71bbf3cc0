"""MPI-INF-3DHP from mmpose's annotation files (``*.npz`` with imgname, center, scale, part, S) and camera pickles.

- ``imgname`` is ``S4_Seq2_Cam0_001033.jpg`` (training: subject S4, sequence Seq2, camera 0, frame 1033) or
  ``TS1_002001.jpg`` (test: subject TS1, frame 2001). Frames are grouped into one stream per (subject, sequence,
  camera) and sorted by frame number. Subjects are ``S1``..``S8`` / ``TS1``..``TS6``; actions are the sequence
  (``Seq1``, ``Seq2``) for training and ``Test`` for the test set.
- ``S`` ``(N, 17, 4)``: camera-space 3D in metres (checked: with the pickled intrinsics it projects exactly onto
  ``part``) + a visibility flag; ``part`` ``(N, 17, 3)``: 2D pixels + visibility. Joint order: mmpose's 17-joint
  3DHP order (`common.geometry.keypoint_layouts.MPI_INF_3DHP`), mapped to the model order (all 17 joints are real).
- Cameras: ``cameras_train.pkl`` keyed ``S4_Seq2_Cam0`` and ``cameras_test.pkl`` keyed ``TS1`` (f, c in pixels, w, h;
  no distortion), next to the annotation files. mmpose's ``cameras_train.pkl`` stores h = 204 for the 2048x2048
  training cameras: a resolution that does not contain the principal point is replaced by the training cameras'
  known 2048x2048.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from common.core.errors import UserError
from common.core.files import load_npz
from common.core.safe_pickle import load_pickle
from common.datasets.base import CameraParams, MocapDataset, check_finite
from common.geometry.camera import intrinsic_from_pixels
from common.geometry.keypoint_layouts import MPI_INF_3DHP, to_h36m17

TRAIN_NAME = re.compile(r"^(S\d+)_(Seq\d+)_Cam(\d+)_(\d+)\.\w+$")
TEST_NAME = re.compile(r"^(TS\d+)_(\d+)\.\w+$")
TEST_ACTION = "Test"
TRAIN_RESOLUTION = (2048, 2048)
ANNOTATION_KEYS = ("imgname", "part", "S")


def _parse_imgname(name: str, source: str) -> tuple[str, str, int, int]:
    """``(subject, action, camera number, frame number)`` of an mmpose 3DHP image name."""
    base = Path(str(name)).name
    match = TRAIN_NAME.match(base)
    if match:
        return match.group(1), match.group(2), int(match.group(3)), int(match.group(4))
    match = TEST_NAME.match(base)
    if match:
        return match.group(1), TEST_ACTION, 0, int(match.group(2))
    raise UserError(f"{source}: imgname {name!r} is neither S<n>_Seq<n>_Cam<n>_<frame>.jpg nor TS<n>_<frame>.jpg")


def _load_pickle(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: MPI-INF-3DHP camera file not found (expected next to the annotation npz)")
    cameras = load_pickle(path, what="camera pickle")  # plain data only: a crafted pickle cannot run code
    if not isinstance(cameras, dict):
        raise UserError(f"{path}: expected a dict of cameras")
    return cameras


def _camera(entry: dict, key: str, source: Path, training: bool) -> CameraParams:
    try:
        focal = np.asarray(entry["f"], dtype=np.float64).reshape(2)
        center = np.asarray(entry["c"], dtype=np.float64).reshape(2)
        width, height = int(entry["w"]), int(entry["h"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{source}: camera {key!r} needs f (2), c (2), w and h") from None
    if not (0 < center[0] < width and 0 < center[1] < height):
        if not training:
            raise UserError(f"{source}: camera {key!r}: principal point {center.tolist()} outside {width}x{height}")
        width, height = TRAIN_RESOLUTION
    return CameraParams(
        id=key,
        res_w=width,
        res_h=height,
        azimuth=0.0,
        intrinsic=intrinsic_from_pixels(focal, center, (0, 0, 0), (0, 0), width, height),
    )


Streams = dict[tuple[str, str, int], list[tuple[int, np.ndarray, np.ndarray]]]


def _read_streams(files: list[Path]) -> Streams:
    """``{(subject, action, camera): [(frame number, part (17, 2), S (17, 3)), ...]}`` of annotation files."""
    streams: Streams = {}
    for file in files:
        data = load_npz(file, ANNOTATION_KEYS, what="MPI-INF-3DHP annotation file")
        names, part, points = data["imgname"], np.asarray(data["part"]), np.asarray(data["S"])
        count = len(names)
        if part.shape != (count, 17, 3) or points.shape != (count, 17, 4):
            raise UserError(
                f"{file}: expected part (N, 17, 3) and S (N, 17, 4) for N={count} images, "
                f"got {part.shape} and {points.shape}"
            )
        check_finite(part[..., :2], f"{file}: part")
        check_finite(points[..., :3], f"{file}: S")
        for i, name in enumerate(names):
            subject, action, camera, frame = _parse_imgname(str(name), str(file))
            streams.setdefault((subject, action, camera), []).append((frame, part[i, :, :2], points[i, :, :3]))
    return streams


class MpiInf3dhpDataset(MocapDataset):
    """MPI-INF-3DHP (mmpose annotations): camera-space ground truth, per-sequence cameras, 2D from ``part``.

    `path` is one annotation npz or a directory whose ``*.npz`` annotation files are all loaded.
    """

    name = "mpi_inf_3dhp"
    fps = 25.0
    train_subjects = tuple(f"S{i}" for i in range(1, 9))
    test_subjects = tuple(f"TS{i}" for i in range(1, 7))

    def __init__(self, path: str | Path) -> None:
        super().__init__(Path(path))
        if self.path.is_dir():
            files = sorted(self.path.glob("*.npz"))
            if not files:
                raise UserError(f"{self.path}: no MPI-INF-3DHP annotation .npz file in this directory")
        else:
            files = [self.path]
        streams = _read_streams(files)
        self._part: dict[str, dict[str, list[np.ndarray]]] = {}
        self._camera_positions: dict[str, dict[str, list[np.ndarray]]] = {}
        self._seq_cameras: dict[tuple[str, str], list[CameraParams]] = {}
        pickles: dict[str, dict] = {}
        for subject, action, camera in sorted(streams):
            frames = sorted(streams[(subject, action, camera)], key=lambda item: item[0])
            numbers = np.array([f[0] for f in frames])
            if len(np.unique(numbers)) != len(numbers):
                raise UserError(f"{self.path}: duplicate frames in {subject} {action} camera {camera}")
            training = action != TEST_ACTION
            pickle_name = "cameras_train.pkl" if training else "cameras_test.pkl"
            if pickle_name not in pickles:
                pickles[pickle_name] = _load_pickle(files[0].parent / pickle_name)
            key = f"{subject}_{action}_Cam{camera}" if training else subject
            if key not in pickles[pickle_name]:
                raise UserError(f"{files[0].parent / pickle_name}: no camera {key!r}")
            cam = _camera(pickles[pickle_name][key], key, files[0].parent / pickle_name, training)
            self._part.setdefault(subject, {}).setdefault(action, []).append(np.stack([f[1] for f in frames]))
            positions = to_h36m17(np.stack([f[2] for f in frames]).astype(np.float32), MPI_INF_3DHP, coordinate_dims=3)
            self._camera_positions.setdefault(subject, {}).setdefault(action, []).append(positions)
            self._seq_cameras.setdefault((subject, action), []).append(cam)
            self._positions.setdefault(subject, {})[action] = positions  # marks (subject, action) as present
            self._cameras.setdefault(subject, [])

    def cameras(self, subject: str, action: str | None = None) -> list[CameraParams]:
        """Cameras of one sequence (`action` required: 3DHP is calibrated per sequence)."""
        self._require_subject(subject)
        if action is None:
            actions = self.actions(subject)
            if len(actions) != 1:
                raise UserError(
                    f"{self.path}: subject {subject} has several sequences; name one ({', '.join(actions)})"
                )
            action = actions[0]
        self._require_action(subject, action)
        return self._seq_cameras[(subject, action)]

    def positions_world(self, subject: str, action: str) -> None:
        """3DHP annotations are in camera space only."""
        self._require_action(subject, action)
        return None

    def positions_camera(self, subject: str, action: str, camera_index: int) -> np.ndarray:
        self._require_action(subject, action)
        return self._camera_positions[subject][action][camera_index]

    def ground_truth_2d(self):
        """``part`` pixels grouped like `positions_camera` (``[subject][action] -> list per camera (T, 17, 2)``) and
        their layout, mmpose's 3DHP order (`common.geometry.keypoint_layouts.MPI_INF_3DHP`)."""
        return self._part, MPI_INF_3DHP
