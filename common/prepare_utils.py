"""Shared pieces of the dataset preparation scripts (``data/prepare_data_*.py``).

- Output handling: the default output directory, the ``--output-dir``/``--overwrite`` flags, the refusal to overwrite
  existing outputs, and the one-line summary of every written file.
- Human3.6M naming: canonical action names, the dropped corrupted take, the per-subject report of missing and extra
  actions.
- Keypoint metadata written into 2D npz files (VideoPose3D's ``metadata`` dict plus ``layout_name``).
- `project_world_to_pixels`: world poses -> distorted pixel coordinates through one camera (2D ground truth).
- `H5Source`: the ``.h5`` files of a directory, ``.zip`` or ``.tar.gz`` (3d-pose-baseline archive layout).
- `read_detections`: one per-video 2D detector output (this project's ``inference/infer_video.py`` npz or the
  Detectron/Detectron2 npz written by VideoPose3D's ``infer_video_d2.py``) -> ``(T, J, 3)`` x, y, score.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np

from common.camera import image_coordinates, project_to_2d, world_to_camera
from common.errors import UserError
from common.h36m_cameras import H36M_CAMERA_IDS
from common.io_utils import load_npz

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT / "data"
"""Where the preparation scripts write by default (``<repo>/data``, git-ignored)."""

# --- Human3.6M conventions ----------------------------------------------------------------------------------------

H36M_SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")

H36M_ACTION_GROUPS = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "WalkTogether", "Walking",
)  # fmt: skip
"""The 15 Human3.6M action groups (canonical names); every group has two takes per subject."""

H36M_ACTION_RENAMES = (("TakingPhoto", "Photo"), ("WalkingDog", "WalkDog"))
"""Source spellings that VideoPose3D renames to the canonical action names."""

H36M_CORRUPTED = (("S11", "Directions"),)
"""(subject, action) pairs that are dropped: the S11 ``Directions`` video is corrupted."""


def canonical_h36m_action(name: str) -> str:
    """Canonical action name: ``TakingPhoto 1`` -> ``Photo 1``, ``WalkingDog`` -> ``WalkDog``, others unchanged."""
    for source, target in H36M_ACTION_RENAMES:
        name = name.replace(source, target)
    return name


def is_corrupted_h36m(subject: str, action: str) -> bool:
    """True for the (subject, action) pairs dropped from every Human3.6M output."""
    return (subject, action) in H36M_CORRUPTED


def action_group(action: str) -> str:
    """The action group of a take name: ``Walking 1`` -> ``Walking``, ``SittingDown`` -> ``SittingDown``."""
    return action.split(" ")[0]


def h36m_action_report(subject: str, actions: Iterable[str]) -> list[str]:
    """Human-readable notes on a subject's actions compared to the Human3.6M protocol (2 takes of 15 groups).

    Returns one line per problem (missing groups, groups with a number of takes other than 2, unknown names); an
    empty list when the subject is complete. The caller prints them: the scripts report instead of asserting.
    """
    counts: dict[str, int] = {}
    unknown = []
    for action in actions:
        group = action_group(action)
        if group in H36M_ACTION_GROUPS:
            counts[group] = counts.get(group, 0) + 1
        else:
            unknown.append(action)
    notes = []
    missing = [g for g in H36M_ACTION_GROUPS if g not in counts]
    if missing:
        notes.append(f"{subject}: missing action groups: {', '.join(missing)}")
    odd = [f"{g} ({n} takes)" for g, n in sorted(counts.items()) if n != _expected_takes(subject, g)]
    if odd:
        notes.append(f"{subject}: unexpected number of takes (expected 2): {', '.join(odd)}")
    if unknown:
        notes.append(f"{subject}: extra actions not in the 15 Human3.6M groups: {', '.join(sorted(unknown))}")
    return notes


def _expected_takes(subject: str, group: str) -> int:
    """Number of takes a complete subject has for a group (one less where a corrupted take is dropped)."""
    return 1 if (subject, group) in H36M_CORRUPTED else 2


# --- keypoint metadata ----------------------------------------------------------------------------------------------

KEYPOINT_METADATA = {
    "h36m": {
        "layout_name": "h36m",
        "num_joints": 17,
        "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
    },
    "mpii": {
        "layout_name": "mpii",
        "num_joints": 16,
        "keypoints_symmetry": [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]],
    },
    "coco": {
        "layout_name": "coco",
        "num_joints": 17,
        "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]],
    },
}
"""The ``metadata`` dict that VideoPose3D-layout 2D files carry, per keypoint layout."""


def keypoint_metadata(layout: str, **extra) -> dict:
    """A fresh copy of the metadata of ``layout`` (``h36m``, ``mpii``, ``coco``) with ``extra`` entries added."""
    if layout not in KEYPOINT_METADATA:
        raise UserError(f"--layout: expected one of {', '.join(KEYPOINT_METADATA)}, got {layout!r}")
    base = KEYPOINT_METADATA[layout]
    return {
        "layout_name": base["layout_name"],
        "num_joints": base["num_joints"],
        "keypoints_symmetry": [list(side) for side in base["keypoints_symmetry"]],
        **extra,
    }


# --- command line and outputs ---------------------------------------------------------------------------------------


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--output-dir`` (default ``<repo>/data``) and ``--overwrite`` to a preparation script's parser."""
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help=f"directory the npz files are written to (default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace output files that already exist")


def add_subjects_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--subjects`` (Human3.6M subjects to convert, default all) to a preparation script's parser."""
    parser.add_argument(
        "--subjects",
        default=",".join(H36M_SUBJECTS),
        metavar="LIST",
        help="comma-separated subjects to convert (default: %(default)s); absent ones are reported and skipped",
    )


def parse_name_list(value: str, flag: str, allowed: tuple[str, ...] | list[str]) -> list[str]:
    """Comma-separated names, each of which must be in ``allowed``; order kept, duplicates rejected."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in allowed]
    if not names or bad or len(set(names)) != len(names):
        raise UserError(f"{flag}: expected distinct comma-separated names from {','.join(allowed)}, got {value!r}")
    return names


def output_paths(output_dir: str | os.PathLike, names: Iterable[str], overwrite: bool) -> list[Path]:
    """Full paths of the outputs; refuses (UserError) when the directory is missing or an output exists already.

    Call it BEFORE any long conversion, so that a refused run costs nothing.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise UserError(f"--output-dir {output_dir}: directory does not exist")
    paths = [output_dir / name for name in names]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise UserError(f"{', '.join(existing)}: already exists (pass --overwrite to replace)")
    return paths


def describe_written(path: str | os.PathLike, positions: Mapping[str, Mapping[str, object]], label: str = "") -> str:
    """One line naming a written dataset file with its size, subjects, actions and frames."""
    path = Path(path)
    num_actions = sum(len(actions) for actions in positions.values())
    frames = 0
    for actions in positions.values():
        for value in actions.values():
            first = value[0] if isinstance(value, list | tuple) else value
            frames += 0 if first is None else len(first)
    size_mb = path.stat().st_size / 1e6
    prefix = f"{label} " if label else ""
    return (
        f"wrote {prefix}{path} ({size_mb:.1f} MB): {len(positions)} subjects, {num_actions} actions, {frames} frames"
        f" [{', '.join(sorted(positions, key=subject_sort_key))}]"
    )


def subject_sort_key(subject: str) -> tuple:
    """Sort ``S2`` before ``S11`` (numeric part compared as a number)."""
    digits = "".join(ch for ch in subject if ch.isdigit())
    return (subject.rstrip("0123456789"), int(digits) if digits else -1, subject)


# --- detector outputs -----------------------------------------------------------------------------------------------


def read_detections(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read one video's 2D detections and return ``(keypoints, metadata)``.

    Accepted files (npz):

    - this project's ``inference/infer_video.py`` output: ``keypoints`` numeric ``(T, J, 3)`` (x, y, score) or
      ``(T, J, 2)`` (score taken as 1), optional ``metadata`` dict (``w``, ``h``, ``fps``, ...);
    - the Detectron/Detectron2 format written by VideoPose3D's ``infer_video_d2.py``: per frame
      ``boxes[t] = [[], (N, 5) x1 y1 x2 y2 score]`` and ``keypoints[t] = [[], (N, 4, J) x, y, logit, prob]``; the
      person with the highest box score is kept.

    Frames without a detection (empty lists, or rows of NaN) are filled by linear interpolation between the nearest
    detected frames (held constant before the first / after the last) and get score 0. The returned metadata is a
    copy of the file's metadata plus ``frames_without_detection`` (how many frames were filled).

    Returns:
        keypoints: ``(T, J, 3)`` float32 pixels x, y and a confidence score.
        metadata: dict.

    Raises:
        UserError: unreadable file, unknown layout of arrays, or no frame with a detection.
    """
    path = Path(path)
    data = load_npz(path, required_keys=("keypoints",), what="detections file")
    metadata = _metadata_dict(path, data.get("metadata"))
    raw = data["keypoints"]
    if raw.dtype != object and raw.ndim == 3 and raw.shape[-1] in (2, 3):
        keypoints = raw.astype(np.float32)
        if keypoints.shape[-1] == 2:
            keypoints = np.concatenate([keypoints, np.ones_like(keypoints[..., :1])], axis=-1)
    else:
        if "boxes" not in data:
            raise UserError(f"{path}: Detectron-style keypoints need a 'boxes' array to pick the person")
        keypoints = _decode_detectron(path, data["boxes"], raw)
    if len(keypoints) == 0:
        raise UserError(f"{path}: no frames in the detections")
    missing = np.isnan(keypoints[..., :2]).any(axis=(1, 2))
    if missing.all():
        raise UserError(f"{path}: no frame has a detected person")
    if missing.any():
        keypoints = _interpolate_missing(keypoints, missing)
    metadata["frames_without_detection"] = int(missing.sum())
    return keypoints, metadata


def _metadata_dict(path: Path, value) -> dict:
    """The npz ``metadata`` entry as a plain dict (empty when absent)."""
    if value is None:
        return {}
    item = value.item() if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0 else value
    if not isinstance(item, dict):
        raise UserError(f"{path}: 'metadata' must be a dict, got {type(item).__name__}")
    return dict(item)


def _decode_detectron(path: Path, boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Best-scoring person per frame of a Detectron-format file -> (T, J, 3) with NaN rows where nobody was found."""
    if len(boxes) != len(keypoints):
        raise UserError(f"{path}: 'boxes' has {len(boxes)} frames but 'keypoints' has {len(keypoints)}")
    frames: list[np.ndarray | None] = []
    num_joints = None
    for index, (frame_boxes, frame_keypoints) in enumerate(zip(boxes, keypoints)):
        try:
            person_boxes = np.asarray(frame_boxes[1], dtype=np.float32)
            person_keypoints = np.asarray(frame_keypoints[1], dtype=np.float32)
        except (IndexError, TypeError, ValueError):
            raise UserError(
                f"{path}: frame {index}: expected Detectron per-class lists [[], person array]"
            ) from None
        if person_boxes.size == 0 or person_keypoints.size == 0:
            frames.append(None)
            continue
        if person_boxes.ndim != 2 or person_boxes.shape[1] < 5 or person_keypoints.ndim != 3:
            raise UserError(
                f"{path}: frame {index}: expected boxes (N, 5) and keypoints (N, 4, J), got "
                f"{person_boxes.shape} and {person_keypoints.shape}"
            )
        best = int(np.argmax(person_boxes[:, 4]))
        rows = person_keypoints[best]  # (4, J): x, y, logit, prob
        frame = np.stack([rows[0], rows[1], rows[3] if rows.shape[0] > 3 else np.ones_like(rows[0])], axis=-1)
        num_joints = num_joints or frame.shape[0]
        if frame.shape[0] != num_joints:
            raise UserError(f"{path}: frame {index}: {frame.shape[0]} joints, earlier frames have {num_joints}")
        frames.append(frame)
    if num_joints is None:
        raise UserError(f"{path}: no frame has a detected person")
    empty = np.full((num_joints, 3), np.nan, dtype=np.float32)
    return np.stack([empty if f is None else f for f in frames]).astype(np.float32)


def _interpolate_missing(keypoints: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Fill the frames flagged ``missing`` by per-coordinate linear interpolation; their score becomes 0."""
    filled = keypoints.copy()
    frames = np.arange(len(keypoints))
    known = ~missing
    flat = filled[..., :2].reshape(len(filled), -1)
    for column in range(flat.shape[1]):
        flat[missing, column] = np.interp(frames[missing], frames[known], flat[known, column])
    filled[..., :2] = flat.reshape(filled[..., :2].shape)
    filled[missing, :, 2] = 0.0
    return filled


# --- projection of ground truth -------------------------------------------------------------------------------------


def camera_field(camera, key: str):
    """A camera parameter from either a dict (npz camera lists) or a `CameraParams`-like object."""
    return camera[key] if isinstance(camera, Mapping) else getattr(camera, key)


def project_world_to_pixels(positions_world: np.ndarray, camera) -> np.ndarray:
    """World points ``(T, J, 3)`` (metres) -> ``(T, J, 2)`` float32 pixels through ``camera`` with lens distortion.

    ``camera`` provides ``orientation`` (camera-to-world quaternion), ``translation`` (metres), ``intrinsic``
    (normalized 9-vector), ``res_w`` and ``res_h`` (a dict or an object with these attributes).
    """
    points = np.asarray(positions_world, dtype=np.float64)
    in_camera = world_to_camera(points, camera_field(camera, "orientation"), camera_field(camera, "translation"))
    normalized = project_to_2d(in_camera, np.asarray(camera_field(camera, "intrinsic"), dtype=np.float64))
    pixels = image_coordinates(normalized, w=camera_field(camera, "res_w"), h=camera_field(camera, "res_h"))
    return pixels.astype(np.float32)


# --- reading the 3d-pose-baseline archive layout --------------------------------------------------------------------


class H5Source:
    """The ``.h5`` files of a directory tree, a ``.zip`` or a ``.tar``/``.tar.gz`` archive, read without extracting.

    Members are named by their POSIX path relative to the directory / inside the archive. `find` selects the files
    ``.../S<n>/<folder>/<name>.h5`` of a folder such as ``MyPoses/3D_positions`` or ``StackedHourglass``, whatever
    prefix (``h36m/`` or none) the archive uses.
    """

    def __init__(self, path: str | os.PathLike, flag: str) -> None:
        self.path = Path(path)
        self.flag = flag
        if self.path.is_dir():
            self._kind = "dir"
            names = [p.relative_to(self.path).as_posix() for p in self.path.rglob("*.h5")]
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._kind = "zip"
            self._archive = zipfile.ZipFile(self.path)
            names = [n for n in self._archive.namelist() if n.endswith(".h5")]
        elif self.path.is_file() and _is_tarfile(self.path):
            self._kind = "tar"
            self._archive = tarfile.open(self.path)
            names = [m.name for m in self._archive.getmembers() if m.isfile() and m.name.endswith(".h5")]
        else:
            raise UserError(f"{flag} {self.path}: expected a directory, a .zip or a .tar(.gz) archive")
        self.names = sorted(names)

    def find(self, folder: str) -> dict[str, dict[str, str]]:
        """``{subject: {file stem: member name}}`` for the files ``S<n>/<folder>/<stem>.h5``."""
        pattern = re.compile(r"(?:^|/)(S\d+)/" + re.escape(folder.strip("/")) + r"/([^/]+)\.h5$")
        found: dict[str, dict[str, str]] = {}
        for name in self.names:
            match = pattern.search(name)
            if not match:
                continue
            subject, stem = match.groups()
            if stem in found.setdefault(subject, {}):
                raise UserError(
                    f"{self.flag} {self.path}: {subject}/{folder}/{stem}.h5 appears twice "
                    f"({found[subject][stem]} and {name})"
                )
            found[subject][stem] = name
        return found

    def read(self, name: str, dataset: str) -> np.ndarray:
        """The array ``dataset`` of the h5 member ``name``."""
        where = f"{self.flag} {self.path}: {name}"
        try:
            if self._kind == "dir":
                handle = h5py.File(self.path / name, "r")
            else:
                member = self._archive.open(name) if self._kind == "zip" else self._archive.extractfile(name)
                handle = h5py.File(io.BytesIO(member.read()), "r")
        except OSError as error:
            raise UserError(f"{where}: not a readable HDF5 file ({error})") from None
        with handle:
            if dataset not in handle:
                raise UserError(f"{where}: has no dataset '{dataset}' (has: {', '.join(handle.keys())})")
            return np.asarray(handle[dataset][()])

    def close(self) -> None:
        """Close the archive (no-op for a directory)."""
        if self._kind != "dir":
            self._archive.close()

    def __enter__(self) -> H5Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_tarfile(path: Path) -> bool:
    """True when ``path`` is a tar archive (compressed or not)."""
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def complete_actions(views: dict[str, dict[str, list[np.ndarray | None]]]) -> dict[str, dict[str, list[np.ndarray]]]:
    """Keep the actions detected in all 4 cameras (others are reported and dropped); subjects in natural order."""
    output: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject in sorted(views, key=subject_sort_key):
        output[subject] = {}
        for action, slots in sorted(views[subject].items()):
            missing = [H36M_CAMERA_IDS[i] for i, view in enumerate(slots) if view is None]
            if missing:
                print(f"{subject} {action}: no detections for camera(s) {', '.join(missing)}, action dropped")
                continue
            output[subject][action] = slots
        for note in h36m_action_report(subject, output[subject]):
            print(note)
    return output
