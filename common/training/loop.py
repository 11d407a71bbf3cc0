"""The epoch loop of `run.py`: epochs of `common.training.step`, validation, logs, checkpoint cadence, time budget,
resume.

- `TrainingState`: what the loop advances (model, optimizer, loader, ...) and what a checkpoint restores (start epoch,
  best validation error, history).
- `LoopSettings`: how long to train and where / how often to write (one explicit object, no global ``args``).
- `run_epochs(state, settings, validate, ctx, logger)`: the loop. Every rank trains; rank 0 validates, logs and
  writes ``last_epoch.bin`` every epoch, ``epoch_N.bin`` every ``checkpoint_frequency`` epochs and ``best_epoch.bin``
  when the validation MPJPE improves (every epoch when validation is off).
- A time budget (``--time-budget``) ends training at the first step past it (and ends a cosine learning-rate
  schedule there, see `common.training.step.LrSchedule`); the partial epoch is saved as a finished one, so a run
  resumed from such a checkpoint continues with the next epoch (not bit-identical to an uninterrupted run, unlike a
  resume after a whole epoch).
- `restore_state(state, stored, source)`: continue from a checkpoint of this loop (``-r``): its optimizer moments,
  sampler, RNGs and history, with this run's weight decay (``--weight-decay`` of the resuming command).
- Divergence: a non-finite loss stops training (`common.training.step.NonFiniteLossError`) before anything of that
  epoch is written; a model whose weights or validation error are not finite is never written (neither as
  ``best_epoch.bin`` nor as ``last_epoch.bin``): the checkpoints of the last good epoch stay as they were.
- Ctrl-C and SIGTERM (`common.core.errors.run_cli`) stop the loop; a checkpoint being written is not left half-written,
  and temporary files that a killed run left in the checkpoint folder are removed when the next run starts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from common.core.errors import UserError, first_line
from common.core.files import remove_stale_temps
from common.model import checkpoints
from common.training import distributed, step
from common.training.run_logging import export_training_curves

HISTORY_KEYS = ("epoch", "train_mpjpe", "val_mpjpe", "lr")


def empty_history() -> dict[str, list]:
    return {key: [] for key in HISTORY_KEYS}


@dataclass
class TrainingState:
    """Everything the epoch loop advances."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loader: torch.utils.data.DataLoader  # sampler: `common.datasets.training_clips.SeedableSampler` (set_epoch, state)
    step_settings: step.StepSettings
    schedule: step.LrSchedule
    model_config: dict
    scaler: torch.amp.GradScaler | None = None
    start_epoch: int = 0
    best_val: float | None = None
    history: dict[str, list] = field(default_factory=empty_history)


@dataclass(frozen=True)
class LoopSettings:
    """How long to train, and what to write where."""

    epochs: int
    checkpoint_dir: Path
    checkpoint_frequency: int = 20
    seed: int = 0
    export_curves: bool = False
    progress: bool = True
    time_budget_seconds: float = 0.0  # 0 = no budget
    run_args: dict = field(default_factory=dict)  # stored in every checkpoint (command-line flags)


@dataclass(frozen=True)
class LoopResult:
    epochs_done: int
    stopped_by_budget: bool


def restore_state(state: TrainingState, stored: dict, source: str) -> None:
    """Continue from a project checkpoint written by this loop: optimizer, sampler, scaler, RNGs, epoch, history."""
    if stored.get("optimizer") is None or stored.get("loader_state") is None:
        raise UserError(f"{source}: the checkpoint has no optimizer/loader state to resume from")
    part = "optimizer"
    try:
        # the moments come from the checkpoint, the weight decay from this run's settings (--weight-decay); the
        # learning rate is set by the schedule at every step
        decays = [group.get("weight_decay") for group in state.optimizer.param_groups]
        state.optimizer.load_state_dict(stored["optimizer"])
        for group, decay in zip(state.optimizer.param_groups, decays):
            group["weight_decay"] = decay
        part = "loader_state"
        state.loader.sampler.load_state_dict(stored["loader_state"])
        part = "scaler"
        if state.scaler is not None and stored.get("scaler"):
            state.scaler.load_state_dict(stored["scaler"])
        part = "random_state"
        checkpoints.restore_random_state(stored.get("random_state"))
        part = "epoch/best_val/history"
        state.start_epoch, state.best_val = int(stored["epoch"]), stored.get("best_val")
        state.history = {key: list(stored.get("history", {}).get(key, [])) for key in HISTORY_KEYS}
    except UserError as error:
        raise UserError(f"{source}: {error}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
        raise UserError(f"{source}: the checkpoint's {part} is malformed ({type(error).__name__}: "
                        f"{first_line(error)[:120]}); expected the state written by run.py's training loop") from None


def _budget_clock(settings: LoopSettings, started: float, ctx) -> Callable[[], float] | None:
    """A callable giving the fraction of the time budget used so far (rank 0's clock, the same number on every rank,
    so that every rank stops at the same step and uses the same learning rate), or None without a budget."""
    if settings.time_budget_seconds <= 0:
        return None
    return lambda: distributed.broadcast_value((time.perf_counter() - started) / settings.time_budget_seconds, ctx)


def _combined_stats(stats: step.EpochStats, ctx) -> tuple[dict[str, float], float, float, float]:
    """Frame-weighted loss terms over every rank, the frames, the wall seconds and the data-wait seconds."""
    names = sorted(stats.losses)
    totals = distributed.all_reduce_sum(
        [stats.losses[n] * stats.frames for n in names] + [stats.frames, stats.data_seconds, stats.seconds], ctx)
    frames = totals[len(names)]
    losses = {n: totals[i] / max(frames, 1) for i, n in enumerate(names)}
    return losses, frames, totals[-1] / ctx.world_size, totals[-2] / ctx.world_size


def run_epochs(state: TrainingState, settings: LoopSettings, validate: Callable[[nn.Module], float] | None, ctx,
               logger) -> LoopResult:
    """Train from ``state.start_epoch`` to ``settings.epochs`` (or until the time budget); ``validate(model)`` returns
    the validation MPJPE in metres (None: no validation, every epoch counts as the best)."""
    out_dir = Path(settings.checkpoint_dir)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out_dir)
    budget_used = _budget_clock(settings, time.perf_counter(), ctx)
    epoch, stopped = state.start_epoch, False
    for epoch in range(state.start_epoch, settings.epochs):
        if budget_used is not None and epoch > state.start_epoch and budget_used() >= 1.0:  # ran out with the last step
            logger.info(f"time budget of {settings.time_budget_seconds / 60:g} min reached after epoch {epoch}: "
                        "stopping")
            return LoopResult(epochs_done=epoch, stopped_by_budget=True)
        stopped = _run_epoch(state, settings, epoch, validate, ctx, logger, budget_used)
        logger.flush()
        distributed.barrier(ctx)
        if stopped:
            break
    return LoopResult(epochs_done=epoch + 1, stopped_by_budget=stopped)


def _run_epoch(state: TrainingState, settings: LoopSettings, epoch: int, validate, ctx, logger, budget_used) -> bool:
    """Train, validate, log and write the checkpoints of one epoch; True when the time budget ended it early."""
    state.loader.sampler.set_epoch(epoch)
    stats = step.train_one_epoch(
        state.model, state.loader, state.optimizer, state.step_settings, state.schedule, epoch, ctx.device,
        state.scaler, progress=settings.progress and ctx.is_main, seed=settings.seed, budget_used=budget_used)
    losses, frames, seconds, data_seconds = _combined_stats(stats, ctx)
    lr = stats.last_lr
    val_mpjpe = None
    if ctx.is_main and validate is not None:
        _check_finite(state.model, None, epoch)  # diverged weights are named as such, not as a failed validation
        val_mpjpe = validate(checkpoints.unwrap_model(state.model) if ctx.distributed else state.model)
    improved = ctx.is_main and (validate is None or state.best_val is None or val_mpjpe < state.best_val)
    for key, value in zip(HISTORY_KEYS, (epoch + 1, losses["mpjpe"], val_mpjpe, lr)):
        state.history[key].append(value)
    _log_epoch(logger, epoch, settings.epochs, lr, losses, val_mpjpe, frames, seconds, data_seconds)
    if stats.stopped_early:
        logger.info(f"time budget of {settings.time_budget_seconds / 60:g} min reached after {stats.steps} of "
                    f"{len(state.loader)} steps of epoch {epoch + 1}: stopping (saved as epoch {epoch + 1})")
    if ctx.is_main:
        _check_finite(state.model, val_mpjpe, epoch)
        if improved and validate is not None:
            state.best_val = val_mpjpe
        _write_checkpoints(state, settings, epoch, improved)
        if improved and validate is not None:
            logger.info(f"saved best_epoch.bin (epoch {epoch + 1})")
    return stats.stopped_early


def _check_finite(model: nn.Module, val_mpjpe: float | None, epoch: int) -> None:
    """UserError (nothing of this epoch is written) when a weight or the validation error is not finite."""
    bad = checkpoints.non_finite_tensors(checkpoints.unwrap_model(model).state_dict())
    if bad:
        problem = checkpoints.describe_non_finite(bad)
    elif val_mpjpe is not None and not math.isfinite(val_mpjpe):
        problem = f"the validation MPJPE is {val_mpjpe} (the predictions are not finite)"
    else:
        return
    raise UserError(f"training diverged in epoch {epoch + 1}: {problem}; {step.DIVERGED_HINT}")


def _log_epoch(logger, epoch: int, epochs: int, lr: float, losses: dict, val_mpjpe: float | None, frames: float,
               seconds: float, data_seconds: float) -> None:
    fps = frames / seconds if seconds > 0 else 0.0
    data_share = data_seconds / seconds if seconds > 0 else 0.0
    logger.info(
        f"[{epoch + 1}/{epochs}] lr {lr:.3g} loss {losses['total']:.4f} (position {losses['position']:.4f}, "
        f"tc {losses['tc']:.2e}, vel {losses['vel']:.4f}) train MPJPE {losses['mpjpe'] * 1000:.1f} mm"
        + (f" val MPJPE {val_mpjpe * 1000:.2f} mm" if val_mpjpe is not None else "")
        + f" | {seconds:.1f} s, {fps:.0f} frames/s, data wait {data_share * 100:.1f}%")
    logger.scalars({f"train/{n}": v for n, v in losses.items()}, epoch + 1)
    logger.scalars({"train/lr": lr, "speed/epoch_seconds": seconds, "speed/frames_per_second": fps,
                    "speed/data_wait_share": data_share}, epoch + 1)
    if val_mpjpe is not None:
        logger.scalar("val/mpjpe_mm", val_mpjpe * 1000, epoch + 1)


def _next_epoch_loader_state(sampler, next_epoch: int) -> dict:
    """The sampler state at the start of ``next_epoch`` (what a resumed run must continue with)."""
    loader_state = sampler.state_dict(consumed=0)
    loader_state["epoch"] = next_epoch
    return loader_state


def _write_checkpoints(state: TrainingState, settings: LoopSettings, epoch: int, improved: bool) -> None:
    out_dir = Path(settings.checkpoint_dir)
    save = dict(model=state.model, optimizer=state.optimizer, model_config=state.model_config,
                best_val=state.best_val, loader_state=_next_epoch_loader_state(state.loader.sampler, epoch + 1),
                history=state.history, scaler_state=state.scaler.state_dict() if state.scaler is not None else None,
                args=settings.run_args, epoch=epoch + 1, lr=step.learning_rate(state.schedule, epoch + 1))
    # best first, last_epoch.bin last: a run killed between two writes never leaves a resumable epoch_N / last_epoch
    # file whose best_epoch.bin was not written yet (the resumed run would end without a best checkpoint)
    if improved:
        checkpoints.save_checkpoint(out_dir / "best_epoch.bin", **save)
    if (epoch + 1) % settings.checkpoint_frequency == 0:
        checkpoints.save_checkpoint(out_dir / f"epoch_{epoch + 1}.bin", **save)
    checkpoints.save_checkpoint(out_dir / "last_epoch.bin", **save)
    if settings.export_curves:
        export_training_curves(state.history, out_dir)
