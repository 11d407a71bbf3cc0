"""common/evaluation/streaming.py: frame-by-frame lifting gives the offline prediction of the same windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.core.errors import UserError
from common.evaluation.protocols import PredictSettings, model_predict_fn, predict_poses
from common.evaluation.streaming import (
    StreamingLifter,
    check_delay,
    default_delay,
    predict_sliding,
    sliding_window_frames,
)
from common.geometry.keypoint_layouts import get_layout
from common.geometry.skeleton import h36m_17
from common.model.config import apply_preset
from common.model.metaformer import build_model

F = 9

pytestmark = pytest.mark.usefixtures("one_thread")


def settings(flip_tta: bool) -> PredictSettings:
    skeleton, layout = h36m_17(), get_layout("h36m")
    return PredictSettings(F, flip_tta=flip_tta, kps_left=tuple(layout.left), kps_right=tuple(layout.right),
                           joints_left=tuple(skeleton.joints_left()), joints_right=tuple(skeleton.joints_right()),
                           batch_windows=4)


def predict_fn(causal: bool):
    torch.manual_seed(0)
    return model_predict_fn(build_model(apply_preset("default", {"num_frames": F, "embed_dim": 16, "depth": 2,
                                                                 "causal": causal})), torch.device("cpu"))


def poses(length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (length, 17, 2)).astype(np.float32)


def stream(lifter: StreamingLifter, sequence: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Push every pose; returns after how many pushes each output came (flush: the length) and the outputs."""
    arrivals, outputs = [], []
    for index, pose in enumerate(sequence):
        output = lifter.push(pose)
        if output is not None:
            arrivals.append(index + 1)
            outputs.append(output)
    flushed = lifter.flush()
    return arrivals + [len(sequence)] * len(flushed), np.stack(outputs + flushed)


def test_sliding_windows_are_edge_padded_like_offline_windows():
    frames = sliding_window_frames(5, 5, 2)
    assert frames.tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 4], [2, 3, 4, 4, 4]]
    assert sliding_window_frames(3, 5, 0).tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 2]]
    assert all(frames[t, 5 - 1 - 2] == t for t in range(5))  # each frame at position F - 1 - delay


@pytest.mark.parametrize("flip_tta", [False, True])
@pytest.mark.parametrize(("causal", "length", "delay"), [
    (True, 17, 0), (False, 17, F // 2), (False, 17, 2), (True, 3, F // 2), (False, 1, 0), (False, F, 1)])
def test_streamed_poses_are_the_offline_sliding_prediction(flip_tta, causal, length, delay):
    sequence = poses(length)
    fn = predict_fn(causal)
    lifter = StreamingLifter(fn, settings(flip_tta), delay)
    arrivals, streamed = stream(lifter, sequence)
    offline = predict_sliding(fn, sequence, settings(flip_tta), delay, chunk_windows=5)
    assert streamed.shape == offline.shape == (length, 17, 3) and streamed.dtype == np.float32
    np.testing.assert_allclose(streamed, offline, rtol=0, atol=1e-5)
    # frame t is returned once frame t + delay has arrived (the last ones at the end of the stream)
    assert arrivals == [min(t + delay + 1, length) for t in range(length)]
    assert (lifter.frames_in, lifter.frames_out) == (length, length)
    # each frame is also predict_poses (the evaluation's prediction) of its own window, at position F - 1 - delay
    for t in (0, length // 2, length - 1):
        window = sequence[sliding_window_frames(length, F, delay)[t]]
        expected = predict_poses(fn, window, settings(flip_tta))[F - 1 - delay]
        np.testing.assert_allclose(streamed[t], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("delay", [0, F // 2])
def test_where_windows_coincide_the_stream_is_the_evaluation_of_the_whole_sequence(delay):
    """The evaluation predicts frames kF .. kF+F-1 from one window; the stream predicts frame kF + F - 1 - delay
    from that same window, so both give the same numbers there (elsewhere the windows differ by design)."""
    sequence, fn = poses(3 * F, seed=3), predict_fn(False)
    _, streamed = stream(StreamingLifter(fn, settings(True), delay), sequence)
    offline = predict_poses(fn, sequence, settings(True))
    assert offline.shape == streamed.shape
    same = [k * F + F - 1 - delay for k in range(3)]
    np.testing.assert_allclose(streamed[same], offline[same], rtol=0, atol=1e-5)
    assert np.abs(streamed - offline).max() > 1e-5


def test_a_causal_model_streams_the_newest_frame_independently_of_what_comes_next():
    fn = predict_fn(True)
    sequence = poses(15)
    changed = sequence.copy()
    changed[10:] = poses(5, seed=9)
    _, first = stream(StreamingLifter(fn, settings(False), 0), sequence)
    _, second = stream(StreamingLifter(fn, settings(False), 0), changed)
    assert np.array_equal(first[:10], second[:10]) and not np.allclose(first[10:], second[10:])


def test_delay_is_checked_and_defaults_by_causality():
    assert default_delay(27, causal=True) == 0 and default_delay(27, causal=False) == 13
    assert check_delay(13, 27) == 13 and check_delay(np.int64(0), 27) == 0
    for bad in (-1, 14, 2.0, True, "3"):
        with pytest.raises(UserError, match=r"--delay .*: expected an integer in \[0, 13\] for a model of 27 frames"):
            check_delay(bad, 27, "--delay")
    with pytest.raises(UserError, match=r"delay 5: expected an integer in \[0, 4\]"):
        StreamingLifter(predict_fn(False), settings(False), 5)


def test_reset_flush_and_bad_poses():
    lifter = StreamingLifter(predict_fn(True), settings(False), 2)
    assert lifter.flush() == []  # nothing pushed, nothing due
    assert lifter.push(poses(1)[0]) is None
    with pytest.raises(ValueError, match=r"pose of shape \(16, 2\)"):
        lifter.push(np.zeros((16, 2)))
    assert len(lifter.flush()) == 1
    with pytest.raises(ValueError, match="flushed; call reset"):
        lifter.push(poses(1)[0])
    lifter.reset()
    with pytest.raises(ValueError, match=r"expected one 2D pose \(J, 2\)"):
        lifter.push(np.zeros((17, 3)))
    arrivals, outputs = stream(lifter, poses(6))
    assert arrivals == [3, 4, 5, 6, 6, 6] and outputs.shape == (6, 17, 3)
