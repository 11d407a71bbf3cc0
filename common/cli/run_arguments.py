"""The whole `run.py` command line: VideoPose3D/MixSTE flags (same names and meanings) plus the pool-model flags.

`parse_args(argv)` returns an `argparse.Namespace` whose values are validated (contradictory or impossible flags raise
`UserError`). Model flags default to ``None`` so that `model_overrides(args)` can tell which ones the user gave: a
checkpoint's stored configuration wins over defaults, while an explicit flag that contradicts it is an error.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from common.core.errors import UserError
from common.datasets.registry import DATASET_NAMES, DEFAULT_DATA_DIR
from common.evaluation.windows import COUNTING_MODES
from common.model.config import SPATIAL_MIXERS, TEMPORAL_MIXERS, ModelConfig
from common.training.step import AMP_DTYPES, LR_SCHEDULES
from common.video.video_io import VIDEO_SUFFIXES

# Model flags: argparse destination -> ModelConfig field (None defaults; resolved against a preset or a checkpoint).
MODEL_FLAG_FIELDS = {
    "number_of_frames": "num_frames",
    "cs": "embed_dim",
    "dep": "depth",
    "mlp_ratio": "mlp_ratio",
    "spatial_mixer": "spatial_mixer",
    "temporal_mixer": "temporal_mixer",
    "pool_size": "pool_size",
    "temporal_pool_schedule": "temporal_pool_schedule",
    "causal": "causal",
    "num_heads": "num_heads",
    "dropout": "drop_rate",
    "drop_path": "drop_path_rate",
}


def _model_default(flag: str):
    """Default of a model flag for a new model: `ModelConfig`'s (the one source of model defaults)."""
    return ModelConfig.__dataclass_fields__[MODEL_FLAG_FIELDS[flag]].default


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show every default in `-h` and keep the epilog's line breaks. Flags whose default is None explain it in words;
    switches (no value) say in their help what is on by default, so "(default: True)" never appears."""

    def _get_help_string(self, action):
        if action.default in (None, "") or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def _float_in(accept, expected: str):
    """An argparse type: a finite float (NaN and infinity are refused) for which ``accept(value)`` holds."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not math.isfinite(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    convert.__name__ = "number"  # argparse names the type in its own messages
    return convert


_finite_float = _float_in(lambda v: True, "a finite number")
positive_float = _float_in(lambda v: v > 0, "a finite number > 0")
_non_negative_float = _float_in(lambda v: v >= 0, "a finite number >= 0")
_fraction = _float_in(lambda v: 0 < v <= 1, "a fraction in (0, 1]")
_probability = _float_in(lambda v: 0 <= v < 1, "a probability in [0, 1)")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag becomes a UserError (one line, exit 2 through `run_cli`)."""

    def error(self, message: str):
        raise UserError(f"command line: {message} (see python run.py -h)")


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    """Data: which files, subjects, actions and how much of them."""
    data = parser.add_argument_group("data")
    data.add_argument("-d", "--dataset", default="h36m", choices=DATASET_NAMES,
                      help="dataset (3D file data_3d_<d>.npz)")
    data.add_argument("-k", "--keypoints", default="cpn_ft_h36m_dbb", metavar="NAME",
                      help="2D keypoints (file data_2d_<d>_<k>.npz), e.g. gt, cpn_ft_h36m_dbb, sh_pt_mpii; "
                           "gt_projected: the 3D ground truth projected through the cameras (no 2D file)")
    data.add_argument("--custom_2d", action="store_true",
                      help="the 2D keypoints come from a custom detector (VideoPose3D/MixSTE flag); requires -d custom")
    data.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), metavar="DIR",
                      help="folder holding the data_3d_*/data_2d_* files (e.g. ../shared/data/h36m)")
    data.add_argument("--data-3d", default=None, metavar="FILE",
                      help="explicit 3D file (default: <data-dir>/data_3d_<d>.npz)")
    data.add_argument("--data-2d", default=None, metavar="FILE",
                      help="explicit 2D file (default: <data-dir>/data_2d_<d>_<k>.npz)")
    data.add_argument("-str", "--subjects-train", default="S1,S5,S6,S7,S8", metavar="LIST",
                      help="training subjects separated by commas")
    data.add_argument("-ste", "--subjects-test", default="S9,S11", metavar="LIST",
                      help="test subjects separated by commas")
    data.add_argument("--val-subjects", default=None, metavar="LIST",
                      help="subjects that select the best epoch (default: the test subjects, as MixSTE)")
    data.add_argument("-a", "--actions", default="*", metavar="LIST",
                      help="actions to train/test on (prefix match, comma separated), or * for all")
    data.add_argument("--subset", default=1.0, type=_fraction, metavar="FRACTION",
                      help="train on this fraction of every training sequence")
    data.add_argument("--downsample", default=1, type=positive_int, metavar="FACTOR",
                      help="downsample the frame rate of the training data by this factor")
    data.add_argument("--workers", default=0, type=non_negative_int, metavar="N",
                      help="data-loader worker processes (0 = load in the main process, the fastest on 2 cores)")


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    """Model: architecture flags (None: preset or checkpoint)."""
    model = parser.add_argument_group("model (defaults come from --preset, or from the checkpoint being loaded)")
    model.add_argument("--preset", default=None, metavar="NAME",
                       help="model preset of common/model/config.py: default (fc spatial + pool temporal mixers), "
                            "poolformer (pool + pool), mixste (attention + attention); a new model uses 'default'")
    model.add_argument("-f", "--number-of-frames", default=None, type=positive_int, metavar="N",
                       help=f"frames per clip (model input length; default {_model_default('number_of_frames')})")
    model.add_argument("-cs", default=None, type=positive_int, metavar="N",
                       help=f"channel size (embedding width; default {_model_default('cs')})")
    model.add_argument("-dep", default=None, type=positive_int, metavar="N",
                       help=f"depth: number of spatial+temporal block pairs (default {_model_default('dep')})")
    model.add_argument("--mlp-ratio", default=None, type=positive_float, metavar="R",
                       help="MLP hidden width / channel size (default: the preset's)")
    model.add_argument("--spatial-mixer", default=None, choices=SPATIAL_MIXERS,
                       help="spatial token mixer (default: the preset's)")
    model.add_argument("--temporal-mixer", default=None, choices=TEMPORAL_MIXERS,
                       help="temporal token mixer (default: the preset's)")
    model.add_argument("--pool-size", default=None, type=positive_int, metavar="N",
                       help="pooling window of pool mixers (default: the preset's)")
    model.add_argument("--temporal-pool-schedule", default=None, metavar="NAME",
                       help="fixed, growing or dilated temporal pooling windows (default: the preset's)")
    model.add_argument("--causal", default=None, action="store_true",
                       help="causal model: every temporal mixer sees only the current and earlier frames, so that "
                            "inference/live.py can lift each frame as it arrives (non-causal when not given; stored "
                            "in the checkpoint)")
    model.add_argument("--num-heads", default=None, type=positive_int, metavar="N",
                       help="heads of attention mixers (default: the preset's)")
    model.add_argument("-drop", "--dropout", default=None, type=_probability, metavar="P",
                       help="dropout probability (default: the preset's)")
    model.add_argument("--drop-path", default=None, type=_probability, metavar="P",
                       help=f"stochastic depth rate (default {_model_default('drop_path')} for a new model)")


def _add_training_flags(parser: argparse.ArgumentParser) -> None:
    """Training: schedule, loss, augmentation, precision, threads."""
    train = parser.add_argument_group("training")
    train.add_argument("-e", "--epochs", default=120, type=positive_int, metavar="N", help="number of training epochs")
    train.add_argument("-b", "--batch-size", default=1024, type=positive_int, metavar="N",
                       help="batch size in predicted frames (clips per step = N // -f, at least 1)")
    train.add_argument("-s", "--stride", default=None, type=positive_int, metavar="N",
                       help="frames between the starts of consecutive training clips (default: -f, no overlap)")
    train.add_argument("-lr", "--learning-rate", default=1e-3, type=positive_float, metavar="LR",
                       help="initial learning rate")
    train.add_argument("-lrd", "--lr-decay", default=0.99, type=_fraction, metavar="F",
                       help="learning rate decay per epoch (exponential schedule)")
    train.add_argument("--lr-schedule", default=LR_SCHEDULES[0], choices=LR_SCHEDULES,
                       help="exponential: -lr times -lrd every epoch; cosine: a half cosine from -lr to 0 over -e "
                            "epochs, by step, or over --time-budget when that ends first (anneals short runs; -lrd "
                            "unused)")
    train.add_argument("--weight-decay", default=0.1, type=_non_negative_float, metavar="W", help="AdamW weight decay")
    train.add_argument("--warmup-epochs", default=0.0, type=_non_negative_float, metavar="E",
                       help="linear learning-rate warm-up length in epochs (0 = none)")
    train.add_argument("--grad-clip", default=0.0, type=_non_negative_float, metavar="NORM",
                       help="clip the gradient norm to this value (0 = no clipping)")
    train.add_argument("--lambda-tc", default=0.5, type=_non_negative_float, metavar="W",
                       help="weight of the temporal consistency loss")
    train.add_argument("--lambda-vel", default=2.0, type=_non_negative_float, metavar="W",
                       help="weight of the velocity (MPJVE) loss")
    train.add_argument("--joint-weights", default="dataset", choices=("dataset", "none"),
                       help="weighted MPJPE with the dataset's joint weights (MixSTE's for H36M-17), or plain MPJPE")
    train.add_argument("--detector-noise", default=0.0, type=_non_negative_float, metavar="S",
                       help="corrupt the training 2D like a 2D detector's output at strength S (COCO joint synthesis, "
                            "jitter, outliers, left/right swaps, scale/shift; common/datasets/detector_noise.py); "
                            "0 = clean 2D (default); the shipped model used 1, then 0.5 (docs/MODEL_ZOO.md)")
    train.add_argument("-no-da", "--no-data-augmentation", dest="data_augmentation", action="store_false",
                       help="turn off the horizontal flipping of training clips (on by default)")
    train.add_argument("--amp", nargs="?", const="bf16", default=None, choices=tuple(AMP_DTYPES),
                       help="mixed precision on CUDA: --amp = bf16, --amp fp16 uses a gradient scaler "
                            "(default: off, fp32; CPU runs always fp32)")
    train.add_argument("--time-budget", default=0.0, type=_non_negative_float, metavar="MIN",
                       help="stop training at the first step after MIN minutes (0: no budget; the partial epoch is "
                            "saved and evaluated like a full one); a cosine --lr-schedule reaches 0 there")
    train.add_argument("--compile", action="store_true",
                       help="torch.compile the model (inductor; on the CPU it needs a C++ compiler): slower start, "
                            "faster steps (measured here at F=243 C=512: training about 1.2x)")
    train.add_argument("--seed", default=0, type=int, help="random seed (weights, clip order, flips)")
    train.add_argument("--threads", default=None, type=positive_int, metavar="N",
                       help="CPU threads of torch (default: 1 for small models, torch's default for large ones, "
                            "unless OMP_NUM_THREADS is set; see common/cli/compute.py)")
    train.add_argument("-gpu", "--gpu", default="0", metavar="LIST",
                       help="GPU ids, e.g. 0,1 (DataParallel over them); 'cpu' forces the CPU")


def _add_evaluation_flags(parser: argparse.ArgumentParser) -> None:
    """Evaluation: --evaluate, TTA, counting, scoring."""
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--evaluate", default="", metavar="FILE",
                            help="evaluate this checkpoint (looked up in -c DIR first) instead of training")
    evaluation.add_argument("-no-tta", "--no-test-time-augmentation", dest="test_time_augmentation",
                            action="store_false",
                            help="turn off flip test-time augmentation (on by default: each prediction is averaged "
                                 "with that of the mirrored input)")
    evaluation.add_argument("--eval-counting", default="once", choices=COUNTING_MODES,
                            help="once: every frame counted exactly once; mixste: MixSTE's padded last window")
    evaluation.add_argument("--eval-zero-root", action="store_true",
                            help="set the predicted root joint to 0 before scoring (off by default: the raw prediction "
                                 "is scored, as VideoPose3D and MixSTE do)")
    evaluation.add_argument("--eval-batch", default=16, type=positive_int, metavar="N",
                            help="windows per forward pass during evaluation")
    evaluation.add_argument("--by-subject", action="store_true", help="also break the errors down by subject")
    evaluation.add_argument("--no-eval", action="store_true",
                            help="skip the per-epoch validation (best_epoch.bin is then the last epoch)")


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    """Checkpoints and logs."""
    output = parser.add_argument_group("checkpoints and logs")
    output.add_argument("-c", "--checkpoint", default="checkpoint", metavar="DIR", help="checkpoint directory")
    output.add_argument("-cf", "--checkpoint-frequency", default=20, type=positive_int, metavar="N",
                        help="write epoch_N.bin every N epochs")
    output.add_argument("-r", "--resume", default="", metavar="FILE",
                        help="resume training exactly from this checkpoint (looked up in -c DIR first)")
    output.add_argument("--overwrite", action="store_true",
                        help="start a new training in a -c DIR that already holds a run's checkpoints (refused "
                             "otherwise)")
    output.add_argument("-l", "--log", default="log/run", metavar="DIR", help="TensorBoard and text log directory")
    output.add_argument("--nolog", action="store_true", help="disable the TensorBoard and text logs")
    output.add_argument("--export-training-curves", action="store_true",
                        help="write training curves as PNG images into the checkpoint directory")
    output.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bars")


def _add_render_flags(parser: argparse.ArgumentParser) -> None:
    """--render and its --viz-* flags."""
    viz = parser.add_argument_group("visualization (--render)")
    viz.add_argument("--render", action="store_true",
                     help="with --evaluate: predict one sequence and render/export it (instead of the protocol)")
    viz.add_argument("--viz-subject", default=None, metavar="STR",
                     help="subject (custom: video name) to render (default: none)")
    viz.add_argument("--viz-action", default=None, metavar="STR",
                     help="action to render (custom videos: custom) (default: none)")
    viz.add_argument("--viz-camera", default=0, type=non_negative_int, metavar="N", help="camera to render")
    viz.add_argument("--viz-video", default=None, metavar="PATH",
                     help="input video shown behind the 2D keypoints (default: none, black)")
    viz.add_argument("--viz-skip", default=0, type=non_negative_int, metavar="N",
                     help="skip the video's first N frames")
    viz.add_argument("--viz-output", default=None, metavar="PATH",
                     help="output video (.mp4 or .gif) or interactive viewer page (.html) (default: none)")
    viz.add_argument("--viz-export", default=None, metavar="PATH",
                     help="write the predicted 3D poses (T,17,3), camera space, metres, relative to the root "
                          "(the model's raw output, as scored), format by extension: .npy, .json, .csv or .bvh "
                          "(.npy is appended when there is none) (default: none)")
    viz.add_argument("--viz-bitrate", default=3000, type=positive_int, metavar="N", help="bitrate of mp4 videos")
    viz.add_argument("--viz-no-ground-truth", action="store_true", help="do not show the ground-truth poses")
    viz.add_argument("--viz-limit", default=-1, type=int, metavar="N", help="render only the first N frames (-1: all)")
    viz.add_argument("--viz-downsample", default=1, type=positive_int, metavar="N", help="downsample the FPS by N")
    viz.add_argument("--viz-size", default=5, type=positive_int, metavar="N", help="size of each panel (inches)")


def build_parser() -> argparse.ArgumentParser:
    """The `run.py` argument parser (every flag documented with its default)."""
    parser = _Parser(
        prog="run.py",
        description="Train and evaluate a MixSTE-style 3D pose lifter with PoolFormer token mixers.",
        formatter_class=_Formatter,
        epilog=(
            "examples:\n"
            "  python run.py -d synthetic -k gt -f 27 -cs 64 -dep 2 -e 5 -c checkpoint/synthetic\n"
            "  python run.py -k cpn_ft_h36m_dbb -b 1024 -f 243 -s 243 -l log/run -c checkpoint -gpu 0,1\n"
            "  python run.py -k cpn_ft_h36m_dbb -c checkpoint --evaluate best_epoch.bin -f 243 -s 243\n"
            "  torchrun --nproc_per_node 2 run.py -d synthetic -k gt -f 27 -cs 64 -dep 2"
        ),
    )
    _add_data_flags(parser)
    _add_model_flags(parser)
    _add_training_flags(parser)
    _add_evaluation_flags(parser)
    _add_output_flags(parser)
    _add_render_flags(parser)
    return parser


def model_field_flags() -> dict[str, str]:
    """`ModelConfig` field -> the command-line flag that sets it, as ``-h`` shows it (``embed_dim`` -> ``-cs``)."""
    actions = {action.dest: action for action in build_parser()._actions}
    return {field: "/".join(actions[flag].option_strings) for flag, field in MODEL_FLAG_FIELDS.items()}


def split_list(text: str | None) -> list[str]:
    """'S1, S5' -> ['S1', 'S5'] (empty items dropped)."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def model_overrides(args: argparse.Namespace) -> dict:
    """ModelConfig fields the user set explicitly on the command line."""
    return {field: getattr(args, flag) for flag, field in MODEL_FLAG_FIELDS.items() if getattr(args, flag) is not None}


def validate_args(args: argparse.Namespace) -> argparse.Namespace:
    """Reject contradictory or impossible combinations (UserError naming the flags)."""
    if args.resume and args.evaluate:
        raise UserError("--resume/--evaluate: give one of them (resume trains, evaluate only evaluates)")
    if not split_list(args.subjects_test) and args.dataset != "custom":
        raise UserError("-ste/--subjects-test: expected at least one subject")
    if not args.evaluate and args.dataset != "custom" and not split_list(args.subjects_train):
        raise UserError("-str/--subjects-train: expected at least one subject to train on")
    if args.custom_2d and args.dataset != "custom":
        raise UserError(f"--custom_2d: the 2D keypoints come from a custom detector, which needs -d custom "
                        f"(got -d {args.dataset})")
    if args.dataset == "custom" and not (args.evaluate and args.render):
        raise UserError("-d custom: custom 2D keypoints have no ground truth; lift them with --evaluate CHECKPOINT "
                        "--render --viz-subject VIDEO --viz-action custom --viz-output/--viz-export FILE")
    viz_given = [flag for flag, value in (("--viz-output", args.viz_output), ("--viz-export", args.viz_export),
                                          ("--viz-subject", args.viz_subject), ("--viz-action", args.viz_action),
                                          ("--viz-video", args.viz_video)) if value]
    if viz_given and not args.render:
        raise UserError(f"{viz_given[0]}: only used with --render (add --render, or drop the --viz-* flags)")
    if args.render:
        if not args.evaluate:
            raise UserError("--render: renders the model of --evaluate CHECKPOINT (add --evaluate FILE)")
        if not (args.viz_output or args.viz_export):
            raise UserError("--render: give --viz-output VIDEO and/or --viz-export FILE.npy")
        if args.viz_export:  # by extension; none: .npy appended (VideoPose3D's --viz-export output writes output.npy)
            from common.video.pose_export import check_export_path  # (imports matplotlib: only when rendering)

            args.viz_export = str(check_export_path(args.viz_export, "--viz-export"))
        if args.viz_output and Path(args.viz_output).suffix.lower() not in VIDEO_SUFFIXES + (".html",):
            raise UserError(f"--viz-output {args.viz_output}: expected a .mp4 or .gif video, or a .html viewer page")
        if args.dataset != "custom" and not args.viz_subject:
            raise UserError("--render: give --viz-subject (and --viz-action) of the sequence to render")
        if not args.viz_action:
            raise UserError("--render: give --viz-action, the sequence to render")
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate the command line (UserError on bad flags)."""
    return validate_args(build_parser().parse_args(argv))
