"""Detect one person's 2D COCO keypoints in videos with a detector from the package registry (default: MediaPipe).

Same flags and output as ``infer_video_d2.py``, without Detectron2; runs fully offline::

    python infer_video.py --output-dir output --image-ext mp4 input

writes ``output/<video file name>.npz`` for every ``input/*.mp4`` (see ``inference/detect_videos.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common.core.errors import UserError, run_cli  # noqa: E402
from common.video.detection import add_io_arguments, run_inference  # noqa: E402
from common.video.detectors import DETECTORS, make_detector  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="mediapipe", choices=sorted(DETECTORS),
                        help="2D pose detector (default: mediapipe, offline)")
    parser.add_argument("--cfg", default=None, metavar="CONFIG",
                        help="Detectron2 model-zoo config, used with --detector detectron2 (accepted for "
                             "infer_video_d2.py compatibility; MediaPipe has a single bundled model)")
    parser.add_argument("--min-detection-confidence", type=float, default=None, metavar="P",
                        help="person detection threshold (default: the detector's own, mediapipe 0.5, detectron2 0.7)")
    add_io_arguments(parser)
    return parser


def detector_options(args) -> dict:
    """The keyword options of the chosen detector from the flags."""
    threshold = args.min_detection_confidence
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise UserError(f"--min-detection-confidence {threshold}: expected a value between 0 and 1")
    if args.detector == "mediapipe":
        if args.cfg is not None:
            print(f"note: --cfg {args.cfg} is a Detectron2 model; the mediapipe detector uses its bundled model")
        return {} if threshold is None else {"min_detection_confidence": threshold}
    if args.detector == "detectron2":
        options = {} if args.cfg is None else {"cfg": args.cfg}
        return options if threshold is None else {**options, "score_threshold": threshold}
    flags = (("--cfg", args.cfg), ("--min-detection-confidence", threshold))
    given = [flag for flag, value in flags if value is not None]
    if given:
        raise UserError(f"{given[0]}: not an option of the {args.detector} detector")
    return {}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    detector = make_detector(args.detector, **detector_options(args))
    run_inference(detector, args.input, args.output_dir, args.image_ext)


if __name__ == "__main__":
    run_cli(main)
