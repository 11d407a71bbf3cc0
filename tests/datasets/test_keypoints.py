"""common/datasets/keypoints.py: trimming to the 3D length and the errors of `load_keypoints` on bad 2D files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import H36M_METADATA as META
from conftest import save_npz, write_synthetic_files

from common.core.errors import UserError
from common.datasets.keypoints import load_keypoints


def test_shorter_2d_is_an_error_naming_the_stream(tmp_path):
    _, dataset = write_synthetic_files(tmp_path, frames_2d=20)
    with pytest.raises(
        UserError, match=r"data_2d_synthetic_gt\.npz: S1 / Walk / camera 0: 20 2D frames but the 3D has 30"
    ):
        load_keypoints(tmp_path / "data_2d_synthetic_gt.npz", dataset)


def test_bad_2d_files(tmp_path):
    _, dataset = write_synthetic_files(tmp_path)
    good = np.full((30, 17, 2), 500, np.float32)  # pixels
    wrong_joints = [np.zeros((30, 16, 2))] * 4
    cases = {
        "layout.npz": ({"S1": {"Walk": [good] * 4}}, {"num_joints": 17}, "metadata needs layout_name"),
        "joints.npz": ({"S1": {"Walk": wrong_joints}}, META, r"S1 / Walk / camera 0: expected a \(T, 17, 2 or"),
        "cams.npz": ({"S1": {"Walk": [good] * 3}}, META, "S1 / Walk: 3 camera streams but the dataset has 4"),
        "none.npz": ({"S7": {"Walk": [good] * 4}}, META, r"no \(subject, action\) of this file matches"),
    }  # fmt: skip
    for name, (positions, metadata, message) in cases.items():
        save_npz(tmp_path / name, positions_2d=positions, metadata=metadata)
        with pytest.raises(UserError, match=f"{name}: .*{message}"):
            load_keypoints(tmp_path / name, dataset)
    nan = good.copy()
    nan[4, 2, 0] = np.nan
    save_npz(tmp_path / "nan2d.npz", positions_2d={"S1": {"Walk": [good, good, nan, good]}}, metadata=META)
    with pytest.raises(UserError, match=r"nan2d.npz: S1 / Walk / camera 2: NaN/inf coordinate"):
        load_keypoints(tmp_path / "nan2d.npz", dataset)
    np.savez(tmp_path / "nokeys.npz", keypoints=np.zeros(2))
    with pytest.raises(UserError, match="nokeys.npz: 2D keypoint file lacks the key\\(s\\) positions_2d, metadata"):
        load_keypoints(tmp_path / "nokeys.npz", dataset)
    with pytest.raises(UserError, match="nothere.npz: 2D keypoint file not found"):
        load_keypoints(tmp_path / "nothere.npz", dataset)


@pytest.mark.parametrize(("scale", "message"), [
    (0.0, "every 2D coordinate is 0"),
    (1 / 600, r"every 2D coordinate lies within \[-1.5, 1.5\]: the keypoints look normalized already; expected "
              r"pixels of the 1000x1002 camera"),
])
def test_2d_that_is_not_in_pixels_is_refused(tmp_path, scale, message):
    _, dataset = write_synthetic_files(tmp_path)
    pixels = load_keypoints_raw(tmp_path / "data_2d_synthetic_gt.npz")
    assert load_keypoints(tmp_path / "data_2d_synthetic_gt.npz", dataset) is not None  # the pixel file loads
    scaled = {s: {a: [c * scale for c in cams] for a, cams in acts.items()} for s, acts in pixels.items()}
    save_npz(tmp_path / "scaled.npz", positions_2d=scaled, metadata=META)
    with pytest.raises(UserError, match=rf"scaled.npz: S1 / Walk / camera 0: {message}"):
        load_keypoints(tmp_path / "scaled.npz", dataset)


def load_keypoints_raw(path):
    """The positions_2d dict of one of our own (trusted) test files."""
    with np.load(path, allow_pickle=True) as data:
        return data["positions_2d"].item()
