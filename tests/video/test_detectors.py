"""Detectors, tracking and the per-video detection output (MediaPipe on the real dancer video when installed)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, shared_path

import common.video.detectors as detectors_module
from common.core.errors import UserError
from common.core.files import load_npz
from common.video.detection import run_inference
from common.video.detectors import (
    DETECTORS,
    MEDIAPIPE_TO_COCO,
    Detection,
    Detectron2Detector,
    instances_to_detections,
    make_detector,
    mediapipe_landmarks_to_detection,
    register_detector,
)
from common.video.tracking import PersonTracker, box_iou
from common.video.video_io import VideoWriter

HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
# COCO bones used for plausibility: (shoulder, elbow) and (hip, knee) on both sides
UPPER_ARMS = ((5, 7), (6, 8))
THIGHS = ((11, 13), (12, 14))


def person(x1, y1, x2, y2, score):
    keypoints = np.zeros((17, 3), np.float32)
    keypoints[:, 0], keypoints[:, 1], keypoints[:, 2] = (x1 + x2) / 2, (y1 + y2) / 2, score
    return Detection(box=np.array([x1, y1, x2, y2], np.float32), keypoints=keypoints, score=score)


def test_mediapipe_landmarks_map_to_coco_order():
    landmarks = np.stack([np.arange(33) * 10.0, np.arange(33) * 10.0 + 1, np.linspace(0, 1.2, 33)], axis=-1)
    detection = mediapipe_landmarks_to_detection(landmarks)
    expected = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    assert list(MEDIAPIPE_TO_COCO) == expected
    np.testing.assert_allclose(detection.keypoints[:, 0], np.array(expected) * 10.0)
    np.testing.assert_allclose(detection.keypoints[:, 1], np.array(expected) * 10.0 + 1)
    assert detection.keypoints[:, 2].max() == 1.0  # visibility clipped to [0, 1]
    np.testing.assert_allclose(detection.box, [0, 1, 320, 321])  # encloses all 33 landmarks
    assert detection.score == pytest.approx(float(detection.keypoints[:, 2].mean()))


def test_detectron2_instances_sorted_by_score():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 2, 2]], np.float32)
    keypoints = np.arange(3 * 17 * 3, dtype=np.float32).reshape(3, 17, 3)
    detections = instances_to_detections(boxes, np.array([0.5, 0.9, 0.7]), keypoints)
    assert [d.score for d in detections] == pytest.approx([0.9, 0.7, 0.5])
    np.testing.assert_array_equal(detections[0].box, boxes[1])
    np.testing.assert_array_equal(detections[2].keypoints, keypoints[0])


def test_box_iou_hand_computed():
    ious = box_iou(np.array([0, 0, 10, 10]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30],
                                                         [0, 0, 5, 5]]))
    np.testing.assert_allclose(ious, [1.0, 50 / 150, 0.0, 25 / 100])


def test_tracker_follows_overlap_not_confidence():
    tracker = PersonTracker(min_iou=0.3, max_lost_frames=1)
    first = tracker.update([person(0, 0, 10, 10, 0.6), person(50, 50, 60, 60, 0.9)])
    assert first.score == 0.9  # the most confident person is chosen in the first frame
    # a more confident person appears elsewhere: the track stays on the overlapping box
    second = tracker.update([person(100, 0, 110, 10, 0.99), person(52, 50, 62, 60, 0.4)])
    np.testing.assert_array_equal(second.box, [52, 50, 62, 60])
    assert tracker.update([]) is None  # nobody
    assert tracker.update([person(0, 0, 10, 10, 0.8)]) is None  # no overlap: still lost (1 lost frame allowed)
    reacquired = tracker.update([person(0, 0, 10, 10, 0.8)])  # lost too long: the best person is picked again
    np.testing.assert_array_equal(reacquired.box, [0, 0, 10, 10])


def test_make_detector_errors():
    with pytest.raises(UserError, match="--detector nope: expected one of"):
        make_detector("nope")
    if importlib.util.find_spec("detectron2") is None:
        with pytest.raises(UserError, match="detectron2 is not installed.*not on PyPI.*infer_video.py"):
            Detectron2Detector()


class ScriptedDetector:
    """A detector returning a scripted list of people per frame (two people, nobody in frames 3 and 4)."""

    name = "scripted"

    def __init__(self):
        self.frame = 0

    def reset(self):
        self.frame = 0

    def detect(self, frame_rgb):
        index, self.frame = self.frame, self.frame + 1
        assert frame_rgb.shape == (40, 60, 3)
        if index in (3, 4):
            return []
        return [person(index, 0, index + 20, 30, 0.8), person(40, 10, 58, 38, 0.5 if index == 0 else 0.95)]


def test_run_inference_output_format(tmp_path, monkeypatch):
    videos = tmp_path / "videos"
    videos.mkdir()
    with VideoWriter(videos / "walk.mp4", fps=25) as writer:
        for _ in range(8):
            writer.write(np.full((40, 60, 3), 90, np.uint8))
    (videos / "notes.txt").write_text("not a video")
    monkeypatch.setattr("common.video.detectors.DETECTORS", dict(DETECTORS))  # the registration stays in this test
    register_detector("scripted", ScriptedDetector)
    assert "scripted" in detectors_module.DETECTORS
    written = run_inference(make_detector("scripted"), videos, tmp_path / "out" / "nested", "mp4", progress=False)
    assert [p.name for p in written] == ["walk.mp4.npz"]
    data = load_npz(written[0], ("boxes", "scores", "keypoints", "metadata"))
    assert data["keypoints"].shape == (8, 17, 3) and data["boxes"].shape == (8, 4) and data["scores"].shape == (8,)
    missing = np.isnan(data["scores"])
    np.testing.assert_array_equal(missing, [0, 0, 0, 1, 1, 0, 0, 0])
    assert np.isnan(data["keypoints"][3]).all() and np.isnan(data["boxes"][4]).all()
    # the first, more confident person is tracked by overlap although the other one scores higher later on
    np.testing.assert_allclose(data["boxes"][7], [7, 0, 27, 30])
    np.testing.assert_allclose(data["keypoints"][5, :, 0], 15.0)
    assert data["metadata"].item() == {"w": 60, "h": 40, "fps": 25.0, "num_frames": 8, "detector": "scripted",
                                       "video_name": "walk.mp4"}


def test_run_inference_bad_inputs(tmp_path):
    detector = ScriptedDetector()
    with pytest.raises(UserError, match="input video or directory not found"):
        run_inference(detector, tmp_path / "nothing", tmp_path / "out")
    with pytest.raises(UserError, match=r"no \*\.mp4 video"):
        run_inference(detector, tmp_path, tmp_path / "out")
    video = tmp_path / "v.mp4"
    with VideoWriter(video, fps=25) as writer:
        writer.write(np.zeros((40, 60, 3), np.uint8))
    (tmp_path / "blocker").write_text("a file where the output directory should be")
    with pytest.raises(UserError, match="--output-dir .*cannot create"):
        run_inference(detector, video, tmp_path / "blocker" / "out")


def run_script(*args, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_bad_input_is_one_line(tmp_path):
    result = run_script(str(ROOT / "inference" / "infer_video.py"), "--output-dir", "out", "missing.mp4", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: missing.mp4: input video or directory not found"
    if importlib.util.find_spec("detectron2") is None:
        video = shared_path("data", "video", "dancer.mp4")
        result = run_script(str(ROOT / "inference" / "infer_video_d2.py"), "--cfg",
                            "COCO-Keypoints/keypoint_rcnn_R_101_FPN_3x.yaml", "--output-dir", "out", "--image-ext",
                            "mp4", str(video.parent), cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.startswith("error: detectron2 is not installed") and result.stderr.count("\n") == 1


@pytest.mark.skipif(not HAS_MEDIAPIPE, reason="mediapipe is not installed (see inference/requirements-mediapipe.txt)")
def test_mediapipe_on_dancer_video(tmp_path):
    video = shared_path("data", "video", "dancer.mp4")
    result = run_script(str(ROOT / "inference" / "infer_video.py"), "--output-dir", "output", "--image-ext", "mp4",
                        str(video.parent), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dancer.mp4: person found in 102/102 frames" in result.stdout
    data = load_npz(tmp_path / "output" / "dancer.mp4.npz", ("keypoints", "boxes", "metadata"))
    keypoints = data["keypoints"]
    assert keypoints.shape == (102, 17, 3) and np.isfinite(keypoints).all()
    assert data["metadata"].item()["detector"] == "mediapipe"
    xy = keypoints[..., :2]
    assert (xy >= 0).all() and (xy < 600).all()  # the whole dancer is in view
    assert np.median(keypoints[..., 2]) > 0.8
    for a, b in UPPER_ARMS:
        lengths = np.linalg.norm(xy[:, a] - xy[:, b], axis=-1)
        assert ((lengths > 20) & (lengths < 150)).all()
    for a, b in THIGHS:
        lengths = np.linalg.norm(xy[:, a] - xy[:, b], axis=-1)
        assert ((lengths > 50) & (lengths < 250)).all()
    # anatomy: nose above the shoulders, shoulders above the hips, hips above the ankles (image y grows down)
    assert (xy[:, 0, 1] < xy[:, 5:7, 1].min(axis=1)).mean() > 0.95
    assert (xy[:, 5:7, 1].max(axis=1) < xy[:, 11:13, 1].min(axis=1)).all()
    assert (xy[:, 11:13, 1].max(axis=1) < xy[:, 15:17, 1].min(axis=1)).all()
    boxes = data["boxes"]
    assert (boxes[:, 0] <= xy[..., 0].min(axis=1) + 1e-3).all() and (boxes[:, 3] >= xy[..., 1].max(axis=1) - 1e-3).all()


def test_infer_video_detector_options(capsys):
    spec = importlib.util.spec_from_file_location("infer_video", ROOT / "inference" / "infer_video.py")
    infer_video = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(infer_video)
    parse = infer_video.build_parser().parse_args
    assert infer_video.detector_options(parse(["x.mp4"])) == {}
    assert infer_video.detector_options(parse(["--min-detection-confidence", "0.3", "x"])) == {
        "min_detection_confidence": 0.3}
    assert infer_video.detector_options(parse(["--cfg", "C.yaml", "x"])) == {}
    assert "--cfg C.yaml is a Detectron2 model" in capsys.readouterr().out
    assert infer_video.detector_options(parse(["--detector", "detectron2", "--cfg", "C.yaml",
                                               "--min-detection-confidence", "0.8", "x"])) == {
        "cfg": "C.yaml", "score_threshold": 0.8}
    with pytest.raises(UserError, match="between 0 and 1"):
        infer_video.detector_options(parse(["--min-detection-confidence", "2", "x"]))
