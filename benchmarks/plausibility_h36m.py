"""Calibration of the plausibility report (issue 20): the measurements that `inference/video_to_3d.py` prints for a
video without ground truth, computed on Human3.6M test sequences where the MPJPE is known.

For every test sequence (``-ste``, default S9) the checkpoint's model predicts the 3D with `run.py`'s prediction path
(the same windows, every frame once, flip TTA unless ``-no-tta``), and the script computes

- the sequence's MPJPE (Protocol #1, the raw prediction as `run.py` scores it);
- `common.evaluation.plausibility` of the prediction: bone-length variation, left/right asymmetry, weak-perspective
  reprojection error against the sequence's 2D input (pixels, from the camera's resolution, as for a video) and jitter;
- the same report of the ground-truth 3D: what a perfect prediction scores, the floor of each measurement.

It prints one row per action group (frame-weighted means over the group's sequences) and the mean over groups, for
the prediction and for the ground truth, then the Pearson and Spearman correlations across sequences between MPJPE
and each measurement of the prediction (which measurement tracks the error). ``--output`` writes all of it as JSON.

    python benchmarks/plausibility_h36m.py --data-3d ../shared/data/h36m_train/data_3d_h36m.npz -k gt_projected \\
        --checkpoint h36m_f27 --output plaus_gt.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from common.cli import run_arguments, run_evaluation  # noqa: E402
from common.cli.compute import apply_thread_policy, resolve_device  # noqa: E402
from common.cli.model_setup import build_from_checkpoint  # noqa: E402
from common.cli.run_data import check_frames, load_run_data  # noqa: E402
from common.core.errors import UserError, run_cli  # noqa: E402
from common.core.files import atomic_write_json  # noqa: E402
from common.datasets.action_names import action_group  # noqa: E402
from common.evaluation import protocols  # noqa: E402
from common.evaluation.plausibility import plausibility_report  # noqa: E402
from common.geometry.camera import image_coordinates  # noqa: E402
from common.model import pretrained  # noqa: E402

MEASURES = {  # report field -> (column title, factor for printing); the JSON keeps the report's units (ratios)
    "bone_variation_median": ("bone var %", 100),
    "asymmetry_median": ("asym %", 100),
    "reprojection_px": ("reproj px", 1),
    "reprojection_height_fraction": ("reproj %h", 100),
    "jitter_m_s2": ("jitter m/s2", 1),
}
SOURCES = ("prediction", "ground_truth")


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """The data flags of the Human3.6M benchmark scripts (run.py's names; `load_data` reads them)."""
    parser.add_argument("-d", "--dataset", default="h36m")
    parser.add_argument("-k", "--keypoints", default="gt_projected", help="2D input (default: projected ground truth)")
    parser.add_argument("--data-dir", default=None, help="folder of data_3d_<d>.npz / data_2d_<d>_<k>.npz")
    parser.add_argument("--data-3d", default=None, help="explicit 3D file")
    parser.add_argument("--data-2d", default=None, help="explicit 2D file")
    parser.add_argument("-ste", "--subjects-test", default="S9")
    parser.add_argument("--actions", default=None, metavar="LIST",
                        help="only these actions (prefix match, comma separated; a quick check, default: all)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_flags(parser)
    parser.add_argument("--checkpoint", default=pretrained.DEFAULT_MODEL, metavar="FILE_OR_NAME",
                        help="a shipped model's name or a run.py / official MixSTE checkpoint (default: %(default)s)")
    parser.add_argument("-no-tta", "--no-test-time-augmentation", action="store_true", help="no flip TTA")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: by model size)")
    parser.add_argument("--output", default=None, metavar="FILE.json", help="write the report here")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: expected a positive number of threads")
    return args


def load_data(args, checkpoint: Path):
    """`run.py`'s parsed flags and RunData for the same ``-d/-k/--data-*/-ste`` (test sequences only)."""
    argv = ["-d", args.dataset, "-k", args.keypoints, "-ste", args.subjects_test, "--evaluate", str(checkpoint),
            "--nolog", "--no-progress"]
    for flag, value in (("--data-dir", args.data_dir), ("--data-3d", args.data_3d), ("--data-2d", args.data_2d),
                        ("-a", args.actions)):
        argv += [flag, value] if value else []
    argv += ["-no-tta"] if args.no_test_time_augmentation else []
    run_args = run_arguments.parse_args(argv)
    return run_args, load_run_data(run_args, print)


def sequence_record(predict, seq, settings, data) -> dict:
    """MPJPE (mm) and the plausibility reports of the prediction and of the ground truth of one sequence."""
    predicted, target = protocols.predict_poses(predict, seq.poses_2d, settings, targets=seq.poses_3d)
    errors = protocols.sequence_errors(predicted, target, data.protocol, full=False,
                                       joint_mask=run_evaluation.eval_joint_mask(data))
    camera = seq.camera
    pixels = None if camera is None else image_coordinates(seq.poses_2d, camera.res_w, camera.res_h)
    skeleton, fps = data.dataset.skeleton, data.dataset.fps
    return {"subject": seq.subject, "action": seq.action, "camera_index": int(seq.camera_index), "frames": len(seq),
            "mpjpe_mm": errors["mpjpe"] * 1000,
            "prediction": plausibility_report(predicted, skeleton, fps, pixels).to_dict(),
            "ground_truth": plausibility_report(seq.poses_3d, skeleton, fps, pixels).to_dict()}


def _mean(values: list, weights=None) -> float | None:
    return None if any(v is None for v in values) else float(np.average(values, weights=weights))


def group_rows(records: list[dict]) -> tuple[dict, dict]:
    """Per action group the frame-weighted means, and the mean over groups (Human3.6M's protocol for MPJPE)."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(action_group(record["action"]), []).append(record)
    rows = {}
    for name, members in sorted(groups.items()):
        frames = [r["frames"] for r in members]
        rows[name] = {"frames": sum(frames), "mpjpe_mm": _mean([r["mpjpe_mm"] for r in members], frames),
                      **{s: {m: _mean([r[s][m] for r in members], frames) for m in MEASURES} for s in SOURCES}}
    average = {"frames": sum(r["frames"] for r in rows.values()),
               "mpjpe_mm": _mean([r["mpjpe_mm"] for r in rows.values()]),
               **{s: {m: _mean([r[s][m] for r in rows.values()]) for m in MEASURES} for s in SOURCES}}
    return rows, average


def ranks(values: np.ndarray) -> np.ndarray:
    """0-based ranks, ties sharing their mean rank (what Spearman's coefficient needs)."""
    order = np.argsort(values, kind="stable")
    positions = np.empty(len(values))
    positions[order] = np.arange(len(values))
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=positions) / counts)[inverse]


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson's r; None with fewer than 3 points or a constant side (undefined there)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    x, y = x - x.mean(), y - y.mean()
    return float(np.clip((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()), -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rho: Pearson's r of the ranks."""
    return pearson(ranks(x), ranks(y)) if len(x) >= 3 else None


def correlations(records: list[dict]) -> dict:
    """Across sequences: Pearson and Spearman correlation of MPJPE with each measurement of the prediction."""
    result = {}
    for measure in MEASURES:
        kept = [r for r in records if r["prediction"][measure] is not None]
        mpjpe = np.array([r["mpjpe_mm"] for r in kept], dtype=np.float64)
        values = np.array([r["prediction"][measure] for r in kept], dtype=np.float64)
        result[measure] = {"sequences": len(kept), "pearson": pearson(mpjpe, values),
                           "spearman": spearman(mpjpe, values)}
    return result


def _cell(value, factor: float) -> str:
    return "-" if value is None else f"{value * factor:.2f}"


def format_table(rows: dict, average: dict, source: str) -> list[str]:
    """One table (groups, then the mean over groups) of ``source``'s measurements; MPJPE only for the prediction."""
    titles = (["MPJPE mm"] if source == "prediction" else []) + [title for title, _ in MEASURES.values()]
    width = max(len(name) for name in [*rows, "Average (over groups)"]) + 2
    lines = ["action group".ljust(width) + "frames".rjust(8) + "".join(t.rjust(13) for t in titles)]
    for name, row in [*rows.items(), ("Average (over groups)", average)]:
        cells = [_cell(row["mpjpe_mm"], 1)] if source == "prediction" else []
        cells += [_cell(row[source][m], factor) for m, (_, factor) in MEASURES.items()]
        lines.append(name.ljust(width) + str(row["frames"]).rjust(8) + "".join(c.rjust(13) for c in cells))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return lines


def format_correlations(result: dict) -> list[str]:
    lines = ["correlation across sequences of MPJPE with each measurement of the prediction:"]
    for measure, values in result.items():
        pearson_r, spearman_r = (_cell(values[k], 1) for k in ("pearson", "spearman"))
        lines.append(f"  {MEASURES[measure][0]:<12} Pearson {pearson_r:>6}  Spearman {spearman_r:>6}  "
                     f"({values['sequences']} sequences)")
    return lines


def load_model_and_data(args):
    """``(checkpoint path, run.py flags, RunData, LoadedModel)`` for ``--checkpoint`` and the data flags."""
    path = pretrained.resolve_checkpoint(args.checkpoint, None, "--checkpoint", log=print)
    run_args, data = load_data(args, path)
    return path, run_args, data, build_from_checkpoint(path, num_joints=data.dataset.skeleton.num_joints())


def main(argv=None) -> dict:
    args = parse_args(argv)
    path, run_args, data, loaded = load_model_and_data(args)
    check_frames(loaded.config.num_frames, data.test, "the checkpoint's -f")
    device = resolve_device(args.device)
    apply_thread_policy(args.threads, loaded.config, device, print)
    predict = protocols.model_predict_fn(loaded.model.to(device), device, path)
    settings = run_evaluation.predict_settings(run_args, loaded.config, data)
    records = [sequence_record(predict, seq, settings, data) for seq in data.test if seq.poses_3d is not None]
    rows, average = group_rows(records)
    result = correlations(records)
    header = run_evaluation.report_header(run_args, loaded.config, data, path, loaded.stored.get("epoch", "?"))
    lines = [f"{key}: {value}" for key, value in header.items()]
    lines += ["", "prediction (percentages: bone variation / asymmetry medians, reprojection error / 2D height):"]
    lines += format_table(rows, average, "prediction")
    lines += ["", "ground-truth 3D (what a perfect prediction scores):"] + format_table(rows, average, "ground_truth")
    print("\n".join(lines + [""] + format_correlations(result)))
    command = shlex.join(["python", "benchmarks/plausibility_h36m.py", *(sys.argv[1:] if argv is None else argv)])
    report = {"script": "benchmarks/plausibility_h36m.py", "command": command, **header,
              "units": "mpjpe_mm in millimetres; variation, asymmetry and height fractions are ratios (not percent); "
                       "reprojection in pixels; jitter in m/s^2",
              "groups": rows, "average": average, "correlation_with_mpjpe": result, "sequences": records}
    if args.output:
        atomic_write_json(args.output, report)
        print(f"report written to {args.output}")
    return report


if __name__ == "__main__":
    run_cli(main)
