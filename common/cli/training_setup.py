"""What `run.py` needs to start (or resume) a training: the model, the clip loader and the epoch-loop state.

`training_state(args, data, ctx, log)` builds everything from the flags: a new model from the preset and flags, or the
``-r`` checkpoint's model with its optimizer, sampler and random state restored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from common.cli.model_setup import build_from_checkpoint, new_model_config, place_model
from common.cli.run_arguments import model_overrides
from common.cli.run_data import RunData, check_frames
from common.core.errors import UserError
from common.datasets.detector_noise import DetectorNoise
from common.datasets.training_clips import TrainClips, make_train_loader
from common.model import checkpoints
from common.model.metaformer import build_model
from common.training import loop, step
from common.training.losses import LossWeights, joint_weights_for


def make_loader(args, data: RunData, num_frames: int, ctx):
    """Training clips of ``num_frames`` every ``-s`` frames (flip augmentation unless ``-no-da``), ``-b`` frames per
    step split over the torchrun processes."""
    skeleton = data.dataset.skeleton
    clips = TrainClips(data.train, num_frames, args.stride or num_frames, flip=args.data_augmentation,
                       kps_left=data.keypoints.kps_left, kps_right=data.keypoints.kps_right,
                       joints_left=skeleton.joints_left(), joints_right=skeleton.joints_right(),
                       noise=DetectorNoise(strength=args.detector_noise))
    global_clips = max(1, args.batch_size // num_frames)
    if global_clips < ctx.world_size:
        raise UserError(f"-b {args.batch_size}: {global_clips} clip(s) per step cannot be split over "
                        f"{ctx.world_size} processes (need at least one clip each)")
    return make_train_loader(clips, global_clips // ctx.world_size, args.seed, args.workers, ctx.rank,
                             ctx.world_size, pin_memory=ctx.device.type == "cuda")


def loss_weights(args, num_joints: int) -> LossWeights:
    """MixSTE's joint weights for H36M-17 joints (``--joint-weights dataset``) plus the TC and velocity terms."""
    found = joint_weights_for(num_joints) if args.joint_weights == "dataset" else None
    weights = tuple(float(w) for w in found) if found is not None else None
    return LossWeights(weights, args.lambda_tc, args.lambda_vel)


def initial_model(args, num_joints: int):
    """(model, config, stored checkpoint or None, resume path or None): the ``-r`` checkpoint's model or a new one."""
    torch.manual_seed(args.seed)
    if not args.resume:
        config = new_model_config(model_overrides(args), args.preset, num_joints)
        return build_model(config), config, None, None
    path = checkpoints.resolve_checkpoint_path(args.resume, args.checkpoint, "-r/--resume")
    loaded = build_from_checkpoint(path, model_overrides(args), args.preset, num_joints)
    if loaded.official:
        raise UserError(f"-r {path}: official MixSTE checkpoints cannot be resumed exactly; use --evaluate")
    return loaded.model, loaded.config, loaded.stored, path


def _amp_dtype(args, ctx, log: Callable[[str], object]):
    amp_dtype = step.AMP_DTYPES.get(args.amp) if ctx.device.type == "cuda" else None
    if args.amp and amp_dtype is None:
        log(f"--amp {args.amp}: mixed precision needs CUDA; the CPU runs in fp32")
    return amp_dtype


def training_state(args, data: RunData, ctx, log: Callable[[str], object]):
    """(epoch-loop state, model config): model placed on the device(s), optimizer, loader, loss, schedule."""
    num_joints = data.dataset.skeleton.num_joints()
    model, config, stored, resume_path = initial_model(args, num_joints)
    shortened = [f"{flag} {value:g}" for flag, value, default in (("--subset", args.subset, 1),
                                                                   ("--downsample", args.downsample, 1))
                 if value != default]
    check_frames(config.num_frames, data.train, "-f/--number-of-frames", " and ".join(shortened))
    loader = make_loader(args, data, config.num_frames, ctx)
    model = place_model(model, ctx, args.compile, training=True, log=log)
    optimizer = step.make_optimizer(model, args.learning_rate, args.weight_decay)
    amp_dtype = _amp_dtype(args, ctx, log)
    step_settings = step.StepSettings(loss_weights(args, num_joints), args.grad_clip, amp_dtype)
    schedule = step.LrSchedule(args.learning_rate, args.lr_decay, args.warmup_epochs, args.lr_schedule, args.epochs)
    state = loop.TrainingState(model, optimizer, loader, step_settings, schedule, config.to_dict(),
                               step.make_grad_scaler(amp_dtype, ctx.device))
    if stored is not None:
        loop.restore_state(state, stored, f"-r {resume_path}")
        log(f"resuming from {resume_path} after epoch {state.start_epoch}")
    if state.start_epoch >= args.epochs:
        raise UserError(f"-e {args.epochs}: the checkpoint already has {state.start_epoch} epochs; ask for more to "
                        "resume")
    return state, config


def loop_settings(args) -> loop.LoopSettings:
    """Epochs, checkpoint folder and frequency, curves, time budget from the flags."""
    return loop.LoopSettings(epochs=args.epochs, checkpoint_dir=Path(args.checkpoint),
                             checkpoint_frequency=args.checkpoint_frequency, seed=args.seed,
                             export_curves=args.export_training_curves, progress=not args.no_progress,
                             time_budget_seconds=args.time_budget * 60, run_args=vars(args))


def describe_training(data: RunData, loader, num_frames: int, ctx) -> str:
    """One line: sequences, frames, clips, steps per epoch, devices."""
    clips, per_process = loader.dataset, loader.batch_size
    noise = f"detector-shaped 2D noise at strength {clips.noise.strength:g}" if clips.noise else "clean 2D"
    return (f"training on {len(data.train)} sequences ({sum(len(s) for s in data.train)} frames, {len(clips)} clips of "
            f"{num_frames} frames every {clips.stride}, {noise}), {per_process * ctx.world_size} clips per step "
            f"({per_process} per process), {len(loader)} steps per epoch; {ctx.describe()}")
