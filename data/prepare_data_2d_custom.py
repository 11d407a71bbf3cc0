"""Gather the per-video 2D detections of a directory into one custom 2D dataset (VideoPose3D's custom layout).

    python prepare_data_2d_custom.py -i ../inference/output -o myvideos

reads every ``*.npz`` written by ``inference/infer_video.py`` / ``infer_video_d2.py`` (or VideoPose3D's Detectron2
script) in the input directory and writes ``<output dir>/data_2d_custom_myvideos.npz`` with

- ``positions_2d[<video file name>]['custom'] = [(T, 17, 2) float32 COCO keypoints in pixels]``;
- ``metadata = {layout_name: 'coco', num_joints: 17, keypoints_symmetry, video_metadata: {<video>: {w, h, fps}}}``.

Frames where nobody was detected are filled by linear interpolation between the nearest detected frames (held at the
ends); a video without any detection is an error naming it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from common.core.errors import UserError, run_cli  # noqa: E402
from common.core.files import atomic_savez  # noqa: E402
from common.datasets.custom import CUSTOM_ACTION  # noqa: E402
from common.datasets.detections import read_detections  # noqa: E402
from common.datasets.preparation_cli import add_output_arguments, describe_written, output_paths  # noqa: E402
from common.geometry.keypoint_layouts import COCO, keypoint_metadata  # noqa: E402

COCO_NUM_JOINTS = COCO.num_joints


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--input", required=True, metavar="DIR",
                        help="directory with the detector's <video>.npz files")
    parser.add_argument("-o", "--output", required=True, metavar="NAME",
                        help="dataset name: writes data_2d_custom_NAME.npz (use with run.py -k NAME)")
    add_output_arguments(parser)
    return parser


def collect_videos(input_dir: str | os.PathLike) -> tuple[dict, dict]:
    """Read every detections file of ``input_dir`` -> ``(positions_2d, video_metadata)``; prints a line per video."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise UserError(f"-i {input_dir}: input directory not found")
    files = sorted(input_dir.glob("*.npz"))
    if not files:
        raise UserError(f"-i {input_dir}: no detections (*.npz) in this directory; run inference/infer_video.py first")
    positions_2d: dict[str, dict[str, list[np.ndarray]]] = {}
    video_metadata: dict[str, dict] = {}
    for path in files:
        keypoints, metadata = read_detections(path)
        name = str(metadata.get("video_name") or path.name[: -len(".npz")])
        if keypoints.shape[1] != COCO_NUM_JOINTS:
            raise UserError(f"{path}: expected {COCO_NUM_JOINTS} COCO keypoints, got {keypoints.shape[1]}")
        missing_size = [key for key in ("w", "h") if key not in metadata]
        if missing_size:
            raise UserError(f"{path}: metadata lacks the video size ({', '.join(missing_size)})")
        if name in positions_2d:
            raise UserError(f"{path}: a second detections file for the video {name}")
        positions_2d[name] = {CUSTOM_ACTION: [keypoints[..., :2].astype(np.float32)]}
        video_metadata[name] = {"w": int(metadata["w"]), "h": int(metadata["h"])}
        if "fps" in metadata:
            video_metadata[name]["fps"] = float(metadata["fps"])
        filled = int(metadata.get("frames_without_detection", 0))
        note = f", {filled} without a detection (interpolated)" if filled else ""
        print(f"{name}: {len(keypoints)} frames{note}")
    return positions_2d, video_metadata


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.output):
        raise UserError(f"-o {args.output}: expected a dataset name (letters, digits, '_', '-', '.'), not a path")
    (output,) = output_paths(args.output_dir, [f"data_2d_custom_{args.output}.npz"], args.overwrite)
    positions_2d, video_metadata = collect_videos(args.input)
    metadata = keypoint_metadata("coco", video_metadata=video_metadata)
    atomic_savez(output, positions_2d=np.array(positions_2d, dtype=object), metadata=np.array(metadata, dtype=object))
    print(describe_written(output, positions_2d, label="custom 2D dataset"))


if __name__ == "__main__":
    run_cli(main)
