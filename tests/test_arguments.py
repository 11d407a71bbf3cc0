"""The run.py command line: VideoPose3D/MixSTE flag names and defaults, documentation, validation."""

from __future__ import annotations

import re

import pytest

from common.arguments import build_parser, model_overrides, parse_args, split_list
from common.errors import UserError

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
    args = parse_args("-k cpn_ft_h36m_dbb -c checkpoint --evaluate best_epoch.bin -f 243 -s 243".split())
    assert args.evaluate == "best_epoch.bin" and not args.resume


def test_every_seed_flag_exists_and_every_flag_is_documented_with_default():
    parser = build_parser()
    option_strings = {opt for action in parser._actions for opt in action.option_strings}
    assert set(SEED_FLAGS) <= option_strings
    help_text = parser.format_help()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{action.option_strings} has no help"
        # the formatter appends every non-None default; flags whose default is None explain theirs in words
        flat = re.sub(r"\s+", " ", help_text)
        if action.default is not None and action.nargs != 0:
            assert f"(default: {action.default})" in flat
        elif action.nargs != 0:
            assert "default" in action.help, f"{action.option_strings} does not explain its default"


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


@pytest.mark.parametrize("argv, fragment", [
    (["-r", "a.bin", "--evaluate", "b.bin"], "--resume/--evaluate"),
    (["-f", "0"], "-f/--number-of-frames"),
    (["--subset", "1.5"], "--subset"),
    (["-d", "nope"], "-d/--dataset"),
    (["--viz-output", "out.mp4"], "--viz-output: only used with --render"),
    (["--evaluate", "x.bin", "--render", "--viz-subject", "S9", "--viz-action", "Walking"], "--render: give"),
    (["--custom_2d", "-d", "h36m"], "--custom_2d"),
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
