"""data/prepare_data_2d_custom.py: gathering detections into a custom 2D dataset, interpolation, errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from common.core.errors import UserError
from common.core.files import load_npz

SCRIPT = ROOT / "data" / "prepare_data_2d_custom.py"
spec = importlib.util.spec_from_file_location("prepare_data_2d_custom", SCRIPT)
prepare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prepare)


def write_detections(path, keypoints, w=640, h=480, fps=30.0, video_name=None):
    """A detections file in the format of inference/infer_video.py."""
    metadata = {"w": w, "h": h, "fps": fps, "num_frames": len(keypoints), "detector": "test",
                "video_name": video_name or path.name[: -len(".npz")]}
    boxes = np.where(np.isnan(keypoints[:, :4, 0]), np.nan, 1.0).astype(np.float32)
    np.savez(path, boxes=boxes, keypoints=keypoints.astype(np.float32), metadata=np.array(metadata, dtype=object))


def ramp(num_frames, offset=0.0):
    """(T, 17, 3) keypoints whose coordinates grow linearly with the frame index."""
    frames = np.arange(num_frames, dtype=np.float64)[:, None]
    joints = np.arange(17, dtype=np.float64)[None, :]
    x = 100 + 3 * frames + joints + offset
    y = 50 + 2 * frames - joints
    return np.stack([x, y, np.full_like(x, 0.9)], axis=-1)


def test_dataset_layout_and_interpolation(tmp_path, capsys):
    inputs = tmp_path / "detections"
    inputs.mkdir()
    walk = ramp(10)
    walk[[0, 4, 5, 9]] = np.nan  # first, two in the middle, last
    write_detections(inputs / "walk.mp4.npz", walk, w=640, h=480, fps=30.0)
    write_detections(inputs / "jump.mp4.npz", ramp(6, offset=5), w=1920, h=1080, fps=25.0)
    prepare.main(["-i", str(inputs), "-o", "mine", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "walk.mp4: 10 frames, 4 without a detection (interpolated)" in out
    assert "jump.mp4: 6 frames\n" in out

    data = load_npz(tmp_path / "data_2d_custom_mine.npz", ("positions_2d", "metadata"))
    positions = data["positions_2d"].item()
    assert sorted(positions) == ["jump.mp4", "walk.mp4"]
    assert list(positions["walk.mp4"]) == ["custom"]
    (walk_2d,) = positions["walk.mp4"]["custom"]
    assert walk_2d.shape == (10, 17, 2) and walk_2d.dtype == np.float32
    expected = ramp(10)[..., :2]
    # frames 4, 5 lie between detected frames 3 and 6: exact linear values; ends are held
    np.testing.assert_allclose(walk_2d[1:9], expected[1:9], rtol=0, atol=1e-4)
    np.testing.assert_allclose(walk_2d[0], expected[1], atol=1e-4)
    np.testing.assert_allclose(walk_2d[9], expected[8], atol=1e-4)
    np.testing.assert_allclose(positions["jump.mp4"]["custom"][0], ramp(6, offset=5)[..., :2], atol=1e-4)

    metadata = data["metadata"].item()
    assert metadata["layout_name"] == "coco" and metadata["num_joints"] == 17
    assert metadata["keypoints_symmetry"] == [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]
    assert metadata["video_metadata"] == {"walk.mp4": {"w": 640, "h": 480, "fps": 30.0},
                                          "jump.mp4": {"w": 1920, "h": 1080, "fps": 25.0}}


def test_video_without_any_detection_is_named(tmp_path):
    inputs = tmp_path / "detections"
    inputs.mkdir()
    write_detections(inputs / "good.mp4.npz", ramp(5))
    write_detections(inputs / "empty.mp4.npz", np.full((5, 17, 3), np.nan))
    with pytest.raises(UserError, match=r"empty\.mp4\.npz: no frame has a detected person"):
        prepare.main(["-i", str(inputs), "-o", "x", "--output-dir", str(tmp_path)])
    assert not (tmp_path / "data_2d_custom_x.npz").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="input directory not found"):
        prepare.main(["-i", str(tmp_path / "nope"), "-o", "x", "--output-dir", str(tmp_path)])
    with pytest.raises(UserError, match=r"no detections \(\*\.npz\)"):
        prepare.main(["-i", str(tmp_path), "-o", "x", "--output-dir", str(tmp_path)])
    with pytest.raises(UserError, match="expected a dataset name"):
        prepare.main(["-i", str(tmp_path), "-o", "../x", "--output-dir", str(tmp_path)])


def test_refuses_to_overwrite_unless_asked(tmp_path):
    inputs = tmp_path / "detections"
    inputs.mkdir()
    write_detections(inputs / "a.mp4.npz", ramp(3))
    args = ["-i", str(inputs), "-o", "again", "--output-dir", str(tmp_path)]
    prepare.main(args)
    with pytest.raises(UserError, match="already exists"):
        prepare.main(args)
    write_detections(inputs / "b.mp4.npz", ramp(4))
    prepare.main([*args, "--overwrite"])
    assert sorted(load_npz(tmp_path / "data_2d_custom_again.npz")["positions_2d"].item()) == ["a.mp4", "b.mp4"]


def test_cli_error_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "-i", "missing_dir", "-o", "x", "--output-dir", "."],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "error: -i missing_dir: input directory not found\n"
