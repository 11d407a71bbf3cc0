"""Custom videos (common/datasets/custom.py): 2D-only dataset with a nominal camera per video."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import save_npz

from common.core.errors import UserError
from common.datasets.keypoints import load_keypoints
from common.datasets.registry import default_paths, load_dataset
from common.datasets.sequences import build_sequences


def test_custom_dataset(tmp_path):
    rng = np.random.default_rng(2)
    detections = rng.uniform(0, 600, size=(12, 17, 3)).astype(np.float32)
    metadata = {
        "layout_name": "coco",
        "num_joints": 17,
        "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]],
        "video_metadata": {"dancer.mp4": {"w": 600, "h": 400, "fps": 20}},
    }
    path = save_npz(
        tmp_path / "data_2d_custom_test.npz", positions_2d={"dancer.mp4": {"custom": [detections]}}, metadata=metadata
    )
    assert default_paths("custom", "test", tmp_path) == (path, path)
    dataset = load_dataset("custom", path)
    assert dataset.subjects() == ["dancer.mp4"] and dataset.fps == 20 and not dataset.has_ground_truth()
    keypoints = load_keypoints(path, dataset)
    (seq,) = build_sequences(dataset, keypoints, ["dancer.mp4"])
    assert seq.poses_3d is None and len(seq) == 12
    assert (seq.camera.res_w, seq.camera.res_h) == (600, 400)
    np.testing.assert_allclose(seq.poses_2d[:, 14], detections[:, 6, :2] / 300 - [1, 400 / 600], atol=1e-6)
    save_npz(tmp_path / "nometa.npz", positions_2d={"v": {"custom": [detections]}}, metadata={"layout_name": "coco"})
    with pytest.raises(UserError, match="nometa.npz: metadata lacks video_metadata"):
        load_dataset("custom", tmp_path / "nometa.npz")
