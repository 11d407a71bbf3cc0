"""inference/video_to_3d.py: the dancer video end to end on CPU (detection, lifting, rendering) and bad input."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, shared_path, tiny_checkpoint

from common.core.errors import UserError, run_cli
from common.core.files import load_npz
from common.evaluation.plausibility import plausibility_report
from common.geometry.skeleton import h36m_17
from common.model import pretrained
from common.video import detectors
from common.video.video_io import VideoWriter, video_metadata

SCRIPT = ROOT / "inference" / "video_to_3d.py"
HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
spec = importlib.util.spec_from_file_location("video_to_3d", SCRIPT)
video_to_3d = importlib.util.module_from_spec(spec)
spec.loader.exec_module(video_to_3d)




@pytest.mark.skipif(not HAS_MEDIAPIPE, reason="mediapipe is not installed (see inference/requirements-mediapipe.txt)")
def test_dancer_end_to_end_with_the_shipped_model(tmp_path):
    """Issue 20's acceptance: no --checkpoint of the user's, the shipped default model, a right-looking 3D."""
    video = shared_path("data", "video", "dancer.mp4")
    (tmp_path / "out").mkdir()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(video), "--output", "out/dancer_3d.mp4", "--detections-dir", "detections",
         "--viz-size", "3"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"model: {pretrained.PRETRAINED[pretrained.DEFAULT_MODEL].summary()}" in result.stdout
    assert "flip TTA on" in result.stdout
    for stage in ("detection", "lifting", "rendering"):
        assert re.search(rf"{stage}\b.*frames/s", result.stdout), stage

    assert video_metadata(tmp_path / "out" / "dancer_3d.mp4") == {"w": 600, "h": 300, "fps": 20.0, "num_frames": 102}
    poses = np.load(tmp_path / "out" / "dancer_3d.npy")
    assert poses.shape == (102, 17, 3) and poses.dtype == np.float32 and np.isfinite(poses).all()
    report = plausibility_report(poses, h36m_17(), fps=20.0)  # the printed report is the exported prediction's
    assert "plausibility of the 3D (102 frames" in result.stdout
    assert f"worst {report.bone_variation_max:.1%} ({report.worst_bone})" in result.stdout
    # a trained lift of a person: human bone lengths, a real shoulder width in every frame, no antenna head
    joint = {name: i for i, name in enumerate(h36m_17().joint_names())}
    length = lambda a, b: np.linalg.norm(poses[:, joint[a]] - poses[:, joint[b]], axis=-1)  # noqa: E731
    assert 0.35 < np.median(length("RHip", "RKnee") + length("RKnee", "RFoot")) < 0.95  # leg, metres
    assert (length("LShoulder", "RShoulder") > 0.15).all()
    assert np.median(length("Thorax", "Head")) < 0.35
    assert report.bone_variation_max < 0.35 and report.asymmetry_median < 0.1

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
    loaded = video_to_3d.load_lifter(fixture)
    assert (loaded.config.num_frames, loaded.config.num_joints, loaded.config.embed_dim, loaded.config.depth) == \
        (27, 17, 64, 2)
    assert loaded.official and not loaded.model.training


@pytest.mark.parametrize("device", ["banana", "cuda:5"])
def test_unavailable_device_is_one_line(tmp_path, device):
    video = shared_path("data", "video", "dancer.mp4")
    good = tiny_checkpoint(tmp_path / "good.bin")
    if device.startswith("cuda") and torch.cuda.device_count() > 5:
        pytest.skip("this machine has a cuda:5")
    result = subprocess.run([sys.executable, str(SCRIPT), str(video), "--checkpoint", str(good), "--output",
                             str(tmp_path / "o.mp4"), "--device", device], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and result.stderr.startswith(f"error: --device {device}: ")
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.mp4").exists()


def test_lifting_is_run_py_prediction_with_flip_tta_by_default(tmp_path):
    """video_to_3d lifts with the evaluation's prediction function and default (flip TTA on)."""
    from common.evaluation import protocols
    from common.geometry.camera import image_coordinates
    from common.geometry.keypoint_layouts import get_layout
    from common.geometry.skeleton import h36m_17

    loaded = video_to_3d.load_lifter(tiny_checkpoint(tmp_path / "good.bin"))
    assert video_to_3d.build_parser().parse_args(["v.mp4", "--checkpoint", "c", "--output", "o.mp4"]).flip_tta
    rng = np.random.default_rng(0)
    normalized = rng.uniform(-0.5, 0.5, size=(40, 17, 2)).astype(np.float32)
    pixels = image_coordinates(normalized, w=640, h=480)
    skeleton, layout = h36m_17(), get_layout("h36m")
    lifted = {}
    for flip in (True, False):
        lifted[flip], _ = video_to_3d.lift(loaded, pixels, {"w": 640, "h": 480}, torch.device("cpu"), flip)
        settings = protocols.PredictSettings(27, flip_tta=flip, kps_left=tuple(layout.left),
                                             kps_right=tuple(layout.right), joints_left=tuple(skeleton.joints_left()),
                                             joints_right=tuple(skeleton.joints_right()))
        expected = protocols.predict_poses(protocols.model_predict_fn(loaded.model, torch.device("cpu")),
                                           normalized, settings)
        np.testing.assert_allclose(lifted[flip], expected, atol=1e-5)
    assert np.abs(lifted[True] - lifted[False]).max() > 1e-4  # the flip really changes the prediction


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
    assert np.abs(poses[:, 1:]).max() > 1e-3  # a real lifted pose, not zeros
    assert video_metadata(tmp_path / "output.mp4")["num_frames"] == 102


# --- shipped models (common/model/pretrained.py) through --checkpoint, with a registry of a tiny test model ----------


@pytest.fixture
def tiny_registry(tmp_path, monkeypatch):
    """A shipped folder holding ``pretrained_tiny_f27.bin`` and a registry with its entry; returns a function that
    re-registers the entry with another sha256."""
    import hashlib

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    path = tiny_checkpoint(shipped / "pretrained_tiny_f27.bin", embed_dim=16, depth=1)
    monkeypatch.setattr(pretrained, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(pretrained, "PRETRAINED", {})
    monkeypatch.setattr(pretrained, "_DIGESTS", {})

    def register(sha256: str = hashlib.sha256(path.read_bytes()).hexdigest()) -> None:
        pretrained.PRETRAINED["tiny_f27"] = pretrained.PretrainedModel(
            name="tiny_f27", file_name=path.name, sha256=sha256, model_config={"num_frames": 27, "embed_dim": 16},
            description="a tiny test model", notice="test data only")

    register()
    return register


class ScriptedDetector:
    """One person at fixed random COCO keypoints inside a 64x48 frame (no MediaPipe needed)."""

    name = "scripted"

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.keypoints = np.concatenate([rng.uniform(8, 40, (17, 2)), np.ones((17, 1))], axis=-1).astype(np.float32)

    def reset(self) -> None:
        pass

    def detect(self, frame_rgb):
        box = np.array([8, 8, 40, 40], np.float32)
        return [detectors.Detection(box=box, keypoints=self.keypoints, score=0.9)]


def small_video(path):
    with VideoWriter(path, fps=25) as writer:
        for index in range(30):
            writer.write(np.full((48, 64, 3), index * 8, np.uint8))
    return path


def test_checkpoint_takes_a_shipped_model_name(tiny_registry):
    lines = []
    loaded = video_to_3d.load_lifter("tiny_f27", log=lines.append)
    assert (loaded.config.num_frames, loaded.config.embed_dim) == (27, 16)
    assert loaded.path == pretrained.SHIPPED_DIR / "pretrained_tiny_f27.bin"
    assert lines == ["model: tiny_f27: a tiny test model (test data only)"]
    assert video_to_3d.build_parser().parse_args(["v.mp4", "--output", "o.mp4"]).checkpoint == \
        pretrained.DEFAULT_MODEL


def test_without_checkpoint_the_default_model_lifts_the_video(tiny_registry, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "DEFAULT_MODEL", "tiny_f27")
    monkeypatch.setitem(detectors.DETECTORS, "scripted", ScriptedDetector)
    video = small_video(tmp_path / "clip.mp4")
    video_to_3d.main([str(video), "--output", str(tmp_path / "clip.html"), "--detector", "scripted", "--device",
                      "cpu"])
    out = capsys.readouterr().out
    assert "model: tiny_f27: a tiny test model (test data only)\n" in out
    poses = np.load(tmp_path / "clip.npy")
    assert poses.shape == (30, 17, 3) and np.isfinite(poses).all()
    assert (tmp_path / "clip.html").is_file()


def test_sha256_mismatch_of_a_shipped_model_is_one_line(tiny_registry, tmp_path, capsys):
    tiny_registry("ab" * 32)
    video = small_video(tmp_path / "clip.mp4")
    (tmp_path / "out").mkdir()
    argv = [str(video), "--checkpoint", "tiny_f27", "--output", str(tmp_path / "out" / "o.mp4"), "--device", "cpu"]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: video_to_3d.main(argv))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    shipped = pretrained.SHIPPED_DIR / "pretrained_tiny_f27.bin"
    assert err.startswith(f"error: {shipped}: sha256 ") and f"is not the expected {'ab' * 32}" in err
    assert len(err.strip().splitlines()) == 1 and list((tmp_path / "out").iterdir()) == []
    with pytest.raises(UserError, match="h36m_nope: not a shipped model; the known ones are: tiny_f27"):
        pretrained.get_entry("h36m_nope")
