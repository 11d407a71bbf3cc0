"""From a person's video to rendered 3D in one command: 2D detection, lifting, rendering.

    python inference/video_to_3d.py VIDEO --output OUT.mp4 [--checkpoint FILE_OR_NAME]

1. detects the person's COCO keypoints in every frame (MediaPipe by default, offline), tracked across frames, and
   fills frames without a detection by interpolation;
2. converts them to the model's 17 Human3.6M joints and lifts every frame to 3D with the checkpoint's model (by
   default the shipped model `common.model.pretrained.DEFAULT_MODEL`, verified by its sha256; ``--checkpoint`` takes
   another shipped model's name or any run.py / official MixSTE checkpoint file), with
   the prediction of `run.py`'s evaluation (windows of the model's frame count, each frame predicted once, flip
   test-time augmentation on unless ``--no-flip-tta``);
3. writes the camera-space 3D poses ``(T, 17, 3)`` in metres relative to the root (the model's raw output) as ``.npy``
   (``--export``, default ``OUT.npy``; ``.json``, ``.csv`` and ``.bvh`` by extension: `common.video.pose_export`) and
   renders the video with the 2D skeleton next to the 3D skeleton, or writes the interactive viewer page when
   ``--output`` ends in ``.html`` (`common.video.viewer`).

Prints the time of every stage and its frames per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from argparse import BooleanOptionalAction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from common.cli.compute import apply_thread_policy, resolve_device  # noqa: E402
from common.cli.model_setup import LoadedModel, load_video_lifter  # noqa: E402
from common.cli.run_arguments import positive_float  # noqa: E402
from common.core.errors import UserError, run_cli  # noqa: E402
from common.datasets.custom import nominal_camera  # noqa: E402
from common.datasets.detections import read_detections  # noqa: E402
from common.evaluation.plausibility import format_report, plausibility_report  # noqa: E402
from common.evaluation.protocols import PredictSettings, model_predict_fn, predict_poses  # noqa: E402
from common.geometry.camera import normalize_screen_coordinates  # noqa: E402
from common.geometry.keypoint_layouts import get_layout, to_h36m17  # noqa: E402
from common.geometry.skeleton import h36m_17  # noqa: E402
from common.model import pretrained  # noqa: E402
from common.video.detection import detect_video, prepare_output_dir, save_detections  # noqa: E402
from common.video.detectors import DETECTORS, make_detector  # noqa: E402
from common.video.pose_export import EXPORT_FORMATS, check_export_path, export_poses  # noqa: E402
from common.video.rendering import poses_for_display, render_animation  # noqa: E402
from common.video.video_io import VIDEO_SUFFIXES, read_video_frames, video_metadata  # noqa: E402
from common.video.viewer import write_viewer_html  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", help="input video (any format ffmpeg reads)")
    parser.add_argument("--checkpoint", default=pretrained.DEFAULT_MODEL, metavar="FILE_OR_NAME",
                        help=f"trained lifting model: a shipped model ({', '.join(sorted(pretrained.PRETRAINED))}), a "
                             "run.py checkpoint or an official MixSTE one (default: %(default)s)")
    parser.add_argument("--output", required=True, metavar="OUT.mp4",
                        help="rendered video (.mp4 or .gif) or interactive viewer page (.html)")
    parser.add_argument("--export", default=None, metavar="FILE.npy",
                        help="3D poses, format by extension: .npy (camera-space (T, 17, 3) in metres), .json, .csv or "
                             ".bvh (default: the output name with .npy)")
    parser.add_argument("--detector", default="mediapipe", choices=sorted(DETECTORS), help="2D pose detector")
    parser.add_argument("--detections-dir", default=None, metavar="DIR",
                        help="also keep the 2D detections as DIR/<video>.npz (the infer_video.py format, ready for "
                             "data/prepare_data_2d_custom.py)")
    parser.add_argument("--flip-tta", action=BooleanOptionalAction, default=True,
                        help="average each prediction with that of the horizontally flipped input (on by default, "
                             "as in run.py's evaluation; --no-flip-tta turns it off)")
    parser.add_argument("--device", default=None, help="torch device for lifting: cpu, cuda or cuda:N (default: cuda "
                                                       "if available)")
    parser.add_argument("--threads", default=None, type=int, metavar="N",
                        help="CPU threads for lifting (default: 1 for small models, torch's default for large ones)")
    parser.add_argument("--viz-size", type=positive_float, default=6,
                        help="size of each rendered panel in inches (x100 px)")
    parser.add_argument("--viz-bitrate", type=int, default=3000, help="MP4 bitrate in kbit/s")
    return parser


def load_lifter(checkpoint: str | os.PathLike, log=print) -> LoadedModel:
    """The lifter of ``--checkpoint`` (`common.cli.model_setup.load_video_lifter`)."""
    return load_video_lifter(checkpoint, "video lifting", log)


def check_outputs(output: Path, export: Path) -> None:
    """Refuse bad output names and unwritable directories before any long work."""
    if output.suffix.lower() not in VIDEO_SUFFIXES + (".html",):
        raise UserError(f"--output {output}: expected a .mp4 or .gif video, or a .html viewer page")
    for flag, path in (("--output", output), ("--export", export)):
        directory = path.parent
        if not directory.is_dir():
            raise UserError(f"{flag} {path}: output directory {directory} does not exist")
        if not os.access(directory, os.W_OK):
            raise UserError(f"{flag} {path}: output directory {directory} is not writable")


def rate(frames: int, seconds: float) -> str:
    return f"{seconds:.2f} s, {frames / max(seconds, 1e-9):.1f} frames/s"


def detect(args, video: Path, meta: dict, detections_dir: Path | None) -> tuple[np.ndarray, float]:
    """Stage 1: the tracked person's COCO keypoints ``(T, 17, >=2)`` pixels (gaps interpolated), and the seconds."""
    detector = make_detector(args.detector)
    start = time.perf_counter()
    detections = detect_video(detector, video, meta=meta)
    seconds = time.perf_counter() - start
    num_frames = len(detections.keypoints)
    if detections.num_detected == 0:
        raise UserError(f"{video}: no person detected in any frame")
    if detections_dir is not None:
        print(f"wrote {save_detections(detections, detections_dir)}: 2D detections")
    with tempfile.TemporaryDirectory() as tmp:
        keypoints, info = read_detections(save_detections(detections, tmp))
    print(f"detection ({detector.name}): {num_frames} frames, person found in {detections.num_detected} "
          f"({info['frames_without_detection']} interpolated): {rate(num_frames, seconds)}")
    return keypoints, seconds


def lift(loaded: LoadedModel, joints_2d: np.ndarray, meta: dict, device, flip_tta: bool) -> tuple[np.ndarray, float]:
    """Stage 2: camera-space 3D ``(T, 17, 3)`` with the evaluation's prediction function, and the seconds."""
    skeleton, layout = h36m_17(), get_layout("h36m")
    settings = PredictSettings(num_frames=loaded.config.num_frames, counting="once", flip_tta=flip_tta,
                               kps_left=tuple(layout.left), kps_right=tuple(layout.right),
                               joints_left=tuple(skeleton.joints_left()), joints_right=tuple(skeleton.joints_right()))
    start = time.perf_counter()
    inputs = normalize_screen_coordinates(joints_2d, w=meta["w"], h=meta["h"]).astype(np.float32)
    prediction = predict_poses(model_predict_fn(loaded.model, device, loaded.path), inputs, settings)
    seconds = time.perf_counter() - start
    print(f"lifting ({loaded.config.num_frames}-frame windows, {device.type}, flip TTA {'on' if flip_tta else 'off'}): "
          f"{rate(len(prediction), seconds)}")
    return prediction, seconds


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    video, output = Path(args.video), Path(args.output)
    export = check_export_path(args.export, "--export") if args.export else output.with_suffix(".npy")
    device = resolve_device(args.device)
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: expected a positive number of threads")
    meta = video_metadata(video)
    check_outputs(output, export)
    detections_dir = prepare_output_dir(args.detections_dir) if args.detections_dir else None
    loaded = load_lifter(args.checkpoint)
    loaded.model.to(device)
    apply_thread_policy(args.threads, loaded.config, device, print)

    keypoints, detect_seconds = detect(args, video, meta, detections_dir)
    joints_2d = to_h36m17(keypoints[..., :2], "coco")
    prediction, lift_seconds = lift(loaded, joints_2d, meta, device, args.flip_tta)
    num_frames, total = len(prediction), detect_seconds + lift_seconds
    print(f"detection + lifting: {rate(num_frames, total)} (the video plays at {meta['fps']:.1f} frames/s: "
          f"{'faster' if num_frames / max(total, 1e-9) >= meta['fps'] else 'slower'} than real time)")
    print(format_report(plausibility_report(prediction, h36m_17(), meta["fps"], joints_2d)))
    camera = nominal_camera(video.name, meta["w"], meta["h"])
    export_poses(export, prediction, meta["fps"], h36m_17(), orientation=camera.orientation)
    print(f"wrote {export}: 3D poses {prediction.shape} (camera space, relative to the root) -> "
          f"{EXPORT_FORMATS[export.suffix.lower()]}")

    # 3. rendering, or the interactive viewer
    start = time.perf_counter()
    poses = {"Reconstruction": poses_for_display(prediction, camera.orientation)}
    if output.suffix.lower() == ".html":
        summary = write_viewer_html(output, poses, h36m_17(), meta["fps"], keypoints_2d=joints_2d,
                                    frames=read_video_frames(video), azimuth=camera.azimuth, title=video.name)
        print(f"viewer: {summary.describe()}: {rate(summary.num_frames, time.perf_counter() - start)}")
        return
    frames = render_animation(
        joints_2d, poses, h36m_17(), meta["fps"],
        output, azimuth=camera.azimuth, bitrate=args.viz_bitrate, viz_size=args.viz_size, input_video_path=video)
    print(f"rendering: {frames} frames to {output}: {rate(frames, time.perf_counter() - start)}")


if __name__ == "__main__":
    run_cli(main)
