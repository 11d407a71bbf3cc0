"""common/datasets/detections.py: both detector file formats, interpolation of frames without a person, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import detectron2_file

from common.core.errors import UserError
from common.datasets.detections import read_detections


def test_read_detections_detectron2_format_interpolates_missing_frames(tmp_path):
    path = tmp_path / "Walking.54138969.mp4.npz"
    expected = detectron2_file(path, np.random.default_rng(0), frames=6, empty={2, 3})
    keypoints, metadata = read_detections(path)
    assert keypoints.shape == (6, 17, 3) and keypoints.dtype == np.float32
    assert metadata == {"w": 1000, "h": 1002, "frames_without_detection": 2}
    for frame in (0, 1, 4, 5):
        np.testing.assert_array_equal(keypoints[frame], expected[frame])
    # frames 2 and 3 lie 1/3 and 2/3 of the way from frame 1 to frame 4, with score 0
    start, step = expected[1, :, :2], (expected[4, :, :2] - expected[1, :, :2]) / 3
    np.testing.assert_allclose(keypoints[2, :, :2], start + step, rtol=1e-5)
    np.testing.assert_allclose(keypoints[3, :, :2], start + 2 * step, rtol=1e-5)
    assert (keypoints[2:4, :, 2] == 0).all()


def test_read_detections_project_format_and_errors(tmp_path):
    keypoints = np.random.default_rng(1).uniform(0, 600, (5, 17, 3)).astype(np.float32)
    keypoints[0] = np.nan  # nobody in the first frame: held at the first detection
    path = tmp_path / "dancer.mp4.npz"
    np.savez(path, keypoints=keypoints, boxes=np.zeros((5, 4)), scores=np.ones(5),
             metadata=np.array({"w": 600, "h": 600, "fps": 20.0}, dtype=object))  # fmt: skip
    read, metadata = read_detections(path)
    np.testing.assert_array_equal(read[1:], keypoints[1:])
    np.testing.assert_array_equal(read[0, :, :2], keypoints[1, :, :2])
    assert metadata["fps"] == 20.0 and metadata["frames_without_detection"] == 1
    nobody = tmp_path / "nobody.npz"
    np.savez(nobody, keypoints=np.full((3, 17, 3), np.nan, dtype=np.float32))
    with pytest.raises(UserError, match="no frame has a detected person"):
        read_detections(nobody)
    with pytest.raises(UserError, match="not found"):
        read_detections(tmp_path / "absent.npz")
