"""benchmarks/bench_live.py starts and prints every stage and goal (scripted detector, a few frames, no assertions on
speed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import bench_live
from common.core.errors import UserError
from common.model import pretrained
from common.video import detectors
from common.video.video_io import VideoWriter


class StillPerson:
    name = "still"

    def reset(self) -> None:
        pass

    def detect(self, frame_rgb):
        keypoints = np.concatenate([np.random.default_rng(0).uniform(4, 20, (17, 2)), np.ones((17, 1))], -1)
        return [detectors.Detection(box=np.array([4, 4, 20, 20], np.float32), keypoints=keypoints.astype(np.float32),
                                    score=0.9)]


def test_sizes():
    assert bench_live.parse_size("source") is None and bench_live.parse_size("640x480") == (640, 480)
    with pytest.raises(UserError, match="--sizes 640: expected source or WIDTHxHEIGHT"):
        bench_live.parse_size("640")


def test_prints_latencies_and_goals(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(detectors.DETECTORS, "still", StillPerson)
    threads = torch.get_num_threads()
    video = tmp_path / "clip.mp4"
    with VideoWriter(video, fps=25) as writer:
        for index in range(5):
            writer.write(np.full((24, 32, 3), 20 * index, np.uint8))
    try:
        bench_live.main(["--video", str(video), "--frames", "4", "--warmup", "2", "--sizes", "source,640x480",
                         "--detector", "still"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert f"random causal model shaped like {pretrained.DEFAULT_MODEL} (F=" in out and ", causal)" in out
    assert out.count("latency per frame (ms)") == 2 and "== dancer" not in out
    assert "640x480 (640x480)" in out and "goal: end to end >= 25 frames/s at 640x480" in out
    assert out.count("goal: lifting < 10 ms per frame") == 2 and "steady end to end" in out
