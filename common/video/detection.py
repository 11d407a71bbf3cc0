"""Run a 2D pose detector over videos and write one ``<video file name>.npz`` per video.

Shared by ``infer_video.py`` (MediaPipe, or any registered detector) and ``infer_video_d2.py`` (Detectron2).

Output npz (one person, tracked across frames):
    ``boxes``: ``(T, 4)`` float32 x1 y1 x2 y2 pixels, NaN where nobody was found;
    ``scores``: ``(T,)`` float32 person score, NaN where nobody was found;
    ``keypoints``: ``(T, 17, 3)`` float32 COCO keypoints x, y (pixels), score; NaN where nobody was found;
    ``metadata``: dict ``{w, h, fps, num_frames, detector, video_name}``.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.core.errors import UserError
from common.core.files import atomic_savez
from common.video.detectors import NUM_COCO_KEYPOINTS, PoseDetector
from common.video.tracking import PersonTracker
from common.video.video_io import read_video_frames, video_metadata


@dataclass
class VideoDetections:
    """Detections of the tracked person in one video."""

    video_name: str
    boxes: np.ndarray  # (T, 4)
    scores: np.ndarray  # (T,)
    keypoints: np.ndarray  # (T, 17, 3)
    metadata: dict
    seconds: float  # time spent decoding and detecting

    @property
    def num_detected(self) -> int:
        return int(np.isfinite(self.scores).sum())


def add_io_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every detection script shares (VideoPose3D's names): ``--output-dir``, ``--image-ext``, input."""
    parser.add_argument("--output-dir", default="output", metavar="DIR",
                        help="directory for the <video>.npz files (created if missing; default: output)")
    parser.add_argument("--image-ext", default="mp4", metavar="EXT",
                        help="extension of the videos to process when the input is a directory (default: mp4)")
    parser.add_argument("input", help="a video file, or a directory whose *.EXT videos are all processed")


def list_videos(input_path: str | os.PathLike, image_ext: str) -> list[Path]:
    """The videos to process: ``input_path`` itself, or the ``*.image_ext`` files of that directory (sorted)."""
    input_path = Path(input_path)
    if input_path.is_file():
        return [input_path]
    if input_path.is_dir():
        extension = image_ext.lstrip(".").lower()
        videos = sorted(p for p in input_path.iterdir() if p.is_file() and p.suffix.lower() == f".{extension}")
        if not videos:
            raise UserError(f"{input_path}: no *.{extension} video in this directory (see --image-ext)")
        return videos
    raise UserError(f"{input_path}: input video or directory not found")


def prepare_output_dir(output_dir: str | os.PathLike) -> Path:
    """Create ``output_dir`` if needed; UserError when it cannot be created or written."""
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--output-dir {output_dir}: cannot create the directory ({error.strerror})") from None
    if not os.access(output_dir, os.W_OK):
        raise UserError(f"--output-dir {output_dir}: directory is not writable")
    return output_dir


def detect_video(detector: PoseDetector, video_path: str | os.PathLike, tracker: PersonTracker | None = None,
                 progress: bool = True, meta: dict | None = None) -> VideoDetections:
    """Detect and track one person through every frame of ``video_path`` (``meta``: its `video_metadata`)."""
    video_path = Path(video_path)
    meta = meta or video_metadata(video_path)
    tracker = tracker or PersonTracker()
    tracker.reset()
    detector.reset()
    boxes, scores, keypoints = [], [], []
    start = time.perf_counter()
    frames = read_video_frames(video_path)
    for frame in tqdm(frames, total=meta["num_frames"], desc=video_path.name, unit="frame", disable=not progress):
        person = tracker.update(detector.detect(frame))
        if person is None:
            boxes.append(np.full(4, np.nan, np.float32))
            scores.append(np.nan)
            keypoints.append(np.full((NUM_COCO_KEYPOINTS, 3), np.nan, np.float32))
        else:
            boxes.append(np.asarray(person.box, np.float32))
            scores.append(person.score)
            keypoints.append(np.asarray(person.keypoints, np.float32))
    seconds = time.perf_counter() - start
    if not keypoints:
        raise UserError(f"{video_path}: the video has no frames")
    metadata = {
        "w": meta["w"],
        "h": meta["h"],
        "fps": meta["fps"],
        "num_frames": len(keypoints),
        "detector": detector.name,
        "video_name": video_path.name,
    }
    return VideoDetections(video_path.name, np.stack(boxes), np.asarray(scores, np.float32), np.stack(keypoints),
                           metadata, seconds)


def save_detections(detections: VideoDetections, output_dir: str | os.PathLike) -> Path:
    """Write ``<output_dir>/<video file name>.npz`` atomically; returns its path."""
    path = Path(output_dir) / f"{detections.video_name}.npz"
    atomic_savez(path, boxes=detections.boxes, scores=detections.scores, keypoints=detections.keypoints,
                 metadata=np.array(detections.metadata, dtype=object))
    return path


def run_inference(detector: PoseDetector, inputs: str | os.PathLike, output_dir: str | os.PathLike,
                  image_ext: str = "mp4", progress: bool = True) -> list[Path]:
    """Detect the person of every input video and write one npz each; prints one summary line per video."""
    videos = list_videos(inputs, image_ext)
    metas = [video_metadata(video) for video in videos]  # fail before any long work when a video cannot be opened
    output_dir = prepare_output_dir(output_dir)
    written = []
    for video, meta in zip(videos, metas):
        detections = detect_video(detector, video, progress=progress, meta=meta)
        path = save_detections(detections, output_dir)
        frames = len(detections.keypoints)
        print(f"{video.name}: person found in {detections.num_detected}/{frames} frames, "
              f"{frames / max(detections.seconds, 1e-9):.1f} frames/s ({detector.name}) -> {path}")
        written.append(path)
    return written
