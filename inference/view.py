"""Open exported 3D poses in the interactive viewer: one self-contained HTML page (no network needed).

    python inference/view.py PREDICTION.npy --output NAME.html [--fps 50] [--keypoints-2d FILE] [--video VIDEO]

PREDICTION.npy holds camera-space poses ``(T, 17, 3)`` in metres (the ``.npy`` export of ``video_to_3d.py`` or of
``run.py --viz-export``); they are put upright like the rendered videos of custom videos (the nominal camera of
`common.datasets.custom`). ``--keypoints-2d`` adds the 2D panel: the video's 2D detections (the ``.npz`` of
``video_to_3d.py --detections-dir`` or ``infer_video.py``, COCO keypoints) or a ``.npy`` ``(T, 17, 2)`` of pixels in
the Human3.6M order; ``--video`` shows the video's frames in it as small thumbnails (see `common.video.viewer` for the
size cap).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from common.core.errors import UserError, run_cli  # noqa: E402
from common.datasets.custom import nominal_camera  # noqa: E402
from common.datasets.detections import read_detections  # noqa: E402
from common.geometry.keypoint_layouts import to_h36m17  # noqa: E402
from common.geometry.skeleton import h36m_17  # noqa: E402
from common.video.rendering import poses_for_display  # noqa: E402
from common.video.video_io import read_video_frames, video_metadata  # noqa: E402
from common.video.viewer import write_viewer_html  # noqa: E402

DEFAULT_FPS = 50.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prediction", metavar="PREDICTION.npy", help="camera-space 3D poses (T, 17, 3) in metres")
    parser.add_argument("--output", required=True, metavar="NAME.html", help="viewer page to write")
    parser.add_argument("--fps", type=float, default=None,
                        help=f"frame rate (default: the video's with --video, else {DEFAULT_FPS:g})")
    parser.add_argument("--keypoints-2d", default=None, metavar="FILE",
                        help="2D keypoints shown in the 2D panel: a detections .npz (COCO, as --detections-dir of "
                             "video_to_3d.py writes) or a .npy (T, 17, 2) of pixels in the Human3.6M order")
    parser.add_argument("--video", default=None, metavar="VIDEO",
                        help="the input video, shown as thumbnails under the 2D keypoints (needs --keypoints-2d)")
    return parser


def load_array(path: str, flag: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 ``.npy`` array of shape ``(T, *shape)``, T > 0, or UserError naming ``flag`` and the file."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{flag} {file}: file not found")
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UserError(f"{flag} {file}: not a readable .npy array ({error})") from None
    if array.ndim != len(shape) + 1 or array.shape[1:] != shape or len(array) == 0:
        raise UserError(f"{flag} {file}: array of shape {array.shape}, expected (T, {', '.join(map(str, shape))})")
    return array.astype(np.float32)


def load_keypoints(path: str, num_frames: int) -> np.ndarray:
    """``(T, 17, 2)`` pixels in the Human3.6M order from a detections ``.npz`` (COCO) or a ``.npy``."""
    if Path(path).suffix.lower() == ".npz":
        keypoints, _ = read_detections(path)
        if keypoints.shape[1] != 17:
            raise UserError(f"--keypoints-2d {path}: {keypoints.shape[1]} keypoints per frame, expected COCO's 17")
        keypoints = to_h36m17(keypoints[..., :2], "coco").astype(np.float32)
    else:
        keypoints = load_array(path, "--keypoints-2d", (17, 2))
    if len(keypoints) != num_frames:
        raise UserError(f"--keypoints-2d {path}: {len(keypoints)} frames, the prediction has {num_frames}")
    return keypoints


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    output = Path(args.output)
    if output.suffix.lower() != ".html":
        raise UserError(f"--output {output}: expected a file name ending in .html")
    skeleton = h36m_17()
    poses = load_array(args.prediction, "PREDICTION", (skeleton.num_joints(), 3))
    keypoints = load_keypoints(args.keypoints_2d, len(poses)) if args.keypoints_2d else None
    if args.fps is not None and args.fps <= 0:
        raise UserError(f"--fps {args.fps:g}: expected a positive frame rate")
    fps, frames, size = args.fps, None, (1000, 1000)  # the nominal camera's orientation does not depend on the size
    if args.video:
        if keypoints is None:
            raise UserError(f"--video {args.video}: the frames are shown under the 2D keypoints: give --keypoints-2d")
        meta = video_metadata(args.video)
        fps, frames, size = fps or meta["fps"], read_video_frames(args.video), (meta["w"], meta["h"])
    camera = nominal_camera(Path(args.prediction).stem, *size)
    summary = write_viewer_html(output, {"Reconstruction": poses_for_display(poses, camera.orientation)}, skeleton,
                                fps or DEFAULT_FPS, keypoints_2d=keypoints, frames=frames, azimuth=camera.azimuth,
                                title=Path(args.prediction).name)
    print(f"wrote {summary.describe()}")


if __name__ == "__main__":
    run_cli(main)
