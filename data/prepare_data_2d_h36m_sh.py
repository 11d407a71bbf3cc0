"""Convert the Stacked Hourglass 2D detections of Human3.6M to the VideoPose3D layout.

Inputs (give one or both), each a directory or an archive (``.zip`` / ``.tar.gz``) read without extracting:

- ``-pt/--pretrained PATH``: the 3d-pose-baseline archive with detections of the MPII-pretrained network,
  ``S*/StackedHourglass/<Action_with_underscores>.<camera id>.h5`` -> ``data_2d_h36m_sh_pt_mpii.npz``;
- ``-ft/--fine-tuned PATH``: the detections of the network fine-tuned on Human3.6M,
  ``S*/StackedHourglassFineTuned240/<Action>.<camera id>.h5`` -> ``data_2d_h36m_sh_ft_h36m.npz``.

Every h5 file holds a dataset ``poses`` of shape (T, 16, 2) pixels in the MPII joint order. The output is
``positions_2d[subject][action]`` = list of the 4 cameras (order 54138969, 55011271, 58860488, 60457274) of float32
(T, 16, 2) and ``metadata`` with ``layout_name`` ``mpii``. Action names are canonical (underscores -> spaces,
``TakingPhoto`` -> ``Photo``, ``WalkingDog`` -> ``WalkDog``) and S11 ``Directions`` is dropped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from common.core.errors import UserError, run_cli  # noqa: E402
from common.core.files import atomic_savez  # noqa: E402
from common.datasets.action_names import canonical_h36m_action, complete_actions, is_corrupted_h36m  # noqa: E402
from common.datasets.h5_archives import H5Source  # noqa: E402
from common.datasets.h36m import H36M_PROTOCOL_SUBJECTS  # noqa: E402
from common.datasets.preparation_cli import (  # noqa: E402
    add_output_arguments,
    add_subjects_argument,
    describe_written,
    output_paths,
    parse_name_list,
)
from common.geometry.h36m_cameras import H36M_CAMERA_IDS  # noqa: E402
from common.geometry.keypoint_layouts import MPII, keypoint_metadata  # noqa: E402

VARIANTS = {
    # flag attribute: (archive folder, output file, description)
    "pretrained": ("StackedHourglass", "data_2d_h36m_sh_pt_mpii.npz", "Stacked Hourglass (pretrained on MPII)"),
    "fine_tuned": (
        "StackedHourglassFineTuned240",
        "data_2d_h36m_sh_ft_h36m.npz",
        "Stacked Hourglass (fine-tuned on Human3.6M)",
    ),
}
NUM_MPII_JOINTS = MPII.num_joints


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Human3.6M Stacked Hourglass detections -> VideoPose3D 2D npz")
    parser.add_argument("-pt", "--pretrained", type=Path, metavar="PATH", help="archive/directory of StackedHourglass")
    parser.add_argument(
        "-ft", "--fine-tuned", type=Path, metavar="PATH", help="archive/directory of StackedHourglassFineTuned240"
    )
    add_subjects_argument(parser)
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    if args.pretrained is None and args.fine_tuned is None:
        parser.error("give -pt/--pretrained and/or -ft/--fine-tuned")
    return args


def parse_file_stem(stem: str) -> tuple[str, str]:
    """``Directions_1.54138969`` -> (``Directions 1``, ``54138969``) with the canonical action name."""
    action, _, camera = stem.rpartition(".")
    return canonical_h36m_action(action.replace("_", " ")), camera


def convert(path: Path, flag: str, folder: str, subjects: list[str]) -> dict[str, dict[str, list[np.ndarray]]]:
    """All wanted subjects of one detections archive -> ``{subject: {action: [4 x (T, 16, 2)]}}``."""
    if not path.exists():
        raise UserError(f"{flag} {path}: not found")
    with H5Source(path, flag) as source:
        found = source.find(folder)
        if not found:
            raise UserError(f"{flag} {path}: no S*/{folder}/*.h5 files")
        jobs = []
        for subject in subjects:
            if subject not in found:
                print(f"{subject}: not found in {path}, skipped")
                continue
            for stem, member in sorted(found[subject].items()):
                action, camera = parse_file_stem(stem)
                if camera not in H36M_CAMERA_IDS:
                    print(f"{subject}: {member}: unknown camera id {camera!r}, skipped")
                    continue
                if is_corrupted_h36m(subject, action):
                    print(f"{subject} {action} (camera {camera}): dropped (the Human3.6M video is corrupted)")
                    continue
                jobs.append((subject, action, H36M_CAMERA_IDS.index(camera), member))
        if not jobs:
            raise UserError(f"--subjects {','.join(subjects)}: none of these subjects has {folder} files in {path}")
        views: dict[str, dict[str, list[np.ndarray | None]]] = {}
        for subject, action, camera_index, member in tqdm(jobs, desc=folder, unit="file"):
            poses = source.read(member, "poses")
            if poses.ndim != 3 or poses.shape[1:] != (NUM_MPII_JOINTS, 2):
                raise UserError(f"{flag} {path}: {member}: expected poses (T, 16, 2), got {poses.shape}")
            slots = views.setdefault(subject, {}).setdefault(action, [None] * len(H36M_CAMERA_IDS))
            slots[camera_index] = poses.astype(np.float32)
    return complete_actions(views)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    subjects = parse_name_list(args.subjects, "--subjects", H36M_PROTOCOL_SUBJECTS)
    chosen = [(key, getattr(args, key)) for key in VARIANTS if getattr(args, key) is not None]
    paths = output_paths(args.output_dir, [VARIANTS[key][1] for key, _ in chosen], args.overwrite)
    for (key, source), path in zip(chosen, paths):
        folder, _, description = VARIANTS[key]
        flag = "--" + key.replace("_", "-")
        print(f"Converting {description} detections from {source}")
        positions_2d = convert(source, flag, folder, subjects)
        atomic_savez(path, positions_2d=positions_2d, metadata=keypoint_metadata("mpii"))
        print(describe_written(path, positions_2d, f"{description} 2D detections (16 MPII joints, pixels)"))


if __name__ == "__main__":
    run_cli(main)
