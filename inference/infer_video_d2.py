"""Detect one person's 2D COCO keypoints in videos with Detectron2's keypoint R-CNN (VideoPose3D's flags)::

    python infer_video_d2.py --cfg COCO-Keypoints/keypoint_rcnn_R_101_FPN_3x.yaml --output-dir output \\
        --image-ext mp4 input

Detectron2 is not on PyPI; without it use ``infer_video.py`` (MediaPipe, same flags and output format).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common.core.errors import run_cli  # noqa: E402
from common.video.detection import add_io_arguments, list_videos, run_inference  # noqa: E402
from common.video.detectors import make_detector  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", default="COCO-Keypoints/keypoint_rcnn_R_101_FPN_3x.yaml", metavar="CONFIG",
                        help="Detectron2 model-zoo config name or config file")
    parser.add_argument("--weights", default=None, metavar="FILE_OR_URL",
                        help="model weights (default: the model zoo's weights for --cfg)")
    add_io_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    list_videos(args.input, args.image_ext)  # a wrong input is reported before loading the model
    detector = make_detector("detectron2", cfg=args.cfg, weights=args.weights)
    run_inference(detector, args.input, args.output_dir, args.image_ext)


if __name__ == "__main__":
    run_cli(main)
