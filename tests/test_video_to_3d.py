"""inference/video_to_3d.py: the dancer video end to end on CPU (detection, lifting, rendering) and bad input."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, shared_path

from common.checkpoint import save_checkpoint
from common.errors import UserError
from common.io_utils import load_npz
from common.model import ModelConfig, build_model
from common.video_io import video_metadata

SCRIPT = ROOT / "inference" / "video_to_3d.py"
HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
spec = importlib.util.spec_from_file_location("video_to_3d", SCRIPT)
video_to_3d = importlib.util.module_from_spec(spec)
spec.loader.exec_module(video_to_3d)


def tiny_checkpoint(path, **overrides):
    """A project checkpoint of a tiny model (random weights, 27-frame windows)."""
    config = ModelConfig(**{"num_frames": 27, "embed_dim": 32, "depth": 2, **overrides})
    torch_model = build_model(config)
    save_checkpoint(path, epoch=1, lr=1e-3, model=torch_model, optimizer=None, model_config=config.to_dict(),
                    best_val=None, loader_state=None)
    return path


@pytest.mark.skipif(not HAS_MEDIAPIPE, reason="mediapipe is not installed (see inference/requirements-mediapipe.txt)")
def test_dancer_end_to_end(tmp_path, trained_checkpoint):
    video = shared_path("data", "video", "dancer.mp4")
    checkpoint = trained_checkpoint
    (tmp_path / "out").mkdir()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(video), "--checkpoint", str(checkpoint), "--output", "out/dancer_3d.mp4",
         "--detections-dir", "detections", "--viz-size", "3"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    for stage in ("detection (mediapipe): 102 frames", "lifting (27-frame windows", "detection + lifting:",
                  "rendering: 102 frames"):
        assert stage in result.stdout
    assert "frames/s" in result.stdout

    assert video_metadata(tmp_path / "out" / "dancer_3d.mp4") == {"w": 600, "h": 300, "fps": 20.0, "num_frames": 102}
    poses = np.load(tmp_path / "out" / "dancer_3d.npy")
    assert poses.shape == (102, 17, 3) and poses.dtype == np.float32 and np.isfinite(poses).all()
    np.testing.assert_allclose(poses[:, 0], 0.0, atol=1e-6)  # root-relative camera space

    keypoints = load_npz(tmp_path / "detections" / "dancer.mp4.npz", ("keypoints",))["keypoints"]
    assert keypoints.shape == (102, 17, 3) and np.isfinite(keypoints).all()
    xy = keypoints[..., :2]
    assert (xy >= 0).all() and (xy < 600).all()
    upper_arms = np.linalg.norm(xy[:, [5, 6]] - xy[:, [7, 8]], axis=-1)
    assert ((upper_arms > 20) & (upper_arms < 150)).all()


def test_bad_inputs(tmp_path):
    video = shared_path("data", "video", "dancer.mp4")
    good = tiny_checkpoint(tmp_path / "good.bin")
    wrong_layout = tiny_checkpoint(tmp_path / "j16.bin", num_joints=16,
                                   skeleton_parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 8, 10, 11, 8, 13, 14))
    out = str(tmp_path / "o.mp4")
    with pytest.raises(UserError, match="missing.mp4: video file not found"):
        video_to_3d.main([str(tmp_path / "missing.mp4"), "--checkpoint", str(good), "--output", out])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_text("not a video")
    with pytest.raises(UserError, match="garbage.mp4: not a readable video"):
        video_to_3d.main([str(garbage), "--checkpoint", str(good), "--output", out])
    result = subprocess.run([sys.executable, str(SCRIPT), str(video), "--checkpoint", str(good), "--output",
                             "no/o.mp4"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    assert result.stderr == "error: --output no/o.mp4: output directory no does not exist\n"
    with pytest.raises(UserError, match="does not exist"):
        video_to_3d.main([str(video), "--checkpoint", str(good), "--output", str(tmp_path / "no" / "o.mp4")])
    with pytest.raises(UserError, match=r"expected a \.mp4 or \.gif"):
        video_to_3d.main([str(video), "--checkpoint", str(good), "--output", str(tmp_path / "o.avi")])
    with pytest.raises(UserError, match="checkpoint not found"):
        video_to_3d.main([str(video), "--checkpoint", str(tmp_path / "none.bin"), "--output", out])
    with pytest.raises(UserError, match="the model takes 16 joints x 2 inputs.*17 Human3.6M joints"):
        video_to_3d.main([str(video), "--checkpoint", str(wrong_layout), "--output", out])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.mp4", "good.bin", "j16.bin"]


def test_official_mixste_checkpoint_is_accepted():
    fixture = shared_path("fixtures", "mixste_official_f27_d64_dep2_s0.bin")
    model, config = video_to_3d.load_lifter(fixture)
    assert (config.num_frames, config.num_joints, config.embed_dim, config.depth) == (27, 17, 64, 2)
    assert not model.training


@pytest.mark.skipif(not HAS_MEDIAPIPE, reason="mediapipe is not installed (see inference/requirements-mediapipe.txt)")
def test_seed_command_chain_on_dancer(tmp_path, trained_checkpoint):
    """The seed's workflow: infer_video.py -> prepare_data_2d_custom.py -> run.py --custom_2d ... --render."""
    import shutil

    video = shared_path("data", "video", "dancer.mp4")
    (tmp_path / "input").mkdir()
    (tmp_path / "data").mkdir()
    shutil.copy(video, tmp_path / "input" / "myvideos.mp4")
    shutil.copytree(trained_checkpoint.parent, tmp_path / "checkpoint")

    def run(script, *argv):
        result = subprocess.run([sys.executable, str(ROOT / script), *argv], capture_output=True, text=True,
                                cwd=tmp_path, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    run("inference/infer_video.py", "--output-dir", "output", "--image-ext", "mp4", "input")
    run("data/prepare_data_2d_custom.py", "-i", "output", "-o", "myvideos", "--output-dir", "data")
    out = run("run.py", "--custom_2d", "-d", "custom", "-k", "myvideos", "--data-dir", "data", "-f", "27", "-s", "27",
              "-c", "checkpoint", "--evaluate", "best_epoch.bin", "--render", "--viz-subject", "myvideos.mp4",
              "--viz-action", "custom", "--viz-camera", "0", "--viz-export", "output", "--viz-video",
              "input/myvideos.mp4", "--viz-output", "output.mp4", "--viz-size", "3", "--no-progress")
    assert "rendered 102 frames" in out
    poses = np.load(tmp_path / "output.npy")
    assert poses.shape == (102, 17, 3) and np.isfinite(poses).all()
    np.testing.assert_allclose(poses[:, 0], 0.0, atol=1e-7)
    assert np.abs(poses[:, 1:]).max() > 1e-3  # a real lifted pose, not zeros
    assert video_metadata(tmp_path / "output.mp4")["num_frames"] == 102
