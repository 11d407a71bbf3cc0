"""Train and evaluate the pose lifter (VideoPose3D/MixSTE command line). See `python run.py -h` and README.md.

The script only wires modules together: `common.arguments` (flags) -> `common.distributed` (devices, DP/DDP) ->
`common.datasets` + `common.clips` (data) -> `common.model` (network) -> `common.training` (epochs) ->
`common.evaluation` (protocols) -> `common.checkpoint` (files) -> `common.run_logging` (console, TensorBoard, curves).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# MKL's GEMM may round differently depending on memory alignment; conditional numerical reproducibility makes a
# resumed run (a new process, other addresses) bitwise identical to an uninterrupted one. Set before torch loads MKL.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import arguments, checkpoint, distributed, evaluation, trainer, training  # noqa: E402
from common.arguments import split_list  # noqa: E402
from common.cpu_allocator import keep_freed_memory  # noqa: E402
from common.errors import UserError, run_cli  # noqa: E402
from common.run_logging import RunLogger, command_line  # noqa: E402

PROJECTED_GT = "gt_projected"
SYNTHETIC_KEYPOINTS = ("gt", "noisy")
DATA_HINTS = {
    "h36m": "create it with data/prepare_data_h36m.py (see README), or point --data-dir to ../shared/data/h36m",
    "humaneva15": "create it with data/prepare_data_humaneva.py (see README), or --data-dir ../shared/data/humaneva",
    "mpi_inf_3dhp": "create it with data/prepare_data_mpi_inf_3dhp.py (see README)",
    "custom": "create it with data/prepare_data_2d_custom.py from the inference/ detections (see README)",
    "synthetic": "it is generated automatically by data/prepare_data_synthetic.py",
}


@dataclass
class RunData:
    """Everything the run needs from the data files."""

    dataset: object
    keypoints: object
    protocol: str
    train: list
    val: list
    test: list
    test_subjects: list[str]
    val_subjects: list[str]


# --- data --------------------------------------------------------------------------------------------------------


def data_files(args) -> tuple[Path, Path | None]:
    """The 3D and 2D files of ``-d``/``-k``/``--data-dir`` (VideoPose3D naming), or --data-3d / --data-2d.

    ``-k gt_projected`` needs no 2D file: the 2D ground truth is the projection of the 3D through the cameras (what
    data/prepare_data_h36m.py writes as ``data_2d_h36m_gt.npz``); the 2D path is then None.
    """
    from common.datasets import default_paths

    path_3d, path_2d = default_paths(args.dataset, args.keypoints, args.data_dir)
    if args.keypoints == PROJECTED_GT:
        path_2d = None
    if args.data_3d:
        path_3d = Path(args.data_3d)
    if args.data_2d:
        path_2d = Path(args.data_2d)
    return path_3d, path_2d


def ensure_synthetic_data(path_3d: Path, path_2d: Path | None, keypoints: str, log) -> None:
    """Generate the synthetic dataset (data/prepare_data_synthetic.py, in-process) when its files are absent."""
    generated_2d = path_2d is None or keypoints in SYNTHETIC_KEYPOINTS
    if path_3d.is_file() and (path_2d is None or path_2d.is_file()):
        return
    if path_3d.is_file() and not generated_2d:
        raise UserError(f"{path_2d}: 2D keypoints file not found; the synthetic dataset has -k "
                        f"{' or -k '.join(SYNTHETIC_KEYPOINTS)} (or -k {PROJECTED_GT})")
    from data import prepare_data_synthetic

    missing = path_3d if not path_3d.is_file() else path_2d
    log(f"{missing}: not found; generating the synthetic dataset into {path_3d.parent} "
        "(data/prepare_data_synthetic.py)")
    path_3d.parent.mkdir(parents=True, exist_ok=True)
    prepare_data_synthetic.main(["--output-dir", str(path_3d.parent), "--overwrite"])


def load_run_data(args, log) -> RunData:
    """Load the dataset and keypoints and select the training / validation / test sequences."""
    from common.datasets import build_sequences, load_dataset, load_keypoints

    path_3d, path_2d = data_files(args)
    if args.dataset == "synthetic" and not (args.data_3d or args.data_2d):
        ensure_synthetic_data(path_3d, path_2d, args.keypoints, log)
    hint = DATA_HINTS.get(args.dataset, "")
    if path_2d is not None and not path_2d.is_file():
        extra = f" (or use -k {PROJECTED_GT} to project the 3D ground truth)" if args.keypoints == "gt" else ""
        raise UserError(f"{path_2d}: 2D keypoints file not found; {hint}{extra}")
    if not path_3d.exists():
        raise UserError(f"{path_3d}: 3D dataset file not found; {hint}")
    dataset = load_dataset(args.dataset, path_3d)
    if path_2d is None:
        log(f"2D input: the ground-truth 2D of {path_3d} (the 3D projected through the cameras; 3DHP: annotations)")
    keypoints = load_keypoints(path_2d, dataset)
    actions = None if args.actions == "*" else split_list(args.actions)
    if args.dataset == "custom":
        subjects = [args.viz_subject] if args.viz_subject else dataset.subjects()
        test = build_sequences(dataset, keypoints, subjects, actions)
        return RunData(dataset, keypoints, "none", [], [], test, subjects, [])
    test_subjects = split_list(args.subjects_test)
    val_subjects = split_list(args.val_subjects) or test_subjects
    train = []
    if not args.evaluate:
        train = build_sequences(dataset, keypoints, split_list(args.subjects_train), actions,
                                downsample=args.downsample, subset=args.subset, seed=args.seed)
    test = build_sequences(dataset, keypoints, test_subjects, actions)
    val = test if val_subjects == test_subjects else build_sequences(dataset, keypoints, val_subjects, actions)
    return RunData(dataset, keypoints, evaluation.protocol_for(args.dataset), train, val, test, test_subjects,
                   val_subjects)


def check_frames(num_frames: int, sequences: list, flag_source: str) -> None:
    """``-f`` longer than every sequence is an error (the model would only ever see padding)."""
    if sequences and num_frames > max(len(seq) for seq in sequences):
        longest = max(len(seq) for seq in sequences)
        raise UserError(f"{flag_source} {num_frames}: longer than every sequence (the longest has {longest} frames)")


# --- model -------------------------------------------------------------------------------------------------------


def resolve_model_config(args, num_joints: int, stored: dict | None, source: str):
    """The model configuration: the checkpoint's (flags must agree with it) or the preset + flags."""
    from common.model import PRESETS, ModelConfig, apply_preset

    overrides = arguments.model_overrides(args)
    if stored is None:
        values = {arguments.MODEL_FLAG_FIELDS[flag]: value for flag, value in arguments.MODEL_FLAG_DEFAULTS.items()}
        values.update(overrides)
        values["num_joints"] = num_joints
        return apply_preset(args.preset or "default", values)
    config = ModelConfig.from_dict(stored)
    if args.preset:
        apply_preset(args.preset)  # an unknown preset name is a UserError
        overrides = {**PRESETS[args.preset], **overrides}
    flag_of = {field: flag for flag, field in arguments.MODEL_FLAG_FIELDS.items()}
    conflicts = [f"{'--' + flag_of[k].replace('_', '-') if k in flag_of else k}={v!r} (checkpoint: {stored.get(k)!r})"
                 for k, v in overrides.items() if stored.get(k) != v]
    if conflicts:
        raise UserError(f"{source}: flags contradict the model stored in the checkpoint: {', '.join(conflicts)}")
    if config.num_joints != num_joints:
        raise UserError(f"{source}: model predicts {config.num_joints} joints, the data has {num_joints}")
    return config


def build_from_checkpoint(args, path: Path, num_joints: int):
    """(model, config, checkpoint dict) for --evaluate / --resume, official MixSTE files included."""
    from common.mixste_official import config_from_official_state_dict

    data = checkpoint.load_checkpoint(path)
    if checkpoint.is_official_mixste(data):
        extra = {arguments.MODEL_FLAG_FIELDS[f]: v for f, v in vars(args).items()
                 if f in ("num_heads", "dropout", "drop_path") and v is not None}
        config = config_from_official_state_dict(data["model_pos"], **extra)
        requested = {k: v for k, v in arguments.model_overrides(args).items() if k not in extra}
        conflicts = [f"{k}={v!r} (file: {getattr(config, k)!r})" for k, v in requested.items()
                     if getattr(config, k) != v]
        if conflicts:
            raise UserError(f"{path}: official MixSTE weights do not match the flags: {', '.join(conflicts)}")
    else:
        config = resolve_model_config(args, num_joints, data["model_config"], str(path))
    return checkpoint.model_with_weights(config, data, path), config, data


def place_model(model, ctx, compile_model: bool, training: bool, log):
    """``--compile`` (in place: state-dict keys stay unchanged), then the device and DP/DDP wrapping (evaluation under
    torchrun runs on rank 0 alone, so it gets the bare model: a DDP forward would wait for the other ranks)."""
    if compile_model:
        model.compile()
        log("--compile: the model runs through torch.compile (inductor); the first steps include compilation")
    if ctx.distributed and not training:
        return model.to(ctx.device)
    return distributed.wrap_model(model, ctx)


def predict_settings(args, config, data: RunData) -> evaluation.PredictSettings:
    skeleton = data.dataset.skeleton
    return evaluation.PredictSettings(
        num_frames=config.num_frames, counting=args.eval_counting, flip_tta=args.test_time_augmentation,
        kps_left=tuple(data.keypoints.kps_left), kps_right=tuple(data.keypoints.kps_right),
        joints_left=tuple(skeleton.joints_left()), joints_right=tuple(skeleton.joints_right()),
        batch_windows=args.eval_batch,
    )


def eval_joint_mask(data: RunData) -> np.ndarray | None:
    """Joints that are real ground truth in this dataset (the others are synthesized and not scored)."""
    joints = tuple(getattr(data.dataset, "evaluation_joints", ()))
    if not joints or len(joints) == data.dataset.skeleton.num_joints():
        return None
    mask = np.zeros(data.dataset.skeleton.num_joints(), dtype=bool)
    mask[list(joints)] = True
    return mask


# --- evaluation --------------------------------------------------------------------------------------------------


def final_evaluation(args, model, config, data: RunData, ctx, logger, checkpoint_path: Path, trained_epochs) -> float:
    """Full protocol on the test subjects: table on the console, JSON next to the checkpoint. Returns MPJPE (m)."""
    settings = predict_settings(args, config, data)
    results = evaluation.evaluate_sequences(
        evaluation.model_predict_fn(model, ctx.device), data.test, settings, data.protocol, full=True,
        joint_mask=eval_joint_mask(data), progress=not args.no_progress, description="test")
    summary = evaluation.summarize(results, data.protocol, by_subject=args.by_subject)
    header = {
        "checkpoint": str(checkpoint_path),
        "trained epochs": str(trained_epochs),
        "dataset": f"{args.dataset} (keypoints {args.keypoints})",
        "protocol": {"h36m": "actions grouped by the name before the space, frame-weighted within a group, "
                             "mean over groups",
                     "humaneva15": "actions grouped by name, frame-weighted within a group, mean over groups",
                     "mpi_inf_3dhp": "per test sequence; overall frame-weighted over all frames"}[data.protocol],
        "counting": f"{args.eval_counting} ({evaluation.COUNTING_DESCRIPTIONS[args.eval_counting]})",
        "flip TTA": "on" if args.test_time_augmentation else "off",
        "subjects": ",".join(data.test_subjects),
        "frames per window": str(config.num_frames),
    }
    logger.info(evaluation.format_summary(summary, header))
    # next to the checkpoint when it is in -c DIR (the usual case); never beside a file elsewhere (e.g. read-only data)
    json_path = Path(args.checkpoint) / (checkpoint_path.stem + "_eval.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    evaluation.write_summary_json(json_path, summary, header)
    logger.info(f"results written to {json_path}")
    logger.info(f"final MPJPE: {summary.headline * 1000:.2f} mm")
    return summary.headline


def render(args, model, config, data: RunData, ctx, logger) -> None:
    """--render: predict one sequence, export it (--viz-export) and/or render the video (--viz-output)."""
    from common.camera import image_coordinates
    from common.io_utils import atomic_write
    from common.visualization import poses_for_display, render_animation

    subject = args.viz_subject or data.test_subjects[0]
    matches = [s for s in data.test if s.subject == subject and s.action == args.viz_action
               and s.camera_index == args.viz_camera]
    if not matches:
        from common.datasets import build_sequences

        matches = [s for s in build_sequences(data.dataset, data.keypoints, [subject], [args.viz_action])
                   if s.action == args.viz_action and s.camera_index == args.viz_camera]
    if not matches:
        raise UserError(f"--viz-subject {subject} --viz-action {args.viz_action} --viz-camera {args.viz_camera}: "
                        "no such sequence in the data")
    seq = matches[0]
    settings = predict_settings(args, config, data)
    prediction = evaluation.predict_poses(evaluation.model_predict_fn(model, ctx.device), seq.poses_2d,
                                          evaluation.PredictSettings(**{**vars(settings), "counting": "once"}))
    if args.viz_export:
        atomic_write(args.viz_export, lambda tmp: np.save(tmp, prediction.astype(np.float32)))
        logger.info(f"exported the predicted 3D poses {prediction.shape} (camera space, metres) to {args.viz_export}")
    if not args.viz_output:
        return
    camera = seq.camera
    orientation = camera.orientation if camera is not None and camera.orientation is not None else None
    poses = {"Reconstruction": poses_for_display(prediction, orientation)}
    if seq.poses_3d is not None and not args.viz_no_ground_truth:
        poses["Ground truth"] = poses_for_display(seq.poses_3d, orientation)
    resolution = (camera.res_w, camera.res_h) if camera is not None else None
    keypoints_px = image_coordinates(seq.poses_2d, w=resolution[0], h=resolution[1]) if resolution else seq.poses_2d
    frames = render_animation(
        keypoints_px, poses, data.dataset.skeleton, data.dataset.fps, args.viz_output,
        azimuth=camera.azimuth if camera is not None else 70.0, bitrate=args.viz_bitrate, viz_size=args.viz_size,
        input_video_path=args.viz_video, input_video_skip=args.viz_skip, downsample=args.viz_downsample,
        limit=args.viz_limit, resolution=resolution, progress=not args.no_progress)
    logger.info(f"rendered {frames} frames to {args.viz_output}")


def run_evaluate(args, data: RunData, ctx, logger) -> float | None:
    """--evaluate FILE: rebuild the model from the file, run the protocol (and --render)."""
    path = checkpoint.resolve_checkpoint_path(args.evaluate, args.checkpoint, "--evaluate")
    model, config, stored = build_from_checkpoint(args, path, data.dataset.skeleton.num_joints())
    check_frames(config.num_frames, data.test, "-f/--number-of-frames")
    model = place_model(model, ctx, args.compile, training=False, log=logger.info)
    logger.info(f"loaded {path} ({'official MixSTE' if checkpoint.is_official_mixste(stored) else 'project'} "
                f"checkpoint, {stored.get('epoch', '?')} epochs)")
    mpjpe = None
    if ctx.is_main and data.protocol != "none":
        mpjpe = final_evaluation(args, model, config, data, ctx, logger, path, stored.get("epoch", "?"))
    if ctx.is_main and args.render:
        render(args, model, config, data, ctx, logger)
    return mpjpe


# --- training ----------------------------------------------------------------------------------------------------


def make_loader(args, data: RunData, num_frames: int, ctx):
    """Training clips of ``num_frames`` every ``-s`` frames (flip augmentation unless ``-no-da``), ``-b`` frames per
    step split over the torchrun processes."""
    from common.clips import TrainClips, make_train_loader

    skeleton = data.dataset.skeleton
    clips = TrainClips(data.train, num_frames, args.stride or num_frames, flip=args.data_augmentation,
                       kps_left=data.keypoints.kps_left, kps_right=data.keypoints.kps_right,
                       joints_left=skeleton.joints_left(), joints_right=skeleton.joints_right())
    global_clips = max(1, args.batch_size // num_frames)
    if global_clips < ctx.world_size:
        raise UserError(f"-b {args.batch_size}: {global_clips} clip(s) per step cannot be split over "
                        f"{ctx.world_size} processes (need at least one clip each)")
    return make_train_loader(clips, global_clips // ctx.world_size, args.seed, args.workers, ctx.rank,
                             ctx.world_size, pin_memory=ctx.device.type == "cuda")


def loss_weights(args, num_joints: int) -> training.LossWeights:
    """MixSTE's joint weights for H36M-17 joints (``--joint-weights dataset``) plus the TC and velocity terms."""
    from common.metrics import joint_weights_for

    found = joint_weights_for(num_joints) if args.joint_weights == "dataset" else None
    weights = tuple(float(w) for w in found) if found is not None else None
    return training.LossWeights(weights, args.lambda_tc, args.lambda_vel)


def run_train(args, data: RunData, ctx, logger) -> float:
    """Train (optionally resuming), validate each epoch, write checkpoints, then evaluate best_epoch.bin."""
    from common.model import build_model
    from common.model_cost import describe_model

    num_joints = data.dataset.skeleton.num_joints()
    resume_path = checkpoint.resolve_checkpoint_path(args.resume, args.checkpoint, "-r/--resume") if args.resume \
        else None
    torch.manual_seed(args.seed)
    if resume_path is not None:
        model, config, stored = build_from_checkpoint(args, resume_path, num_joints)
        if checkpoint.is_official_mixste(stored):
            raise UserError(f"-r {resume_path}: official MixSTE checkpoints cannot be resumed exactly; use --evaluate")
    else:
        config = resolve_model_config(args, num_joints, None, "model flags")
        model, stored = build_model(config), None
    check_frames(config.num_frames, data.train, "-f/--number-of-frames")
    loader = make_loader(args, data, config.num_frames, ctx)
    model = place_model(model, ctx, args.compile, training=True, log=logger.info)
    optimizer = training.make_optimizer(model, args.learning_rate, args.weight_decay)
    amp_dtype = training.AMP_DTYPES.get(args.amp) if ctx.device.type == "cuda" else None
    if args.amp and amp_dtype is None:
        logger.info(f"--amp {args.amp}: mixed precision needs CUDA; the CPU runs in fp32")
    scaler = training.make_grad_scaler(amp_dtype, ctx.device)
    step_settings = training.StepSettings(loss_weights(args, num_joints), args.grad_clip, amp_dtype)
    schedule = training.LrSchedule(args.learning_rate, args.lr_decay, args.warmup_epochs)
    state = trainer.TrainingState(model, optimizer, loader, step_settings, schedule, config.to_dict(), scaler)
    if stored is not None:
        trainer.restore_state(state, stored, f"-r {resume_path}")
        logger.info(f"resuming from {resume_path} after epoch {state.start_epoch}")
    if state.start_epoch >= args.epochs:
        raise UserError(f"-e {args.epochs}: the checkpoint already has {state.start_epoch} epochs; ask for more to "
                        "resume")

    logger.info(describe_model(checkpoint.unwrap_model(model), config))
    clips, per_process = loader.dataset, loader.batch_size
    logger.info(f"training on {len(data.train)} sequences ({sum(len(s) for s in data.train)} frames, {len(clips)} "
                f"clips of {config.num_frames} frames every {clips.stride}), {per_process * ctx.world_size} clips per "
                f"step ({per_process} per process), {len(loader)} steps per epoch; {ctx.describe()}")
    if data.val_subjects == data.test_subjects and not args.no_eval:
        logger.info(f"note: the best epoch is selected on the test subjects ({','.join(data.test_subjects)}), as "
                    "MixSTE does; pass --val-subjects to select it on held-out subjects instead")
    settings = predict_settings(args, config, data)

    def validate(eval_model) -> float:
        results = evaluation.evaluate_sequences(
            evaluation.model_predict_fn(eval_model, ctx.device), data.val, settings, data.protocol, full=False,
            joint_mask=eval_joint_mask(data), progress=not args.no_progress, description="validate")
        return evaluation.summarize(results, data.protocol).headline

    out_dir = Path(args.checkpoint)
    loop = trainer.LoopSettings(epochs=args.epochs, checkpoint_dir=out_dir,
                                checkpoint_frequency=args.checkpoint_frequency, seed=args.seed,
                                export_curves=args.export_training_curves,
                                progress=not args.no_progress, time_budget_seconds=args.time_budget * 60,
                                run_args=vars(args))
    trainer.run_epochs(state, loop, None if args.no_eval else validate, ctx, logger)
    mpjpe = float("nan")
    if ctx.is_main:
        best_path = out_dir / "best_epoch.bin"
        final_model, final_config, stored = build_from_checkpoint(args, best_path, num_joints)
        final_model = place_model(final_model, ctx, args.compile, training=False,
                                  log=logger.info)
        mpjpe = final_evaluation(args, final_model, final_config, data, ctx, logger, best_path, stored["epoch"])
    distributed.barrier(ctx)
    return mpjpe


# --- entry point -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> float | None:
    args = arguments.parse_args(argv)
    ctx = distributed.setup_devices(args.gpu, print)
    log_dir = None if args.nolog else args.log
    logger = RunLogger(log_dir, enabled=not args.nolog, is_main=ctx.is_main)
    try:
        started = time.perf_counter()
        logger.info(command_line())
        logger.text("command", command_line())
        if keep_freed_memory():
            logger.info("CPU memory: glibc malloc recycles freed buffers up to 32 MiB (no page faults every step)")
        data = load_run_data(args, logger.info)
        if args.evaluate:
            result = run_evaluate(args, data, ctx, logger)
        else:
            result = run_train(args, data, ctx, logger)
        logger.info(f"done in {time.perf_counter() - started:.1f} s")
        return result
    finally:
        logger.close()
        distributed.cleanup(ctx)


if __name__ == "__main__":
    run_cli(main)
