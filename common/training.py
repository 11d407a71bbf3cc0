"""The training loop: AdamW, per-epoch learning-rate decay with optional warm-up, AMP, gradient clipping, throughput.

- `make_optimizer(model, lr, weight_decay)`: AdamW over every parameter.
- `learning_rate(schedule, epoch, step, steps_per_epoch)`: ``lr * lr_decay**epoch``, times a linear warm-up factor
  during the first ``warmup_epochs`` (counted in steps). A pure function of (epoch, step): resuming needs no state.
- `train_step(...)`: one optimisation step on one batch, back-propagating the loss itself (not MixSTE's
  ``loss.backward(loss)``, which optimises the square of the objective).
- `train_one_epoch(...)`: one pass over the loader with a tqdm bar (loss and ETA); returns `EpochStats`
  (frame-weighted loss terms, frames/s, share of the step time spent waiting for data).
- `seed_epoch(seed, epoch)`: the torch/numpy/Python RNGs of an epoch depend only on (seed, epoch), so a run killed after
  epoch k and resumed with ``-r`` draws exactly the same random numbers (drop path, flips) as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from common.metrics import mixste_loss, mpjpe

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class LrSchedule:
    """Learning-rate schedule: exponential per-epoch decay, optional linear warm-up (in epochs, may be fractional)."""

    lr: float
    lr_decay: float = 0.99
    warmup_epochs: float = 0.0


@dataclass(frozen=True)
class LossWeights:
    """Training objective: (weighted) MPJPE + ``lambda_tc`` * temporal consistency + ``lambda_vel`` * velocity error."""

    joint_weights: tuple[float, ...] | None = None  # None: plain MPJPE and an unweighted TC loss
    lambda_tc: float = 0.5
    lambda_vel: float = 2.0


def pose_loss(predicted: torch.Tensor, target: torch.Tensor, weights: LossWeights) -> tuple[torch.Tensor, dict]:
    """The loss to back-propagate and its terms as 0-dim tensors: ``total``, ``position`` (weighted MPJPE when joint
    weights are set), ``tc``, ``vel``, and the plain ``mpjpe`` (detached, for logs comparable with validation)."""
    terms = mixste_loss(predicted, target, joint_weights=weights.joint_weights, tc_weight=weights.lambda_tc,
                        velocity_weight=weights.lambda_vel)
    named = {"total": terms["total"], "position": terms["position"], "tc": terms["temporal_consistency"],
             "vel": terms["velocity"], "mpjpe": mpjpe(predicted.detach(), target)}
    return terms["total"], named


@dataclass(frozen=True)
class StepSettings:
    """How one optimisation step runs."""

    loss_weights: LossWeights
    grad_clip: float = 0.0  # 0 = off
    amp_dtype: torch.dtype | None = None  # None = fp32 (always on the CPU)


@dataclass
class EpochStats:
    """Per-epoch training statistics (loss terms are frame-weighted means)."""

    losses: dict[str, float] = field(default_factory=dict)
    frames: int = 0
    steps: int = 0
    seconds: float = 0.0
    data_seconds: float = 0.0
    stopped_early: bool = False  # should_stop() ended the epoch before the loader was exhausted

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def data_share(self) -> float:
        """Fraction of the epoch's wall time spent waiting for the data loader."""
        return self.data_seconds / self.seconds if self.seconds > 0 else 0.0


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over all trainable parameters (MixSTE: weight decay 0.1)."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)


def learning_rate(schedule: LrSchedule, epoch: int, step: int = 0, steps_per_epoch: int = 1) -> float:
    """Learning rate of ``step`` in ``epoch`` (both 0-based)."""
    lr = schedule.lr * schedule.lr_decay**epoch
    if schedule.warmup_epochs > 0:
        done = epoch * steps_per_epoch + step + 1
        lr *= min(1.0, done / (schedule.warmup_epochs * steps_per_epoch))
    return lr


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed torch, numpy and Python's RNGs from (seed, epoch) alone."""
    value = (seed * 1_000_003 + epoch * 7919) % (2**31 - 1)
    torch.manual_seed(value)
    np.random.seed(value)  # noqa: NPY002 (seeds the global state on purpose)
    random.seed(value)


def make_grad_scaler(amp_dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 on CUDA, else None (bf16 and fp32 need none)."""
    if amp_dtype == torch.float16 and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    if amp_dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=amp_dtype)


def train_step(model: nn.Module, inputs_2d: torch.Tensor, targets_3d: torch.Tensor, optimizer: torch.optim.Optimizer,
               settings: StepSettings, scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
    """One optimisation step; returns the loss terms of the batch as floats."""
    optimizer.zero_grad(set_to_none=True)
    with _autocast(inputs_2d.device, settings.amp_dtype):
        predicted = model(inputs_2d)
    total, terms = pose_loss(predicted.float(), targets_3d, settings.loss_weights)
    if scaler is not None:
        scaler.scale(total).backward()
        if settings.grad_clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        total.backward()
        if settings.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
    return {name: float(value.detach()) for name, value in terms.items()}


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, settings: StepSettings,
                    schedule: LrSchedule, epoch: int, device: torch.device,
                    scaler: torch.amp.GradScaler | None = None, progress: bool = True,
                    steps_per_epoch: int | None = None, seed: int | None = None,
                    on_step: Callable[[int, dict[str, float]], object] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> EpochStats:
    """Train for one epoch over ``loader`` (items ``(inputs_2d, targets_3d, intrinsic)``).

    ``should_stop()`` is asked after every step (e.g. a time budget); True ends the epoch there.

    With ``seed`` the RNGs are re-seeded by `seed_epoch` right after the loader's iterator is created (creating one
    draws from torch's RNG only when it is not persistent, so seeding after it keeps resumed runs exact).
    """
    model.train()
    iterator = iter(loader)
    if seed is not None:
        seed_epoch(seed, epoch)
    steps_per_epoch = steps_per_epoch or len(loader)
    stats = EpochStats()
    sums: dict[str, float] = {}
    bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1} train", unit="step", disable=not progress,
               dynamic_ncols=True, leave=False)
    start = last = time.perf_counter()
    for step, batch in enumerate(iterator):
        fetched = time.perf_counter()
        stats.data_seconds += fetched - last
        inputs_2d = batch[0].to(device, non_blocking=True)
        targets_3d = batch[1].to(device, non_blocking=True)
        set_learning_rate(optimizer, learning_rate(schedule, epoch, step, steps_per_epoch))
        terms = train_step(model, inputs_2d, targets_3d, optimizer, settings, scaler)
        frames = targets_3d.shape[0] * targets_3d.shape[1]
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value * frames
        stats.frames += frames
        stats.steps += 1
        bar.set_postfix(loss=f"{terms['total']:.4f}", mpjpe=f"{terms['mpjpe'] * 1000:.1f}mm", refresh=False)
        bar.update(1)
        if on_step is not None:
            on_step(step, terms)
        if should_stop is not None and step + 1 < steps_per_epoch and should_stop():
            stats.stopped_early = True
            break
        last = time.perf_counter()
    bar.close()
    stats.seconds = time.perf_counter() - start
    stats.losses = {name: total / max(stats.frames, 1) for name, total in sums.items()}
    return stats
