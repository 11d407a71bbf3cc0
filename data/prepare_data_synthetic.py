"""Generate the SYNTHETIC dataset: procedural human motion in the exact VideoPose3D layout (no licensed data needed).

Subjects S1, S5, S6, S7, S8 (train) and S9, S11 (test) with their own bone lengths perform Human3.6M-like action groups
(two takes each, ``Walking`` and ``Walking 1``), 50 fps, on the Human3.6M 17-joint skeleton, seen by the four
calibrated Human3.6M cameras of the subject of the same name. Outputs (in ``--output-dir``, default ``<repo>/data``):

- ``data_3d_synthetic.npz``: ``positions_3d[subject][action]`` float32 (T, 17, 3) world metres (z up, floor z = 0),
  ``cameras[subject]`` = 4 camera dicts (the keys of `common.geometry.h36m_cameras.h36m_cameras`), ``metadata``
  (``synthetic``, ``seed``, ``fps``, ...);
- ``data_2d_synthetic_gt.npz``: ``positions_2d[subject][action]`` = list of 4 cameras' float32 (T, 17, 2) pixels
  (projected with lens distortion), ``metadata`` with ``layout_name`` ``h36m`` and ``synthetic`` True;
- ``data_2d_synthetic_noisy.npz``: the same plus Gaussian pixel noise and occasional outliers (simulated detections).

Use it like Human3.6M: ``python run.py -d synthetic -k gt`` (or ``-k noisy``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from common.core.errors import UserError, run_cli  # noqa: E402
from common.core.files import atomic_savez  # noqa: E402
from common.datasets import synthetic_motion  # noqa: E402
from common.datasets.h36m import H36M_PROTOCOL_SUBJECTS  # noqa: E402
from common.datasets.preparation_cli import (  # noqa: E402
    add_output_arguments,
    describe_written,
    output_paths,
    parse_name_list,
)
from common.geometry.camera import project_world_to_pixels  # noqa: E402
from common.geometry.h36m_cameras import H36M_SUBJECTS, h36m_cameras  # noqa: E402
from common.geometry.keypoint_layouts import keypoint_metadata  # noqa: E402

LABEL = "SYNTHETIC dataset"
OUTPUT_3D = "data_3d_synthetic.npz"
OUTPUT_2D_GT = "data_2d_synthetic_gt.npz"
OUTPUT_2D_NOISY = "data_2d_synthetic_noisy.npz"
MIN_FRAMES = 100


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Generate the SYNTHETIC dataset (procedural motion, Human3.6M skeleton and cameras)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed -> identical files (default 0)")
    parser.add_argument(
        "--frames", type=int, default=400, help=f"frames per take at 50 fps (default 400, at least {MIN_FRAMES})"
    )
    parser.add_argument(
        "--subjects",
        default=",".join(H36M_PROTOCOL_SUBJECTS),
        metavar="LIST",
        help="comma-separated subjects named like Human3.6M's (their cameras are used) (default: %(default)s)",
    )
    parser.add_argument(
        "--actions",
        default=",".join(synthetic_motion.ACTIONS),
        metavar="LIST",
        help="comma-separated action groups, two takes each (default: all: %(default)s)",
    )
    parser.add_argument(
        "--noise-px", type=float, default=4.0, help="std of the Gaussian pixel noise of the noisy variant (default 4)"
    )
    parser.add_argument(
        "--outlier-fraction",
        type=float,
        default=0.01,
        help="fraction of noisy-variant joints displaced by 6-15x --noise-px (default 0.01)",
    )
    add_output_arguments(parser)
    return parser.parse_args(argv)


def validate(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Check the numeric flags; return the subject and action lists."""
    if args.seed < 0:
        raise UserError(f"--seed: expected a non-negative integer, got {args.seed}")
    if args.frames < MIN_FRAMES:
        raise UserError(f"--frames: expected at least {MIN_FRAMES} frames per take, got {args.frames}")
    if not args.noise_px >= 0:
        raise UserError(f"--noise-px: expected a non-negative number of pixels, got {args.noise_px}")
    if not 0 <= args.outlier_fraction <= 1:
        raise UserError(f"--outlier-fraction: expected a fraction in [0, 1], got {args.outlier_fraction}")
    subjects = parse_name_list(args.subjects, "--subjects", H36M_SUBJECTS)
    actions = parse_name_list(args.actions, "--actions", list(synthetic_motion.ACTIONS))
    return subjects, actions


def project_all(positions_3d: dict, cameras: dict) -> dict[str, dict[str, list[np.ndarray]]]:
    """Every take through every camera of its subject -> float32 pixels."""
    return {
        subject: {action: [project_world_to_pixels(poses, cam) for cam in cameras[subject]]
                  for action, poses in actions.items()}
        for subject, actions in positions_3d.items()
    }  # fmt: skip


def noisy_copy(positions_2d: dict, seed: int, noise_px: float, outlier_fraction: float) -> dict:
    """The 2D ground truth with simulated detector noise (one random stream per subject/take/camera)."""
    noisy: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in positions_2d.items():
        noisy[subject] = {}
        for action, views in actions.items():
            noisy[subject][action] = []
            number = synthetic_motion.subject_number(subject)
            for index, view in enumerate(views):
                rng = np.random.default_rng([seed, 2, number, *action.encode(), index])
                view = synthetic_motion.add_detection_noise(view, rng, noise_px, outlier_fraction)
                noisy[subject][action].append(view)
    return noisy


def fraction_in_view(positions_2d: dict, cameras: dict) -> float:
    """Fraction of projected joints that fall inside their camera image."""
    inside = total = 0
    for subject, actions in positions_2d.items():
        for views in actions.values():
            for view, cam in zip(views, cameras[subject]):
                ok = (view[..., 0] >= 0) & (view[..., 0] < cam["res_w"]) & (view[..., 1] >= 0)
                ok &= view[..., 1] < cam["res_h"]
                inside += int(ok.sum())
                total += ok.size
    return inside / max(total, 1)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    subjects, actions = validate(args)
    path_3d, path_gt, path_noisy = output_paths(
        args.output_dir, [OUTPUT_3D, OUTPUT_2D_GT, OUTPUT_2D_NOISY], args.overwrite
    )
    print(
        f"Generating the {LABEL} (procedural motion, not real people): {len(subjects)} subjects x {len(actions)} "
        f"actions x {synthetic_motion.TAKES_PER_ACTION} takes x {args.frames} frames, seed {args.seed}"
    )
    start = time.perf_counter()
    positions_3d = synthetic_motion.generate_dataset(
        subjects, actions, args.frames, args.seed, progress=lambda jobs: tqdm(jobs, desc="takes", unit="take")
    )
    cameras = {subject: h36m_cameras(subject) for subject in subjects}
    positions_2d = project_all(positions_3d, cameras)
    noisy_2d = noisy_copy(positions_2d, args.seed, args.noise_px, args.outlier_fraction)
    generated = time.perf_counter() - start

    metadata_3d = {
        "synthetic": True,
        "seed": args.seed,
        "fps": synthetic_motion.FPS,
        "frames_per_take": args.frames,
        "description": "SYNTHETIC procedural motion on the Human3.6M 17-joint skeleton (world metres, z up)",
    }
    atomic_savez(path_3d, compressed=False, positions_3d=positions_3d, cameras=cameras, metadata=metadata_3d)
    print(describe_written(path_3d, positions_3d, f"{LABEL} 3D poses (17 joints, metres, world)"))
    gt_metadata = keypoint_metadata("h36m", synthetic=True, seed=args.seed)
    atomic_savez(path_gt, compressed=False, positions_2d=positions_2d, metadata=gt_metadata)
    print(describe_written(path_gt, positions_2d, f"{LABEL} 2D ground truth (pixels, 4 cameras)"))
    noisy_metadata = keypoint_metadata(
        "h36m", synthetic=True, seed=args.seed, noise_px=args.noise_px, outlier_fraction=args.outlier_fraction
    )
    atomic_savez(path_noisy, compressed=False, positions_2d=noisy_2d, metadata=noisy_metadata)
    print(describe_written(path_noisy, noisy_2d, f"{LABEL} 2D noisy detections ({args.noise_px:g} px noise)"))
    print(
        f"{LABEL}: generated in {generated:.1f} s; {100 * fraction_in_view(positions_2d, cameras):.2f} % of the "
        f"projected joints inside the camera images"
    )


if __name__ == "__main__":
    run_cli(main)
