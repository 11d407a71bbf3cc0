"""Human3.6M in the VideoPose3D layout (``data_3d_h36m.npz``): 32-joint world positions reduced to the 17 model
joints, cameras from `common.geometry.h36m_cameras`."""

from __future__ import annotations

from pathlib import Path

from common.core.errors import UserError
from common.core.files import load_npz
from common.datasets.base import CameraParams, MocapDataset, read_positions_3d
from common.geometry.h36m_cameras import H36M_SUBJECTS, h36m_cameras
from common.geometry.skeleton import H36M_17_KEPT

H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
H36M_PROTOCOL_SUBJECTS = H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS
"""The subjects of the standard Human3.6M protocol (the others, S2 S3 S4 S10, have no released poses)."""


def h36m_camera_params(subject: str) -> list[CameraParams]:
    """The 4 calibrated Human3.6M cameras of `subject` as `CameraParams`."""
    return [
        CameraParams(
            id=cam["id"],
            res_w=int(cam["res_w"]),
            res_h=int(cam["res_h"]),
            azimuth=float(cam["azimuth"]),
            intrinsic=cam["intrinsic"],
            orientation=cam["orientation"],
            translation=cam["translation"],
        )
        for cam in h36m_cameras(subject)
    ]


class Human36mDataset(MocapDataset):
    """Human3.6M: 50 fps, train S1 S5 S6 S7 S8, test S9 S11 (the subjects present in the file are used)."""

    name = "h36m"
    fps = 50.0
    train_subjects = H36M_TRAIN_SUBJECTS
    test_subjects = H36M_TEST_SUBJECTS

    def __init__(self, path: str | Path) -> None:
        super().__init__(Path(path))
        data = load_npz(self.path, ("positions_3d",), what="Human3.6M 3D file")
        positions = read_positions_3d(self.path, data, (32, 17))
        for subject, actions in positions.items():
            if subject not in H36M_SUBJECTS:
                raise UserError(
                    f"{self.path}: unknown Human3.6M subject {subject!r} (expected {', '.join(H36M_SUBJECTS)})"
                )
            self._cameras[subject] = h36m_camera_params(subject)
            self._positions[subject] = {
                action: array[:, list(H36M_17_KEPT)] if array.shape[1] == 32 else array
                for action, array in actions.items()
            }
