"""From a person's video to rendered 3D in one command: 2D detection, lifting, rendering.

    python inference/video_to_3d.py VIDEO --checkpoint FILE --output OUT.mp4

1. detects the person's COCO keypoints in every frame (MediaPipe by default, offline), tracked across frames, and
   fills frames without a detection by interpolation;
2. converts them to the model's 17 Human3.6M joints and lifts every frame to 3D with the checkpoint's model
   (windows of the model's frame count, each frame predicted once);
3. writes the camera-space 3D poses ``(T, 17, 3)`` in metres as ``.npy`` (``--export``, default ``OUT.npy``) and renders
   the video with the 2D skeleton next to the 3D skeleton.

Prints the time of every stage and its frames per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common.camera import normalize_screen_coordinates  # noqa: E402
from common.checkpoint import is_official_mixste, load_checkpoint, model_with_weights  # noqa: E402
from common.clips import predict_sequence  # noqa: E402
from common.cpu_allocator import keep_freed_memory  # noqa: E402
from common.datasets.custom import nominal_camera  # noqa: E402
from common.errors import UserError, run_cli  # noqa: E402
from common.io_utils import atomic_write  # noqa: E402
from common.keypoint_layouts import get_layout, to_h36m17  # noqa: E402
from common.model import ModelConfig  # noqa: E402
from common.prepare_utils import read_detections  # noqa: E402
from common.skeleton import h36m_17  # noqa: E402
from common.video_io import VIDEO_SUFFIXES, video_metadata  # noqa: E402
from common.visualization import poses_for_display, render_animation  # noqa: E402
from inference.detect_videos import detect_video, prepare_output_dir, save_detections  # noqa: E402
from inference.detectors import DETECTORS, make_detector  # noqa: E402

MODEL_JOINTS = 17


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", help="input video (any format ffmpeg reads)")
    parser.add_argument("--checkpoint", required=True, metavar="FILE",
                        help="trained lifting model (a run.py checkpoint, or an official MixSTE one)")
    parser.add_argument("--output", required=True, metavar="OUT.mp4", help="rendered video (.mp4 or .gif)")
    parser.add_argument("--export", default=None, metavar="FILE.npy",
                        help="camera-space 3D poses (T, 17, 3) in metres (default: the output name with .npy)")
    parser.add_argument("--detector", default="mediapipe", choices=sorted(DETECTORS), help="2D pose detector")
    parser.add_argument("--detections-dir", default=None, metavar="DIR",
                        help="also keep the 2D detections as DIR/<video>.npz (the infer_video.py format, ready for "
                             "data/prepare_data_2d_custom.py)")
    parser.add_argument("--flip-tta", action="store_true",
                        help="average each prediction with that of the horizontally flipped input")
    parser.add_argument("--device", default=None, help="torch device for lifting (default: cuda if available)")
    parser.add_argument("--viz-size", type=float, default=6, help="size of each rendered panel in inches (x100 px)")
    parser.add_argument("--viz-bitrate", type=int, default=3000, help="MP4 bitrate in kbit/s")
    return parser


def load_lifter(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelConfig]:
    """The model of a project or official MixSTE checkpoint; it must take 17 joints with (x, y) inputs."""
    from common.mixste_official import config_from_official_state_dict

    data = load_checkpoint(path)
    if is_official_mixste(data):
        config = config_from_official_state_dict(data["model_pos"])
    else:
        config = ModelConfig.from_dict(data["model_config"])
    _check_layout(path, config)
    return model_with_weights(config, data, path).eval(), config


def _check_layout(path, config: ModelConfig) -> None:
    if config.num_joints != MODEL_JOINTS or config.in_chans != 2 or config.out_chans != 3:
        raise UserError(
            f"--checkpoint {path}: the model takes {config.num_joints} joints x {config.in_chans} inputs and predicts "
            f"{config.out_chans} values, but video lifting gives {MODEL_JOINTS} Human3.6M joints (x, y) -> (x, y, z)"
        )


def check_outputs(output: Path, export: Path) -> None:
    """Refuse bad output names and unwritable directories before any long work."""
    if output.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"--output {output}: expected a .mp4 or .gif file")
    if export.suffix != ".npy":
        raise UserError(f"--export {export}: expected a file name ending in .npy")
    for flag, path in (("--output", output), ("--export", export)):
        directory = path.parent
        if not directory.is_dir():
            raise UserError(f"{flag} {path}: output directory {directory} does not exist")
        if not os.access(directory, os.W_OK):
            raise UserError(f"{flag} {path}: output directory {directory} is not writable")


def rate(frames: int, seconds: float) -> str:
    return f"{seconds:.2f} s, {frames / max(seconds, 1e-9):.1f} frames/s"


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    video = Path(args.video)
    output = Path(args.output)
    export = Path(args.export) if args.export else output.with_suffix(".npy")
    meta = video_metadata(video)
    check_outputs(output, export)
    detections_dir = prepare_output_dir(args.detections_dir) if args.detections_dir else None
    model, config = load_lifter(args.checkpoint)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device)

    # 1. 2D detection (tracked person), frames without a detection interpolated
    detector = make_detector(args.detector)
    start = time.perf_counter()
    detections = detect_video(detector, video, meta=meta)
    detect_seconds = time.perf_counter() - start
    num_frames = len(detections.keypoints)
    if detections.num_detected == 0:
        raise UserError(f"{video}: no person detected in any frame")
    if detections_dir is not None:
        saved = save_detections(detections, detections_dir)
        print(f"wrote {saved}: 2D detections")
    with tempfile.TemporaryDirectory() as tmp:
        keypoints, info = read_detections(save_detections(detections, tmp))
    print(f"detection ({detector.name}): {num_frames} frames, person found in {detections.num_detected} "
          f"({info['frames_without_detection']} interpolated): {rate(num_frames, detect_seconds)}")

    # 2. lifting: COCO -> model joints, normalized screen coordinates, every frame predicted once
    start = time.perf_counter()
    joints_2d = to_h36m17(keypoints[..., :2], "coco")
    inputs = normalize_screen_coordinates(joints_2d, w=meta["w"], h=meta["h"]).astype(np.float32)
    skeleton = h36m_17()
    layout = get_layout("h36m")

    def predict(batch: torch.Tensor) -> torch.Tensor:
        return model(batch.to(device)).float().cpu()

    prediction = predict_sequence(predict, inputs, config.num_frames, counting="once", flip_tta=args.flip_tta,
                                  kps_left=layout.left, kps_right=layout.right, joints_left=skeleton.joints_left(),
                                  joints_right=skeleton.joints_right())
    prediction[:, 0] = 0.0  # root-relative output: the root joint is exactly the origin (as in evaluation)
    lift_seconds = time.perf_counter() - start
    print(f"lifting ({config.num_frames}-frame windows, {device.type}): {rate(num_frames, lift_seconds)}")
    total = detect_seconds + lift_seconds
    print(f"detection + lifting: {rate(num_frames, total)} (the video plays at {meta['fps']:.1f} frames/s: "
          f"{'faster' if num_frames / max(total, 1e-9) >= meta['fps'] else 'slower'} than real time)")
    atomic_write(export, lambda tmp: np.save(tmp, prediction.astype(np.float32)))
    print(f"wrote {export}: 3D poses {prediction.shape} (camera space, metres, root-relative)")

    # 3. rendering
    camera = nominal_camera(video.name, meta["w"], meta["h"])
    start = time.perf_counter()
    frames = render_animation(
        joints_2d, {"Reconstruction": poses_for_display(prediction, camera.orientation)}, skeleton, meta["fps"], output,
        azimuth=camera.azimuth, bitrate=args.viz_bitrate, viz_size=args.viz_size, input_video_path=video)
    print(f"rendering: {frames} frames to {output}: {rate(frames, time.perf_counter() - start)}")


if __name__ == "__main__":
    run_cli(main)
