"""Tests for common/evaluation/windows.py: whole-sequence evaluation windows, frame counting and flip TTA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.core.errors import UserError
from common.evaluation.windows import eval_windows, predict_sequence

LEFT, RIGHT = [4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]  # the model order's left/right joints

F = 8


@pytest.mark.parametrize("length", [1, F - 1, F, F + 1, 3 * F + 5])
def test_every_frame_predicted_exactly_once_and_in_order(length):
    poses = np.zeros((length, 17, 2), np.float32)
    poses[:, :, 0] = np.arange(length)[:, None]  # the absolute frame index, encoded in the input
    calls = []

    def predict(batch):
        assert batch.shape[1:] == (F, 17, 2)
        calls.append(batch.shape[0])
        return torch.cat([batch, batch[..., :1] * 10], dim=-1)

    out = predict_sequence(predict, poses, F, counting="once", batch_windows=2)
    assert out.shape == (length, 17, 3)
    np.testing.assert_array_equal(out[:, 0, 0], np.arange(length))
    np.testing.assert_array_equal(out[:, 5, 2], np.arange(length) * 10)
    starts, keep = eval_windows(length, F)
    assert keep.sum() == length and sum(calls) == len(starts)


@pytest.mark.parametrize("length", [1, F - 1, F, F + 1, 3 * F + 5])
def test_mixste_counting_reproduces_overlap(length):
    poses = np.zeros((length, 17, 2), np.float32)
    poses[:, :, 0] = np.arange(length)[:, None]
    targets = np.repeat(np.arange(length, dtype=np.float32)[:, None, None], 17, axis=1).repeat(3, axis=2)
    out, matched = predict_sequence(
        lambda b: torch.cat([b, b[..., :1]], -1), poses, F, counting="mixste", targets=targets
    )
    windows = max(1, -(-length // F))
    assert out.shape == (windows * F, 17, 3)
    np.testing.assert_array_equal(out[:, 0, 0], matched[:, 0, 0])  # every prediction matched to its own frame
    if length < F:  # one window, edge-padded at the end (MixSTE pads the last frame and scores the padding too)
        expected = np.minimum(np.arange(F), length - 1)
    else:  # windows at 0, F, 2F, ... and one aligned to the end
        expected = np.concatenate([np.arange(i * F, (i + 1) * F) for i in range(length // F)])
        if length % F:
            expected = np.concatenate([expected, np.arange(length - F, length)])
    np.testing.assert_array_equal(out[:, 0, 0], expected)


def test_eval_windows_values():
    starts, keep = eval_windows(20, 8)
    np.testing.assert_array_equal(starts, [0, 8, 12])
    np.testing.assert_array_equal(keep[2], [False] * 4 + [True] * 4)
    starts, keep = eval_windows(3, 8)
    np.testing.assert_array_equal(starts, [0])
    assert keep.sum() == 3
    assert eval_windows(20, 8, "mixste")[1].all()
    with pytest.raises(UserError, match="counting"):
        eval_windows(20, 8, "twice")


def test_flip_tta_averages_with_the_unflipped_prediction():
    rng = np.random.default_rng(1)
    poses = rng.normal(size=(11, 17, 2)).astype(np.float32)
    weight = torch.from_numpy(rng.normal(size=(17, 17)).astype(np.float32))

    def predict(batch):  # not mirror-equivariant: TTA changes the result
        mixed = torch.einsum("ij,bfjc->bfic", weight, batch)
        return torch.cat([mixed, mixed[..., :1] ** 2], dim=-1)

    plain = predict_sequence(predict, poses, 4)
    tta = predict_sequence(predict, poses, 4, flip_tta=True, kps_left=LEFT, kps_right=RIGHT, joints_left=LEFT,
                           joints_right=RIGHT)  # fmt: skip
    perm = np.arange(17)
    perm[LEFT], perm[RIGHT] = RIGHT, LEFT
    flipped_in = poses[:, perm] * [-1, 1]
    flipped_out = predict_sequence(predict, flipped_in.astype(np.float32), 4)[:, perm] * [-1, 1, 1]
    np.testing.assert_allclose(tta, (plain + flipped_out) / 2, atol=1e-5)
    assert not np.allclose(tta, plain)
