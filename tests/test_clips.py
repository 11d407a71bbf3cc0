"""Tests for common/clips.py: training clips, the seedable sampler/loader and whole-sequence evaluation windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.clips import (
    SeedableSampler,
    TrainClips,
    clip_starts,
    eval_windows,
    make_train_loader,
    predict_sequence,
    window_frame_indices,
)
from common.datasets.base import CameraParams, Sequence
from common.errors import UserError
from common.keypoint_layouts import H36M17_LEFT, H36M17_RIGHT

LEFT, RIGHT = list(H36M17_LEFT), list(H36M17_RIGHT)


def _sequence(length: int, seed: int, camera_seed: int = 0) -> Sequence:
    rng = np.random.default_rng(seed)
    camera = CameraParams("c", 1000, 1000, 0.0, rng.normal(size=9).astype(np.float32), None, None)
    return Sequence(
        subject=f"S{seed}",
        action="A",
        camera_index=0,
        poses_2d=rng.normal(size=(length, 17, 2)).astype(np.float32),
        poses_3d=rng.normal(size=(length, 17, 3)).astype(np.float32),
        camera=camera,
    )


def _clips(flip=True, num_frames=5, stride=None, lengths=(12, 3, 7)):
    sequences = [_sequence(n, i) for i, n in enumerate(lengths)]
    return sequences, TrainClips(sequences, num_frames, stride, flip, LEFT, RIGHT, LEFT, RIGHT)


@pytest.mark.parametrize("length,frames,stride", [(1, 5, 5), (12, 5, 5), (10, 5, 5), (7, 5, 1), (30, 9, 4)])
def test_clip_starts_cover_every_frame_with_centred_padding(length, frames, stride):
    starts = clip_starts(length, frames, stride)
    assert len(starts) == -(-length // stride)
    covered = np.unique(np.concatenate([np.arange(s, s + frames) for s in starts]))
    assert set(range(length)) <= set(covered.tolist())
    before, after = -starts[0], starts[-1] + frames - length
    assert before >= 0 and after - before in (0, 1)


def test_mixste_chunking_when_stride_equals_frames():
    np.testing.assert_array_equal(clip_starts(12, 5, 5), [-1, 4, 9])  # 15 covered, 3 padded: 1 before, 2 after
    np.testing.assert_array_equal(clip_starts(10, 5, 5), [0, 5])


def test_train_item_is_the_edge_padded_slice():
    sequences, clips = _clips(flip=False)
    assert len(clips) == 3 + 1 + 2
    # first clip of sequence 0 starts at -1: frame 0 repeated once
    inputs, targets, intrinsic = clips[0]
    expected_frames = [0, 0, 1, 2, 3]
    np.testing.assert_array_equal(inputs.numpy(), sequences[0].poses_2d[expected_frames])
    np.testing.assert_array_equal(targets.numpy(), sequences[0].poses_3d[expected_frames])
    np.testing.assert_array_equal(intrinsic.numpy(), sequences[0].camera.intrinsic)
    # the 3-frame sequence: one clip starting at -1, padded at both ends
    inputs, _, _ = clips[3]
    np.testing.assert_array_equal(inputs.numpy(), sequences[1].poses_2d[[0, 0, 1, 2, 2]])
    assert inputs.dtype == torch.float32 and inputs.shape == (5, 17, 2)


def test_flipped_item():
    sequences, clips = _clips(flip=True)
    plain = clips[(4, False)]
    flipped = clips[(4, True)]
    perm = np.arange(17)
    perm[LEFT], perm[RIGHT] = RIGHT, LEFT
    expected_2d = plain[0].numpy()[:, perm] * [-1, 1]
    expected_3d = plain[1].numpy()[:, perm] * [-1, 1, 1]
    np.testing.assert_array_equal(flipped[0].numpy(), expected_2d.astype(np.float32))
    np.testing.assert_array_equal(flipped[1].numpy(), expected_3d.astype(np.float32))
    sign = np.ones(9, np.float32)
    sign[[2, 7]] = -1
    np.testing.assert_array_equal(flipped[2].numpy(), plain[2].numpy() * sign)
    # flip requests are ignored when the dataset has flip=False
    _, no_flip = _clips(flip=False)
    np.testing.assert_array_equal(no_flip[(4, True)][0].numpy(), plain[0].numpy())


def test_getitems_matches_getitem():
    _, clips = _clips(flip=True)
    items = [(5, True), (0, False), (3, True), (2, False)]
    batch = clips.__getitems__(items)
    for b, item in enumerate(items):
        for part, single in zip(batch, clips[item]):
            np.testing.assert_array_equal(part[b].numpy(), single.numpy())


def test_train_clips_need_3d():
    seq = _sequence(4, 0)
    seq.poses_3d = None
    with pytest.raises(UserError, match="S0 / A / camera 0: no 3D ground truth"):
        TrainClips([seq], 3)


def test_sampler_is_a_function_of_seed_and_epoch():
    a, b = SeedableSampler(50, seed=3, flip=True), SeedableSampler(50, seed=3, flip=True)
    first = list(a)
    assert first == list(b)
    assert sorted(i for i, _ in first) == list(range(50))
    flips = [f for _, f in first]
    assert 10 < sum(flips) < 40
    a.set_epoch(1)
    assert list(a) != first
    assert list(SeedableSampler(50, seed=4, flip=True)) != first


def test_sampler_sharding_pads_like_distributed_sampler():
    shards = [list(SeedableSampler(10, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    merged = sum(shards, [])
    assert set(merged) == set(range(10)) and len(merged) == 12


def test_sampler_state_resumes_mid_epoch():
    sampler = SeedableSampler(40, seed=7, flip=True)
    sampler.set_epoch(2)
    full = list(sampler)
    state = sampler.state_dict(consumed=15)
    restored = SeedableSampler(40, seed=0, flip=True)
    restored.load_state_dict(state)
    assert list(restored) == full[15:]
    assert list(restored) == full  # the skip applies to one iteration only
    with pytest.raises(UserError, match="sampler state"):
        SeedableSampler(41).load_state_dict(state)


def test_loader_batches_are_reproducible_with_workers():
    _, clips = _clips(flip=True, lengths=(40, 17, 23))
    loader0 = make_train_loader(clips, batch_clips=4, seed=5, workers=0)
    loader2 = make_train_loader(clips, batch_clips=4, seed=5, workers=2)
    for epoch in (0, 1):
        loader0.sampler.set_epoch(epoch)
        loader2.sampler.set_epoch(epoch)
        batches0, batches2 = list(loader0), list(loader2)
        assert len(batches0) == len(batches2) == -(-len(clips) // 4)
        for x, y in zip(batches0, batches2):
            assert x[0].shape[1:] == (5, 17, 2) and x[1].shape[1:] == (5, 17, 3) and x[2].shape[1:] == (9,)
            for u, v in zip(x, y):
                torch.testing.assert_close(u, v, rtol=0, atol=0)
    assert loader2.persistent_workers


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
    np.testing.assert_array_equal(window_frame_indices(length, F), np.arange(length))


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
