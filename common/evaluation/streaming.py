"""Lifting a stream of 2D poses frame by frame, as they arrive, with the same numbers as offline prediction.

`StreamingLifter` takes one 2D pose ``(J, 2)`` (normalized screen coordinates, model token order) at a time and keeps
the last F frames (F: the model's frame count). Each prediction is `common.evaluation.protocols.predict_poses` on that
window, so the windows, the raw model output and the flip test-time augmentation are exactly the evaluation's.

The window and the delay, precisely. After frames ``0..n`` have arrived the window holds frames ``n-F+1 .. n``; frame
indices below 0 are frame 0 (edge padding: until F frames have arrived the first frame is repeated, as offline
prediction repeats edge frames). ``push`` then returns the 3D of frame ``n - delay``, which sits at window position
``F - 1 - delay``:

- ``delay = 0``: the newest frame, at the window's last position. Right for a causal model (``--causal``: its output
  at a position depends only on that position and earlier ones), allowed for any model (a non-causal one then sees no
  future frame of the newest pose, and is less accurate there than in training).
- ``delay = F // 2``: the window is centred on the returned frame (F odd), as a non-causal model sees most frames in
  training; the answer comes ``delay`` frames late.

``delay`` is an integer in ``[0, F // 2]`` (`check_delay`); `default_delay` is 0 for a causal model and ``F // 2``
otherwise. During the first ``delay`` pushes no frame is due and ``push`` returns None; at the end of the stream
`StreamingLifter.flush` returns the last ``delay`` frames, edge-padding the end with the newest frame (indices beyond
the last frame are the last frame, as offline prediction pads a sequence's end). Over a stream of T frames the k-th
pose returned is frame k, T in all.

`predict_sliding` is the offline counterpart: the same per-frame windows over a whole sequence, batched through
`predict_poses`; the streamed poses equal it (up to float rounding of batched products). Where a sliding window is also
one of the evaluation's consecutive windows (`common.evaluation.windows.eval_windows`: frames ``kF .. kF+F-1``, at
output frame ``kF + F - 1 - delay``) both give the evaluation's own prediction; elsewhere the evaluation predicts a
frame from another window (other neighbours, another position), so the numbers differ by design.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import torch

from common.core.errors import UserError
from common.evaluation.protocols import PredictSettings, predict_poses


def check_delay(delay: object, num_frames: int, flag: str = "delay") -> int:
    """``delay`` when it is an integer in ``[0, num_frames // 2]``; a `UserError` naming ``flag`` otherwise."""
    limit = num_frames // 2
    if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or not 0 <= delay <= limit:
        raise UserError(f"{flag} {delay!r}: expected an integer in [0, {limit}] for a model of {num_frames} frames "
                        f"(0: the newest frame, right for a causal model; {limit}: a window centred on the frame)")
    return int(delay)


def default_delay(num_frames: int, causal: bool) -> int:
    """0 for a causal model (the newest frame), ``num_frames // 2`` otherwise (a centred window)."""
    return 0 if causal else num_frames // 2


def sliding_window_frames(length: int, num_frames: int, delay: int) -> np.ndarray:
    """``(length, F)`` frame indices of the window that predicts each frame of a ``length``-frame sequence: frame t
    sits at position ``F - 1 - delay`` of frames ``t + delay - F + 1 .. t + delay``, clipped to ``[0, length - 1]``."""
    check_delay(delay, num_frames)
    first = np.arange(length)[:, None] + delay - num_frames + 1
    return np.clip(first + np.arange(num_frames)[None, :], 0, length - 1)


def predict_sliding(predict_fn: Callable[[torch.Tensor], torch.Tensor], poses_2d: np.ndarray,
                    settings: PredictSettings, delay: int, chunk_windows: int = 256,
                    frames: np.ndarray | None = None) -> np.ndarray:
    """``(T, J', 3)``: every frame of ``poses_2d (T, J, 2)`` predicted from its own sliding window (what a
    `StreamingLifter` returns for the same stream), in batches of windows through `predict_poses`. With ``frames``
    (indices into the sequence) only those frames are predicted, ``(len(frames), J', 3)`` in that order.

    The windows of a chunk are laid end to end as one sequence of ``n * F`` frames, whose evaluation windows are
    exactly those windows (starts 0, F, 2F, ...), so the windows, batching and flip TTA are `predict_poses`' own.
    """
    poses_2d = np.asarray(poses_2d, dtype=np.float32)
    if len(poses_2d) < 1:
        raise UserError("predict_sliding: empty sequence")
    num_frames = settings.num_frames
    window_frames = sliding_window_frames(len(poses_2d), num_frames, delay)
    if frames is not None:
        window_frames = window_frames[np.asarray(frames, dtype=np.int64)]
    position = num_frames - 1 - delay
    outputs = []
    for begin in range(0, len(window_frames), chunk_windows):
        windows = poses_2d[window_frames[begin:begin + chunk_windows].reshape(-1)]
        predicted = predict_poses(predict_fn, windows, settings)
        outputs.append(predicted.reshape(-1, num_frames, *predicted.shape[1:])[:, position])
    return np.concatenate(outputs)


class StreamingLifter:
    """2D poses in one at a time, 3D poses out with a fixed ``delay`` (see the module docstring).

    Args:
        predict_fn: ``(B, F, J, 2) -> (B, F, J', 3)``, e.g. `common.evaluation.protocols.model_predict_fn`.
        settings: the prediction settings (``num_frames`` = the model's F; flip TTA and its left/right joints).
        delay: frames between the newest pose pushed and the pose returned, in ``[0, F // 2]``.
    """

    def __init__(self, predict_fn: Callable[[torch.Tensor], torch.Tensor], settings: PredictSettings,
                 delay: int = 0) -> None:
        self.predict_fn, self.settings = predict_fn, settings
        self.num_frames = settings.num_frames
        self.delay = check_delay(delay, self.num_frames)
        self.position = self.num_frames - 1 - self.delay
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._window: deque[np.ndarray] = deque(maxlen=self.num_frames)
        self.frames_in = 0  # poses pushed
        self._newest = -1  # frame index of the window's last entry (beyond frames_in - 1 once flush pads the end)
        self.frames_out = 0  # poses returned (the next one returned is frame frames_out)

    def push(self, pose_2d: np.ndarray) -> np.ndarray | None:
        """Add the newest 2D pose ``(J, 2)``; returns the 3D ``(J', 3)`` of frame ``frames_in - 1 - delay``, or None
        while fewer than ``delay + 1`` poses have arrived."""
        if self._newest >= self.frames_in:
            raise ValueError("StreamingLifter: the stream was flushed; call reset() to start a new one")
        pose = np.asarray(pose_2d, dtype=np.float32)
        if self._window and pose.shape != self._window[-1].shape:
            raise ValueError(f"StreamingLifter: pose of shape {pose.shape}, the stream's are {self._window[-1].shape}")
        if not self._window:
            if pose.ndim != 2 or pose.shape[-1] != 2:
                raise ValueError(f"StreamingLifter: expected one 2D pose (J, 2), got shape {pose.shape}")
            self._window.extend([pose] * self.num_frames)  # edge padding: the first frame fills the past
        else:
            self._window.append(pose)
        self.frames_in += 1
        self._newest = self.frames_in - 1
        if self.frames_in <= self.delay:
            return None
        return self._predict()

    def flush(self) -> list[np.ndarray]:
        """The 3D of the frames still due at the end of the stream (``delay`` of them, fewer for a short stream),
        each predicted with the newest pose repeated past the end. The stream then ends (`reset` starts another)."""
        outputs = []
        while self.frames_out < self.frames_in:
            for _ in range(self.frames_out + self.delay - self._newest):  # the window ends `delay` after the frame
                self._window.append(self._window[-1])
                self._newest += 1
            outputs.append(self._predict())
        return outputs

    def _predict(self) -> np.ndarray:
        window = np.stack(self._window)
        prediction = predict_poses(self.predict_fn, window, self.settings)[self.position]
        self.frames_out += 1
        return prediction
