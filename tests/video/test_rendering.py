"""common/video/rendering.py: frame counts and sizes of rendered videos, 2D skeleton pixels, 3D display transform."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image, ImageSequence

from common.core.errors import UserError
from common.geometry.skeleton import h36m_17
from common.video.rendering import LEFT_COLOR, RIGHT_COLOR, SkeletonFigure, poses_for_display, render_animation
from common.video.video_io import VideoWriter, read_video_frames, video_metadata

SKELETON = h36m_17()
# A standing H36M-17 pose in metres, z up.
STANDING = np.array([
    [0, 0, 1.0], [-0.12, 0, 1.0], [-0.13, 0, 0.55], [-0.13, 0, 0.1], [0.12, 0, 1.0], [0.13, 0, 0.55],
    [0.13, 0, 0.1], [0, 0, 1.25], [0, 0, 1.5], [0, -0.05, 1.6], [0, 0, 1.72], [0.18, 0, 1.48], [0.25, 0, 1.2],
    [0.3, 0, 0.95], [-0.18, 0, 1.48], [-0.25, 0, 1.2], [-0.3, 0, 0.95],
], dtype=np.float32)  # fmt: skip


def sequence(num_frames: int, size: int = 200):
    """A figure that raises its arms frame after frame: (T, 17, 2) pixels and (T, 17, 3) metres."""
    poses = np.repeat(STANDING[None], num_frames, axis=0)
    poses[:, [12, 13, 15, 16], 2] += np.linspace(0, 0.5, num_frames)[:, None]
    scale = size * 0.45
    keypoints = np.stack([size / 2 + poses[..., 0] * scale, size * 0.95 - poses[..., 2] * scale], axis=-1)
    return keypoints, poses


def hex_rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])


@pytest.mark.parametrize("suffix", ["mp4", "gif"])
def test_render_frame_count_and_size(tmp_path, suffix):
    keypoints, poses = sequence(5)
    output = tmp_path / f"out.{suffix}"
    written = render_animation(keypoints, {"Reconstruction": poses, "Ground truth": poses}, SKELETON, fps=10,
                               output_path=output, viz_size=2, resolution=(200, 200), progress=False)
    assert written == 5
    if suffix == "mp4":
        assert video_metadata(output) == {"w": 600, "h": 200, "fps": 10.0, "num_frames": 5}
    else:
        with Image.open(output) as gif:
            frames = [frame.copy() for frame in ImageSequence.Iterator(gif)]
        assert len(frames) == 5 and frames[0].size == (600, 200)
    assert [p.name for p in tmp_path.iterdir()] == [output.name]


def test_downsample_limit_and_video_skip(tmp_path):
    video = tmp_path / "input.mp4"
    with VideoWriter(video, fps=20) as writer:
        for index in range(12):
            writer.write(np.full((100, 100, 3), 20 * index, np.uint8))
    keypoints, poses = sequence(12, size=100)
    written = render_animation(keypoints, {"3D": poses}, SKELETON, 20, tmp_path / "a.mp4", viz_size=1,
                               input_video_path=video, input_video_skip=2, downsample=3, progress=False)
    # 10 video frames remain after the skip: frames 0, 3, 6, 9 at 20 / 3 fps
    assert written == math.ceil(10 / 3)
    meta = video_metadata(tmp_path / "a.mp4")
    assert meta["num_frames"] == 4 and meta["fps"] == pytest.approx(20 / 3, abs=0.01)
    # the input panel shows video frames 2, 5, 8, 11 (skip 2, every 3rd): grey levels 40, 100, 160, 220
    levels = [np.median(frame[85:98, 2:12]) for frame in read_video_frames(tmp_path / "a.mp4")]
    np.testing.assert_allclose(levels, [40, 100, 160, 220], atol=6)
    written = render_animation(keypoints, {"3D": poses}, SKELETON, 20, tmp_path / "b.gif", viz_size=1,
                               resolution=(100, 100), limit=2, progress=False)
    assert written == 2


def test_2d_skeleton_drawn_at_its_pixels():
    # panel of 200 px for a 400x400 image: output pixel = image pixel / 2
    figure = SkeletonFigure(SKELETON, ["3D"], (400, 400), viz_size=2)
    keypoints = np.zeros((17, 2), np.float32)
    keypoints[:] = (200, 200)
    keypoints[1] = (100, 100)  # right hip: bone 0-1 from (200, 200) to (100, 100), red
    keypoints[4] = (300, 100)  # left hip: bone 0-4 to (300, 100), blue
    keypoints[2] = keypoints[3] = keypoints[1]
    keypoints[5] = keypoints[6] = keypoints[4]
    frame = figure.draw(None, keypoints, [STANDING])
    assert frame.shape == (200, 400, 3)
    right_mid = frame[75, 75].astype(int)  # midpoint (150, 150) / 2
    left_mid = frame[75, 125].astype(int)  # midpoint (250, 150) / 2
    assert np.abs(right_mid - hex_rgb(RIGHT_COLOR)).max() < 40
    assert np.abs(left_mid - hex_rgb(LEFT_COLOR)).max() < 40
    assert frame[180, 20].max() == 0 and frame[20, 180].max() == 0  # black background away from the bones
    # the 3D panel is white with the skeleton somewhere in it
    panel = frame[:, 200:].reshape(-1, 3).astype(int)
    assert (panel.min(axis=1) == 255).mean() > 0.15
    assert (np.abs(panel - hex_rgb(RIGHT_COLOR)).max(axis=1) < 40).sum() > 20


def test_input_frame_is_shown_and_resized():
    figure = SkeletonFigure(SKELETON, ["3D"], (320, 160), viz_size=2)  # 2:1 video letterboxed in a square panel
    image = np.zeros((160, 320, 3), np.uint8)
    image[:, :160] = (0, 200, 0)
    image[:, 160:] = (200, 200, 0)
    keypoints = np.full((17, 2), -1000, np.float32)  # off-screen
    frame = figure.draw(image, keypoints, [STANDING])
    np.testing.assert_allclose(frame[100, 50], (0, 200, 0), atol=2)
    np.testing.assert_allclose(frame[100, 150], (200, 200, 0), atol=2)
    assert frame[10, 100].max() == 0 and frame[190, 100].max() == 0  # letterbox bands above and below


def test_poses_for_display():
    # camera looking along +y of the world (x right, y down = -z up, z forward = +y): quaternion of that rotation
    rotation = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)  # camera -> world
    w = math.sqrt(1 + np.trace(rotation)) / 2
    quaternion = np.array([w, (rotation[2, 1] - rotation[1, 2]) / (4 * w), (rotation[0, 2] - rotation[2, 0]) / (4 * w),
                           (rotation[1, 0] - rotation[0, 1]) / (4 * w)])
    camera = np.array([[[0, 0, 0], [0.1, -0.5, 0.2], [0, 0.9, 0]]], np.float32)  # root, a raised hand, a foot
    world = poses_for_display(camera, quaternion)
    expected = camera[0] @ rotation.T
    expected[:, 2] -= expected[:, 2].min()
    np.testing.assert_allclose(world[0], expected, atol=1e-6)
    assert world[0, 2, 2] == 0.0 and world[0, 1, 2] == pytest.approx(1.4)
    np.testing.assert_allclose(poses_for_display(camera, None), world, atol=1e-6)  # no orientation: a level camera


def test_bad_calls(tmp_path):
    keypoints, poses = sequence(3)
    with pytest.raises(UserError, match="resolution"):
        render_animation(keypoints, {"3D": poses}, SKELETON, 10, tmp_path / "x.mp4", progress=False)
    with pytest.raises(UserError, match=r"\.mp4 or \.gif"):
        render_animation(keypoints, {"3D": poses}, SKELETON, 10, tmp_path / "x.avi", resolution=(200, 200),
                         progress=False)
    with pytest.raises(ValueError, match="expected \\(3, 17, 3\\)"):
        render_animation(keypoints, {"3D": poses[:2]}, SKELETON, 10, tmp_path / "x.mp4", resolution=(200, 200),
                         progress=False)
    with pytest.raises(UserError, match="video file not found"):
        render_animation(keypoints, {"3D": poses}, SKELETON, 10, tmp_path / "x.mp4",
                         input_video_path=tmp_path / "none.mp4", progress=False)


def test_render_on_dancer_video(tmp_path):
    video = shared_path("data", "video", "dancer.mp4")
    keypoints, poses = sequence(30, size=600)
    written = render_animation(keypoints, {"Reconstruction": poses}, SKELETON, 20, tmp_path / "d.mp4", viz_size=3,
                               input_video_path=video, limit=8, progress=False)
    assert written == 8
    first_out = next(read_video_frames(tmp_path / "d.mp4"))
    first_in = np.asarray(Image.fromarray(next(read_video_frames(video))).resize((300, 300), Image.BILINEAR))
    # away from the skeleton and the title, the input panel is the (resized) video frame
    assert np.abs(first_out[250:300, 0:60].astype(int) - first_in[250:300, 0:60].astype(int)).mean() < 6
