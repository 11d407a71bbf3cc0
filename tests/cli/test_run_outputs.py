"""common/cli/run_outputs.py: -c and --viz-* output locations are checked before any work."""

from __future__ import annotations

import pytest

from common.cli.run_arguments import parse_args
from common.cli.run_outputs import check_checkpoint_dir, check_render_outputs
from common.core.errors import UserError


def test_checkpoint_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "ck").write_text("x")
    for argv in ([], ["--evaluate", str(tmp_path / "ck")]):
        with pytest.raises(UserError, match="is a file; expected a directory"):
            check_checkpoint_dir(parse_args(["-c", str(tmp_path / "ck"), *argv]))
    with pytest.raises(UserError, match="is a file"):
        check_checkpoint_dir(parse_args(["-c", str(tmp_path / "ck" / "sub")]))


def test_existing_run_is_not_overwritten_without_resume_or_overwrite(tmp_path):
    check_checkpoint_dir(parse_args(["-c", str(tmp_path / "new" / "deeper")]))  # created later by the run
    (tmp_path / "last_epoch.bin").write_bytes(b"")
    with pytest.raises(UserError, match="already holds a run .*last_epoch.bin.*--overwrite"):
        check_checkpoint_dir(parse_args(["-c", str(tmp_path)]))
    for extra in (["--overwrite"], ["-r", "last_epoch.bin"], ["--evaluate", "last_epoch.bin"]):
        check_checkpoint_dir(parse_args(["-c", str(tmp_path), *extra]))
    with pytest.raises(UserError, match="--evaluate best.bin: checkpoint not found"):
        check_checkpoint_dir(parse_args(["-c", str(tmp_path), "--evaluate", "best.bin"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_epoch.bin"]  # checks create nothing


def test_render_outputs_are_checked(tmp_path):
    base = ["--evaluate", "x.bin", "--render", "--viz-subject", "S9", "--viz-action", "Walking"]
    with pytest.raises(UserError, match="--viz-output .*/no/v.mp4: directory .*/no does not exist"):
        check_render_outputs(parse_args([*base, "--viz-output", str(tmp_path / "no" / "v.mp4")]))
    with pytest.raises(UserError, match="--viz-export .*: directory .* does not exist"):
        check_render_outputs(parse_args([*base, "--viz-export", str(tmp_path / "no" / "p.npy")]))
    with pytest.raises(UserError, match="--viz-video .*missing.mp4: video file not found"):
        check_render_outputs(parse_args([*base, "--viz-export", str(tmp_path / "p"), "--viz-video",
                                         str(tmp_path / "missing.mp4")]))
    check_render_outputs(parse_args([*base, "--viz-export", str(tmp_path / "p"), "--viz-output",
                                     str(tmp_path / "v.gif")]))
