"""benchmarks/tcn_baseline.py: the TCN's shape facts, whole-sequence = per-window prediction, and a tiny end-to-end run
on synthetic data (a smoke test of the script, not of accuracy)."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from conftest import make_tiny_synthetic

from benchmarks import tcn_baseline
from benchmarks.tcn_baseline import TemporalConvNet, WholeSequence, training_arrays
from common.datasets.sequences import Sequence


def _expected_parameters(joints: int, channels: int, widths: tuple[int, ...]) -> int:
    """From the layer shapes: expand conv (no bias) + BN, per block a width-w conv + BN and a 1x1 conv + BN (no
    biases), the 1x1 output conv with bias."""
    expand = 2 * joints * channels * widths[0] + 2 * channels
    blocks = sum(channels * channels * w + 2 * channels + channels * channels + 2 * channels for w in widths[1:])
    return expand + blocks + channels * 3 * joints + 3 * joints


def test_receptive_field_and_parameters_match_videopose3d_at_128_channels():
    model = TemporalConvNet(17, 128, (3, 3, 3))
    assert model.receptive_field == 27
    count = sum(p.numel() for p in model.parameters())
    assert count == _expected_parameters(17, 128, (3, 3, 3)) == 151_987  # "152 k parameters"
    assert model(torch.zeros(2, 27, 17, 2)).shape == (2, 1, 17, 3)
    assert model(torch.zeros(2, 40, 17, 2)).shape == (2, 14, 17, 3)  # valid convolutions: T - 26 frames
    assert TemporalConvNet(17, 16, (3, 3, 3, 3)).receptive_field == 81


def _trained_looking(model: TemporalConvNet) -> TemporalConvNet:
    """Non-trivial BN statistics (one training-mode pass), then evaluation mode."""
    torch.manual_seed(1)
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 27, 17, 2))
    return model.eval()


def test_whole_sequence_prediction_equals_per_window_prediction():
    torch.manual_seed(0)
    model = _trained_looking(TemporalConvNet(17, 8, (3, 3, 3)))
    sequence = torch.randn(1, 40, 17, 2)
    whole = WholeSequence(model)(sequence)
    assert whole.shape == (1, 40, 17, 3)
    centres = torch.arange(40)[:, None] + torch.arange(-13, 14)[None, :]
    windows = sequence[0, centres.clamp(0, 39)]  # (40, 27, 17, 2): every frame's edge-padded window
    with torch.no_grad():
        dilated = model(windows)[:, 0]
        strided = model(windows, strided=True)[:, 0]  # the training form: same weights, same output
    torch.testing.assert_close(whole[0], dilated, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(strided, dilated, rtol=1e-5, atol=1e-6)
    short = torch.randn(1, 5, 17, 2)  # shorter than the receptive field: still one prediction per frame
    assert WholeSequence(model)(short).shape == (1, 5, 17, 3)


def test_training_windows_are_centred_and_edge_padded():
    sequences = [Sequence("S1", "A", i, np.arange(n * 34, dtype=np.float32).reshape(n, 17, 2) + 1000 * i,
                          np.zeros((n, 17, 3), np.float32), None) for i, n in enumerate((3, 5))]
    inputs, centres, targets = training_arrays(sequences, pad=2)
    assert len(centres) == len(targets) == 8
    windows = inputs[centres[:, None] + np.arange(-2, 3)]
    second = sequences[1].poses_2d
    np.testing.assert_array_equal(windows[3], second[[0, 0, 0, 1, 2]])  # first frame of the second sequence
    np.testing.assert_array_equal(windows[-1], second[[2, 3, 4, 4, 4]])


def test_tiny_run_on_synthetic_data_writes_a_finite_report(tmp_path_factory, tmp_path, capsys):
    data = make_tiny_synthetic(tmp_path_factory)
    output = tmp_path / "tcn.json"
    threads = torch.get_num_threads()
    try:  # in-process (a fresh interpreter costs about 10 s of CPU here); main() is what `python tcn_baseline.py` runs
        tcn_baseline.main(["-d", "synthetic", "-k", "gt", "--data-dir", str(data), "-str", "S1", "-ste", "S9",
                           "--channels", "16", "--batch-size", "64", "--time-budget", "0.02", "--epochs", "3",
                           "--threads", "1", "--output", str(output)])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "flip TTA: on" in printed and "counting: once" in printed and "final: MPJPE (P1)" in printed
    report = json.loads(output.read_text())
    assert report["receptive_field"] == 27 and report["parameters"] == _expected_parameters(17, 16, (3, 3, 3))
    assert report["steps"] >= 1 and report["target_frames"] >= 1
    for key in ("minutes", "target_frames_per_second", "epochs", "mpjpe_mm", "p_mpjpe_mm"):
        assert math.isfinite(report[key]) and report[key] > 0, key
    assert report["p_mpjpe_mm"] < report["mpjpe_mm"]
    assert report["evaluation"]["average"]["mpjpe"] == report["mpjpe_mm"]
