"""Command-line pieces shared by the dataset preparation scripts (``data/prepare_data_*.py``): the ``--output-dir`` /
``--overwrite`` / ``--subjects`` flags, name-list parsing, the refusal to overwrite existing outputs and the one-line
summary of every written file."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from common.core.errors import UserError
from common.datasets.action_names import subject_sort_key
from common.datasets.h36m import H36M_PROTOCOL_SUBJECTS
from common.datasets.registry import DEFAULT_DATA_DIR


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--output-dir`` (default ``<repo>/data``) and ``--overwrite`` to a preparation script's parser."""
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help=f"directory the npz files are written to (default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace output files that already exist")


def add_subjects_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--subjects`` (Human3.6M subjects to convert, default all) to a preparation script's parser."""
    parser.add_argument(
        "--subjects",
        default=",".join(H36M_PROTOCOL_SUBJECTS),
        metavar="LIST",
        help="comma-separated subjects to convert (default: %(default)s); absent ones are reported and skipped",
    )


def parse_name_list(value: str, flag: str, allowed: tuple[str, ...] | list[str]) -> list[str]:
    """Comma-separated names, each of which must be in ``allowed``; order kept, duplicates rejected."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in allowed]
    if not names or bad or len(set(names)) != len(names):
        raise UserError(f"{flag}: expected distinct comma-separated names from {','.join(allowed)}, got {value!r}")
    return names


def output_paths(output_dir: str | os.PathLike, names: Iterable[str], overwrite: bool) -> list[Path]:
    """Full paths of the outputs; refuses (UserError) when the directory is missing or an output exists already.

    Call it BEFORE any long conversion, so that a refused run costs nothing.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise UserError(f"--output-dir {output_dir}: directory does not exist")
    paths = [output_dir / name for name in names]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise UserError(f"{', '.join(existing)}: already exists (pass --overwrite to replace)")
    return paths


def describe_written(path: str | os.PathLike, positions: Mapping[str, Mapping[str, object]], label: str = "") -> str:
    """One line naming a written dataset file with its size, subjects, actions and frames."""
    path = Path(path)
    num_actions = sum(len(actions) for actions in positions.values())
    frames = 0
    for actions in positions.values():
        for value in actions.values():
            first = value[0] if isinstance(value, list | tuple) else value
            frames += 0 if first is None else len(first)
    size_mb = path.stat().st_size / 1e6
    prefix = f"{label} " if label else ""
    return (
        f"wrote {prefix}{path} ({size_mb:.1f} MB): {len(positions)} subjects, {num_actions} actions, {frames} frames"
        f" [{', '.join(sorted(positions, key=subject_sort_key))}]"
    )
