"""Interactive 3D viewer: ONE self-contained HTML file (no network) that plays the 3D skeleton(s) in a browser.

The page (`write_viewer_html`) shows the 2D input panel (2D keypoints over small video thumbnails when frames are
given) and one 3D panel per pose sequence (e.g. the reconstruction and the ground truth), with play/pause, a frame
slider, a speed menu, orbit (drag) and zoom (mouse wheel) shared by all 3D panels, and the colours of the rendered
video (right red, left blue, centre dark grey: `common.video.rendering`). The drawing code is plain 2D canvas
JavaScript (``viewer.js`` next to this module) inlined in the page together with the data: the poses as base64
float32 arrays and the thumbnails as base64 JPEGs.

Size cap: thumbnails are downscaled to at most `THUMBNAIL_MAX_SIDE` (160) pixels on their longer side and take at
most `THUMBNAIL_BUDGET` (4 MB) of base64 text in the page: when a video would need more, only every 2nd, 4th, ...
frame gets a thumbnail (the panel shows the latest one). 100 frames of 17 joints with thumbnails make about 0.3-0.6 MB.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from common.core.files import atomic_write
from common.geometry.skeleton import Skeleton
from common.video.rendering import ELEVATION, RADIUS, _bone_side, _side_colors

THUMBNAIL_MAX_SIDE = 160
THUMBNAIL_BUDGET = 4_000_000
"""Most bytes of base64 JPEG text the thumbnails may take in the page."""
THUMBNAIL_QUALITY = 75
PANEL_PX = 420
_SCRIPT = Path(__file__).with_name("viewer.js")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 12px; color: #222; }}
#panels {{ display: flex; flex-wrap: wrap; gap: 8px; }}
#panels canvas {{ border: 1px solid #ccc; touch-action: none; }}
#controls {{ display: flex; align-items: center; gap: 10px; margin-top: 8px; }}
#frame {{ flex: 1; max-width: 900px; }}
.hint {{ color: #666; font-size: 13px; }}
</style>
</head>
<body>
<h3>{title}</h3>
<div id="panels"></div>
<div id="controls">
<button id="play" type="button">Play</button>
<input id="frame" type="range" min="0" max="0" value="0" step="1" aria-label="frame">
<span id="frame-label"></span>
<label>speed <select id="speed">
<option value="0.25">0.25x</option><option value="0.5">0.5x</option><option value="1" selected>1x</option>
<option value="2">2x</option><option value="4">4x</option></select></label>
<button id="reset-view" type="button">Reset view</button>
</div>
<p class="hint">Drag a 3D panel to rotate, mouse wheel to zoom; space: play/pause, arrow keys: step.
Right side red, left side blue. Metres, z up; {fps:g} frames/s.</p>
<script id="viewer-data" type="application/json">{data}</script>
<script>{script}</script>
</body>
</html>
"""


@dataclass(frozen=True)
class ViewerSummary:
    """What `write_viewer_html` wrote."""

    path: Path
    size_bytes: int
    num_frames: int
    thumbnails: int
    thumbnail_stride: int
    thumbnail_bytes: int

    def describe(self) -> str:
        text = f"{self.path}: {self.num_frames} frames, {self.size_bytes / 1e6:.2f} MB"
        if self.thumbnails:
            text += (f" ({self.thumbnails} thumbnails of <= {THUMBNAIL_MAX_SIDE} px, one every {self.thumbnail_stride} "
                     f"frame(s), {self.thumbnail_bytes / 1e6:.2f} MB of the {THUMBNAIL_BUDGET / 1e6:.0f} MB cap)")
        return text


def _float32_base64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def _jpeg_base64(frame: np.ndarray) -> str:
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    image.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def video_thumbnails(frames: Iterable[np.ndarray], num_frames: int) -> tuple[list[str], int, tuple[int, int] | None]:
    """Base64 JPEG thumbnails of the first ``num_frames`` frames within `THUMBNAIL_BUDGET`.

    Returns ``(thumbnails, stride, (w, h) of the frames)``: thumbnail ``k`` shows frame ``k * stride``; the stride
    doubles (dropping every other thumbnail) whenever the budget would be exceeded.
    """
    thumbnails: list[str] = []
    stride, total, size = 1, 0, None
    for index, frame in enumerate(frames):
        if index >= num_frames:
            getattr(frames, "close", lambda: None)()  # stop decoding a video generator now
            break
        if size is None:
            size = (int(frame.shape[1]), int(frame.shape[0]))
        if index % stride:
            continue
        thumbnails.append(_jpeg_base64(frame))
        total += len(thumbnails[-1])
        while total > THUMBNAIL_BUDGET and len(thumbnails) > 1:
            thumbnails = thumbnails[::2]
            stride *= 2
            total = sum(len(t) for t in thumbnails)
    return thumbnails, stride, size


def _keypoint_extent(keypoints_2d: np.ndarray, resolution: tuple[int, int] | None) -> list[float]:
    """``[x0, y0, x1, y1]`` of the 2D panel: the frame, or the keypoints' bounding box with a margin."""
    if resolution is not None:
        return [0.0, 0.0, float(resolution[0]), float(resolution[1])]
    finite = keypoints_2d[np.isfinite(keypoints_2d).all(axis=-1)]
    if len(finite) == 0:
        return [0.0, 0.0, 1.0, 1.0]
    low, high = finite.min(axis=0), finite.max(axis=0)
    margin = 0.1 * float(max(high - low)) + 1.0
    return [float(low[0] - margin), float(low[1] - margin), float(high[0] + margin), float(high[1] + margin)]


def _check_shapes(poses: Mapping[str, np.ndarray], skeleton: Skeleton, keypoints_2d: np.ndarray | None) -> int:
    if not poses:
        raise ValueError("no pose sequence to show")
    num_frames = len(next(iter(poses.values())))
    for name, pose in poses.items():
        if np.shape(pose) != (num_frames, skeleton.num_joints(), 3) or num_frames == 0:
            raise ValueError(f"pose sequence {name!r} has shape {np.shape(pose)}, expected "
                             f"({num_frames}, {skeleton.num_joints()}, 3) with at least one frame")
    if keypoints_2d is not None and np.shape(keypoints_2d) != (num_frames, skeleton.num_joints(), 2):
        raise ValueError(f"2D keypoints of shape {np.shape(keypoints_2d)}, expected "
                         f"({num_frames}, {skeleton.num_joints()}, 2) like the poses")
    return num_frames


def write_viewer_html(
    path: str | os.PathLike,
    poses: Mapping[str, np.ndarray],
    skeleton: Skeleton,
    fps: float,
    *,
    keypoints_2d: np.ndarray | None = None,
    frames: Iterable[np.ndarray] | None = None,
    resolution: tuple[int, int] | None = None,
    azimuth: float = 70.0,
    title: str = "3D poses",
) -> ViewerSummary:
    """Write the self-contained viewer page to ``path`` (atomically) and return what it holds.

    Args:
        poses: panel title -> ``(T, J, 3)`` world-aligned poses (z up, metres; see `poses_for_display`).
        skeleton: skeleton of the poses (bones, left/right colours) and of the 2D keypoints.
        fps: frame rate of the sequence (playback at speed 1).
        keypoints_2d: ``(T, J, 2)`` pixels of the input video, shown in the 2D panel (None: no 2D panel).
        frames: the input video's RGB frames aligned with the poses (e.g. `read_video_frames`), embedded as thumbnails
            within the size cap of the module docstring; they also give the 2D panel's resolution.
        resolution: ``(w, h)`` of the 2D coordinate frame when no frames are given (None: the keypoints' extent).
        azimuth: initial viewing azimuth in degrees (the dataset camera's, as for the rendered video).
    """
    num_frames = _check_shapes(poses, skeleton, keypoints_2d)
    if frames is not None and keypoints_2d is None:
        raise ValueError("video frames are shown in the 2D panel: give keypoints_2d with them")
    bones = skeleton.bones()
    left, right = skeleton.joints_left(), skeleton.joints_right()
    data = {
        "numFrames": num_frames, "numJoints": skeleton.num_joints(), "fps": float(fps), "radius": RADIUS,
        "azimuth": float(azimuth), "elevation": ELEVATION, "panelPx": PANEL_PX, "bones": bones,
        "boneColors": _side_colors([child for child, _ in bones], left, right),
        "panels": [{"name": name, "poses": _float32_base64(pose)} for name, pose in poses.items()],
        "keypoints2d": None, "thumbnails": None,
    }
    thumbnails, stride = [], 1
    if keypoints_2d is not None:
        if frames is not None:
            thumbnails, stride, frame_size = video_thumbnails(frames, num_frames)
            resolution = frame_size or resolution
        keypoints_2d = np.asarray(keypoints_2d, dtype=np.float32)
        data["keypoints2d"] = {
            "data": _float32_base64(keypoints_2d), "numJoints": skeleton.num_joints(), "bones": bones,
            "boneColors": _side_colors([_bone_side(a, b, left, right) for a, b in bones], left, right),
            "extent": _keypoint_extent(keypoints_2d, resolution),
        }
        if thumbnails:
            data["thumbnails"] = {"stride": stride, "images": thumbnails}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    page = _PAGE.format(title=html.escape(title), fps=float(fps), data=payload,
                        script=_SCRIPT.read_text(encoding="utf-8"))
    written = atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return ViewerSummary(written, written.stat().st_size, num_frames, len(thumbnails), stride,
                         sum(len(t) for t in thumbnails))

