"""Train and evaluate the pose lifter (VideoPose3D/MixSTE command line). See `python run.py -h` and README.md.

The script only wires library modules together:
`common.cli.run_arguments` (flags) -> `common.cli.run_outputs` (output folders checked first) ->
`common.training.distributed` (devices, DP/DDP) -> `common.cli.run_data` (data files and sequences) ->
`common.cli.model_setup` / `common.cli.training_setup` (model, checkpoints, loader) -> `common.training.loop` (epochs)
-> `common.cli.run_evaluation` (protocol report) or `common.cli.render` (--render) ->
`common.training.run_logging` (console, TensorBoard, curves).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# MKL's GEMM may round differently depending on memory alignment; conditional numerical reproducibility makes a
# resumed run (a new process, other addresses) bitwise identical to an uninterrupted one. Set before torch loads MKL.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from common.cli import run_arguments, run_evaluation, run_outputs, training_setup  # noqa: E402
from common.cli.compute import apply_thread_policy  # noqa: E402
from common.cli.model_setup import build_from_checkpoint, place_model  # noqa: E402
from common.cli.render import render_sequence, select_render_sequence  # noqa: E402
from common.cli.run_data import RunData, check_frames, load_run_data  # noqa: E402
from common.core.errors import run_cli  # noqa: E402
from common.evaluation.protocols import model_predict_fn  # noqa: E402
from common.model import checkpoints, pretrained  # noqa: E402
from common.model.cost import describe_model  # noqa: E402
from common.training import distributed, loop  # noqa: E402
from common.training.run_logging import RunLogger, command_line  # noqa: E402


def generate_synthetic(directory: Path) -> None:
    """The quick start's data when absent: data/prepare_data_synthetic.py with its defaults, in-process."""
    from data import prepare_data_synthetic

    prepare_data_synthetic.main(["--output-dir", str(directory), "--overwrite"])


def load_for_evaluation(args, path: Path, data: RunData, ctx, logger):
    """The checkpoint's model on the evaluation device (flags must agree with the stored configuration)."""
    loaded = build_from_checkpoint(path, run_arguments.model_overrides(args), args.preset,
                                   data.dataset.skeleton.num_joints())
    check_frames(loaded.config.num_frames, data.test, "-f/--number-of-frames")
    loaded.model = place_model(loaded.model, ctx, args.compile, training=False, log=logger.info)
    return loaded


def run_evaluate(args, data: RunData, ctx, logger) -> float | None:
    """--evaluate FILE: the protocol on the test subjects, or with --render only the one sequence to render."""
    path = pretrained.resolve_checkpoint(args.evaluate, args.checkpoint, "--evaluate", log=logger.info)
    if (entry := pretrained.find_entry(args.evaluate)) is not None:
        logger.info(f"model: {entry.summary()}")
    sequence = None
    if args.render:  # the target exists before the model is loaded
        sequence = select_render_sequence(data.test, args.viz_subject, args.viz_action, args.viz_camera)
    loaded = load_for_evaluation(args, path, data, ctx, logger)
    logger.info(f"loaded {loaded.describe()}")
    apply_thread_policy(args.threads, loaded.config, ctx.device, logger.info)
    if not ctx.is_main:
        return None
    if args.render:
        settings = run_evaluation.predict_settings(args, loaded.config, data)
        render_sequence(args, model_predict_fn(loaded.model, ctx.device, path), settings, sequence, data.dataset,
                        logger.info)
        return None
    return run_evaluation.final_evaluation(args, loaded.model, loaded.config, data, ctx.device, logger, path,
                                           loaded.stored.get("epoch", "?"))


def run_train(args, data: RunData, ctx, logger) -> float:
    """Train (optionally resuming), validate each epoch, write checkpoints, then evaluate best_epoch.bin."""
    state, config = training_setup.training_state(args, data, ctx, logger.info)
    apply_thread_policy(args.threads, config, ctx.device, logger.info)
    logger.info(describe_model(checkpoints.unwrap_model(state.model), config))
    logger.info(training_setup.describe_training(data, state.loader, config.num_frames, ctx))
    if data.val_subjects == data.test_subjects and not args.no_eval:
        logger.info(f"note: the best epoch is selected on the test subjects ({','.join(data.test_subjects)}), as "
                    "MixSTE does; pass --val-subjects to select it on held-out subjects instead")
    validate = None if args.no_eval else run_evaluation.validation_fn(args, config, data, ctx.device)
    loop.run_epochs(state, training_setup.loop_settings(args), validate, ctx, logger)
    mpjpe = float("nan")
    if ctx.is_main:
        best_path = Path(args.checkpoint) / "best_epoch.bin"
        best = load_for_evaluation(args, best_path, data, ctx, logger)
        mpjpe = run_evaluation.final_evaluation(args, best.model, best.config, data, ctx.device, logger, best_path,
                                                best.stored["epoch"])
    distributed.barrier(ctx)
    return mpjpe


def main(argv: list[str] | None = None) -> float | None:
    args = run_arguments.parse_args(argv)
    run_outputs.check_checkpoint_dir(args)
    if args.render:
        run_outputs.check_render_outputs(args)
    ctx = distributed.setup_devices(args.gpu, print)
    logger = RunLogger(None if args.nolog else args.log, enabled=not args.nolog, is_main=ctx.is_main)
    try:
        started = time.perf_counter()
        logger.info(command_line())
        logger.text("command", command_line())
        data = load_run_data(args, logger.info, generate_synthetic)
        result = run_evaluate(args, data, ctx, logger) if args.evaluate else run_train(args, data, ctx, logger)
        logger.info(f"done in {time.perf_counter() - started:.1f} s")
        return result
    finally:
        logger.close()
        distributed.cleanup(ctx)


if __name__ == "__main__":
    run_cli(main)
