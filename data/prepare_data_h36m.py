"""Convert Human3.6M 3D poses to the VideoPose3D layout and project the 2D ground truth.

Sources (give exactly one):

- ``--from-source-cdf DIR``: the official ``S*/MyPoseFeatures/D3_Positions/<Action>.cdf`` files (variable ``Pose``,
  32 joints in millimetres), read with ``cdflib``.
- ``--from-archive PATH``: the 3d-pose-baseline archive (``h36m.zip`` or its extracted directory):
  ``h36m/S*/MyPoses/3D_positions/<Action>.h5``, dataset ``3D_positions`` of shape (96, T) in millimetres.

Outputs (in ``--output-dir``, default ``<repo>/data``):

- ``data_3d_h36m.npz``: ``positions_3d[subject][action]`` float32 (T, 32, 3), world coordinates in metres;
- ``data_2d_h36m_gt.npz``: ``positions_2d[subject][action]`` = list of the 4 cameras' float32 (T, 17, 2) pixels
  (the 17 model joints projected with lens distortion through the embedded Human3.6M cameras), ``metadata`` with
  ``layout_name`` ``h36m``.

Action names are canonical (``TakingPhoto`` -> ``Photo``, ``WalkingDog`` -> ``WalkDog``); S11 ``Directions`` is
dropped (its video is corrupted). Missing or extra actions are reported per subject.
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
from common.datasets.action_names import (  # noqa: E402
    canonical_h36m_action,
    h36m_action_report,
    is_corrupted_h36m,
    subject_sort_key,
)
from common.datasets.h5_archives import H5Source  # noqa: E402
from common.datasets.h36m import H36M_PROTOCOL_SUBJECTS  # noqa: E402
from common.datasets.preparation_cli import (  # noqa: E402
    add_output_arguments,
    add_subjects_argument,
    describe_written,
    output_paths,
    parse_name_list,
)
from common.geometry.camera import project_world_to_pixels  # noqa: E402
from common.geometry.h36m_cameras import h36m_cameras  # noqa: E402
from common.geometry.keypoint_layouts import keypoint_metadata  # noqa: E402
from common.geometry.skeleton import H36M_17_KEPT, H36M_32_PARENTS  # noqa: E402

OUTPUT_3D = "data_3d_h36m.npz"
OUTPUT_2D = "data_2d_h36m_gt.npz"
NUM_MOCAP_JOINTS = len(H36M_32_PARENTS)
ARCHIVE_FOLDER = "MyPoses/3D_positions"
CDF_FOLDER = Path("MyPoseFeatures") / "D3_Positions"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Human3.6M 3D poses -> data_3d_h36m.npz + data_2d_h36m_gt.npz")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--from-source-cdf", type=Path, metavar="DIR", help="directory with S*/MyPoseFeatures/D3_Positions/*.cdf"
    )
    source.add_argument(
        "--from-archive", type=Path, metavar="PATH", help="3d-pose-baseline h36m.zip (or its extracted directory)"
    )
    add_subjects_argument(parser)
    add_output_arguments(parser)
    return parser.parse_args(argv)


def sequences_to_convert(found: dict[str, dict[str, object]], subjects: list[str]) -> list[tuple[str, str, object]]:
    """``(subject, canonical action, source handle)`` for every wanted sequence, with the dropped ones announced."""
    jobs = []
    for subject in subjects:
        if subject not in found:
            print(f"{subject}: not found in the input, skipped")
            continue
        for name, handle in sorted(found[subject].items()):
            action = canonical_h36m_action(name)
            if is_corrupted_h36m(subject, action):
                print(f"{subject} {action}: dropped (the Human3.6M video of this take is corrupted)")
                continue
            jobs.append((subject, action, handle))
    if not jobs:
        raise UserError(f"--subjects {','.join(subjects)}: none of these subjects has pose files in the input")
    return jobs


def mocap_to_metres(raw: np.ndarray, where: str) -> np.ndarray:
    """Flat millimetre poses (T, 96) -> (T, 32, 3) float32 metres."""
    if raw.ndim != 2 or raw.shape[1] != NUM_MOCAP_JOINTS * 3 or raw.shape[0] == 0:
        raise UserError(f"{where}: expected (T, {NUM_MOCAP_JOINTS * 3}) poses, got shape {raw.shape}")
    positions = raw.reshape(-1, NUM_MOCAP_JOINTS, 3).astype(np.float64) / 1000.0
    if not np.isfinite(positions).all():
        raise UserError(f"{where}: contains NaN or infinite coordinates")
    return positions.astype(np.float32)


def read_cdf_poses(path: Path) -> np.ndarray:
    """One official D3_Positions CDF file -> (T, 32, 3) float32 metres."""
    import cdflib

    try:
        raw = np.asarray(cdflib.CDF(str(path)).varget("Pose"))
    except Exception as error:  # cdflib raises plain exceptions of several types for unreadable files
        raise UserError(f"{path}: not a readable CDF file with a 'Pose' variable ({error})") from None
    return mocap_to_metres(raw.reshape(-1, raw.shape[-1]), str(path))


def convert_from_cdf(root: Path, subjects: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """All wanted subjects of an official Human3.6M directory tree."""
    if not root.is_dir():
        raise UserError(f"--from-source-cdf {root}: directory not found")
    found = {}
    for subject_dir in sorted(root.glob("S*")):
        files = sorted((subject_dir / CDF_FOLDER).glob("*.cdf"))
        if files:
            found[subject_dir.name] = {f.stem: f for f in files}
    if not found:
        raise UserError(f"--from-source-cdf {root}: no S*/{CDF_FOLDER.as_posix()}/*.cdf files")
    positions: dict[str, dict[str, np.ndarray]] = {}
    for subject, action, path in tqdm(sequences_to_convert(found, subjects), desc="CDF files", unit="file"):
        positions.setdefault(subject, {})[action] = read_cdf_poses(path)
    return positions


def convert_from_archive(path: Path, subjects: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """All wanted subjects of the 3d-pose-baseline archive (zip or directory)."""
    if not path.exists():
        raise UserError(f"--from-archive {path}: not found")
    with H5Source(path, "--from-archive") as source:
        found = source.find(ARCHIVE_FOLDER)
        if not found:
            raise UserError(f"--from-archive {path}: no S*/{ARCHIVE_FOLDER}/*.h5 files")
        positions: dict[str, dict[str, np.ndarray]] = {}
        for subject, action, member in tqdm(sequences_to_convert(found, subjects), desc="h5 files", unit="file"):
            raw = source.read(member, "3D_positions")  # (96, T)
            where = f"--from-archive {path}: {member}"
            if raw.ndim != 2:
                raise UserError(f"{where}: expected a (96, T) dataset, got shape {raw.shape}")
            positions.setdefault(subject, {})[action] = mocap_to_metres(raw.T, where)
    return positions


def project_ground_truth(positions_3d: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list[np.ndarray]]]:
    """The 17 model joints of every sequence projected through the subject's 4 cameras (pixels, float32)."""
    positions_2d: dict[str, dict[str, list[np.ndarray]]] = {}
    jobs = [(s, a) for s in positions_3d for a in positions_3d[s]]
    for subject, action in tqdm(jobs, desc="2D projection", unit="seq"):
        joints = positions_3d[subject][action][:, list(H36M_17_KEPT)]
        cameras = h36m_cameras(subject)
        positions_2d.setdefault(subject, {})[action] = [project_world_to_pixels(joints, cam) for cam in cameras]
    return positions_2d


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    subjects = parse_name_list(args.subjects, "--subjects", H36M_PROTOCOL_SUBJECTS)
    path_3d, path_2d = output_paths(args.output_dir, [OUTPUT_3D, OUTPUT_2D], args.overwrite)

    if args.from_source_cdf is not None:
        print(f"Converting Human3.6M from the official CDF files in {args.from_source_cdf}")
        positions_3d = convert_from_cdf(args.from_source_cdf, subjects)
    else:
        print(f"Converting Human3.6M from the 3d-pose-baseline archive {args.from_archive}")
        positions_3d = convert_from_archive(args.from_archive, subjects)
    positions_3d = {s: dict(sorted(positions_3d[s].items())) for s in sorted(positions_3d, key=subject_sort_key)}

    for subject, actions in positions_3d.items():
        notes = h36m_action_report(subject, actions)
        print(*(notes or [f"{subject}: all 15 action groups with 2 takes"]), sep="\n")

    atomic_savez(path_3d, positions_3d=positions_3d)
    print(describe_written(path_3d, positions_3d, "3D poses (32 joints, metres, world)"))

    positions_2d = project_ground_truth(positions_3d)
    atomic_savez(path_2d, positions_2d=positions_2d, metadata=keypoint_metadata("h36m"))
    print(describe_written(path_2d, positions_2d, "2D ground truth (17 joints, pixels, 4 cameras)"))


if __name__ == "__main__":
    run_cli(main)
