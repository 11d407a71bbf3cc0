"""Training clips: a torch Dataset of fixed-length clips, a seedable (resumable) sampler and the DataLoader over them.

Training: every (subject, action, camera) sequence is cut into clips of ``num_frames`` frames every ``stride`` frames;
clips that run past either end of a sequence are edge-padded (the first/last frame repeated). The clip grid is
centred on the sequence, so with ``stride == num_frames`` it is MixSTE's chunking and with ``stride == 1`` every frame
is the centre of one clip. All randomness (order and horizontal flips) comes from `SeedableSampler`, whose generator is
seeded by ``(seed, epoch)``: an item is ``(clip index, flip)``, so a resumed run reproduces the exact batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from common.core.errors import UserError
from common.datasets.detector_noise import DetectorNoise
from common.geometry.camera import flip_intrinsic
from common.geometry.keypoint_layouts import NUM_MODEL_JOINTS
from common.geometry.skeleton import mirror_permutation


def clip_starts(length: int, num_frames: int, stride: int) -> np.ndarray:
    """Start frames (may be negative / run past the end: edge padding) of the training clips of a sequence.

    ``ceil(length / stride)`` clips, ``stride`` frames apart, the grid centred so that padding is shared by both ends.
    """
    if length < 1 or num_frames < 1 or stride < 1:
        raise ValueError(f"length, num_frames and stride must be >= 1 (got {length}, {num_frames}, {stride})")
    count = math.ceil(length / stride)
    covered = (count - 1) * stride + num_frames
    offset = (covered - length) // 2
    return np.arange(count, dtype=np.int64) * stride - offset


class TrainClips(Dataset):
    """Training clips of ``num_frames`` frames from `common.datasets.sequences.Sequence` objects with 3D ground truth.

    An item is ``(inputs_2d (F, J, 2), targets_3d (F, J, 3), intrinsic (9,))`` float32 tensors. Indices are ints
    (no flip) or ``(index, flip)`` pairs as yielded by `SeedableSampler`; a flipped item has x negated, left/right
    joints swapped (2D with ``kps_left/right``, 3D with ``joints_left/right``) and ``cx``, ``p1`` negated. With
    ``flip=False`` flip requests are ignored. With ``noise`` (strength > 0) the 2D of every fetched batch is corrupted
    by `common.datasets.detector_noise.DetectorNoise` (after the flip; the 3D targets stay exact).
    ``__getitems__`` fetches a whole batch with vectorized indexing (the
    DataLoader built by `make_train_loader` uses it), returning the three stacked tensors.
    """

    def __init__(
        self,
        sequences: Sequence,
        num_frames: int,
        stride: int | None = None,
        flip: bool = True,
        kps_left: Sequence[int] = (),
        kps_right: Sequence[int] = (),
        joints_left: Sequence[int] = (),
        joints_right: Sequence[int] = (),
        noise: DetectorNoise | None = None,
    ) -> None:
        if not sequences:
            raise UserError("training data: no sequences selected (check the subjects/actions)")
        if num_frames < 1:
            raise UserError(f"-f/--number-of-frames: expected a positive number of frames, got {num_frames}")
        stride = num_frames if stride is None else stride
        if stride < 1:
            raise UserError(f"clip stride: expected a positive number of frames, got {stride}")
        for seq in sequences:
            if seq.poses_3d is None:
                raise UserError(
                    f"{seq.subject} / {seq.action} / camera {seq.camera_index}: no 3D ground truth to train on"
                )
        self.num_frames = int(num_frames)
        self.stride = int(stride)
        self.flip = bool(flip)
        self.noise = noise if noise is not None and noise.strength > 0 else None
        lengths = np.array([len(seq.poses_2d) for seq in sequences], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.lengths = lengths
        self.poses_2d = np.ascontiguousarray(np.concatenate([seq.poses_2d for seq in sequences]), dtype=np.float32)
        self.poses_3d = np.ascontiguousarray(np.concatenate([seq.poses_3d for seq in sequences]), dtype=np.float32)
        self.intrinsics = np.stack(
            [
                np.zeros(9, np.float32) if seq.camera is None else np.asarray(seq.camera.intrinsic, np.float32)
                for seq in sequences
            ]
        )
        starts = [clip_starts(int(n), self.num_frames, self.stride) for n in lengths]
        self.clip_sequence = np.concatenate([np.full(len(s), i, np.int64) for i, s in enumerate(starts)])
        self.clip_start = np.concatenate(starts)
        self.kps_perm = mirror_permutation(self.poses_2d.shape[1], kps_left, kps_right)
        self.joints_perm = mirror_permutation(self.poses_3d.shape[1], joints_left, joints_right)
        self._frame_range = np.arange(self.num_frames, dtype=np.int64)
        if self.noise is not None and self.poses_2d.shape[1:] != (NUM_MODEL_JOINTS, 2):
            raise UserError(f"--detector-noise: needs 2D in the model's {NUM_MODEL_JOINTS}-joint Human3.6M order, "
                            f"this data has {self.poses_2d.shape[1]} joints")

    def __len__(self) -> int:
        return len(self.clip_start)

    def frame_indices(self, clip_indices: np.ndarray) -> np.ndarray:
        """``(B, F)`` rows of the concatenated pose arrays for the given clips (edge padding by clipping)."""
        seq = self.clip_sequence[clip_indices]
        local = self.clip_start[clip_indices, None] + self._frame_range[None, :]
        local = np.clip(local, 0, self.lengths[seq][:, None] - 1)
        return local + self.offsets[seq][:, None]

    def fetch(self, clip_indices: np.ndarray, flips: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched clips as numpy-backed tensors ``(B, F, J, 2)``, ``(B, F, J, 3)``, ``(B, 9)``."""
        clip_indices = np.asarray(clip_indices, dtype=np.int64)
        rows = self.frame_indices(clip_indices)
        inputs = self.poses_2d[rows]
        targets = self.poses_3d[rows]
        intrinsic = self.intrinsics[self.clip_sequence[clip_indices]]
        flips = np.asarray(flips, dtype=bool) & self.flip
        if flips.any():
            inputs[flips] = inputs[flips][:, :, self.kps_perm]
            inputs[flips, :, :, 0] *= -1
            targets[flips] = targets[flips][:, :, self.joints_perm]
            targets[flips, :, :, 0] *= -1
            intrinsic[flips] = flip_intrinsic(intrinsic[flips])
        if self.noise is not None:  # one generator per batch, seeded from the epoch-seeded global RNG
            inputs = self.noise.apply(inputs, np.random.default_rng(np.random.randint(0, 2**31 - 1)))  # noqa: NPY002
        return torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(intrinsic)

    @staticmethod
    def _split(items) -> tuple[np.ndarray, np.ndarray]:
        indices, flips = [], []
        for item in items:
            if isinstance(item, (tuple, list)):
                indices.append(int(item[0]))
                flips.append(bool(item[1]))
            else:
                indices.append(int(item))
                flips.append(False)
        return np.array(indices, dtype=np.int64), np.array(flips, dtype=bool)

    def __getitem__(self, item):
        indices, flips = self._split([item])
        if not 0 <= indices[0] < len(self):
            raise IndexError(f"clip index {indices[0]} out of range for {len(self)} clips")
        inputs, targets, intrinsic = self.fetch(indices, flips)
        return inputs[0], targets[0], intrinsic[0]

    def __getitems__(self, items):
        indices, flips = self._split(items)
        return self.fetch(indices, flips)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A torch generator whose stream depends only on ``(seed, epoch)``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF]).generate_state(2, np.uint64)
    generator = torch.Generator()
    generator.manual_seed(int(state[0] >> np.uint64(1)))
    return generator


class SeedableSampler(Sampler):
    """Shuffling sampler with DistributedSampler semantics and exactly restorable state.

    Each epoch the order is a permutation drawn from a `torch.Generator` seeded by ``(seed, epoch)``, padded (by
    repeating its beginning) to a multiple of ``world_size`` and sharded ``rank::world_size``. With ``flip=True`` every
    position also gets a coin flip from the same generator, and the sampler yields ``(index, flip)`` pairs.
    ``state_dict(consumed)`` records the epoch and how many items of it this rank has consumed; after
    ``load_state_dict`` the next iteration resumes right after them.
    """

    def __init__(
        self,
        num_items: int,
        seed: int = 0,
        shuffle: bool = True,
        flip: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid rank {rank} for world_size {world_size}")
        if num_items < 1:
            raise UserError("training data: no clips to sample")
        self.num_items = int(num_items)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.flip = bool(flip)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0
        self._skip = 0
        self.num_samples = math.ceil(self.num_items / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (the shuffle and flips are a function of ``(seed, epoch)``)."""
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = int(epoch)

    def epoch_items(self) -> tuple[np.ndarray, np.ndarray]:
        """This rank's whole epoch: ``(indices, flips)`` numpy arrays of length ``len(self)``."""
        generator = _epoch_generator(self.seed, self.epoch)
        if self.shuffle:
            order = torch.randperm(self.num_items, generator=generator).numpy()
        else:
            order = np.arange(self.num_items)
        total = self.num_samples * self.world_size
        if total > self.num_items:
            order = np.concatenate([order, np.resize(order, total - self.num_items)])
        flips = (torch.rand(total, generator=generator) < 0.5).numpy() if self.flip else np.zeros(total, bool)
        return order[self.rank :: self.world_size], flips[self.rank :: self.world_size]

    def __iter__(self) -> Iterator:
        indices, flips = self.epoch_items()
        skip, self._skip = self._skip, 0
        for index, flip in zip(indices[skip:].tolist(), flips[skip:].tolist()):
            yield (index, flip) if self.flip else index

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self, consumed: int = 0) -> dict:
        """State to save: seed, epoch and ``consumed`` items of that epoch already used by this rank."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "consumed": int(consumed),
            "num_items": self.num_items,
            "world_size": self.world_size,
            "shuffle": self.shuffle,
            "flip": self.flip,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict`; the next iteration continues the saved epoch after its consumed items."""
        if int(state["num_items"]) != self.num_items or int(state["world_size"]) != self.world_size:
            raise UserError(
                f"sampler state: saved for {state['num_items']} clips on {state['world_size']} process(es), "
                f"but this run has {self.num_items} clips on {self.world_size} (same data and -f needed to resume)"
            )
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.shuffle = bool(state.get("shuffle", self.shuffle))
        self.flip = bool(state.get("flip", self.flip))
        self._skip = int(state.get("consumed", 0))


def _passthrough(batch):
    """Collate function for `TrainClips.__getitems__`, which already returns stacked tensors."""
    return batch


def make_train_loader(
    clips: TrainClips,
    batch_clips: int,
    seed: int,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """DataLoader over `clips` with a `SeedableSampler` (``loader.sampler``: call ``set_epoch`` every epoch).

    Batches are ``(inputs_2d (B, F, J, 2), targets_3d (B, F, J, 3), intrinsic (B, 9))``; workers are persistent.
    """
    if batch_clips < 1:
        raise UserError(f"-b/--batch-size: expected a positive number of clips, got {batch_clips}")
    if workers < 0:
        raise UserError(f"--workers: expected a non-negative number, got {workers}")
    sampler = SeedableSampler(len(clips), seed=seed, shuffle=True, flip=clips.flip, rank=rank, world_size=world_size)
    return DataLoader(
        clips,
        batch_size=batch_clips,
        sampler=sampler,
        num_workers=workers,
        collate_fn=_passthrough,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        drop_last=False,
    )
