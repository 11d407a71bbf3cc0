"""Video decoding and encoding without a system ffmpeg.

Decoding and MP4 encoding go through ``imageio-ffmpeg`` (which ships its own ffmpeg binary); GIF encoding goes
through Pillow. Every output is written under a temporary name next to the final file and renamed on success, so an
interrupted run never leaves a half-written video behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

from common.core.errors import UserError
from common.core.files import publish_temp, reserve_temp, write_failure

VIDEO_SUFFIXES = (".mp4", ".gif")
"""Output formats `VideoWriter` can write."""


def _check_input(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"{path}: video file not found")


def _open_reader(path: Path):
    """Start decoding ``path``; returns ``(generator, meta)`` or raises UserError naming the file."""
    _check_input(path)
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as error:
        reader.close()
        message = str(error).strip().splitlines()
        raise UserError(f"{path}: not a readable video ({message[-1] if message else type(error).__name__})") from None
    if not meta.get("size") or not meta.get("fps"):
        reader.close()
        raise UserError(f"{path}: not a readable video (no video stream)")
    return reader, meta


def video_metadata(path: str | os.PathLike) -> dict:
    """``{'w', 'h', 'fps', 'num_frames'}`` of a video (frames counted by decoding, which is exact and fast)."""
    path = Path(path)
    reader, meta = _open_reader(path)
    reader.close()
    try:
        num_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError) as error:
        raise UserError(f"{path}: cannot count the frames of the video ({error})") from None
    width, height = meta["size"]
    return {"w": int(width), "h": int(height), "fps": float(meta["fps"]), "num_frames": int(num_frames)}


def read_video_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Yield the frames of a video as ``(h, w, 3)`` uint8 RGB arrays.

    The file is opened (and checked) when this function is called, not at the first ``next()``, so a missing or
    unreadable video raises `UserError` right away.
    """
    path = Path(path)
    reader, meta = _open_reader(path)
    width, height = meta["size"]
    return _frames(reader, width, height, path)


def _frames(reader, width: int, height: int, path: Path) -> Iterator[np.ndarray]:
    frame_bytes = width * height * 3
    try:
        for raw in reader:
            if len(raw) != frame_bytes:
                raise UserError(f"{path}: truncated frame ({len(raw)} bytes, expected {frame_bytes})")
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
    finally:
        reader.close()


class VideoWriter:
    """Context manager writing RGB frames to an ``.mp4`` (H.264, imageio-ffmpeg) or ``.gif`` (Pillow) file.

    Frames are ``(h, w, 3)`` uint8 arrays, all of the same size. MP4 frames with an odd width or height are padded
    by one black row/column (H.264 in yuv420p needs even sizes). In a GIF, Pillow merges identical consecutive
    frames into one frame shown for their total duration. The file appears under its final name only when the
    ``with`` block ends without an exception.

    Args:
        path: output file, ``.mp4`` or ``.gif``.
        fps: frame rate.
        bitrate: MP4 bitrate in kbit/s (None: a quality-based default); GIFs ignore it.
    """

    def __init__(self, path: str | os.PathLike, fps: float, bitrate: float | None = None) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.bitrate = bitrate
        self.num_frames = 0
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise UserError(f"{self.path}: expected an output video ending in {' or '.join(VIDEO_SUFFIXES)}")
        if not self.fps > 0:
            raise UserError(f"{self.path}: frame rate must be positive, got {fps}")
        self._suffix = suffix
        self._tmp: str | None = None
        self._encoder = None
        self._gif_frames: list[Image.Image] = []
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        self._tmp = reserve_temp(self.path, self._suffix)
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(h, w, 3)`` uint8 RGB frame."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an (h, w, 3) RGB frame, got shape {frame.shape}")
        if frame.dtype != np.uint8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        if self._size is None:
            self._size = (frame.shape[1], frame.shape[0])
        elif (frame.shape[1], frame.shape[0]) != self._size:
            raise ValueError(f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the first {self._size}")
        if self._suffix == ".gif":
            # fast octree palette per frame (Pillow's default median cut is several times slower)
            self._gif_frames.append(Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE))
        else:
            try:
                self._write_mp4(frame)
            except OSError as error:  # ffmpeg died (full disk, ...): one line, the temporary file goes in __exit__
                raise UserError(write_failure(self.path, error)) from None
        self.num_frames += 1

    def _write_mp4(self, frame: np.ndarray) -> None:
        pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)))
        if self._encoder is None:
            self._encoder = imageio_ffmpeg.write_frames(
                self._tmp,
                (frame.shape[1], frame.shape[0]),
                fps=self.fps,
                codec="libx264",
                pix_fmt_out="yuv420p",
                bitrate=None if self.bitrate is None else f"{int(self.bitrate)}k",
                quality=None if self.bitrate is not None else 7,
                macro_block_size=1,
                ffmpeg_log_level="error",
                output_params=["-preset", "veryfast"],  # several times faster than x264's default, same quality
            )
            self._encoder.send(None)
        self._encoder.send(np.ascontiguousarray(frame))

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                try:
                    self._finish()
                    publish_temp(self._tmp, self.path)
                except OSError as error:
                    raise UserError(write_failure(self.path, error)) from None
            elif self._encoder is not None:
                with contextlib.suppress(OSError):  # the encoder may be what failed
                    self._encoder.close()
        finally:
            if self._tmp is not None and os.path.exists(self._tmp):
                os.remove(self._tmp)

    def _finish(self) -> None:
        if self.num_frames == 0:
            raise UserError(f"{self.path}: no frames to write")
        if self._suffix == ".gif":
            first, *rest = self._gif_frames
            first.save(
                self._tmp,
                format="GIF",
                save_all=True,
                append_images=rest,
                duration=max(int(round(1000.0 / self.fps)), 10),
                loop=0,
            )
        else:
            self._encoder.close()
