"""Custom videos: 2D detections only (``data_2d_custom_<name>.npz`` as written by the inference scripts).

``positions_2d[video_name]['custom'] = [(T, J, 2 or 3) pixels]`` (one subject per video, one camera) and
``metadata = {layout_name, num_joints, keypoints_symmetry, video_metadata: {video_name: {w, h[, fps]}}}``.
No 3D ground truth. Each video gets a nominal camera: its resolution, focal length = image width, principal point
at the image centre, no distortion, and the orientation/position of Human3.6M S1's first camera (as VideoPose3D does,
so that predictions rotated to "world" space stand upright in visualizations).
"""

from __future__ import annotations

from pathlib import Path

from common.core.errors import UserError
from common.core.files import load_npz
from common.datasets.base import CameraParams, MocapDataset, unpack_dict
from common.geometry.camera import intrinsic_from_pixels
from common.geometry.h36m_cameras import h36m_cameras

CUSTOM_ACTION = "custom"


def nominal_camera(video: str, width: int, height: int) -> CameraParams:
    """The nominal camera of a custom video of ``width x height`` pixels."""
    reference = h36m_cameras("S1")[0]
    return CameraParams(
        id=video,
        res_w=width,
        res_h=height,
        azimuth=70.0,
        intrinsic=intrinsic_from_pixels((width, width), (width / 2, height / 2), (0, 0, 0), (0, 0), width, height),
        orientation=reference["orientation"],
        translation=reference["translation"],
    )


class CustomDataset(MocapDataset):
    """2D-only dataset: one subject per video (the video name), one action ``custom``, one nominal camera."""

    name = "custom"

    def __init__(self, path: str | Path) -> None:
        super().__init__(Path(path))
        data = load_npz(self.path, ("positions_2d", "metadata"), what="custom 2D keypoint file")
        metadata = unpack_dict(data["metadata"], self.path, "metadata")
        positions = unpack_dict(data["positions_2d"], self.path, "positions_2d")
        video_metadata = metadata.get("video_metadata")
        if not isinstance(video_metadata, dict):
            raise UserError(f"{self.path}: metadata lacks video_metadata {{video_name: {{w, h}}}} (image resolution)")
        self.video_fps: dict[str, float | None] = {}
        for video in positions:
            info = video_metadata.get(video)
            if not isinstance(info, dict) or "w" not in info or "h" not in info:
                raise UserError(f"{self.path}: video_metadata has no resolution {{w, h}} for video {video!r}")
            try:
                width, height = int(info["w"]), int(info["h"])
            except (TypeError, ValueError):
                raise UserError(f"{self.path}: video_metadata[{video!r}] w/h must be integers") from None
            if width <= 0 or height <= 0:
                raise UserError(
                    f"{self.path}: video_metadata[{video!r}] has a non-positive resolution {width}x{height}"
                )
            self._cameras[str(video)] = [nominal_camera(str(video), width, height)]
            fps = info.get("fps")
            self.video_fps[str(video)] = float(fps) if fps is not None else None
        if not self._cameras:
            raise UserError(f"{self.path}: positions_2d has no video")
        known = [fps for fps in self.video_fps.values() if fps]
        self.fps = float(known[0]) if known else 50.0

    def actions(self, subject: str) -> list[str]:
        self._require_subject(subject)
        return [CUSTOM_ACTION]

    def positions_world(self, subject: str, action: str) -> None:
        return None
