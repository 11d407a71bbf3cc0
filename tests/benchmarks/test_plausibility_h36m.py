"""benchmarks/plausibility_h36m.py: the correlation helpers by hand, and a tiny end-to-end run on synthetic data whose
numbers are checked against run.py's own evaluation and against the plausibility of the raw pixel 2D."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import make_tiny_synthetic

from benchmarks import plausibility_h36m
from benchmarks.plausibility_h36m import pearson, ranks, spearman
from common.datasets.keypoints import load_keypoints
from common.datasets.registry import load_dataset
from common.datasets.sequences import build_sequences
from common.evaluation.plausibility import plausibility_report
from common.geometry.skeleton import h36m_17
from common.model.checkpoints import save_checkpoint
from common.model.config import ModelConfig
from common.model.metaformer import build_model


def test_ranks_share_ties_and_correlations_match_hand_values():
    np.testing.assert_array_equal(ranks(np.array([3.0, 1.0, 3.0, 2.0])), [2.5, 0.0, 2.5, 1.0])
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(x, np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(1 - 6 * 2 / (4 * 15))  # sum d^2 = 2
    assert spearman(x, np.exp(x)) == pytest.approx(1.0) and pearson(x, np.exp(x)) < 0.95  # monotone, not linear
    assert pearson(x, -2 * x + 1) == pytest.approx(-1.0)
    assert pearson(x, np.ones(4)) is None and pearson(x[:2], x[:2]) is None and spearman(x[:2], x[:2]) is None


def test_tiny_run_on_synthetic_data(tmp_path_factory, tmp_path, capsys):
    data = make_tiny_synthetic(tmp_path_factory)
    config = ModelConfig(num_frames=9, embed_dim=16, depth=1)
    torch.manual_seed(0)
    checkpoint_dir = tmp_path / "ck"
    checkpoint_dir.mkdir()
    save_checkpoint(checkpoint_dir / "tiny.bin", epoch=1, lr=1e-3, model=build_model(config), optimizer=None,
                    model_config=config.to_dict(), best_val=None, loader_state=None)
    output = tmp_path / "plaus.json"
    common = ["-d", "synthetic", "-k", "gt", "--data-dir", str(data), "-ste", "S9"]
    threads = torch.get_num_threads()
    try:  # in-process, as `python benchmarks/plausibility_h36m.py ...` runs it
        report = plausibility_h36m.main([*common, "--checkpoint", str(checkpoint_dir / "tiny.bin"), "--threads", "1",
                                         "--device", "cpu", "--output", str(output)])
        import run  # the repository root is on sys.path (conftest)

        run.main([*common, "-c", str(checkpoint_dir), "--evaluate", "tiny.bin", "--nolog", "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "flip TTA: on" in printed and "ground-truth 3D" in printed and "Spearman" in printed
    assert json.loads(output.read_text()) == json.loads(json.dumps(report))
    sequences = report["sequences"]
    assert len(sequences) == 8 and {s["action"] for s in sequences} == {"Walking", "Walking 1"}  # 2 takes x 4 cameras

    # the MPJPE of every sequence is run.py's evaluation of it
    evaluated = json.loads((checkpoint_dir / "tiny_eval.json").read_text())["sequences"]
    by_key = {(s["subject"], s["action"], s["camera_index"]): s["mpjpe"] for s in evaluated}
    for record in sequences:
        assert record["mpjpe_mm"] == pytest.approx(by_key[record["subject"], record["action"], record["camera_index"]])

    # every number is finite; synthetic bodies have constant, left/right-equal bones: the ground truth scores ~0
    dataset = load_dataset("synthetic", data / "data_3d_synthetic.npz")
    test = build_sequences(dataset, load_keypoints(data / "data_2d_synthetic_gt.npz", dataset), ["S9"], None)
    with np.load(data / "data_2d_synthetic_gt.npz", allow_pickle=True) as files:
        pixels = files["positions_2d"].item()["S9"]  # the 2D as written, in pixels
    for record in sequences:
        for source in ("prediction", "ground_truth"):
            numbers = [v for k, v in record[source].items() if not isinstance(v, str)]
            assert all(math.isfinite(v) for v in numbers), (source, record[source])
        truth = record["ground_truth"]
        assert truth["bone_variation_max"] < 1e-4 and truth["asymmetry_max"] < 1e-4
        assert record["prediction"]["bone_variation_median"] > 10 * truth["bone_variation_median"]
        seq = next(s for s in test if (s.action, s.camera_index) == (record["action"], record["camera_index"]))
        expected = plausibility_report(seq.poses_3d, h36m_17(), 50.0, pixels[seq.action][seq.camera_index])
        assert truth["reprojection_px"] == pytest.approx(expected.reprojection_px, abs=1e-3)  # pixels, not normalized
        assert truth["reprojection_height_fraction"] == pytest.approx(expected.reprojection_height_fraction, abs=1e-5)
        assert truth["jitter_m_s2"] == pytest.approx(expected.jitter_m_s2, rel=1e-4)

    # one group (frame-weighted over its sequences) and the mean over groups; correlations in [-1, 1]
    frames = np.array([s["frames"] for s in sequences])
    walking = report["groups"]["Walking"]
    assert walking["frames"] == frames.sum() == report["average"]["frames"]
    assert walking["mpjpe_mm"] == pytest.approx(np.average([s["mpjpe_mm"] for s in sequences], weights=frames))
    assert report["average"]["mpjpe_mm"] == pytest.approx(walking["mpjpe_mm"])
    assert report["average"]["ground_truth"]["bone_variation_median"] < 1e-4
    values = [v for c in report["correlation_with_mpjpe"].values() for v in (c["pearson"], c["spearman"])]
    assert any(v is not None for v in values) and all(-1 <= v <= 1 for v in values if v is not None)
