"""Checks of `run.py`'s files and folders, done before any data or model is loaded (minutes may follow).

- `check_checkpoint_dir(args)`: ``-c`` must be a directory (or creatable); a new training refuses a directory that
  already holds a run's checkpoints unless ``-r`` resumes it or ``--overwrite`` replaces it; the ``--evaluate`` /
  ``-r`` file exists (a shipped model's, `common.model.pretrained`, is verified or downloaded here);
- `check_render_outputs(args)`: ``--viz-output`` / ``--viz-export`` go to existing writable folders and
  ``--viz-video`` exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from common.core.errors import UserError
from common.model.checkpoints import resolve_checkpoint_path
from common.model.pretrained import resolve_checkpoint

RUN_CHECKPOINTS = ("best_epoch.bin", "last_epoch.bin", "epoch_*.bin")
"""Files a training run writes into ``-c DIR`` (`common.training.loop`)."""


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_dir(directory: Path, subject: str, create: bool) -> None:
    """``directory`` is (or, with ``create``, can become) a writable folder; else a UserError starting with
    ``subject`` (the flag and its value)."""
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{subject}: {directory} is a file; expected a directory")
    if not directory.exists() and not create:
        raise UserError(f"{subject}: directory {directory} does not exist")
    existing = _nearest_existing(directory)
    if not existing.is_dir():
        raise UserError(f"{subject}: {existing} is a file; expected a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{subject}: directory {existing} is not writable")


def existing_run_files(directory: Path) -> list[str]:
    """Names of the training checkpoints already in ``directory``."""
    if not directory.is_dir():
        return []
    return sorted({p.name for pattern in RUN_CHECKPOINTS for p in directory.glob(pattern)})


def check_checkpoint_dir(args) -> None:
    """``-c DIR`` before anything heavy: a usable folder; no silent overwrite of another training run."""
    directory = Path(args.checkpoint)
    check_writable_dir(directory, f"-c/--checkpoint {directory}", create=True)
    if args.evaluate:
        resolve_checkpoint(args.evaluate, directory, "--evaluate", log=print)  # a shipped model: verified now
    if args.resume:
        resolve_checkpoint_path(args.resume, directory, "-r/--resume")
    if args.evaluate or args.resume or args.overwrite:
        return
    found = existing_run_files(directory)
    if found:
        shown = ", ".join(found[:4]) + (" ..." if len(found) > 4 else "")
        raise UserError(f"-c/--checkpoint {directory}: already holds a run ({shown}); resume it with -r "
                        "last_epoch.bin, choose another -c DIR, or pass --overwrite to replace it")


def check_render_outputs(args) -> None:
    """The files ``--render`` writes and reads, checked before the data and the model are loaded."""
    for flag, value in (("--viz-output", args.viz_output), ("--viz-export", args.viz_export)):
        if value:
            path = Path(value)
            if path.is_dir():
                raise UserError(f"{flag} {path}: is a directory; expected a file name")
            check_writable_dir(path.parent, f"{flag} {path}", create=False)
    if args.viz_video and not Path(args.viz_video).is_file():
        raise UserError(f"--viz-video {args.viz_video}: video file not found")
