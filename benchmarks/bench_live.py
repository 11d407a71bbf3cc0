"""Live pipeline speed (`inference/live.py`): per-frame latency of detection, lifting and drawing, end-to-end frames/s.

    python benchmarks/bench_live.py [--video VIDEO] [--frames 100] [--sizes source,640x480,1280x720]

Goals: end to end >= 25 frames/s at 640x480, lifting < 10 ms per frame on the 2-core CPU.

For every size it runs `common.video.live_pipeline.run_live` (detect, lift, draw, write an MP4 into a temporary folder)
over ``--warmup`` + ``--frames`` frames and prints the mean and p95 latency of every stage over the timed frames, the
end-to-end frames/s (over all frames, and steady: over the timed frames) and the goals. The ``source`` size plays the
video file itself (decoding included, as ``live.py`` plays it); the others play its frames resized with OpenCV and
decoded beforehand (the read stage is then free), repeated when the video is shorter. Without ``--checkpoint`` the
lifter is a causal model with random weights and the shape of the shipped default model (the latency does not depend on
the weights); ``--detector`` defaults to MediaPipe, as ``live.py``.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common.cli.compute import apply_thread_policy, resolve_device  # noqa: E402
from common.cli.model_setup import build_from_checkpoint  # noqa: E402
from common.core.errors import UserError, run_cli  # noqa: E402
from common.evaluation.streaming import default_delay  # noqa: E402
from common.geometry.skeleton import h36m_17  # noqa: E402
from common.model import pretrained  # noqa: E402
from common.model.config import ModelConfig  # noqa: E402
from common.model.metaformer import build_model  # noqa: E402
from common.video.detectors import DETECTORS, make_detector  # noqa: E402
from common.video.live_pipeline import (  # noqa: E402
    FrameSource,
    LiveStats,
    OverlayDrawer,
    make_streaming_lifter,
    open_video_file,
    run_live,
)
from common.video.video_io import VideoWriter, read_video_frames, video_metadata  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "video" / "dancer.mp4"
GOAL_FPS_640x480 = 25.0
GOAL_LIFT_MS = 10.0


def parse_size(text: str) -> tuple[int, int] | None:
    """``WxH`` -> (w, h); ``source`` -> None (the video as it is)."""
    if text == "source":
        return None
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or int(match[1]) < 16 or int(match[2]) < 16:
        raise UserError(f"--sizes {text}: expected source or WIDTHxHEIGHT, e.g. 640x480")
    return int(match[1]), int(match[2])


def resized_source(video: Path, size: tuple[int, int], count: int) -> FrameSource:
    """``count`` frames of ``video`` resized to ``size`` (decoded and resized before the clock starts)."""
    import cv2

    decoded = [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in read_video_frames(video)]
    frames = list(itertools.islice(itertools.cycle(decoded), count))
    return FrameSource(f"{video.name} resized to {size[0]}x{size[1]}", size[0], size[1],
                       video_metadata(video)["fps"], iter(frames))


def lifting_model(checkpoint: str | None):
    """``(model, config, name)``: the checkpoint's, or a random causal model of the shipped default's shape."""
    if checkpoint:
        loaded = build_from_checkpoint(pretrained.resolve_checkpoint(checkpoint, None, "--checkpoint"))
        return loaded.model, loaded.config, str(loaded.path)
    shape = dict(pretrained.PRETRAINED[pretrained.DEFAULT_MODEL].model_config)
    config = ModelConfig(**{**shape, "causal": True})
    torch.manual_seed(0)
    return build_model(config).eval(), config, f"random causal model shaped like {pretrained.DEFAULT_MODEL}"


def bench(source: FrameSource, args, model, config, device, tmp: Path) -> tuple[LiveStats, float]:
    """The run's statistics without its first ``--warmup`` frames, and its steady end-to-end frames/s (from the
    times at which the frames after the warm-up were written)."""
    delay = default_delay(config.num_frames, config.causal)
    lifter = make_streaming_lifter(model, config.num_frames, device, args.flip_tta, delay)
    detector = make_detector(args.detector)
    drawer = OverlayDrawer(h36m_17(), source.width, source.height)
    written: list[float] = []
    try:
        with VideoWriter(tmp / "bench_live.mp4", source.fps) as writer:
            sinks = [writer.write, lambda _: written.append(time.perf_counter())]
            stats = run_live(source, detector, lifter, drawer, sinks, max_frames=args.warmup + args.frames)
    finally:
        source.close()
    for stage, times in stats.stage_ms.items():
        stats.stage_ms[stage] = times[args.warmup:]
    steady = written[args.warmup:]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else float("nan")
    return stats, rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(DEFAULT_VIDEO), help="input video (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=100, help="timed frames per size (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="frames run first and left out of the latencies (default: %(default)s)")
    parser.add_argument("--sizes", default="source,640x480,1280x720",
                        help="comma-separated sizes: source (the file as it is) or WxH (default: %(default)s)")
    parser.add_argument("--checkpoint", default=None, metavar="FILE_OR_NAME",
                        help="lifting model (default: random weights, the shipped default model's shape, causal)")
    parser.add_argument("--detector", default="mediapipe", choices=sorted(DETECTORS), help="2D pose detector")
    parser.add_argument("--flip-tta", action="store_true", help="flip test-time augmentation (doubles lifting)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: live.py's policy)")
    parser.add_argument("--device", default="cpu", help="torch device for lifting (default: %(default)s)")
    args = parser.parse_args(argv)
    sizes = [parse_size(text.strip()) for text in args.sizes.split(",") if text.strip()]
    video = Path(args.video)
    device = resolve_device(args.device)
    model, config, name = lifting_model(args.checkpoint)
    model.to(device)
    apply_thread_policy(args.threads, config, device, print)
    print(f"model: {name} (F={config.num_frames}, {'causal' if config.causal else 'non-causal'}), detector "
          f"{args.detector}, flip TTA {'on' if args.flip_tta else 'off'}, {args.frames} frames per size")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            source = open_video_file(video) if size is None else resized_source(video, size, args.warmup + args.frames)
            stats, rate = bench(source, args, model, config, device, Path(tmp))
            print(f"\n== {source.name} ({source.width}x{source.height}); latencies without the {args.warmup} "
                  "warm-up frames, end to end with them")
            for line in stats.report(source.fps, default_delay(config.num_frames, config.causal)):
                print(line)
            print(f"steady end to end (after the warm-up): {rate:.1f} frames/s")
            lift = float(np.mean(stats.stage_ms["lift"])) if stats.stage_ms["lift"] else float("nan")
            print(f"goal: lifting < {GOAL_LIFT_MS:g} ms per frame: {lift:.2f} ms "
                  f"({'met' if lift < GOAL_LIFT_MS else 'NOT met'})")
            if size == (640, 480):
                print(f"goal: end to end >= {GOAL_FPS_640x480:g} frames/s at 640x480: {rate:.1f} frames/s steady "
                      f"({'met' if rate >= GOAL_FPS_640x480 else 'NOT met'})")


if __name__ == "__main__":
    run_cli(main)
