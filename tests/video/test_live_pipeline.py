"""common/video/live_pipeline.py: sources, the overlay drawer and the frame-by-frame loop (scripted detector, tiny
model)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from common.core.errors import UserError
from common.evaluation.protocols import PredictSettings, model_predict_fn
from common.evaluation.streaming import StreamingLifter
from common.geometry.skeleton import h36m_17
from common.model.config import apply_preset
from common.model.metaformer import build_model
from common.video import detectors
from common.video import live_pipeline as live
from common.video.video_io import VideoWriter

W, H = 96, 64

pytestmark = pytest.mark.usefixtures("one_thread")


class ScriptedDetector:
    """A person at fixed COCO keypoints, except in the frames listed in ``missing`` (1-based call numbers)."""

    name = "scripted"

    def __init__(self, missing=()) -> None:
        self.missing, self.calls = set(missing), 0
        rng = np.random.default_rng(0)
        self.keypoints = np.concatenate([rng.uniform(10, 50, (17, 2)), np.ones((17, 1))], -1).astype(np.float32)

    def reset(self) -> None:
        self.calls = 0

    def detect(self, frame):
        self.calls += 1
        if self.calls in self.missing:
            return []
        return [detectors.Detection(box=np.array([10, 10, 50, 50], np.float32), keypoints=self.keypoints, score=0.9)]


def frames_source(count: int) -> live.FrameSource:
    """Uniform frames whose grey level is 4 * their index."""
    frames = (np.full((H, W, 3), 4 * index, np.uint8) for index in range(count))
    return live.FrameSource("test", W, H, 25.0, frames)


def lifter(delay: int, causal: bool = True) -> StreamingLifter:
    torch.manual_seed(0)
    model = build_model(apply_preset("default", {"num_frames": 9, "embed_dim": 16, "depth": 1, "causal": causal}))
    return StreamingLifter(model_predict_fn(model, torch.device("cpu")), PredictSettings(9, flip_tta=False), delay)


def grey_level(image: np.ndarray) -> int:
    return int(np.median(image))


# --- drawing -------------------------------------------------------------------------------------------------------


def test_view_rotation_is_a_rotation():
    rotation = live.view_rotation()
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(live.view_rotation(0.0, 0.0), np.eye(3), atol=1e-7)
    # azimuth 90: the depth axis (z forward) comes to the screen's horizontal axis
    np.testing.assert_allclose(live.view_rotation(90.0, 0.0) @ [0, 0, 1], [1, 0, 0], atol=1e-6)


def test_overlay_draws_the_skeletons_on_a_copy():
    drawer = live.OverlayDrawer(h36m_17(), 320, 240)
    frame = np.full((240, 320, 3), 100, np.uint8)
    frame.flags.writeable = False  # decoded frames are read-only
    joints = np.random.default_rng(0).uniform(40, 200, (17, 2)).astype(np.float32)
    pose = np.random.default_rng(1).normal(0, 0.3, (17, 3)).astype(np.float32)
    image = drawer.draw(frame, joints, pose)
    assert image.shape == frame.shape and image.dtype == np.uint8 and (frame == 100).all()
    top, bottom, left, right = drawer.inset
    assert (bottom - top, right - left) == (86, 86)  # 0.36 of the smaller side, top right
    inset = image[top:bottom, left:right]
    assert np.median(inset) == 25  # darkened background
    assert (inset != 25).any(axis=-1).sum() > 50  # the 3D skeleton
    assert tuple(image[int(joints[0, 1]), int(joints[0, 0])]) == live.JOINT_RGB  # a 2D joint
    assert ((image != 100).any(axis=-1)[:, :left]).sum() > 200  # 2D bones outside the inset
    held = drawer.draw(frame, joints, None, held=True)
    assert (held[top:bottom, left:right] == 100).all()  # no inset without a 3D pose (the 2D stays left of it)
    right_bone_pixels = np.all(held == live.RIGHT_RGB, axis=-1).sum()
    assert right_bone_pixels == 0  # a held pose is drawn in grey
    assert (drawer.draw(frame, None, None) == 100).all()  # nothing to draw


# --- sources -------------------------------------------------------------------------------------------------------


def test_camera_index_or_file():
    assert live.camera_index("0") == 0 and live.camera_index("12") == 12
    assert live.camera_index("./0") is None and live.camera_index("clip.mp4") is None
    assert live.camera_index("-1") is None


def test_missing_file_and_unopenable_camera_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="nope.mp4: video file not found"):
        live.open_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(UserError, match="camera 57: cannot be opened"):
        live.open_source("57")


def test_video_file_source_plays_every_frame(tmp_path):
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=25) as writer:
        for index in range(7):
            writer.write(np.full((H, W, 3), 30 * index, np.uint8))
    source = live.open_source(str(path))
    assert (source.width, source.height, source.fps, source.camera) == (W, H, 25.0, False)
    levels = [grey_level(frame) for frame in source.frames]
    assert len(levels) == 7 and np.all(np.abs(np.array(levels) - 30 * np.arange(7)) <= 3)
    source.close()


def test_camera_source_converts_bgr_and_releases(monkeypatch):
    import cv2

    class FakeCapture:
        released = False

        def __init__(self, index) -> None:
            self.index, self.left = index, 3

        def isOpened(self):  # noqa: N802 (OpenCV's name)
            return True

        def read(self):
            if self.left == 0:
                return False, None
            self.left -= 1
            frame = np.zeros((H, W, 3), np.uint8)
            frame[..., 0] = 200  # blue in OpenCV's BGR order
            return True, frame

        def get(self, prop):
            return 0.0  # no frame rate reported

        def release(self):
            FakeCapture.released = True

    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    source = live.open_source("3")
    assert (source.name, source.width, source.height, source.fps, source.camera) == ("camera 3", W, H, 30.0, True)
    frames = list(source.frames)
    assert len(frames) == 3 and all((frame[..., 2] == 200).all() and (frame[..., 0] == 0).all() for frame in frames)
    source.close()
    assert FakeCapture.released


# --- the loop ------------------------------------------------------------------------------------------------------


def run(count: int, delay: int, missing=(), max_frames=None, sinks=None):
    written = []
    stats = live.run_live(frames_source(count), ScriptedDetector(missing), lifter(delay),
                          live.OverlayDrawer(h36m_17(), W, H), [written.append, *(sinks or [])],
                          max_frames=max_frames)
    return stats, written


@pytest.mark.parametrize("delay", [0, 3])
def test_every_frame_is_handed_on_once_in_order_whatever_the_delay(delay):
    stats, written = run(20, delay, missing={1, 2, 9, 10, 11})
    assert [grey_level(image) for image in written] == [4 * i for i in range(20)]
    assert (stats.frames, stats.detected, stats.held, stats.unlifted) == (20, 15, 3, 2)
    assert len(stats.stage_ms["lift"]) == 18 and len(stats.stage_ms["draw"]) == len(stats.stage_ms["write"]) == 20
    assert len(stats.stage_ms["read"]) == len(stats.stage_ms["detect"]) == 20 and stats.stopped == "end of stream"
    report = "\n".join(stats.report(25.0, delay))
    assert "  lift " in report and "p95" in report and "end to end: 20 frames" in report
    assert f"3D delay {delay} frames ({delay * 40} ms" in report


def test_the_lifted_3d_is_the_streaming_lifters():
    written = []
    drawer = live.OverlayDrawer(h36m_17(), W, H)
    poses = []
    drawer.draw = lambda frame, pixels, pose, held, note: poses.append(pose) or frame
    live.run_live(frames_source(12), ScriptedDetector(), lifter(2), drawer, [written.append])
    expected_lifter = lifter(2)
    normalized = live.coco_to_model_input(ScriptedDetector().keypoints, W, H)[1]
    expected = [p for p in (expected_lifter.push(normalized) for _ in range(12)) if p is not None]
    expected += expected_lifter.flush()
    assert len(poses) == 12
    np.testing.assert_allclose(np.stack(poses), np.stack(expected), atol=1e-6)


def test_max_frames_window_close_and_ctrl_c_end_the_stream_with_every_read_frame_written():
    stats, written = run(20, 3, max_frames=7)
    assert stats.frames == len(written) == 7 and stats.stopped == "--max-frames 7"
    stats, written = run(20, 3, sinks=[lambda image: len(image) and grey_level(image) == 4 * 5])
    assert stats.stopped == "window closed" and stats.frames == len(written) == 9  # 3 frames were still due

    def ctrl_c_at_frame_4(image):
        if grey_level(image) == 4 * 4:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    stats, written = run(20, 3, sinks=[ctrl_c_at_frame_4])
    assert stats.stopped == "Ctrl-C" and stats.frames == len(written) == 8
    assert signal.getsignal(signal.SIGINT) is previous
