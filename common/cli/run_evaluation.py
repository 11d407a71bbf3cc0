"""`run.py`'s evaluation: prediction settings from the flags, per-epoch validation and the final protocol report.

`final_evaluation` prints the protocol table with a header that says how the numbers were obtained (protocol, frame
counting, flip TTA, raw or root-zeroed prediction, subjects) and writes the same as ``<checkpoint>_eval.json`` into
``-c DIR``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.cli.run_data import RunData
from common.evaluation import protocols

PROTOCOL_DESCRIPTIONS = {
    "h36m": "actions grouped by the name before the space, frame-weighted within a group, mean over groups",
    "humaneva15": "actions grouped by name, frame-weighted within a group, mean over groups",
    "mpi_inf_3dhp": "per test sequence; overall frame-weighted over all frames",
}


def predict_settings(args, config, data: RunData) -> protocols.PredictSettings:
    """Windows, counting, flip TTA and flip permutations of this run."""
    skeleton = data.dataset.skeleton
    return protocols.PredictSettings(
        num_frames=config.num_frames, counting=args.eval_counting, flip_tta=args.test_time_augmentation,
        kps_left=tuple(data.keypoints.kps_left), kps_right=tuple(data.keypoints.kps_right),
        joints_left=tuple(skeleton.joints_left()), joints_right=tuple(skeleton.joints_right()),
        batch_windows=args.eval_batch,
    )


def eval_joint_mask(data: RunData) -> np.ndarray | None:
    """Joints that are real ground truth in this dataset (the others are synthesized and not scored)."""
    joints = tuple(getattr(data.dataset, "evaluation_joints", ()))
    if not joints or len(joints) == data.dataset.skeleton.num_joints():
        return None
    mask = np.zeros(data.dataset.skeleton.num_joints(), dtype=bool)
    mask[list(joints)] = True
    return mask


def _evaluate(args, model, config, data: RunData, device, sequences: list, full: bool, description: str,
              source: str | Path = "the model"):
    return protocols.evaluate_sequences(
        protocols.model_predict_fn(model, device, source), sequences, predict_settings(args, config, data),
        data.protocol, full=full, joint_mask=eval_joint_mask(data), progress=not args.no_progress,
        description=description, zero_root=args.eval_zero_root)


def validation_fn(args, config, data: RunData, device) -> Callable:
    """The per-epoch validation: MPJPE (metres) of a model on the validation subjects."""

    def validate(model) -> float:
        results = _evaluate(args, model, config, data, device, data.val, full=False, description="validate",
                            source="validation of the model being trained")
        return protocols.summarize(results, data.protocol).headline

    return validate


def report_header(args, config, data: RunData, checkpoint_path: Path, trained_epochs) -> dict[str, str]:
    """How the numbers were obtained: the lines above the table (and the keys of the JSON file)."""
    return {
        "checkpoint": str(checkpoint_path),
        "trained epochs": str(trained_epochs),
        "dataset": f"{args.dataset} (keypoints {args.keypoints})",
        "protocol": PROTOCOL_DESCRIPTIONS[data.protocol],
        "counting": f"{args.eval_counting} ({protocols.COUNTING_DESCRIPTIONS[args.eval_counting]})",
        "flip TTA": "on" if args.test_time_augmentation else "off",
        "scored prediction": protocols.SCORING_DESCRIPTIONS[args.eval_zero_root],
        "subjects": ",".join(data.test_subjects),
        "frames per window": str(config.num_frames),
    }


def final_evaluation(args, model, config, data: RunData, device, logger, checkpoint_path: Path,
                     trained_epochs) -> float:
    """Full protocol on the test subjects: table on the console, JSON in ``-c DIR``. Returns MPJPE (m)."""
    results = _evaluate(args, model, config, data, device, data.test, full=True, description="test",
                        source=checkpoint_path)
    summary = protocols.summarize(results, data.protocol, by_subject=args.by_subject)
    header = report_header(args, config, data, checkpoint_path, trained_epochs)
    logger.info(protocols.format_summary(summary, header))
    # in -c DIR (next to the checkpoint in the usual case); never beside a file elsewhere (e.g. read-only data)
    json_path = Path(args.checkpoint) / (checkpoint_path.stem + "_eval.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    protocols.write_summary_json(json_path, summary, header)
    logger.info(f"results written to {json_path}")
    logger.info(f"final MPJPE: {summary.headline * 1000:.2f} mm")
    return summary.headline
