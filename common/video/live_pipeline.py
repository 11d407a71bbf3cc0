"""Live 3D: frames in one at a time (a video file played as if live, or a camera), an overlay video out.

- `open_source(text)`: a camera (an integer device index, OpenCV ``VideoCapture``) or a video file (decoded by
  `common.video.video_io`), as a `FrameSource` of RGB frames;
- `OverlayDrawer`: the fast drawer (OpenCV, no matplotlib): the 2D skeleton on the frame and the 3D skeleton in a
  corner inset, an orthographic view of the camera-space pose after a fixed rotation;
- `make_streaming_lifter`: the `common.evaluation.streaming.StreamingLifter` of a Human3.6M-17 model;
- `run_live`: per frame, detect (`common.video.detectors`, one person followed by `PersonTracker`), convert COCO to
  the model's tokens (`to_h36m17` then `normalize_screen_coordinates`, as ``video_to_3d.py`` converts), push into a
  `common.evaluation.streaming.StreamingLifter`, and draw and hand to the sinks (video writer, window) each frame
  whose 3D is ready. Every frame read is handed on exactly once, in order. Returns `LiveStats` (per-stage latency).

Frames without a detected person: once a person has been seen, the last detected 2D pose is carried forward (the
lifter keeps its one-pose-per-frame stream, the overlay draws the held 2D in grey and says so); before the first
detection there is nothing to lift and the frame is handed on with a note only. Ctrl-C during `run_live` ends the
stream like its natural end (the frames still due are lifted and written); a second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.core.errors import UserError
from common.evaluation.protocols import PredictSettings, model_predict_fn
from common.evaluation.streaming import StreamingLifter
from common.geometry.camera import normalize_screen_coordinates
from common.geometry.keypoint_layouts import get_layout, to_h36m17
from common.geometry.skeleton import Skeleton, h36m_17
from common.video.detectors import PoseDetector
from common.video.tracking import PersonTracker
from common.video.video_io import read_video_frames, video_metadata

CAMERA_DEFAULT_FPS = 30.0
"""Frame rate written for a camera that does not report a plausible one."""
STAGES = ("read", "detect", "lift", "draw", "write")
"""The timed stages of `run_live`, in order (``lift``: predictions only, the pushes that return nothing are free)."""

# Colours (RGB) of the rendered videos (common/video/rendering.py): right side red, left blue, centre grey.
RIGHT_RGB, LEFT_RGB, CENTER_RGB = (214, 39, 40), (31, 95, 214), (200, 200, 200)
HELD_RGB = (150, 150, 150)
JOINT_RGB = (255, 208, 0)
INSET_FRACTION = 0.36
"""Side of the square 3D inset, as a fraction of the frame's smaller side."""
INSET_AZIMUTH_DEG, INSET_ELEVATION_DEG = 60.0, 15.0
"""The inset's fixed view: the camera-space pose turned about the vertical axis, then tilted to look down."""
INSET_HALF_SIZE_M = 1.1
"""Metres from the inset's centre (the root joint) to its edge."""
_SHIFT = 4  # OpenCV fixed-point coordinates: 4 fractional bits (sub-pixel, anti-aliased lines)


# --- sources ---------------------------------------------------------------------------------------------------------


@dataclass
class FrameSource:
    """Frames of a video file or a camera: ``frames`` yields ``(h, w, 3)`` uint8 RGB arrays until the stream ends."""

    name: str
    width: int
    height: int
    fps: float
    frames: Iterator[np.ndarray]
    camera: bool = False
    _close: Callable[[], object] | None = None

    def close(self) -> None:
        """Release the file or the camera (also when the stream was not read to its end)."""
        if self._close is not None:
            self._close()
            self._close = None


def camera_index(text: str) -> int | None:
    """The device index when ``text`` is a non-negative integer (a camera), else None (a file; ``./0`` is a file)."""
    return int(text) if re.fullmatch(r"\d+", text.strip()) else None


def open_source(text: str) -> FrameSource:
    """A camera for an integer (`open_camera`), else a video file (`open_video_file`); UserError when unusable."""
    index = camera_index(text)
    return open_video_file(text) if index is None else open_camera(index)


def open_video_file(path: str | os.PathLike) -> FrameSource:
    """A video file, played frame by frame as if it were live (UserError naming a missing or unreadable file)."""
    path = Path(path)
    meta = video_metadata(path)
    frames = read_video_frames(path)
    return FrameSource(str(path), meta["w"], meta["h"], meta["fps"], frames, camera=False, _close=frames.close)


def _import_cv2():
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # a missing camera: our one line, not its WARNs
    return cv2


def open_camera(index: int) -> FrameSource:
    """Camera ``index`` through OpenCV; UserError (one line) when it cannot be opened or gives no frame."""
    cv2 = _import_cv2()
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        capture.release()
        raise UserError(f"camera {index}: cannot be opened (no such device, in use by another program, or no "
                        "permission); give another device index or a video file")
    ok, first = capture.read()
    if not ok or first is None:
        capture.release()
        raise UserError(f"camera {index}: opened, but it gives no frames")
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if 1.0 <= fps <= 240.0 else CAMERA_DEFAULT_FPS

    def frames() -> Iterator[np.ndarray]:
        frame = first
        try:
            while frame is not None:
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                ok, frame = capture.read()
                frame = frame if ok else None
        finally:
            capture.release()

    stream = frames()

    def close() -> None:
        stream.close()
        capture.release()

    height, width = first.shape[:2]
    return FrameSource(f"camera {index}", int(width), int(height), fps, stream, camera=True, _close=close)


def display_available() -> bool:
    """Whether a window can be shown: always on Windows and macOS, with an X11 or Wayland display elsewhere."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class WindowSink:
    """Shows each frame in an OpenCV window; ``q`` or Esc in the window ends the stream (the call returns True).

    An OpenCV build without windows (``opencv-python-headless``) is reported once through ``log`` and then skipped.
    """

    def __init__(self, title: str = "live 3D", log: Callable[[str], object] = print) -> None:
        self.title, self.log, self.closed = title, log, False

    def __call__(self, frame_rgb: np.ndarray) -> bool:
        if self.closed:
            return False
        cv2 = _import_cv2()
        try:
            cv2.imshow(self.title, cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as error:
            self.closed = True
            self.log(f"--show: this OpenCV cannot open windows ({str(error).strip().splitlines()[-1][:100]}); "
                     "the video is still written")
            return False
        return key in (ord("q"), 27)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                _import_cv2().destroyWindow(self.title)
            self.closed = True


# --- drawing ---------------------------------------------------------------------------------------------------------


def _side_rgb(skeleton: Skeleton) -> list[tuple[int, int, int]]:
    """Colour of every bone ``(child, parent)``: the child's side, or the parent's when the child is central."""
    left, right = set(skeleton.joints_left()), set(skeleton.joints_right())
    colours = []
    for child, parent in skeleton.bones():
        joint = child if child in left or child in right else parent
        colours.append(RIGHT_RGB if joint in right else LEFT_RGB if joint in left else CENTER_RGB)
    return colours


def view_rotation(azimuth_deg: float = INSET_AZIMUTH_DEG, elevation_deg: float = INSET_ELEVATION_DEG) -> np.ndarray:
    """``(3, 3)`` rotation of camera-space points (x right, y down, z forward): about the vertical (y) axis by the
    azimuth, then about the horizontal (x) axis by the elevation; the inset drops the rotated z (orthographic)."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    about_y = np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    about_x = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(e), -math.sin(e)], [0.0, math.sin(e), math.cos(e)]])
    return (about_x @ about_y).astype(np.float32)


class OverlayDrawer:
    """Draws onto a copy of each frame: the 2D skeleton (pixels) and, in the top-right inset, the 3D skeleton.

    The inset shows the camera-space 3D relative to its root joint, rotated by `view_rotation` and projected
    orthographically (``INSET_HALF_SIZE_M`` metres from the centre to the edge), right side red, left blue.
    """

    def __init__(self, skeleton: Skeleton, width: int, height: int, rotation: np.ndarray | None = None) -> None:
        self.bones = np.array(skeleton.bones(), dtype=np.int64).reshape(-1, 2)
        self.colours = _side_rgb(skeleton)
        self.width, self.height = int(width), int(height)
        side = max(int(round(min(width, height) * INSET_FRACTION)), 16)
        self.inset = (0, min(side, height), max(width - side, 0), width)  # top, bottom, left, right
        self.rotation = view_rotation() if rotation is None else np.asarray(rotation, np.float32)
        self.scale = side / (2.0 * INSET_HALF_SIZE_M)  # pixels per metre
        self.thickness = max(1, int(round(min(width, height) / 240)))

    def draw(self, frame: np.ndarray, joints_2d: np.ndarray | None, pose_3d: np.ndarray | None,
             held: bool = False, note: str | None = None) -> np.ndarray:
        """The overlay of one RGB frame: ``joints_2d (J, 2)`` pixels, ``pose_3d (J, 3)`` camera space (None: not
        drawn), ``held``: the 2D was carried forward from an earlier frame (drawn grey), ``note``: a line of text."""
        cv2 = _import_cv2()
        image = np.array(frame, dtype=np.uint8, copy=True, order="C")
        if joints_2d is not None:
            colours = [HELD_RGB] * len(self.colours) if held else self.colours
            self._skeleton(cv2, image, np.asarray(joints_2d, np.float32), colours, self.thickness + 1)
        if pose_3d is not None:
            top, bottom, left, right = self.inset
            region = image[top:bottom, left:right]
            region >>= 2  # darken the inset background (a quarter of the brightness)
            pose = np.asarray(pose_3d, np.float32)
            projected = (pose - pose[:1]) @ self.rotation.T
            centre = np.array([(left + right) / 2.0, (top + bottom) / 2.0], np.float32)
            self._skeleton(cv2, image, projected[:, :2] * self.scale + centre, self.colours, self.thickness)
        if held:
            note = note or "no person detected: last pose held"
        if note:  # white on a black outline: readable on any background
            scale, origin = 0.45 * self.thickness, (8, self.height - 10)
            for colour, extra in (((0, 0, 0), 2), ((255, 255, 255), 0)):
                cv2.putText(image, note, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, self.thickness + extra,
                            cv2.LINE_AA)
        return image

    def _skeleton(self, cv2, image: np.ndarray, points: np.ndarray, colours, thickness: int) -> None:
        if not np.isfinite(points).all():
            return
        fixed = np.round(points * (1 << _SHIFT)).astype(np.int64)
        for (child, parent), colour in zip(self.bones, colours):
            cv2.line(image, tuple(map(int, fixed[child])), tuple(map(int, fixed[parent])), colour, thickness,
                     cv2.LINE_AA, _SHIFT)
        for point in fixed:
            cv2.circle(image, tuple(map(int, point)), (thickness + 1) << _SHIFT, JOINT_RGB, -1, cv2.LINE_AA, _SHIFT)


# --- the loop --------------------------------------------------------------------------------------------------------


def make_streaming_lifter(model, num_frames: int, device, flip_tta: bool, delay: int,
                          source: str | os.PathLike = "the model") -> StreamingLifter:
    """A `StreamingLifter` of a Human3.6M-17 model with the evaluation's prediction function and flip settings
    (``video_to_3d.py``'s), ``source`` naming the checkpoint in errors."""
    skeleton, layout = h36m_17(), get_layout("h36m")
    settings = PredictSettings(num_frames=num_frames, counting="once", flip_tta=flip_tta,
                               kps_left=tuple(layout.left), kps_right=tuple(layout.right),
                               joints_left=tuple(skeleton.joints_left()), joints_right=tuple(skeleton.joints_right()))
    return StreamingLifter(model_predict_fn(model, device, source), settings, delay)


def coco_to_model_input(keypoints: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """One person's COCO keypoints ``(17, >=2)`` pixels -> ``(pixels (17, 2), normalized (17, 2))`` in the model's
    Human3.6M token order (the conversion of ``inference/video_to_3d.py``: `to_h36m17`, then screen normalization)."""
    pixels = to_h36m17(np.asarray(keypoints, np.float32)[None, :, :2], "coco")[0]
    return pixels, normalize_screen_coordinates(pixels, w=width, h=height).astype(np.float32)


@dataclass
class LiveStats:
    """What `run_live` did: frame counts, why it stopped, wall time and the per-stage times (milliseconds)."""

    frames: int = 0  # frames read (each one handed to the sinks once)
    detected: int = 0  # frames where the tracked person was found
    held: int = 0  # frames lifted with the last detected pose carried forward
    unlifted: int = 0  # frames before the first detection (nothing to lift)
    seconds: float = 0.0  # wall time from the first read to the last write
    stopped: str = "end of stream"
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {stage: [] for stage in STAGES})

    def record(self, stage: str, start: float) -> None:
        self.stage_ms[stage].append((time.perf_counter() - start) * 1000.0)

    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)

    def report(self, source_fps: float, delay: int) -> list[str]:
        """The printed summary: mean and p95 latency of every stage, end-to-end frames/s against the source's rate,
        and the delay of the 3D."""
        lines = [f"{'latency per frame (ms)':<24}{'mean':>8}{'p95':>8}   calls"]
        for stage in STAGES:
            times = np.asarray(self.stage_ms[stage])
            if len(times):
                lines.append(f"  {stage:<22}{times.mean():>8.2f}{np.percentile(times, 95):>8.2f}   {len(times)}")
            else:
                lines.append(f"  {stage:<22}{'-':>8}{'-':>8}   0")
        rate = self.frames_per_second()
        pace = "faster" if rate >= source_fps else "slower"
        lines.append(f"end to end: {self.frames} frames in {self.seconds:.2f} s, {rate:.1f} frames/s (the source "
                     f"runs at {source_fps:.1f} frames/s: {pace} than real time); stopped: {self.stopped}")
        lines.append(f"person found in {self.detected} of {self.frames} frames ({self.held} lifted with the last pose "
                     f"held, {self.unlifted} before the first detection); 3D delay {delay} frames "
                     f"({delay / max(source_fps, 1e-9) * 1000:.0f} ms at {source_fps:.1f} frames/s)")
        return lines


@contextlib.contextmanager
def ctrl_c_ends_stream():
    """Within the block, the first Ctrl-C (SIGINT) only sets a flag (the yielded function returns True after it);
    a second one interrupts as usual. Outside the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hits: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    restore = previous if previous is not None else signal.default_int_handler

    def handler(signum, frame) -> None:
        hits.append(signum)
        signal.signal(signal.SIGINT, restore)

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(hits)
    finally:
        signal.signal(signal.SIGINT, restore)


def run_live(source: FrameSource, detector: PoseDetector, lifter: StreamingLifter, drawer: OverlayDrawer,
             sinks: Sequence[Callable[[np.ndarray], object]], max_frames: int | None = None,
             tracker: PersonTracker | None = None) -> LiveStats:
    """Read, detect, lift, draw and hand on every frame of ``source`` (see the module docstring).

    ``sinks`` get each overlay frame in order (a sink returning True ends the stream, e.g. ``q`` in a window); the
    stream also ends after ``max_frames`` frames, at its end, or at Ctrl-C. The frames still waiting for their 3D
    (the lifter's delay) are then lifted (`StreamingLifter.flush`) and handed on, so every frame read is handed on.
    """
    tracker = tracker or PersonTracker()
    tracker.reset()
    detector.reset()
    lifter.reset()
    stats = LiveStats()
    pending: deque[tuple[np.ndarray, np.ndarray, bool]] = deque()  # frames waiting for their 3D: frame, 2D px, held
    last_pixels: np.ndarray | None = None  # the last detected 2D: pixels (drawn) and normalized (lifted)
    last_normalized: np.ndarray | None = None
    stop_requested = False

    def emit(frame: np.ndarray, pixels: np.ndarray | None, pose: np.ndarray | None, held: bool) -> None:
        nonlocal stop_requested
        start = time.perf_counter()
        image = drawer.draw(frame, pixels, pose, held, None if pixels is not None else "waiting for a person")
        stats.record("draw", start)
        start = time.perf_counter()
        for sink in sinks:
            stop_requested = bool(sink(image)) or stop_requested
        stats.record("write", start)

    begin = time.perf_counter()
    frames = iter(source.frames)
    with ctrl_c_ends_stream() as interrupted:
        while True:
            if stop_requested:
                stats.stopped = "window closed"
                break
            if interrupted():
                stats.stopped = "Ctrl-C"
                break
            if max_frames is not None and stats.frames >= max_frames:
                stats.stopped = f"--max-frames {max_frames}"
                break
            start = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                break
            stats.record("read", start)
            stats.frames += 1

            start = time.perf_counter()
            person = tracker.update(detector.detect(frame))
            held = person is None and last_pixels is not None
            if person is not None:
                last_pixels, last_normalized = coco_to_model_input(person.keypoints, source.width, source.height)
                stats.detected += 1
            stats.record("detect", start)
            if last_pixels is None:  # nobody seen yet: nothing to lift, and no frame waits before this one
                stats.unlifted += 1
                emit(frame, None, None, False)
                continue
            stats.held += held
            pending.append((frame, last_pixels, held))

            start = time.perf_counter()
            pose = lifter.push(last_normalized)
            if pose is not None:
                stats.record("lift", start)
                _emit_next(emit, pending, pose)
        start = time.perf_counter()
        poses = lifter.flush()
        if poses:
            per_pose = (time.perf_counter() - start) * 1000.0 / len(poses)
            stats.stage_ms["lift"].extend([per_pose] * len(poses))
        for pose in poses:
            _emit_next(emit, pending, pose)
    stats.seconds = time.perf_counter() - begin
    return stats


def _emit_next(emit: Callable, pending: deque, pose: np.ndarray) -> None:
    frame, pixels, held = pending.popleft()
    emit(frame, pixels, pose, held)
