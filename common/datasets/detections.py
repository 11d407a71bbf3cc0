"""Read one video's 2D detector output: this project's ``inference/infer_video.py`` npz or the Detectron/Detectron2
npz written by VideoPose3D's ``infer_video_d2.py`` -> ``(T, J, 3)`` x, y, score, with frames without a detection
filled by interpolation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.core.errors import UserError
from common.core.files import load_npz


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
