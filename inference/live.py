"""Live 3D: lift each frame as it arrives, from a camera or a video file played as if live, and write the overlay.

    python inference/live.py SOURCE [--output live.mp4] [--checkpoint FILE_OR_NAME] [--delay D] [--max-frames N]

SOURCE is a camera's device index (``0``) or a video file. Every frame is read, its person detected (MediaPipe by
default), converted to the model's 17 joints and pushed into a streaming lifter (`common.evaluation.streaming`) that
returns the 3D of the frame ``--delay`` frames back: 0 (the newest frame) for a causal model (``run.py --causal``), F//2
(a centred window) for any other model by default. The overlay (2D skeleton on the frame, 3D skeleton in a corner inset;
`common.video.live_pipeline`) is written to ``--output`` (temporary name, then renamed) and shown in a window with
``--show`` when a display exists. At the end it prints the mean and p95 latency of every stage (read, detect, lift,
draw, write) and the end-to-end frames/s. The stream ends at its end, after ``--max-frames``, at Ctrl-C or at ``q`` in
the window; the frames still waiting for their 3D are then lifted and written, so the output has every frame that was
read.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from argparse import BooleanOptionalAction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common.cli.compute import apply_thread_policy, resolve_device  # noqa: E402
from common.cli.model_setup import LoadedModel, load_video_lifter  # noqa: E402
from common.cli.run_arguments import non_negative_int, positive_float, positive_int  # noqa: E402
from common.core.errors import run_cli  # noqa: E402
from common.evaluation.streaming import check_delay, default_delay  # noqa: E402
from common.geometry.skeleton import h36m_17  # noqa: E402
from common.model import pretrained  # noqa: E402
from common.video.detectors import DETECTORS, make_detector  # noqa: E402
from common.video.live_pipeline import (  # noqa: E402
    OverlayDrawer,
    WindowSink,
    display_available,
    make_streaming_lifter,
    open_source,
    run_live,
)
from common.video.video_io import VideoWriter  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", metavar="SOURCE",
                        help="a camera's device index (0, 1, ...) or a video file (played frame by frame as if live; "
                             "a file called like a number: ./0)")
    parser.add_argument("--output", default="live.mp4", metavar="FILE",
                        help="overlay video, .mp4 or .gif (default: %(default)s)")
    parser.add_argument("--checkpoint", default=pretrained.DEFAULT_LIVE_MODEL, metavar="FILE_OR_NAME",
                        help=f"lifting model: a shipped model's name ({', '.join(sorted(pretrained.PRETRAINED))}), a "
                             f"run.py checkpoint or an official MixSTE one (default: the shipped causal model "
                             f"{pretrained.DEFAULT_LIVE_MODEL})")
    parser.add_argument("--delay", default=None, type=non_negative_int, metavar="D",
                        help="frames between the newest frame and the frame whose 3D is drawn, 0 .. F//2 (default: 0 "
                             "for a causal model, F//2 otherwise: a window centred on the frame)")
    parser.add_argument("--max-frames", default=None, type=positive_int, metavar="N",
                        help="stop after N frames (default: at the end of the stream, Ctrl-C or q in the window)")
    parser.add_argument("--detector", default="mediapipe", choices=sorted(DETECTORS), help="2D pose detector")
    parser.add_argument("--flip-tta", action=BooleanOptionalAction, default=False,
                        help="average each prediction with that of the flipped input (off by default here: it "
                             "doubles the lifting time)")
    parser.add_argument("--show", action="store_true",
                        help="also show the overlay in a window (only where a display exists; q or Esc stops)")
    parser.add_argument("--device", default=None, help="torch device for lifting: cpu, cuda or cuda:N (default: cuda "
                                                       "if available)")
    parser.add_argument("--threads", default=None, type=positive_int, metavar="N",
                        help="CPU threads for lifting (default: 1 for small models, torch's default for large ones)")
    parser.add_argument("--bitrate", default=None, type=positive_float, metavar="KBITS",
                        help="MP4 bitrate in kbit/s (default: a quality-based one)")
    return parser


def load_live_model(checkpoint: str, log=print) -> LoadedModel:
    """The model of ``--checkpoint`` (a shipped model's name or a checkpoint file; by default the shipped causal
    model `common.model.pretrained.DEFAULT_LIVE_MODEL`); it must take 17 joints with (x, y) inputs."""
    return load_video_lifter(checkpoint, "live lifting", log)


def choose_delay(requested: int | None, num_frames: int, causal: bool, log=print) -> int:
    """``--delay`` checked against the model (UserError outside [0, F//2]), by default `default_delay`."""
    if requested is None:
        return default_delay(num_frames, causal)
    delay = check_delay(requested, num_frames, "--delay")
    if not causal and delay < num_frames // 2:
        log(f"note: --delay {delay} with a non-causal model: it sees only {delay} future frame(s) of the drawn frame, "
            f"fewer than in training (a centred window needs --delay {num_frames // 2})")
    return delay


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    with contextlib.ExitStack() as stack:
        source = open_source(args.source)
        stack.callback(source.close)
        # the output name and folder are checked (and its temporary file reserved) before the model loads
        writer = stack.enter_context(VideoWriter(args.output, source.fps, args.bitrate))
        loaded = load_live_model(args.checkpoint)
        loaded.model.to(device)
        apply_thread_policy(args.threads, loaded.config, device, print)
        config = loaded.config
        delay = choose_delay(args.delay, config.num_frames, config.causal)
        lifter = make_streaming_lifter(loaded.model, config.num_frames, device, args.flip_tta, delay, loaded.path)
        detector = make_detector(args.detector)
        sinks = [writer.write]
        if args.show and not display_available():
            print("--show: no display here (DISPLAY is not set); the video is only written")
        elif args.show:
            window = WindowSink(log=print)
            stack.callback(window.close)
            sinks.append(window)
        print(f"live: {source.name} ({source.width}x{source.height}, {source.fps:.1f} frames/s), "
              f"{'causal' if config.causal else 'non-causal'} {config.num_frames}-frame model, delay {delay} frames, "
              f"flip TTA {'on' if args.flip_tta else 'off'}, detector {detector.name}")
        drawer = OverlayDrawer(h36m_17(), source.width, source.height)
        stats = run_live(source, detector, lifter, drawer, sinks, max_frames=args.max_frames)
    print(f"wrote {args.output}: {writer.num_frames} frames")
    for line in stats.report(source.fps, delay):
        print(line)


if __name__ == "__main__":
    run_cli(main)
