"""``run.py --evaluate FILE --render``: predict one sequence, export it (``--viz-export``) and/or render it
(``--viz-output``), without running the evaluation protocol.

`select_render_sequence` finds the ``--viz-subject`` / ``--viz-action`` / ``--viz-camera`` sequence (before the model
is loaded); `render_sequence` checks that ``--viz-video`` is that sequence's video (`check_viz_video`: size of the
camera, number of frames), then predicts it with the evaluation's prediction function and settings and writes the files.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.core.errors import UserError
from common.evaluation import protocols
from common.geometry.camera import image_coordinates
from common.video.pose_export import EXPORT_FORMATS, export_poses
from common.video.rendering import poses_for_display, render_animation
from common.video.video_io import read_video_frames, video_metadata
from common.video.viewer import write_viewer_html


def select_render_sequence(sequences: list, subject: str | None, action: str, camera: int):
    """The sequence to render among ``sequences``; UserError listing what exists when it is not there."""
    matches = [s for s in sequences if (subject is None or s.subject == subject) and s.action == action]
    if not matches:
        available = sorted({s.action for s in sequences})
        raise UserError(f"--viz-action {action}: no such action of subject {subject} (matching: "
                        f"{', '.join(available) or 'none'})")
    chosen = [s for s in matches if s.camera_index == camera]
    if not chosen:
        cameras = ", ".join(str(s.camera_index) for s in matches)
        raise UserError(f"--viz-camera {camera}: {subject} / {action} has 2D keypoints for camera(s) {cameras}")
    return chosen[0]


LENGTH_TOLERANCE = 0.1
"""A ``--viz-video`` may be longer than the sequence by this fraction (motion capture ends a few frames earlier)."""


def check_viz_video(args, seq) -> None:
    """``--viz-video`` must be the sequence's video: the camera's size and (after ``--viz-skip``) at least the
    sequence's frames, not many more. Checked before predicting and rendering."""
    if not args.viz_video:
        return
    meta = video_metadata(args.viz_video)
    name = f"--viz-video {args.viz_video}"
    camera = seq.camera
    if camera is not None and (meta["w"], meta["h"]) != (camera.res_w, camera.res_h):
        raise UserError(f"{name}: {meta['w']}x{meta['h']} pixels, but the 2D keypoints of {seq.subject} / "
                        f"{seq.action} / camera {seq.camera_index} are in a {camera.res_w}x{camera.res_h} frame; "
                        "expected the video of that sequence")
    available, needed = meta["num_frames"] - args.viz_skip, len(seq)
    if available < needed or available > needed * (1 + LENGTH_TOLERANCE):
        raise UserError(f"{name}: {available} frames after --viz-skip {args.viz_skip}, but {seq.subject} / "
                        f"{seq.action} has {needed}; expected the video of that sequence")


def _write_video(args, seq, prediction: np.ndarray, skeleton, fps: float) -> int:
    camera = seq.camera
    orientation = camera.orientation if camera is not None else None
    poses = {"Reconstruction": poses_for_display(prediction, orientation)}
    if seq.poses_3d is not None and not args.viz_no_ground_truth:
        poses["Ground truth"] = poses_for_display(seq.poses_3d, orientation)
    resolution = (camera.res_w, camera.res_h) if camera is not None else None
    keypoints_px = image_coordinates(seq.poses_2d, w=resolution[0], h=resolution[1]) if resolution else seq.poses_2d
    if args.viz_output.lower().endswith(".html"):
        return _write_viewer(args, seq, keypoints_px, poses, skeleton, fps, resolution,
                             camera.azimuth if camera is not None else 70.0)
    return render_animation(
        keypoints_px, poses, skeleton, fps, args.viz_output,
        azimuth=camera.azimuth if camera is not None else 70.0, bitrate=args.viz_bitrate, viz_size=args.viz_size,
        input_video_path=args.viz_video, input_video_skip=args.viz_skip, downsample=args.viz_downsample,
        limit=args.viz_limit, resolution=resolution, progress=not args.no_progress)


def _write_viewer(args, seq, keypoints_px, poses: dict, skeleton, fps: float, resolution, azimuth: float) -> int:
    """--viz-output NAME.html: the interactive viewer, with --viz-skip/--viz-downsample/--viz-limit applied."""
    step = args.viz_downsample
    stop = args.viz_limit * step if args.viz_limit >= 1 else None
    frames = None
    if args.viz_video:
        frames = itertools.islice(read_video_frames(args.viz_video), args.viz_skip,
                                  None if stop is None else args.viz_skip + stop, step)
    summary = write_viewer_html(args.viz_output, {name: pose[:stop:step] for name, pose in poses.items()}, skeleton,
                                fps / step, keypoints_2d=keypoints_px[:stop:step], frames=frames,
                                resolution=resolution, azimuth=azimuth,
                                title=f"{seq.subject} / {seq.action} / camera {seq.camera_index}")
    return summary.num_frames


def render_sequence(args, predict_fn: Callable, settings: protocols.PredictSettings, seq, dataset,
                    log: Callable[[str], object]) -> np.ndarray:
    """Predict ``seq`` (every frame once) and write ``--viz-export`` / ``--viz-output``. Returns the prediction."""
    if args.viz_output:
        check_viz_video(args, seq)
    prediction = protocols.predict_poses(predict_fn, seq.poses_2d, dataclasses.replace(settings, counting="once"))
    log(f"predicted {seq.subject} / {seq.action} / camera {seq.camera_index}: {len(prediction)} frames "
        f"(flip TTA {'on' if settings.flip_tta else 'off'})")
    if args.viz_export:
        orientation = seq.camera.orientation if seq.camera is not None else None
        export_poses(args.viz_export, prediction, dataset.fps, dataset.skeleton, flag="--viz-export",
                     orientation=orientation)
        log(f"exported the predicted 3D poses {prediction.shape} (camera space) to {args.viz_export}: "
            f"{EXPORT_FORMATS[Path(args.viz_export).suffix.lower()]}")
    if args.viz_output:
        frames = _write_video(args, seq, prediction, dataset.skeleton, dataset.fps)
        log(f"rendered {frames} frames to {args.viz_output}")
    return prediction
