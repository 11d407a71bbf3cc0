"""Follow one person through a video: the most confident detection first, then the best box overlap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from common.video.detectors import Detection


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one ``(4,)`` x1 y1 x2 y2 box with each of ``(N, 4)`` boxes -> ``(N,)``."""
    box = np.asarray(box, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1.0), 0.0)


class PersonTracker:
    """Pick the most confident person, then follow it frame to frame by box overlap.

    Args:
        min_iou: a detection continues the track only if its box overlaps the last tracked box by at least this IoU.
        max_lost_frames: after this many consecutive frames without a match the track is dropped and the most
            confident person of the next frame with detections is picked again.
    """

    def __init__(self, min_iou: float = 0.3, max_lost_frames: int = 30) -> None:
        self.min_iou = min_iou
        self.max_lost_frames = max_lost_frames
        self.reset()

    def reset(self) -> None:
        """Forget the tracked person (call between videos)."""
        self._last_box: np.ndarray | None = None
        self._lost = 0

    def update(self, detections: Sequence[Detection]) -> Detection | None:
        """The tracked person among this frame's detections, or None when it is not found."""
        if not detections:
            self._mark_lost()
            return None
        if self._last_box is None:
            chosen = max(detections, key=lambda d: d.score)
        else:
            overlaps = box_iou(self._last_box, np.stack([d.box for d in detections]))
            best = int(np.argmax(overlaps))
            if overlaps[best] < self.min_iou:
                self._mark_lost()
                return None
            chosen = detections[best]
        self._last_box = np.asarray(chosen.box, dtype=np.float64)
        self._lost = 0
        return chosen

    def _mark_lost(self) -> None:
        if self._last_box is None:
            return
        self._lost += 1
        if self._lost > self.max_lost_frames:
            self.reset()
