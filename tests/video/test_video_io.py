"""Video decoding/encoding through imageio-ffmpeg and Pillow: round trips, metadata, atomic writes, bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image, ImageSequence

from common.core.errors import UserError
from common.video.video_io import VideoWriter, read_video_frames, video_metadata


def synthetic_frames(count: int = 10, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Frames with a flat colour that changes per frame plus a white square that moves right."""
    frames = []
    for index in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:] = (20 * index, 200 - 15 * index, 100)
        frame[8:24, 4 * index : 4 * index + 16] = 255
        frames.append(frame)
    return frames


def write_video(path, frames, fps=10.0, bitrate=None):
    with VideoWriter(path, fps=fps, bitrate=bitrate) as writer:
        for frame in frames:
            writer.write(frame)
    return writer


def test_mp4_round_trip(tmp_path):
    frames = synthetic_frames()
    path = tmp_path / "clip.mp4"
    writer = write_video(path, frames, fps=12.5)
    assert writer.num_frames == 10
    decoded = list(read_video_frames(path))
    assert len(decoded) == 10
    for original, back in zip(frames, decoded):
        assert back.shape == (48, 64, 3) and back.dtype == np.uint8
        assert np.abs(back.astype(int) - original.astype(int)).mean() < 6  # lossy H.264, same picture
    assert video_metadata(path) == {"w": 64, "h": 48, "fps": 12.5, "num_frames": 10}
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary file left


def test_mp4_odd_size_is_padded_to_even(tmp_path):
    frames = synthetic_frames(3, width=33, height=21)
    path = tmp_path / "odd.mp4"
    write_video(path, frames, bitrate=500)
    decoded = list(read_video_frames(path))
    assert len(decoded) == 3 and decoded[0].shape == (22, 34, 3)
    assert np.abs(decoded[1][:21, :33].astype(int) - frames[1].astype(int)).mean() < 8


def test_gif_round_trip(tmp_path):
    frames = synthetic_frames(6)
    path = tmp_path / "clip.gif"
    write_video(path, frames, fps=10)
    with Image.open(path) as gif:
        decoded = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
        assert gif.info["duration"] == 100
    assert len(decoded) == 6
    for original, back in zip(frames, decoded):
        assert back.shape == (48, 64, 3)
        assert np.abs(back.astype(int) - original.astype(int)).mean() < 6


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(path, fps=10) as writer:
        writer.write(synthetic_frames(1)[0])
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_frames_of_different_size_are_refused(tmp_path):
    with pytest.raises(ValueError, match="differs"), VideoWriter(tmp_path / "a.gif", fps=5) as writer:
        writer.write(np.zeros((10, 10, 3), np.uint8))
        writer.write(np.zeros((12, 10, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_bad_outputs(tmp_path):
    with pytest.raises(UserError, match=r"\.mp4 or \.gif"):
        VideoWriter(tmp_path / "out.avi", fps=10)
    with pytest.raises(UserError, match="does not exist"), VideoWriter(tmp_path / "missing" / "out.mp4", fps=10):
        pass
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(UserError, match="not writable"), VideoWriter(locked / "out.mp4", fps=10):
            pass
    with pytest.raises(UserError, match="no frames"), VideoWriter(tmp_path / "empty.mp4", fps=10):
        pass
    assert not (tmp_path / "empty.mp4").exists()


def test_missing_and_unreadable_videos(tmp_path):
    with pytest.raises(UserError, match="nothere.mp4: video file not found"):
        read_video_frames(tmp_path / "nothere.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    with pytest.raises(UserError, match="garbage.mp4: not a readable video"):
        read_video_frames(garbage)
    with pytest.raises(UserError, match="garbage.mp4: not a readable video"):
        video_metadata(garbage)


def test_dancer_video_metadata():
    path = shared_path("data", "video", "dancer.mp4")
    assert video_metadata(path) == {"w": 600, "h": 600, "fps": 20.0, "num_frames": 102}
    first = next(read_video_frames(path))
    assert first.shape == (600, 600, 3) and 20 < first.mean() < 240
