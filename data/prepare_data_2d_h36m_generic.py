"""Collect per-video 2D detections of the Human3.6M videos into one VideoPose3D 2D npz.

Input: a directory with ``S*/<Action>.<camera id>.mp4.npz`` files, one per Human3.6M video, as written by this project's
``inference/infer_video.py`` / ``inference/infer_video_d2.py`` (``keypoints`` (T, J, 3)) or by VideoPose3D's
Detectron2 script (per-frame ``boxes``/``keypoints`` lists); see `common.datasets.detections.read_detections`.

Output: ``data_2d_h36m_<name>.npz`` with ``positions_2d[subject][action]`` = list of the 4 cameras' float32 (T, J, 2)
pixels and ``metadata`` of the keypoint layout (``--layout``; by default the layout named in ``--output``, else
``coco``, what the project's detectors produce). Use it with ``python run.py -d h36m -k <name>``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from common.core.errors import UserError, run_cli  # noqa: E402
from common.core.files import atomic_savez  # noqa: E402
from common.datasets.action_names import (  # noqa: E402
    canonical_h36m_action,
    complete_actions,
    is_corrupted_h36m,
    subject_sort_key,
)
from common.datasets.detections import read_detections  # noqa: E402
from common.datasets.preparation_cli import add_output_arguments, describe_written, output_paths  # noqa: E402
from common.geometry.h36m_cameras import H36M_CAMERA_IDS  # noqa: E402
from common.geometry.keypoint_layouts import keypoint_metadata  # noqa: E402

FILE_PATTERN = re.compile(r"^(?P<action>.+)\.(?P<camera>[0-9]+)\.mp4\.npz$")
OUTPUT_PREFIX = "data_2d_h36m_"
DETECTOR_LAYOUTS = ("h36m", "mpii", "coco")
"""Keypoint layouts a 2D detector of Human3.6M videos may produce (`--layout`)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Per-video 2D detections of Human3.6M -> data_2d_h36m_<name>.npz")
    parser.add_argument(
        "-i", "--input", type=Path, required=True, metavar="DIR", help="directory with S*/<Action>.<camera>.mp4.npz"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="NAME",
        help="output name: writes data_2d_h36m_<NAME>.npz (e.g. detectron2_coco), used as -k NAME",
    )
    parser.add_argument(
        "--layout",
        choices=sorted(DETECTOR_LAYOUTS),
        help="keypoint layout of the detections (default: the one named in --output, else coco)",
    )
    add_output_arguments(parser)
    return parser.parse_args(argv)


def infer_layout(name: str) -> str:
    """The layout named inside an output name (``detectron_pt_coco`` -> ``coco``), else ``coco``."""
    for layout in DETECTOR_LAYOUTS:
        if layout in name:
            return layout
    return "coco"


def list_detection_files(root: Path) -> list[tuple[str, str, int, Path]]:
    """``(subject, canonical action, camera index, file)`` of every detections file; other files are reported."""
    if not root.is_dir():
        raise UserError(f"--input {root}: directory not found")
    jobs = []
    for subject_dir in sorted(root.glob("S*"), key=lambda p: subject_sort_key(p.name)):
        if not subject_dir.is_dir():
            continue
        for path in sorted(subject_dir.glob("*.npz")):
            match = FILE_PATTERN.match(path.name)
            if not match or match["camera"] not in H36M_CAMERA_IDS:
                print(f"{path}: not named <Action>.<Human3.6M camera id>.mp4.npz, skipped")
                continue
            action = canonical_h36m_action(match["action"].replace("_", " "))
            if is_corrupted_h36m(subject_dir.name, action):
                print(f"{subject_dir.name} {action} (camera {match['camera']}): dropped (the video is corrupted)")
                continue
            jobs.append((subject_dir.name, action, H36M_CAMERA_IDS.index(match["camera"]), path))
    if not jobs:
        raise UserError(f"--input {root}: no S*/<Action>.<camera id>.mp4.npz files")
    return jobs


def collect(jobs: list[tuple[str, str, int, Path]], num_joints: int) -> dict[str, dict[str, list[np.ndarray]]]:
    """Read every file; keep the actions seen by all 4 cameras."""
    views: dict[str, dict[str, list[np.ndarray | None]]] = {}
    filled = 0
    for subject, action, camera_index, path in tqdm(jobs, desc="detections", unit="video"):
        keypoints, metadata = read_detections(path)
        if keypoints.shape[1] != num_joints:
            raise UserError(f"{path}: {keypoints.shape[1]} keypoints, the chosen layout has {num_joints} (--layout)")
        filled += metadata["frames_without_detection"]
        slots = views.setdefault(subject, {}).setdefault(action, [None] * len(H36M_CAMERA_IDS))
        slots[camera_index] = keypoints[..., :2].astype(np.float32)
    if filled:
        print(f"{filled} frames without a detected person were filled by interpolation")
    return complete_actions(views)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", args.output):
        raise UserError(f"--output: expected a name of letters, digits, '_' or '-', got {args.output!r}")
    layout = args.layout or infer_layout(args.output)
    (path,) = output_paths(args.output_dir, [f"{OUTPUT_PREFIX}{args.output}.npz"], args.overwrite)
    print(f"Collecting {layout} 2D detections from {args.input}")
    metadata = keypoint_metadata(layout)
    positions_2d = collect(list_detection_files(args.input), metadata["num_joints"])
    atomic_savez(path, positions_2d=positions_2d, metadata=metadata)
    print(describe_written(path, positions_2d, f"2D detections ({layout} layout, pixels, 4 cameras)"))


if __name__ == "__main__":
    run_cli(main)
