"""The run.py command line: VideoPose3D/MixSTE flag names and defaults, documentation, validation."""

from __future__ import annotations

import re

import pytest

from common.cli.run_arguments import build_parser, model_overrides, parse_args, split_list
from common.core.errors import UserError

SEED_FLAGS = ["-d", "-k", "-str", "-ste", "-a", "-c", "-l", "-cf", "-r", "--evaluate", "--render", "--by-subject",
              "--export-training-curves", "-s", "-e", "-b", "-drop", "-lr", "-lrd", "-no-da", "-no-tta", "-f", "-gpu",
              "--subset", "--downsample", "--no-eval", "--nolog", "-cs", "-dep", "--viz-subject", "--viz-action",
              "--viz-camera", "--viz-video", "--viz-skip", "--viz-output", "--viz-export", "--viz-bitrate",
              "--viz-no-ground-truth", "--viz-limit", "--viz-downsample", "--viz-size"]


def test_seed_commands_parse_with_their_meaning():
    args = parse_args("-k cpn_ft_h36m_dbb -b 1024 -f 243 -s 243 -l log/run -c checkpoint -gpu 0,1 "
                      "--export-training-curves".split())
    assert (args.dataset, args.keypoints, args.batch_size, args.number_of_frames, args.stride) == \
        ("h36m", "cpn_ft_h36m_dbb", 1024, 243, 243)
    assert (args.log, args.checkpoint, args.gpu, args.export_training_curves) == ("log/run", "checkpoint", "0,1", True)
    assert args.subjects_train == "S1,S5,S6,S7,S8" and args.subjects_test == "S9,S11"
    assert args.data_augmentation and args.test_time_augmentation  # flips on by default
    assert args.workers == 0 and args.threads is None and not args.eval_zero_root and not args.overwrite
    args = parse_args("-k cpn_ft_h36m_dbb -c checkpoint --evaluate best_epoch.bin -f 243 -s 243".split())
    assert args.evaluate == "best_epoch.bin" and not args.resume


def test_every_seed_flag_exists_and_every_flag_is_documented_with_default():
    parser = build_parser()
    option_strings = {opt for action in parser._actions for opt in action.option_strings}
    assert set(SEED_FLAGS) <= option_strings
    flat = re.sub(r"\s+", " ", parser.format_help())
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{action.option_strings} has no help"
        if action.nargs != 0 and action.default not in (None, ""):
            assert f"(default: {action.default})" in flat  # the formatter appends every real default
    # switches say in words what they change; "(default: True)" read as "off by default" for -no-da / -no-tta
    assert "(default: True)" not in flat and "(default: False)" not in flat
    negative = {a.dest: a.help for a in parser._actions if a.dest in ("data_augmentation", "test_time_augmentation")}
    assert all("on by default" in text for text in negative.values()) and len(negative) == 2


FLOAT_FLAGS = ["-lr", "-lrd", "--weight-decay", "--warmup-epochs", "--grad-clip", "--lambda-tc", "--lambda-vel",
               "--time-budget", "--subset", "--mlp-ratio", "-drop", "--drop-path", "--detector-noise"]


@pytest.mark.parametrize("flag", FLOAT_FLAGS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_every_float_flag_rejects_nan_and_infinity(flag, value):
    with pytest.raises(UserError) as error:
        parse_args([f"{flag}={value}"])
    message = str(error.value)
    assert "\n" not in message and flag in message and value in message


def test_no_flag_takes_unchecked_floats():
    """Every float flag goes through a finite-number check (a plain ``type=float`` would accept nan)."""
    parser = build_parser()
    float_flags = {a.option_strings[0] for a in parser._actions if a.type is not None and a.type is not int
                   and getattr(a.type, "__name__", "") == "number"}
    assert float_flags == set(FLOAT_FLAGS)
    assert not [a.option_strings for a in parser._actions if a.type is float]


def test_negative_switches_and_loss_weights():
    args = parse_args(["-no-da", "-no-tta", "--lambda-tc", "0", "--lambda-vel", "1.5", "--amp"])
    assert not args.data_augmentation and not args.test_time_augmentation
    assert (args.lambda_tc, args.lambda_vel, args.amp) == (0.0, 1.5, "bf16")
    assert parse_args(["--amp", "fp16"]).amp == "fp16"


def test_model_overrides_only_contains_given_flags():
    assert model_overrides(parse_args([])) == {}
    args = parse_args("-f 81 -cs 256 --spatial-mixer graph --pool-size 5 -drop 0.1".split())
    assert model_overrides(args) == {"num_frames": 81, "embed_dim": 256, "spatial_mixer": "graph", "pool_size": 5,
                                     "drop_rate": 0.1}
    assert model_overrides(parse_args(["--causal"])) == {"causal": True}  # not given: the preset's / checkpoint's


@pytest.mark.parametrize("argv, fragment", [
    (["-r", "a.bin", "--evaluate", "b.bin"], "--resume/--evaluate"),
    (["-f", "0"], "-f/--number-of-frames"),
    (["--subset", "1.5"], "--subset"),
    (["-d", "nope"], "-d/--dataset"),
    (["--viz-output", "out.mp4"], "--viz-output: only used with --render"),
    (["--evaluate", "x.bin", "--render", "--viz-subject", "S9", "--viz-action", "Walking"], "--render: give"),
    (["--custom_2d", "-d", "h36m"], "--custom_2d"),
    (["--render", "--viz-subject", "S9", "--viz-action", "Walking", "--viz-export", "x"], "--render: renders"),
    (["-d", "custom"], "-d custom"),
    (["-lrd", "1.5"], "-lrd"),
    (["--unknown-flag"], "unrecognized arguments"),
])
def test_bad_flags_raise_one_user_error(argv, fragment):
    with pytest.raises(UserError) as error:
        parse_args(argv)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_viz_export_gets_npy_appended_like_numpy_save():
    base = ["--evaluate", "x.bin", "--render", "--viz-subject", "S9", "--viz-action", "Walking"]
    assert parse_args([*base, "--viz-export", "output"]).viz_export == "output.npy"
    assert parse_args([*base, "--viz-export", "poses.npy"]).viz_export == "poses.npy"


def test_custom_2d_is_accepted_with_the_custom_dataset():
    args = parse_args(["--custom_2d", "-d", "custom", "-k", "myvideos", "--evaluate", "best_epoch.bin", "--render",
                       "--viz-subject", "myvideos.mp4", "--viz-action", "custom", "--viz-export", "output"])
    assert args.custom_2d and args.dataset == "custom" and args.viz_export == "output.npy"


def test_split_list():
    assert split_list(" S1, S5,,S9 ") == ["S1", "S5", "S9"]
    assert split_list("") == [] and split_list(None) == []
