"""Evaluation protocols: per-sequence errors, per-action-group aggregation, tables and JSON results.

- `model_predict_fn(model, device)` + `predict_poses(predict_fn, poses_2d, settings)`: THE prediction of whole
  sequences (windows, frame counting, flip TTA), used by evaluation, ``run.py --render`` and
  ``inference/video_to_3d.py`` alike. The prediction is the model's raw output.
- `evaluate_sequences(...)`: predicts every sequence (every frame counted exactly once by default) and computes its
  errors (`SequenceResult`, metres) against the root-relative ground truth. Like VideoPose3D and MixSTE it scores the
  raw prediction; ``zero_root=True`` sets the predicted root joint to 0 first (an explicit variant, not the default).
- `summarize(results, protocol, by_subject)`: the dataset's protocol as an `EvaluationSummary`:
  - ``h36m`` (also ``synthetic`` / ``custom``-like data with actions): actions merged by the name before the first space
    (15 groups on Human3.6M), frame-weighted within a group, plain mean over groups; Protocol #1 MPJPE, #2 P-MPJPE,
    #3 N-MPJPE and MPJVE;
  - ``humaneva15``: the same grouping (``Walking 1 chunk0`` -> ``Walking``), per subject with ``--by-subject``;
  - ``mpi_inf_3dhp``: PCK@150mm, AUC and MPJPE per test sequence (subject) and overall (frame-weighted over all frames).
- `format_summary(summary, header)`: the printed table; `write_summary_json(path, summary, header)`: atomic JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from common.core.errors import UserError
from common.core.files import atomic_write
from common.datasets.action_names import action_group
from common.evaluation import metrics
from common.evaluation.windows import predict_sequence

H36M_METRICS = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve")
MPI_METRICS = ("pck", "auc", "mpjpe")
METRIC_TITLES = {
    "mpjpe": "MPJPE (P1)", "p_mpjpe": "P-MPJPE (P2)", "n_mpjpe": "N-MPJPE (P3)", "mpjve": "MPJVE",
    "pck": "PCK@150mm", "auc": "AUC",
}
PERCENT_METRICS = ("pck", "auc")
COUNTING_DESCRIPTIONS = {
    "once": "every frame counted exactly once",
    "mixste": "MixSTE's windows (last window's overlap counted twice, padding of short sequences included)",
}
SCORING_DESCRIPTIONS = {
    False: "raw (the model's output, as VideoPose3D and MixSTE score it)",
    True: "root-zeroed (the predicted root joint set to 0 before scoring)",
}
ROOT_JOINT = 0


@dataclass
class SequenceResult:
    """Errors of one (subject, action, camera) sequence in metres (PCK/AUC in percent); None = not computed."""

    subject: str
    action: str
    camera_index: int
    frames: int
    mpjpe: float
    p_mpjpe: float | None = None
    n_mpjpe: float | None = None
    mpjve: float | None = None
    pck: float | None = None
    auc: float | None = None


@dataclass
class EvaluationSummary:
    """A protocol's numbers: per group, the summary row, optionally per subject (metrics in metres / percent)."""

    protocol: str
    metrics: tuple[str, ...]
    groups: dict[str, dict[str, float]] = field(default_factory=dict)
    average: dict[str, float] = field(default_factory=dict)
    average_label: str = "Average"
    by_subject: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    subject_average: dict[str, dict[str, float]] = field(default_factory=dict)
    sequences: list[SequenceResult] = field(default_factory=list)

    @property
    def headline(self) -> float:
        """The MPJPE of the summary row (metres): what selects the best epoch."""
        return self.average["mpjpe"]


def protocol_for(dataset: str) -> str:
    """Which evaluation protocol a dataset uses."""
    if dataset == "mpi_inf_3dhp":
        return "mpi_inf_3dhp"
    if dataset == "humaneva15":
        return "humaneva15"
    return "h36m"


def sequence_errors(predicted: np.ndarray, target: np.ndarray, protocol: str, full: bool,
                    joint_mask: np.ndarray | None = None, zero_root: bool = False) -> dict[str, float]:
    """Errors of one sequence ``(T, J, 3)``; ``full=False`` computes only MPJPE (fast per-epoch validation).

    ``zero_root`` scores the prediction with its root joint set to 0 (the default scores it as it is).
    """
    if zero_root:
        predicted = np.array(predicted, copy=True)
        predicted[:, ROOT_JOINT] = 0.0
    if joint_mask is not None:
        predicted, target = predicted[:, joint_mask], target[:, joint_mask]
    values = {"mpjpe": float(metrics.mpjpe(predicted, target))}
    if not full:
        return values
    if protocol == "mpi_inf_3dhp":
        values["pck"] = float(metrics.pck(predicted, target))
        values["auc"] = float(metrics.auc(predicted, target))
        return values
    values["p_mpjpe"] = float(metrics.p_mpjpe(predicted, target))
    values["n_mpjpe"] = float(metrics.n_mpjpe(predicted, target))
    values["mpjve"] = float(metrics.mean_velocity_error(predicted, target)) if len(predicted) > 1 else 0.0
    return values


@dataclass(frozen=True)
class PredictSettings:
    """How whole sequences are predicted (`windows.predict_sequence`)."""

    num_frames: int
    counting: str = "once"
    flip_tta: bool = True
    kps_left: tuple[int, ...] = ()
    kps_right: tuple[int, ...] = ()
    joints_left: tuple[int, ...] = ()
    joints_right: tuple[int, ...] = ()
    batch_windows: int = 16


def model_predict_fn(model: torch.nn.Module, device: torch.device,
                     source: str | os.PathLike = "the model") -> Callable[[torch.Tensor], torch.Tensor]:
    """``(B, F, J, 2)`` CPU tensor -> ``(B, F, J, 3)`` CPU float prediction of ``model`` in eval mode (raw output).

    A prediction holding NaN or infinity is a `UserError` naming ``source`` (the checkpoint): never a result.
    """
    model.eval()

    def predict(batch: torch.Tensor) -> torch.Tensor:
        output = model(batch.to(device)).float().cpu()
        if not torch.isfinite(output).all():
            bad = int((~torch.isfinite(output)).sum())
            raise UserError(f"{source}: the model predicted NaN or infinite values ({bad} of {output.numel()} "
                            "coordinates of a batch); its weights or the 2D input are not usable")
        return output

    return predict


def predict_poses(predict_fn: Callable, poses_2d: np.ndarray, settings: PredictSettings, targets=None):
    """`predict_sequence` with the settings' windows, counting and flip TTA."""
    return predict_sequence(
        predict_fn, poses_2d, settings.num_frames, counting=settings.counting, flip_tta=settings.flip_tta,
        kps_left=settings.kps_left, kps_right=settings.kps_right, joints_left=settings.joints_left,
        joints_right=settings.joints_right, batch_windows=settings.batch_windows, targets=targets,
    )


def evaluate_sequences(predict_fn: Callable, sequences: Sequence, settings: PredictSettings, protocol: str = "h36m",
                       full: bool = True, joint_mask: np.ndarray | None = None, progress: bool = True,
                       description: str = "evaluate", zero_root: bool = False) -> list[SequenceResult]:
    """Per-sequence errors of every sequence that has 3D ground truth (``zero_root``: see `sequence_errors`)."""
    results = []
    for seq in tqdm(sequences, desc=description, unit="seq", disable=not progress, dynamic_ncols=True, leave=False):
        if seq.poses_3d is None:
            continue
        predicted, target = predict_poses(predict_fn, seq.poses_2d, settings, targets=seq.poses_3d)
        values = sequence_errors(predicted, target, protocol, full, joint_mask, zero_root)
        results.append(SequenceResult(seq.subject, seq.action, int(seq.camera_index), len(predicted), **values))
    return results


def _weighted(results: Sequence[SequenceResult], names: Sequence[str]) -> dict[str, float]:
    """Frame-weighted mean of each metric over ``results`` (plus the frame count)."""
    frames = np.array([r.frames for r in results], dtype=np.float64)
    row = {"frames": int(frames.sum())}
    for name in names:
        values = [getattr(r, name) for r in results]
        if any(v is None for v in values):
            continue
        row[name] = float(np.sum(np.array(values) * frames) / frames.sum())
    return row


def _group_means(results: Sequence[SequenceResult], key: Callable[[SequenceResult], str], names: Sequence[str]):
    groups: dict[str, list[SequenceResult]] = {}
    for result in results:
        groups.setdefault(key(result), []).append(result)
    return {name: _weighted(members, names) for name, members in sorted(groups.items())}


def _mean_over_groups(groups: dict[str, dict[str, float]], names: Sequence[str]) -> dict[str, float]:
    row = {"frames": int(sum(g["frames"] for g in groups.values()))}
    for name in names:
        values = [g[name] for g in groups.values() if name in g]
        if values and len(values) == len(groups):
            row[name] = float(np.mean(values))
    return row


def summarize(results: Sequence[SequenceResult], protocol: str, by_subject: bool = False) -> EvaluationSummary:
    """Aggregate per-sequence results with the dataset's protocol (see the module docstring)."""
    if not results:
        raise ValueError("no sequence with 3D ground truth was evaluated")
    if protocol == "mpi_inf_3dhp":
        names = MPI_METRICS
        groups = _group_means(results, lambda r: r.subject, names)
        summary = EvaluationSummary(protocol, names, groups, _weighted(results, names), "All (frame-weighted)")
        summary.sequences = list(results)
        return summary
    names = tuple(n for n in H36M_METRICS if all(getattr(r, n) is not None for r in results))
    groups = _group_means(results, lambda r: action_group(r.action), names)
    summary = EvaluationSummary(protocol, names, groups, _mean_over_groups(groups, names), "Average (over groups)")
    if by_subject:
        for subject in sorted({r.subject for r in results}):
            mine = [r for r in results if r.subject == subject]
            subject_groups = _group_means(mine, lambda r: action_group(r.action), names)
            summary.by_subject[subject] = subject_groups
            summary.subject_average[subject] = _mean_over_groups(subject_groups, names)
    summary.sequences = list(results)
    return summary


def _format_value(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if name in PERCENT_METRICS else f"{value * 1000:.1f}"


def _table(rows: dict[str, dict[str, float]], names: Sequence[str], label_title: str,
           footer: tuple[str, dict[str, float]] | None) -> list[str]:
    titles = [METRIC_TITLES[n] + ("" if n in PERCENT_METRICS else " mm") for n in names]
    labels = list(rows) + ([footer[0]] if footer else [])
    width = max([len(label_title)] + [len(label) for label in labels]) + 2
    widths = [max(len(t), 8) + 2 for t in titles]
    lines = [label_title.ljust(width) + "frames".rjust(9) + "".join(t.rjust(w) for t, w in zip(titles, widths))]
    lines.append("-" * len(lines[0]))

    def line(label: str, row: dict[str, float]) -> str:
        cells = "".join(_format_value(n, row.get(n)).rjust(w) for n, w in zip(names, widths))
        return label.ljust(width) + str(row.get("frames", "")).rjust(9) + cells

    lines += [line(label, row) for label, row in rows.items()]
    if footer:
        lines.append("-" * len(lines[0]))
        lines.append(line(*footer))
    return lines


def format_summary(summary: EvaluationSummary, header: dict[str, str]) -> str:
    """The results table with the header lines (protocol, counting, TTA, subjects, checkpoint ...)."""
    lines = [f"{key}: {value}" for key, value in header.items()]
    group_title = "sequence" if summary.protocol == "mpi_inf_3dhp" else "action group"
    lines += _table(summary.groups, summary.metrics, group_title, (summary.average_label, summary.average))
    for subject, groups in summary.by_subject.items():
        lines.append("")
        lines.append(f"subject {subject}:")
        lines += _table(groups, summary.metrics, group_title, (summary.average_label, summary.subject_average[subject]))
    return "\n".join(lines)


def summary_to_dict(summary: EvaluationSummary, header: dict[str, str]) -> dict:
    """JSON-ready dict (errors in millimetres, PCK/AUC in percent)."""

    def convert(row: dict[str, float]) -> dict:
        return {k: (v if k in PERCENT_METRICS or k == "frames" else v * 1000) for k, v in row.items()}

    return {
        **header,
        "protocol_id": summary.protocol,  # h36m | humaneva15 | mpi_inf_3dhp (the header's "protocol" describes it)
        "units": "millimetres (pck, auc: percent)",
        "metrics": list(summary.metrics),
        "groups": {name: convert(row) for name, row in summary.groups.items()},
        "average": convert(summary.average),
        "average_label": summary.average_label,
        "by_subject": {s: {"groups": {g: convert(r) for g, r in groups.items()},
                           "average": convert(summary.subject_average[s])}
                       for s, groups in summary.by_subject.items()},
        "sequences": [{k: (v * 1000 if isinstance(v, float) and k not in PERCENT_METRICS else v)
                       for k, v in asdict(seq).items()} for seq in summary.sequences],
    }


def write_summary_json(path: str | os.PathLike, summary: EvaluationSummary, header: dict[str, str]) -> Path:
    """Write `summary_to_dict` atomically as JSON."""
    text = json.dumps(summary_to_dict(summary, header), indent=2)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
