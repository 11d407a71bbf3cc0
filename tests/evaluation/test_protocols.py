"""Evaluation protocols: per-sequence errors, action groups, frame weighting, 3DHP PCK/AUC, tables and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from common.core.errors import UserError
from common.datasets.sequences import Sequence
from common.evaluation import protocols as evaluation
from common.evaluation.protocols import SequenceResult

LEFT, RIGHT = (4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16)


def _sequence(subject: str, action: str, frames: int, seed: int) -> Sequence:
    rng = np.random.default_rng(seed)
    poses_3d = rng.normal(size=(frames, 17, 3)).astype(np.float32)
    poses_3d -= poses_3d[:, :1]
    return Sequence(subject, action, 0, rng.normal(size=(frames, 17, 2)).astype(np.float32), poses_3d, None)


def test_action_group_is_the_name_before_the_space():
    assert evaluation.action_group("Walking 1") == "Walking"
    assert evaluation.action_group("SittingDown") == "SittingDown"
    assert evaluation.action_group("Walking 1 chunk0") == "Walking"


def test_h36m_summary_is_frame_weighted_within_groups_and_averaged_over_groups():
    results = [
        SequenceResult("S9", "Walking", 0, 100, mpjpe=0.010, p_mpjpe=0.005, n_mpjpe=0.008, mpjve=0.001),
        SequenceResult("S9", "Walking 1", 0, 300, mpjpe=0.030, p_mpjpe=0.015, n_mpjpe=0.020, mpjve=0.003),
        SequenceResult("S11", "Eating", 0, 50, mpjpe=0.100, p_mpjpe=0.050, n_mpjpe=0.080, mpjve=0.010),
    ]
    summary = evaluation.summarize(results, "h36m", by_subject=True)
    walking = (100 * 0.010 + 300 * 0.030) / 400  # frame-weighted: 0.025
    assert summary.groups["Walking"]["mpjpe"] == pytest.approx(walking)
    assert summary.groups["Walking"]["frames"] == 400
    assert summary.groups["Eating"]["mpjpe"] == pytest.approx(0.100)
    assert summary.average["mpjpe"] == pytest.approx((walking + 0.100) / 2)  # mean over the 2 groups
    assert summary.average["p_mpjpe"] == pytest.approx(((100 * 0.005 + 300 * 0.015) / 400 + 0.050) / 2)
    assert summary.headline == summary.average["mpjpe"]
    assert set(summary.by_subject) == {"S9", "S11"}
    assert summary.subject_average["S9"]["mpjpe"] == pytest.approx(walking)


def test_mpi_summary_reports_per_sequence_and_overall():
    results = [
        SequenceResult("TS1", "Seq", 0, 10, mpjpe=0.05, pck=90.0, auc=50.0),
        SequenceResult("TS2", "Seq", 0, 30, mpjpe=0.10, pck=70.0, auc=40.0),
    ]
    summary = evaluation.summarize(results, "mpi_inf_3dhp")
    assert summary.metrics == ("pck", "auc", "mpjpe")
    assert summary.groups["TS2"]["pck"] == pytest.approx(70.0)
    assert summary.average["pck"] == pytest.approx((10 * 90 + 30 * 70) / 40)  # overall: frame-weighted
    assert summary.average["mpjpe"] == pytest.approx((10 * 0.05 + 30 * 0.10) / 40)


def test_evaluate_sequences_counts_every_frame_once_and_measures_a_known_error():
    sequences = [_sequence("S9", "Walking 1", 23, 0), _sequence("S9", "Eating", 7, 1)]
    offset = torch.tensor([0.0, 0.0, 0.02])

    def predict_fn(batch):  # a "model" that always predicts all joints at the root
        return batch.new_zeros(*batch.shape[:-1], 3)

    targets = {id(s.poses_2d): s for s in sequences}

    def oracle(batch):  # the ground truth + 2 cm along z
        # the windows are built from poses_2d rows; recover each row's 3D from a lookup on its 2D values
        out = []
        for window in batch:
            rows = []
            for frame in window:
                for seq in targets.values():
                    match = np.where((seq.poses_2d == frame.numpy()).all(axis=(1, 2)))[0]
                    if len(match):
                        rows.append(torch.from_numpy(seq.poses_3d[match[0]]) + offset)
                        break
            out.append(torch.stack(rows))
        return torch.stack(out)

    settings = evaluation.PredictSettings(num_frames=5, flip_tta=False)
    results = evaluation.evaluate_sequences(oracle, sequences, settings, full=True, progress=False)
    assert [r.frames for r in results] == [23, 7]  # every frame once, whatever the windows
    for result in results:
        assert result.mpjpe == pytest.approx(0.02, abs=1e-6)
        assert result.mpjve == pytest.approx(0.0, abs=1e-6)
        assert result.n_mpjpe <= result.mpjpe + 1e-9 and result.p_mpjpe <= result.mpjpe + 1e-9
    zeros = evaluation.evaluate_sequences(predict_fn, sequences, settings, full=False, progress=False)
    expected = np.mean(np.linalg.norm(sequences[0].poses_3d, axis=-1))
    assert zeros[0].mpjpe == pytest.approx(expected, rel=1e-5) and zeros[0].p_mpjpe is None


def test_joint_mask_scores_only_real_joints():
    predicted = np.zeros((4, 17, 3))
    target = np.zeros((4, 17, 3))
    target[:, 9] = [0.0, 0.0, 1.0]  # a synthesized joint with a 1 m error
    mask = np.ones(17, dtype=bool)
    mask[9] = False
    assert evaluation.sequence_errors(predicted, target, "h36m", False)["mpjpe"] == pytest.approx(1 / 17)
    assert evaluation.sequence_errors(predicted, target, "h36m", False, mask)["mpjpe"] == 0.0
    values = evaluation.sequence_errors(predicted, target, "mpi_inf_3dhp", True, mask)
    assert values["pck"] == 100.0 and values["auc"] == pytest.approx(100 * 30 / 31)  # threshold 0 never counts


def test_table_and_json(tmp_path):
    results = [SequenceResult("S9", "Walking 1", 0, 10, 0.0421, 0.031, 0.040, 0.002)]
    summary = evaluation.summarize(results, "h36m")
    header = {"counting": "once", "flip TTA": "on", "subjects": "S9"}
    table = evaluation.format_summary(summary, header)
    assert "flip TTA: on" in table and "subjects: S9" in table
    assert "Walking" in table and "42.1" in table and "Average (over groups)" in table
    path = evaluation.write_summary_json(tmp_path / "best_epoch_eval.json", summary, header)
    data = json.loads(path.read_text())
    assert data["average"]["mpjpe"] == pytest.approx(42.1)
    assert data["groups"]["Walking"]["p_mpjpe"] == pytest.approx(31.0)
    assert data["sequences"][0]["action"] == "Walking 1" and data["counting"] == "once"


def test_model_predict_fn_returns_the_raw_output():
    class Shift(torch.nn.Module):
        def forward(self, x):
            return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1) + 0.25

    batch = torch.arange(2 * 3 * 17 * 2, dtype=torch.float32).reshape(2, 3, 17, 2)
    out = evaluation.model_predict_fn(Shift(), torch.device("cpu"))(batch)
    torch.testing.assert_close(out[..., :2], batch + 0.25)
    assert torch.all(out[..., 0, 2] == 1.25)  # the root joint is not touched


def test_a_non_finite_prediction_is_an_error_naming_the_source():
    class Overflow(torch.nn.Module):
        def forward(self, x):
            return torch.cat([x, x[..., :1]], dim=-1) * 3e38  # finite weights, an output that overflows

    batch = torch.full((1, 3, 17, 2), 2.0)
    with pytest.raises(UserError, match=r"^model.bin: the model predicted NaN or infinite values \(153 of 153 "):
        evaluation.model_predict_fn(Overflow(), torch.device("cpu"), "model.bin")(batch)


def _reference_mpjpe(predicted: np.ndarray, target: np.ndarray) -> float:
    """VideoPose3D / MixSTE `mpjpe`: mean Euclidean distance over joints and frames, no alignment of any kind."""
    return float(np.mean(np.sqrt(((predicted - target) ** 2).sum(axis=-1))))


def _reference_p_mpjpe(predicted: np.ndarray, target: np.ndarray) -> float:
    """Protocol #2 written from its definition: per frame, the similarity transform (Umeyama, no reflection) that best
    maps the prediction onto the target, then MPJPE."""
    errors = []
    for pred, gt in zip(predicted.astype(np.float64), target.astype(np.float64)):
        p0, g0 = pred - pred.mean(0), gt - gt.mean(0)
        u, singular, vt = np.linalg.svd(g0.T @ p0)
        sign = np.sign(np.linalg.det(u @ vt))
        d = np.diag([1.0, 1.0, sign])
        rotation = u @ d @ vt
        scale = np.trace(np.diag(singular) @ d) / (p0 ** 2).sum()
        errors.append(np.linalg.norm(scale * p0 @ rotation.T + gt.mean(0) - gt, axis=-1).mean())
    return float(np.mean(errors))


def test_official_mixste_predictions_are_scored_raw_by_default_and_root_zeroed_on_request():
    """Issue 16 part 5: our evaluator gives the references' numbers on the official model's output; the root-zeroed
    variant (the former default) differs and is only used when asked for."""
    from conftest import shared_path

    from common.cli.model_setup import build_from_checkpoint

    loaded = build_from_checkpoint(shared_path("fixtures", "mixste_official_f27_d64_dep2_s0.bin"))
    io = np.load(shared_path("fixtures", "mixste_official_f27_d64_dep2_s0_io.npz"))
    inputs, official = io["input_2d"], io["output_3d"]  # (2, 27, 17, 2), (2, 27, 17, 3)
    rng = np.random.default_rng(3)
    targets = (official + rng.normal(scale=0.05, size=official.shape)).astype(np.float32)
    targets -= targets[:, :, :1]  # root-relative ground truth, as the datasets give it
    sequences = [Sequence("S9", action, 0, inputs[i], targets[i], None) for i, action in enumerate(["Walking",
                                                                                                   "Eating 1"])]
    settings = evaluation.PredictSettings(num_frames=27, flip_tta=False)
    predict = evaluation.model_predict_fn(loaded.model, torch.device("cpu"))
    assert abs(official[:, :, 0]).max() > 1e-3  # the official output's root is not at the origin

    zeroed_official = official.copy()
    zeroed_official[:, :, 0] = 0.0
    for zero_root, reference_output in ((False, official), (True, zeroed_official)):
        results = evaluation.evaluate_sequences(predict, sequences, settings, full=True, progress=False,
                                                zero_root=zero_root)
        for result, output, target in zip(results, reference_output, targets):
            assert result.mpjpe == pytest.approx(_reference_mpjpe(output, target), abs=2e-6)
            assert result.p_mpjpe == pytest.approx(_reference_p_mpjpe(output, target), abs=2e-6)
        summary = evaluation.summarize(results, "h36m")
        expected = np.mean([_reference_mpjpe(o, t) for o, t in zip(reference_output, targets)])  # 2 groups
        assert summary.headline == pytest.approx(expected, abs=2e-6)
    raw = evaluation.evaluate_sequences(predict, sequences, settings, full=False, progress=False)
    zeroed = evaluation.evaluate_sequences(predict, sequences, settings, full=False, progress=False, zero_root=True)
    assert all(abs(r.mpjpe - z.mpjpe) > 1e-4 for r, z in zip(raw, zeroed))
