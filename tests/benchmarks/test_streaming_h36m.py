"""benchmarks/streaming_h36m.py: its per-frame predictions are what `StreamingLifter` returns frame by frame, and a
tiny end-to-end run on synthetic data scores exactly those frames (every 3rd) with the protocol's numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import make_tiny_synthetic

from benchmarks import streaming_h36m
from common.cli.model_setup import build_from_checkpoint
from common.core.errors import UserError, run_cli
from common.datasets.keypoints import load_keypoints
from common.datasets.registry import load_dataset
from common.datasets.sequences import build_sequences
from common.evaluation import metrics, protocols
from common.evaluation.streaming import StreamingLifter
from common.geometry.skeleton import h36m_17
from common.model.checkpoints import save_checkpoint
from common.model.config import ModelConfig
from common.model.metaformer import build_model

F, DELAYS, EVERY = 9, (0, 2, 4), 3




@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny synthetic data, tiny checkpoints (causal: True / False) and the test sequences of S9."""
    data = make_tiny_synthetic(tmp_path_factory)
    folder = tmp_path_factory.mktemp("ck")
    checkpoints = {}
    for causal in (True, False):
        config = ModelConfig(num_frames=F, embed_dim=16, depth=1, causal=causal)
        torch.manual_seed(0)
        checkpoints[causal] = folder / f"tiny_causal_{causal}.bin"
        save_checkpoint(checkpoints[causal], epoch=1, lr=1e-3, model=build_model(config), optimizer=None,
                        model_config=config.to_dict(), best_val=None, loader_state=None)
    dataset = load_dataset("synthetic", data / "data_3d_synthetic.npz")
    test = build_sequences(dataset, load_keypoints(data / "data_2d_synthetic_gt.npz", dataset), ["S9"], None)
    return data, checkpoints, test


def settings(flip_tta: bool, batch: int = 7) -> protocols.PredictSettings:
    skeleton = h36m_17()
    left, right = tuple(skeleton.joints_left()), tuple(skeleton.joints_right())
    return protocols.PredictSettings(num_frames=F, flip_tta=flip_tta, kps_left=left, kps_right=right,
                                     joints_left=left, joints_right=right, batch_windows=batch)


def streamed(predict, poses_2d: np.ndarray, prediction_settings, delay: int) -> np.ndarray:
    """Every frame's 3D as a `StreamingLifter` returns it when the sequence is pushed frame by frame, then flushed."""
    lifter = StreamingLifter(predict, prediction_settings, delay)
    outputs = [out for pose in poses_2d if (out := lifter.push(pose)) is not None] + lifter.flush()
    return np.stack(outputs)


@pytest.mark.parametrize("causal,flip_tta", [(True, False), (False, True)])
def test_per_frame_predictions_are_the_stream_s(tiny, one_thread, causal, flip_tta):
    _, checkpoints, test = tiny  # the non-causal model also sees the end padding (the stream's flush)
    model = build_from_checkpoint(checkpoints[causal], num_joints=17).model
    predict = protocols.model_predict_fn(model, torch.device("cpu"))
    poses_2d = test[0].poses_2d
    for delay in DELAYS:
        expected = streamed(predict, poses_2d, settings(flip_tta), delay)
        scored, predicted = streaming_h36m.stream_prediction(predict, poses_2d, settings(flip_tta), delay, EVERY)
        assert scored.tolist() == list(range(0, len(poses_2d), EVERY))  # 0, 3, 6, ... (batches of 7 windows)
        np.testing.assert_allclose(predicted, expected[scored], atol=1e-5)


def test_tiny_run_scores_the_streamed_frames(tiny, tmp_path, one_thread, capsys):
    data, checkpoints, test = tiny
    checkpoint = checkpoints[False]  # non-causal: every frame of each window matters
    output = tmp_path / "streaming.json"
    common = ["-d", "synthetic", "-k", "gt", "--data-dir", str(data), "--checkpoint", str(checkpoint),
              "--threads", "1", "--device", "cpu"]
    report = streaming_h36m.main([*common, "--delays", *map(str, DELAYS), "--every", str(EVERY), "--batch", "5",
                                  "--output", str(output)])
    printed = capsys.readouterr().out
    assert "flip TTA: off" in printed and "subsampled" in printed and "raw" in printed
    assert "40 ms at 50 fps" in printed and "block evaluation" in printed  # delay 2 at 50 fps
    assert json.loads(output.read_text()) == json.loads(json.dumps(report))

    def numbers(value):
        if isinstance(value, dict):
            return [n for v in value.values() for n in numbers(v)]
        if isinstance(value, list):
            return [n for v in value for n in numbers(v)]
        return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []

    assert numbers(report) and all(math.isfinite(n) for n in numbers(report))

    # each sequence's P1 is the MPJPE of the streamed poses of frames 0, 3, 6, ... against the ground truth
    predict = protocols.model_predict_fn(build_from_checkpoint(checkpoint, num_joints=17).model, torch.device("cpu"))
    for delay in DELAYS:
        entry = report["delays"][str(delay)]
        assert entry["latency_ms"] == pytest.approx(delay * 20) and "mpjve" not in entry["metrics"]
        assert len(entry["sequences"]) == len(test) == 8
        for record in entry["sequences"]:
            seq = next(s for s in test if (s.action, s.camera_index) == (record["action"], record["camera_index"]))
            frames = np.arange(0, len(seq), EVERY)
            assert record["frames"] == len(frames) == 34
            truth = streamed(predict, seq.poses_2d, settings(False), delay)[frames]
            error = metrics.mpjpe(truth, seq.poses_3d[frames]) * 1000
            assert record["mpjpe"] == pytest.approx(float(error), abs=1e-3)
        assert entry["average"]["mpjpe"] == pytest.approx(entry["groups"]["Walking"]["mpjpe"])

    # a delay beyond F // 2: one clear line naming the flag, exit code 2
    with pytest.raises(UserError, match=r"--delays 5: expected an integer in \[0, 4\]"):
        streaming_h36m.main([*common, "--delays", "0", "5"])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: streaming_h36m.main([*common, "--delays", "-1"]))
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(error_lines) == 1 and error_lines[0].startswith("error: --delays -1")
