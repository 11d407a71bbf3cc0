"""Tests for common/datasets/training_clips.py: training clips, the seedable sampler and the loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.core.errors import UserError
from common.datasets.base import CameraParams
from common.datasets.detector_noise import DetectorNoise
from common.datasets.sequences import Sequence
from common.datasets.training_clips import SeedableSampler, TrainClips, clip_starts, make_train_loader

LEFT, RIGHT = [4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]  # the model order's left/right joints


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


def test_detector_noise_corrupts_the_2d_only_and_reproducibly():
    sequences = [_sequence(n, i) for i, n in enumerate((12, 3, 7))]
    clean = TrainClips(sequences, 5, None, True, LEFT, RIGHT, LEFT, RIGHT)
    noisy = TrainClips(sequences, 5, None, True, LEFT, RIGHT, LEFT, RIGHT, noise=DetectorNoise())
    items = [(0, False), (3, True), (5, False)]
    reference = clean.__getitems__(items)
    np.random.seed(11)  # noqa: NPY002 (the epoch seeding of common.training.step does this)
    first = noisy.__getitems__(items)
    np.random.seed(11)  # noqa: NPY002
    again = noisy.__getitems__(items)
    for got, same, expected in zip(first, again, reference):
        torch.testing.assert_close(got, same, rtol=0, atol=0)
        assert got.shape == expected.shape
    assert (first[0] - reference[0]).abs().mean() > 0.01  # the 2D moved
    torch.testing.assert_close(first[1], reference[1], rtol=0, atol=0)  # the 3D targets are exact
    torch.testing.assert_close(first[2], reference[2], rtol=0, atol=0)
    assert TrainClips(sequences, 5, noise=DetectorNoise(strength=0)).noise is None


def test_detector_noise_needs_the_model_joint_order():
    sequence = _sequence(8, 0)
    sequence.poses_2d = sequence.poses_2d[:, :15]
    with pytest.raises(UserError, match="--detector-noise: needs 2D in the model's 17-joint .* has 15 joints"):
        TrainClips([sequence], 5, noise=DetectorNoise())
