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

from common.errors import run_cli  # noqa: E402
from inference.detect_videos import add_io_arguments, run_inference  # noqa: E402
from inference.detectors import DETECTORS, make_detector  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="mediapipe", choices=sorted(DETECTORS),
                        help="2D pose detector (default: mediapipe, offline)")
    parser.add_argument("--cfg", default=None, metavar="CONFIG",
                        help="Detectron2 model-zoo config, used with --detector detectron2 (accepted for "
                             "infer_video_d2.py compatibility; MediaPipe has a single bundled model)")
    parser.add_argument("--min-detection-confidence", type=float, default=0.5,
                        help="MediaPipe person detector threshold (default: 0.5)")
    add_io_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.detector == "mediapipe":
        if args.cfg is not None:
            print(f"note: --cfg {args.cfg} is a Detectron2 model; the mediapipe detector uses its bundled model")
        detector = make_detector("mediapipe", min_detection_confidence=args.min_detection_confidence)
    elif args.detector == "detectron2":
        detector = make_detector("detectron2", **({"cfg": args.cfg} if args.cfg else {}))
    else:
        detector = make_detector(args.detector)
    run_inference(detector, args.input, args.output_dir, args.image_ext)


if __name__ == "__main__":
    run_cli(main)
