"""Rendering speed of `common.visualization.render_animation` (goal: >= 10 frames/s for a 600x600 video).

    python benchmarks/bench_render.py [--video ../shared/data/video/dancer.mp4] [--frames 60] [--panels 2]

Renders the input video with a synthetic 2D/3D skeleton (a walking stick figure; the drawing cost does not depend
on the pose) into a temporary MP4 and prints frames/s. Without a video, a black 600x600 background is used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from common.core.errors import run_cli  # noqa: E402
from common.geometry.skeleton import h36m_17  # noqa: E402
from common.video.rendering import render_animation  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "video" / "dancer.mp4"

# A standing H36M-17 pose (metres, z up): hips, legs, spine, head, arms.
STANDING = np.array([
    [0, 0, 1.0], [-0.12, 0, 1.0], [-0.13, 0.02, 0.55], [-0.13, 0, 0.1], [0.12, 0, 1.0], [0.13, 0.02, 0.55],
    [0.13, 0, 0.1], [0, 0, 1.25], [0, 0, 1.5], [0, -0.05, 1.6], [0, 0, 1.72], [0.18, 0, 1.48], [0.25, 0, 1.2],
    [0.3, -0.05, 0.95], [-0.18, 0, 1.48], [-0.25, 0, 1.2], [-0.3, -0.05, 0.95],
], dtype=np.float32)  # fmt: skip


def synthetic_sequence(num_frames: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A swaying pose: ``(T, 17, 2)`` pixels and ``(T, 17, 3)`` metres."""
    phase = np.linspace(0, 4 * np.pi, num_frames, dtype=np.float32)[:, None]
    poses = np.repeat(STANDING[None], num_frames, axis=0)
    poses[:, 11:17, 1] += 0.2 * np.sin(phase)
    poses[:, :, 0] += 0.1 * np.sin(phase / 2)
    scale = 0.8 * height / 1.8
    keypoints = np.stack([width / 2 + poses[..., 0] * scale, height * 0.95 - poses[..., 2] * scale], axis=-1)
    return keypoints, poses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(DEFAULT_VIDEO), help="input video ('' for a black background)")
    parser.add_argument("--frames", type=int, default=60, help="frames to render")
    parser.add_argument("--panels", type=int, default=1, help="number of 3D panels (2 = with ground truth)")
    parser.add_argument("--size", type=float, default=6, help="panel size in inches (100 px per inch)")
    parser.add_argument("--output", default="mp4", choices=("mp4", "gif"), help="output format")
    args = parser.parse_args()
    video = args.video if args.video and Path(args.video).is_file() else None
    keypoints, poses = synthetic_sequence(args.frames, 600, 600)
    panels = {f"Panel {i + 1}": poses for i in range(args.panels)}
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / f"bench.{args.output}"
        start = time.perf_counter()
        written = render_animation(keypoints, panels, h36m_17(), 20, output, viz_size=args.size,
                                   input_video_path=video, resolution=(600, 600), limit=args.frames, progress=False)
        seconds = time.perf_counter() - start
        size_kb = output.stat().st_size / 1e3
    print(f"render: {written} frames, 1 input + {args.panels} 3D panel(s) of {args.size * 100:.0f} px, "
          f"video={'yes' if video else 'no'}, {args.output}: {seconds:.2f} s = {written / seconds:.1f} frames/s "
          f"({size_kb:.0f} kB)")


if __name__ == "__main__":
    run_cli(main)
