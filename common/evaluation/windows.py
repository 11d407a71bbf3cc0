"""Evaluation windows: cover a whole sequence with fixed-length windows and predict it window by window.

`eval_windows` covers a sequence of any length with windows of exactly ``num_frames`` frames (consecutive windows, the
last one aligned to the end, short sequences edge-padded). `predict_sequence` runs a model on them (optionally with
flip test-time augmentation) and reassembles per-frame predictions so that every frame is counted exactly once
(``counting="once"``), or MixSTE's way (``counting="mixste"``: all frames of all windows, the overlap of the last
window counted twice, short sequences' padding included) for comparison with published numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from common.core.errors import UserError
from common.geometry.skeleton import flip_poses

COUNTING_MODES = ("once", "mixste")
"""How evaluation counts frames (``--eval-counting``): every frame once, or MixSTE's window concatenation."""


def eval_windows(length: int, num_frames: int, counting: str = "once") -> tuple[np.ndarray, np.ndarray]:
    """Windows covering a sequence of ``length`` frames with exactly ``num_frames`` frames each.

    Windows start at ``0, F, 2F, ...``; if frames remain, a last window is aligned to the end (``length - F``); a
    sequence shorter than F has one window starting at 0 (edge-padded at the end).

    Returns ``(starts (W,), keep (W, F) bool)``. With ``counting="once"`` ``keep`` selects each real frame exactly once
    (the last window keeps only the frames the previous windows did not cover; padding is never kept). With
    ``counting="mixste"`` every frame of every window is kept (MixSTE's evaluation).
    """
    if counting not in COUNTING_MODES:
        raise UserError(f"counting: expected one of {', '.join(COUNTING_MODES)}, got {counting!r}")
    if length < 1 or num_frames < 1:
        raise ValueError(f"length and num_frames must be >= 1 (got {length}, {num_frames})")
    full = length // num_frames
    starts = [i * num_frames for i in range(full)]
    keep = np.ones((max(full, 1) + (1 if length % num_frames and full else 0), num_frames), dtype=bool)
    if full == 0:
        starts = [0]
        if counting == "once":
            keep[0, length:] = False
    elif length % num_frames:
        starts.append(length - num_frames)
        if counting == "once":
            keep[-1, : num_frames - length % num_frames] = False
    return np.array(starts, dtype=np.int64), keep


def predict_sequence(
    predict_fn: Callable[[torch.Tensor], torch.Tensor],
    poses_2d: np.ndarray | torch.Tensor,
    num_frames: int,
    counting: str = "once",
    flip_tta: bool = False,
    kps_left: Sequence[int] = (),
    kps_right: Sequence[int] = (),
    joints_left: Sequence[int] = (),
    joints_right: Sequence[int] = (),
    batch_windows: int = 64,
    targets: np.ndarray | torch.Tensor | None = None,
):
    """Predict a whole sequence ``poses_2d (T, J, 2)`` window by window with ``predict_fn: (B,F,J,2) -> (B,F,J',3)``.

    With ``flip_tta`` the prediction is the mean of the prediction and the un-flipped prediction of the flipped input.
    Returns the per-frame predictions as a numpy float32 array: ``(T, J', 3)`` in frame order for ``counting="once"``;
    for ``counting="mixste"`` MixSTE's concatenation of all windows ``(W * F, J', 3)``. When ``targets (T, ...)`` are
    given, returns ``(predictions, matching_targets)`` (targets gathered with the same frame indices, so with
    ``"mixste"`` the doubly counted and padded frames are matched exactly as MixSTE does).
    """
    if isinstance(poses_2d, np.ndarray):
        poses_2d = torch.from_numpy(np.ascontiguousarray(poses_2d, dtype=np.float32))
    length = poses_2d.shape[0]
    if length < 1:
        raise UserError("predict_sequence: empty sequence")
    starts, keep = eval_windows(length, num_frames, counting)
    frames = torch.from_numpy(np.clip(starts[:, None] + np.arange(num_frames)[None, :], 0, length - 1))
    outputs = []
    with torch.no_grad():
        for begin in range(0, len(starts), batch_windows):
            batch = poses_2d[frames[begin : begin + batch_windows]]
            prediction = predict_fn(batch)
            if flip_tta:
                flipped = predict_fn(flip_poses(batch, kps_left, kps_right))
                prediction = (prediction + flip_poses(flipped, joints_left, joints_right)) / 2
            outputs.append(prediction.detach().cpu().float())
    predictions = torch.cat(outputs).numpy()[keep]
    if targets is None:
        return predictions
    targets = targets.numpy() if isinstance(targets, torch.Tensor) else np.asarray(targets)
    if len(targets) != length:
        raise ValueError(f"targets have {len(targets)} frames, inputs {length}")
    return predictions, targets[frames.numpy()[keep]]
