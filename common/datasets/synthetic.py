"""The synthetic dataset (``data/prepare_data_synthetic.py``): VideoPose3D layout like Human3.6M, already 17 joints.

``data_3d_synthetic.npz`` holds ``positions_3d[subject][action] -> (T, 17, 3)`` world metres in the model's joint order
and ``cameras[subject] -> list of camera dicts`` (keys of `common.datasets.base.CAMERA_KEYS`, pixels and metres).
"""

from __future__ import annotations

from pathlib import Path

from common.core.errors import UserError
from common.core.files import load_npz
from common.datasets.base import MocapDataset, camera_from_dict, read_positions_3d, unpack_dict
from common.datasets.h36m import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS


class SyntheticDataset(MocapDataset):
    """Synthetic motions seen by Human3.6M-like cameras: 50 fps, train S1 S5 S6 S7 S8, test S9 S11."""

    name = "synthetic"
    fps = 50.0
    train_subjects = H36M_TRAIN_SUBJECTS
    test_subjects = H36M_TEST_SUBJECTS

    def __init__(self, path: str | Path) -> None:
        super().__init__(Path(path))
        data = load_npz(self.path, ("positions_3d", "cameras"), what="synthetic 3D file")
        self._positions = read_positions_3d(self.path, data, (17,))
        cameras = unpack_dict(data["cameras"], self.path, "cameras")
        for subject in self._positions:
            if subject not in cameras:
                raise UserError(f"{self.path}: cameras has no entry for subject {subject!r}")
            entries = cameras[subject]
            if not isinstance(entries, (list, tuple)) or not entries:
                raise UserError(f"{self.path}: cameras[{subject!r}] must be a non-empty list of camera dicts")
            self._cameras[subject] = [
                camera_from_dict(cam, f"{self.path}: cameras[{subject!r}][{i}]") for i, cam in enumerate(entries)
            ]
