"""HumanEva-I in the VideoPose3D layout (``data_3d_humaneva15.npz``): 15 joints, 60 fps, 3 cameras (640x480).

The 3D is mapped into the model's 17-joint Human3.6M order with `common.geometry.keypoint_layouts.HUMANEVA15`
(Spine and Neck/Nose are synthesized); ``evaluation_joints`` lists the 15 real joints, so scores use only HumanEva's
own joints.

Cameras: the extrinsics are the published HumanEva-I calibration (as VideoPose3D lists them; S3 shares S1's); focal
lengths and principal points are the published calibration of C1-C3. The distortion coefficients were fitted (in
`common.geometry.camera.project_to_2d`'s model, k3 = 0) so that projecting the 3D ground truth reproduces the 2D
ground truth of ``data_2d_humaneva15_gt.npz``: median reprojection error 0.01 / 0.03 / 0.06 px for C1 / C2 / C3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.core.errors import UserError
from common.core.files import load_npz
from common.datasets.base import CameraParams, MocapDataset, read_positions_3d
from common.geometry.camera import intrinsic_from_pixels
from common.geometry.keypoint_layouts import HUMANEVA15, to_h36m17

HUMANEVA_RESOLUTION = (640, 480)

HUMANEVA_INTRINSICS = (
    # (id, azimuth, focal (px), centre (px), radial (k1, k2, k3), tangential (p1, p2))
    ("C1", 0.0, (765.789418, 765.330306), (299.773675, 232.347455), (-0.288841, 0.094382, 0.0), (0.001556, -0.001827)),
    ("C2", -90.0, (688.411220, 686.786141), (273.089872, 221.974930), (-0.324193, 0.090956, 0.0), (-0.00984, 0.000388)),
    ("C3", 90.0, (724.267662, 723.569727), (302.629652, 204.912033), (-0.299592, 1.000374, 0.0), (-0.007715, -0.00883)),
)

_S1_EXTRINSICS = (
    ((0.424207, -0.4983646, -0.5802981, 0.4847012), (4062.227, 663.2477, 1528.397)),
    ((0.6503354, -0.7481602, -0.0919284, 0.0941766), (844.8131, -3805.2092, 1504.9929)),
    ((0.0664734, -0.0690535, 0.7416416, -0.6639132), (-797.67377, 3916.3174, 1433.6602)),
)
HUMANEVA_EXTRINSICS = {
    # per subject, per camera: (orientation quaternion w,x,y,z camera-to-world, camera position in millimetres)
    "S1": _S1_EXTRINSICS,
    "S2": (
        ((0.4214752, -0.4961493, -0.5838273, 0.4851187), (4112.9121, 626.4929, 1545.2988)),
        ((0.6501393, -0.7476588, -0.0954617, 0.0959808), (923.5740, -3877.9243, 1504.5518)),
        ((0.0699353, -0.0712403, 0.7421637, -0.662742), (-781.4915, 3838.8853, 1444.9929)),
    ),
    "S3": _S1_EXTRINSICS,
}


def humaneva_cameras(subject: str, source: str = "HumanEva-I") -> list[CameraParams]:
    """The 3 cameras of a HumanEva-I subject (``S1``..``S3``, optionally prefixed ``Train/`` or ``Validate/``)."""
    actor = subject.split("/")[-1]
    if actor not in HUMANEVA_EXTRINSICS:
        raise UserError(f"{source}: subject {subject!r} has no HumanEva-I calibration (expected S1, S2 or S3)")
    w, h = HUMANEVA_RESOLUTION
    cameras = []
    for (cam_id, azimuth, focal, center, radial, tangential), (orientation, position_mm) in zip(
        HUMANEVA_INTRINSICS, HUMANEVA_EXTRINSICS[actor]
    ):
        cameras.append(
            CameraParams(
                id=cam_id,
                res_w=w,
                res_h=h,
                azimuth=azimuth,
                intrinsic=intrinsic_from_pixels(focal, center, radial, tangential, w, h),
                orientation=np.array(orientation, dtype=np.float32),
                translation=np.array(position_mm, dtype=np.float32) / 1000,
            )
        )
    return cameras


class HumanEvaDataset(MocapDataset):
    """HumanEva-I, 15 joints mapped to the model order; standard split Train/S1-3 (train), Validate/S1-3 (test)."""

    name = "humaneva15"
    fps = 60.0
    train_subjects = ("Train/S1", "Train/S2", "Train/S3")
    test_subjects = ("Validate/S1", "Validate/S2", "Validate/S3")
    evaluation_joints = HUMANEVA15.real_joints()

    def __init__(self, path: str | Path) -> None:
        super().__init__(Path(path))
        data = load_npz(self.path, ("positions_3d",), what="HumanEva 3D file")
        positions = read_positions_3d(self.path, data, (15,))
        for subject, actions in positions.items():
            self._cameras[subject] = humaneva_cameras(subject, str(self.path))
            self._positions[subject] = {
                action: to_h36m17(array, HUMANEVA15, coordinate_dims=3) for action, array in actions.items()
            }
