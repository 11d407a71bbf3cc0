"""inference/live.py end to end on the CPU (tiny checkpoints, a scripted detector, no MediaPipe) and bad input."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, shared_path, tiny_checkpoint

from common.core.errors import UserError, run_cli
from common.model import pretrained
from common.video import detectors
from common.video.video_io import VideoWriter, video_metadata

SCRIPT = ROOT / "inference" / "live.py"
spec = importlib.util.spec_from_file_location("live_script", SCRIPT)
live_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(live_script)

pytestmark = pytest.mark.usefixtures("one_thread")


class ScriptedDetector:
    """One person at fixed COCO keypoints inside a 64x48 frame, missing in frames 3 and 4 (no MediaPipe needed)."""

    name = "scripted"

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.keypoints = np.concatenate([rng.uniform(8, 40, (17, 2)), np.ones((17, 1))], axis=-1).astype(np.float32)
        self.calls = 0

    def reset(self) -> None:
        self.calls = 0

    def detect(self, frame_rgb):
        self.calls += 1
        if self.calls in (3, 4):
            return []
        return [detectors.Detection(box=np.array([8, 8, 40, 40], np.float32), keypoints=self.keypoints, score=0.9)]


@pytest.fixture
def video(tmp_path, monkeypatch):
    monkeypatch.setitem(detectors.DETECTORS, "scripted", ScriptedDetector)
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=25) as writer:
        for index in range(30):
            writer.write(np.full((48, 64, 3), index * 8, np.uint8))
    return path


@pytest.mark.parametrize(("causal", "delay"), [(True, 0), (False, 13)])
def test_a_video_played_live_gives_an_overlay_of_every_frame(tmp_path, video, capsys, causal, delay):
    checkpoint = tiny_checkpoint(tmp_path / "model.bin", causal=causal)
    output = tmp_path / "live.mp4"
    live_script.main([str(video), "--checkpoint", str(checkpoint), "--output", str(output), "--detector", "scripted",
                      "--device", "cpu"])
    out = capsys.readouterr().out
    assert video_metadata(output) == {"w": 64, "h": 48, "fps": 25.0, "num_frames": 30}
    assert f"{'causal' if causal else 'non-causal'} 27-frame model, delay {delay} frames" in out
    assert f"wrote {output}: 30 frames" in out
    for stage in ("read", "detect", "lift", "draw", "write"):
        assert f"\n  {stage} " in out
    assert "end to end: 30 frames in " in out and "stopped: end of stream" in out
    assert "person found in 28 of 30 frames (2 lifted with the last pose held, 0 before the first detection)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "live.mp4", "model.bin"]  # no temporary left


def test_max_frames_flip_tta_and_a_shorter_delay(tmp_path, video, capsys, monkeypatch):
    monkeypatch.setattr(live_script, "display_available", lambda: False)
    checkpoint = tiny_checkpoint(tmp_path / "model.bin")
    output = tmp_path / "live.mp4"
    live_script.main([str(video), "--checkpoint", str(checkpoint), "--output", str(output), "--detector", "scripted",
                      "--max-frames", "12", "--delay", "4", "--flip-tta", "--device", "cpu", "--show"])
    out = capsys.readouterr().out
    assert video_metadata(output)["num_frames"] == 12
    assert "note: --delay 4 with a non-causal model" in out and "flip TTA on" in out
    assert "stopped: --max-frames 12" in out
    assert "--show: no display here" in out


def test_the_default_model_is_the_shipped_causal_one(tmp_path, video, monkeypatch, capsys):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    path = tiny_checkpoint(shipped / "pretrained_live.bin", causal=True)
    monkeypatch.setattr(pretrained, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(pretrained, "PRETRAINED", {})
    monkeypatch.setattr(pretrained, "_DIGESTS", {})
    argv = [str(video), "--output", str(tmp_path / "live.mp4"), "--detector", "scripted", "--device", "cpu"]
    pretrained.PRETRAINED[pretrained.DEFAULT_LIVE_MODEL] = pretrained.PretrainedModel(
        name=pretrained.DEFAULT_LIVE_MODEL, file_name=path.name, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        model_config={"num_frames": 27, "causal": True}, description="a tiny causal test model", notice="test only")
    live_script.main(argv)
    out = capsys.readouterr().out
    assert "model: h36m_f27_causal: a tiny causal test model (test only)" in out and "delay 0 frames" in out
    assert video_metadata(tmp_path / "live.mp4")["num_frames"] == 30


def test_bad_inputs(tmp_path, video):
    good = tiny_checkpoint(tmp_path / "good.bin")
    out = str(tmp_path / "o.mp4")
    with pytest.raises(UserError, match="missing.mp4: video file not found"):
        live_script.main([str(tmp_path / "missing.mp4"), "--checkpoint", str(good), "--output", out])
    with pytest.raises(UserError, match=r"--delay 14: expected an integer in \[0, 13\] for a model of 27 frames"):
        live_script.main([str(video), "--checkpoint", str(good), "--output", out, "--delay", "14", "--device", "cpu"])
    with pytest.raises(UserError, match=r"expected an output video ending in \.mp4 or \.gif"):
        live_script.main([str(video), "--checkpoint", str(good), "--output", str(tmp_path / "o.avi")])
    with pytest.raises(UserError, match="output directory .* does not exist"):
        live_script.main([str(video), "--checkpoint", str(good), "--output", str(tmp_path / "no" / "o.mp4")])
    with pytest.raises(UserError, match="checkpoint not found"):
        live_script.main([str(video), "--checkpoint", str(tmp_path / "none.bin"), "--output", out])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "good.bin"]


def test_a_camera_that_cannot_be_opened_is_one_line(tmp_path, capfd):
    """In process through run_cli (as the script's __main__ runs it), with OpenCV's own warnings on file
    descriptor 2 captured too: one line, exit 2."""
    good = tiny_checkpoint(tmp_path / "good.bin")
    argv = ["57", "--checkpoint", str(good), "--output", str(tmp_path / "o.mp4")]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: live_script.main(argv))
    err = capfd.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: camera 57: cannot be opened") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                    reason="mediapipe is not installed (see inference/requirements-mediapipe.txt)")
def test_dancer_live_with_the_shipped_causal_model(tmp_path):
    """Issue 18's acceptance: `live.py dancer.mp4 --output live.mp4` with nothing but the repository."""
    video = shared_path("data", "video", "dancer.mp4")
    result = subprocess.run([sys.executable, str(SCRIPT), str(video), "--output", "live.mp4"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"model: {pretrained.PRETRAINED[pretrained.DEFAULT_LIVE_MODEL].summary()}" in result.stdout
    assert "delay 0 frames" in result.stdout and "frames/s" in result.stdout
    assert video_metadata(tmp_path / "live.mp4") == {"w": 600, "h": 600, "fps": 20.0, "num_frames": 102}
