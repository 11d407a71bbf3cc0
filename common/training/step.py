"""One optimisation step and one epoch of training, with the learning-rate schedule and the per-epoch seeding.

- `make_optimizer(model, lr, weight_decay)`: AdamW over every parameter.
- `learning_rate(schedule, epoch, step, steps_per_epoch, budget_used)`: ``lr * lr_decay**epoch`` or a half cosine,
  times a linear warm-up factor during the first ``warmup_epochs`` (counted in steps). A pure function of its
  arguments: resuming needs no state. Under a time budget the cosine ends at the budget when that comes first.
- `train_step(...)`: one optimisation step on one batch (AMP, gradient clipping), back-propagating the loss itself
  (not MixSTE's ``loss.backward(loss)``, which optimises the square of the objective). A loss or gradient that is
  not finite raises `NonFiniteLossError` (a `UserError`) before the update, so the weights stay as they were.
- `train_one_epoch(...)`: one pass over the loader with a tqdm bar (loss and ETA); returns `EpochStats`
  (frame-weighted loss terms, frames, steps, wall and data-wait seconds). A non-finite loss ends training with one
  line naming the epoch, the step and the loss term, and the hint to lower ``-lr``.
- `seed_epoch(seed, epoch)`: the torch/numpy/Python RNGs of an epoch depend only on (seed, epoch), so a run killed after
  epoch k and resumed with ``-r`` draws exactly the same random numbers (drop path, flips) as an uninterrupted run.

The loss itself is `common.training.losses.mixste_loss`; the epoch loop around this is `common.training.loop`.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from common.core.errors import UserError
from common.training.losses import TERMS, LossWeights, mixste_loss

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
LR_SCHEDULES = ("exponential", "cosine")
"""Names of the learning-rate schedules (`LrSchedule.kind`; the first is the default)."""


@dataclass(frozen=True)
class LrSchedule:
    """Learning-rate schedule, then an optional linear warm-up (in epochs, may be fractional) on top.

    ``exponential``: ``lr * lr_decay ** epoch`` (VideoPose3D / MixSTE). ``cosine``: a half cosine from ``lr`` at the
    first step to 0 after ``total_epochs`` epochs, by step (``lr_decay`` unused): the learning rate is annealed within
    the run even when it is only a few epochs long. Under a time budget its progress is the larger of the fraction of
    steps done and the fraction of the budget used, so it reaches 0 when the budget ends on a slow or busy machine
    too (a budgeted run is therefore not bit-reproducible; one without a budget is).
    """

    lr: float
    lr_decay: float = 0.99
    warmup_epochs: float = 0.0
    kind: str = "exponential"
    total_epochs: int = 1


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
    stopped_early: bool = False  # the time budget ended the epoch before the loader was exhausted
    last_lr: float = 0.0  # learning rate of the epoch's last step


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over all trainable parameters (MixSTE: weight decay 0.1)."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)


def learning_rate(schedule: LrSchedule, epoch: int, step: int = 0, steps_per_epoch: int = 1,
                  budget_used: float = 0.0) -> float:
    """Learning rate of ``step`` in ``epoch`` (both 0-based); ``budget_used``: the fraction of the time budget used
    so far (0 without a budget), which only the cosine schedule reads."""
    if schedule.kind == "cosine":
        progress = (epoch * steps_per_epoch + step) / (max(schedule.total_epochs, 1) * steps_per_epoch)
        progress = max(progress, budget_used)
        lr = schedule.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    else:
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


DIVERGED_HINT = "stopped without saving this epoch (checkpoints already written are kept): lower -lr or set --grad-clip"
"""The end of every divergence message (the step's here, the epoch loop's in `common.training.loop`)."""


class NonFiniteLossError(UserError):
    """The loss or the gradient of a step is not finite (raised before the update: the weights are unchanged)."""


def _non_finite_detail(values: dict[str, float], grad_norm: float, weights: LossWeights,
                       predicted: torch.Tensor) -> str:
    """Which part of the loss is not finite, in words."""
    if math.isfinite(values["total"]):
        return f"the gradient norm is {grad_norm} (loss {values['total']:.4g})"
    if not torch.isfinite(predicted.detach()).all():
        return f"the loss is {values['total']} because the model's output is not finite (its weights diverged)"
    for name, meaning in TERMS.items():
        if not math.isfinite(weights.factor(name) * values[name]):
            return (f"the loss is {values['total']}: term {name} ({meaning}) is {values[name]:.4g} with weight "
                    f"{weights.factor(name):g}")
    return f"the loss is {values['total']}"


def _backward(total: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer, settings: StepSettings,
              scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    """Back-propagate ``total``; returns the gradient norm to check (0 with a GradScaler: it skips such steps)."""
    if scaler is not None:
        scaler.scale(total).backward()
        if settings.grad_clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        return total.new_zeros(())
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return nn.utils.get_total_norm(grads) if grads else total.new_zeros(())


def _update(model: nn.Module, optimizer: torch.optim.Optimizer, settings: StepSettings,
            scaler: torch.amp.GradScaler | None, grad_norm: torch.Tensor) -> None:
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
        return
    if settings.grad_clip > 0:
        nn.utils.clip_grads_with_norm_(model.parameters(), settings.grad_clip, grad_norm)
    optimizer.step()


def train_step(model: nn.Module, inputs_2d: torch.Tensor, targets_3d: torch.Tensor, optimizer: torch.optim.Optimizer,
               settings: StepSettings, scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
    """One optimisation step; returns the loss terms of the batch (`mixste_loss`) as floats.

    Raises `NonFiniteLossError` before the update when the loss or the gradient is not finite (DDP averages the
    gradients, so a NaN gradient on one rank reaches every rank and all of them stop at the same step).
    """
    optimizer.zero_grad(set_to_none=True)
    with _autocast(inputs_2d.device, settings.amp_dtype):
        predicted = model(inputs_2d)
    terms = mixste_loss(predicted.float(), targets_3d, settings.loss_weights)
    grad_norm = _backward(terms["total"], model, optimizer, settings, scaler)
    numbers = torch.stack([value.detach().float() for value in (*terms.values(), grad_norm)]).tolist()  # one sync
    values, norm = dict(zip(terms, numbers[:-1])), numbers[-1]
    if not (math.isfinite(values["total"]) and math.isfinite(norm)):
        raise NonFiniteLossError(_non_finite_detail(values, norm, settings.loss_weights, predicted))
    _update(model, optimizer, settings, scaler, grad_norm)
    return values


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, settings: StepSettings,
                    schedule: LrSchedule, epoch: int, device: torch.device,
                    scaler: torch.amp.GradScaler | None = None, progress: bool = True, seed: int | None = None,
                    budget_used: Callable[[], float] | None = None) -> EpochStats:
    """Train for one epoch over ``loader`` (items ``(inputs_2d, targets_3d, intrinsic)``).

    ``budget_used()`` (the fraction of the time budget used, one call per step) sets the cosine's progress (see
    `LrSchedule`) and ends the epoch at the first step after which it is 1 or more. A non-finite loss
    raises `NonFiniteLossError` naming the epoch, the step and the term, with the weights of the step before.

    With ``seed`` the RNGs are re-seeded by `seed_epoch` right after the loader's iterator is created (creating one
    draws from torch's RNG only when it is not persistent, so seeding after it keeps resumed runs exact).
    """
    model.train()
    iterator = iter(loader)
    if seed is not None:
        seed_epoch(seed, epoch)
    steps_per_epoch = len(loader)
    stats, sums = EpochStats(), {}
    bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1} train", unit="step", disable=not progress,
               dynamic_ncols=True, leave=False)
    start = last = time.perf_counter()
    used = budget_used() if budget_used is not None else 0.0
    for step, batch in enumerate(iterator):
        stats.data_seconds += time.perf_counter() - last
        inputs_2d, targets_3d = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        lr = learning_rate(schedule, epoch, step, steps_per_epoch, used)
        set_learning_rate(optimizer, lr)
        try:
            terms = train_step(model, inputs_2d, targets_3d, optimizer, settings, scaler)
        except NonFiniteLossError as error:
            bar.close()
            raise NonFiniteLossError(
                f"training diverged at epoch {epoch + 1}, step {step + 1}/{steps_per_epoch} (lr {lr:.3g}): {error}; "
                f"{DIVERGED_HINT}") from None
        frames = targets_3d.shape[0] * targets_3d.shape[1]
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value * frames
        stats.frames, stats.steps, stats.last_lr = stats.frames + frames, stats.steps + 1, lr
        bar.set_postfix(loss=f"{terms['total']:.4f}", mpjpe=f"{terms['mpjpe'] * 1000:.1f}mm", refresh=False)
        bar.update(1)
        if budget_used is not None:
            used = budget_used()
            if used >= 1.0 and step + 1 < steps_per_epoch:
                stats.stopped_early = True
                break
        last = time.perf_counter()
    bar.close()
    stats.seconds = time.perf_counter() - start
    stats.losses = {name: total / max(stats.frames, 1) for name, total in sums.items()}
    return stats
