"""Tests for common/geometry/keypoint_layouts.py: registry, detection, conversion values, real SH detections."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from common.core.errors import UserError
from common.geometry.keypoint_layouts import (
    COCO,
    H36M,
    HUMANEVA15,
    LAYOUTS,
    MPI_INF_3DHP,
    MPII,
    detect_layout,
    get_layout,
    keypoint_metadata,
    to_h36m17,
)
from common.geometry.skeleton import H36M_17_KEPT

H36M17_LEFT, H36M17_RIGHT = (4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16)

RNG = np.random.default_rng(0)


def _mirror(poses, left, right):
    perm = np.arange(poses.shape[-2])
    perm[list(left)] = list(right)
    perm[list(right)] = list(left)
    out = poses[..., perm, :].copy()
    out[..., 0] *= -1
    return out


def test_registry_contains_the_required_layouts():
    assert {"h36m", "coco", "mpii", "humaneva15", "mpi_inf_3dhp"} <= set(LAYOUTS)
    assert [LAYOUTS[n].num_joints for n in ("h36m", "coco", "mpii", "humaneva15")] == [17, 17, 16, 15]
    with pytest.raises(UserError, match="unknown keypoint layout 'openpose'"):
        get_layout("openpose", "x.npz")


def test_detect_layout_by_name_and_by_symmetry():
    assert detect_layout({"layout_name": "coco", "num_joints": 17}) is COCO
    # VideoPose3D's metadata of the SH detections (no layout_name) and of detectron COCO files
    sh = {"num_joints": 16, "keypoints_symmetry": [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]]}
    assert detect_layout(sh) is MPII
    coco = {"num_joints": 17, "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]}
    assert detect_layout(coco) is COCO
    h36m = {"num_joints": 17, "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    assert detect_layout(h36m) is H36M
    assert detect_layout({"layout_name": "humaneva15"}) is HUMANEVA15


def test_keypoint_metadata_round_trips_through_detection():
    mpii = keypoint_metadata("mpii", synthetic=True)
    assert mpii == {"layout_name": "mpii", "num_joints": 16, "synthetic": True,
                    "keypoints_symmetry": [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]]}  # fmt: skip
    for name in LAYOUTS:
        metadata = keypoint_metadata(name)
        del metadata["layout_name"]
        assert detect_layout(metadata) is LAYOUTS[name]
    with pytest.raises(UserError, match="--layout: unknown keypoint layout 'openpose'"):
        keypoint_metadata("openpose")


def test_detect_layout_errors_name_the_source():
    with pytest.raises(UserError, match=r"^f\.npz: unknown keypoint layout \(num_joints=16"):
        detect_layout({"num_joints": 16, "keypoints_symmetry": [[0], [1]]}, "f.npz")
    with pytest.raises(UserError, match="f.npz: layout 'coco' has 17 joints but metadata says num_joints=15"):
        detect_layout({"layout_name": "coco", "num_joints": 15}, "f.npz")
    with pytest.raises(UserError, match="f.npz: metadata needs layout_name"):
        detect_layout({"num_joints": 17}, "f.npz")
    with pytest.raises(UserError, match="f.npz: unknown keypoint layout 'foo'"):
        detect_layout({"layout_name": "foo"}, "f.npz")


def test_h36m_is_identity_and_real_joints():
    poses = RNG.normal(size=(5, 17, 2)).astype(np.float32)
    np.testing.assert_array_equal(to_h36m17(poses, "h36m"), poses)
    assert H36M.real_joints() == tuple(range(17))
    assert HUMANEVA15.real_joints() == (0, 1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)
    assert MPII.real_joints() == (0, 1, 2, 3, 4, 5, 6, 8, 11, 12, 13, 14, 15, 16)
    assert MPI_INF_3DHP.real_joints() == tuple(range(17))


def test_coco_conversion_values():
    coco = RNG.normal(size=(3, 17, 3)).astype(np.float32)
    out = to_h36m17(coco, "coco")
    xy = coco[..., :2]
    hip = (xy[:, 11] + xy[:, 12]) / 2
    shoulders = (xy[:, 5] + xy[:, 6]) / 2
    thorax = shoulders + 0.12 * (shoulders - hip)  # the Human3.6M thorax lies above the shoulders' midpoint
    eyes = (xy[:, 1] + xy[:, 2]) / 2
    expected = {
        0: hip, 1: xy[:, 12], 2: xy[:, 14], 3: xy[:, 16], 4: xy[:, 11], 5: xy[:, 13], 6: xy[:, 15],
        7: hip + 0.55 * (shoulders - hip), 8: thorax, 9: xy[:, 0], 10: eyes + 0.25 * (eyes - shoulders),
        11: xy[:, 5], 12: xy[:, 7], 13: xy[:, 9], 14: xy[:, 6], 15: xy[:, 8], 16: xy[:, 10],
    }  # fmt: skip
    for joint, value in expected.items():
        np.testing.assert_allclose(out[:, joint, :2], value, atol=1e-5, err_msg=f"joint {joint}")
    # scores: copied for real joints, minimum of the sources for synthesized ones
    np.testing.assert_allclose(out[:, 1, 2], coco[:, 12, 2])
    np.testing.assert_allclose(out[:, 8, 2], coco[:, [5, 6, 11, 12], 2].min(axis=1))
    np.testing.assert_allclose(out[:, 10, 2], np.min(coco[:, [1, 2, 5, 6], 2], axis=1))


def test_mpii_and_humaneva_conversion_values():
    mpii = RNG.normal(size=(4, 16, 2))
    out = to_h36m17(mpii, "mpii")
    np.testing.assert_allclose(out[:, 0], mpii[:, 6])
    np.testing.assert_allclose(out[:, 3], mpii[:, 0])  # RFoot = MPII right ankle
    np.testing.assert_allclose(out[:, 8], mpii[:, 8])  # Thorax = MPII upper neck
    np.testing.assert_allclose(out[:, 7], 0.4 * mpii[:, 6] + 0.6 * mpii[:, 7])
    np.testing.assert_allclose(out[:, 16], mpii[:, 10])  # RWrist
    he = RNG.normal(size=(4, 15, 3))
    out = to_h36m17(he, "humaneva15", coordinate_dims=3)
    np.testing.assert_allclose(out[:, 7], (he[:, 0] + he[:, 1]) / 2)
    np.testing.assert_allclose(out[:, 9], (he[:, 1] + he[:, 14]) / 2)
    np.testing.assert_allclose(out[:, 10], he[:, 14])
    np.testing.assert_allclose(out[:, 11], he[:, 2])


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_conversion_commutes_with_mirroring_and_affine_maps(name):
    layout = LAYOUTS[name]
    poses = RNG.normal(size=(6, layout.num_joints, 2))
    converted = to_h36m17(poses, layout)
    np.testing.assert_allclose(
        to_h36m17(_mirror(poses, layout.left, layout.right), layout),
        _mirror(converted, H36M17_LEFT, H36M17_RIGHT),
        atol=1e-12,
    )
    np.testing.assert_allclose(to_h36m17(poses * 3 + [5, -2], layout), converted * 3 + [5, -2], atol=1e-9)


def test_shape_errors():
    with pytest.raises(ValueError, match="expects"):
        to_h36m17(np.zeros((4, 15, 2)), "coco")


def test_mpi_inf_3dhp_mapping_on_real_annotations():
    with np.load(shared_path("data", "mpi_inf_3dhp", "test_3dhp_train.npz")) as data:
        points = data["S"][..., :3]
    out = to_h36m17(points, "mpi_inf_3dhp", coordinate_dims=3)
    np.testing.assert_allclose(out[:, 0], points[:, 14])
    # in these annotations the pelvis is the mid-point of the hips: check that the mapped hips are the real hips
    np.testing.assert_allclose(out[:, 0], (out[:, 1] + out[:, 4]) / 2, atol=1e-5)
    # shoulders and hips are paired on the same sides: their right-to-left vectors point the same way
    assert np.all(np.sum((out[:, 11] - out[:, 14]) * (out[:, 4] - out[:, 1]), axis=-1) > 0)
    # Head (head top) is farther from the thorax than Neck/Nose (3DHP head)
    thorax = out[:, 8]
    assert np.all(np.linalg.norm(out[:, 10] - thorax, axis=-1) > np.linalg.norm(out[:, 9] - thorax, axis=-1))


def test_sh_detections_convert_close_to_projected_ground_truth():
    """Stacked Hourglass (MPII layout) -> model order vs. the projected 17-joint Human3.6M ground truth (S9)."""
    from common.geometry.camera import image_coordinates, project_to_2d, world_to_camera
    from common.geometry.h36m_cameras import h36m_cameras

    with np.load(shared_path("data", "h36m", "data_3d_h36m.npz"), allow_pickle=True) as data:
        world = data["positions_3d"].item()["S9"]["Walking"][:, list(H36M_17_KEPT)]
    with np.load(shared_path("data", "h36m", "data_2d_h36m_sh_pt_mpii.npz"), allow_pickle=True) as data:
        detections = data["positions_2d"].item()["S9"]["Walking"]
        layout = detect_layout(data["metadata"].item())
    errors = []
    for camera, det in zip(h36m_cameras("S9"), detections):
        projected = image_coordinates(
            project_to_2d(world_to_camera(world, camera["orientation"], camera["translation"]), camera["intrinsic"]),
            camera["res_w"],
            camera["res_h"],
        )
        errors.append(np.linalg.norm(to_h36m17(det, layout) - projected[: len(det)], axis=-1))
    median = np.median(np.concatenate(errors), axis=0)
    assert median.shape == (17,)
    assert np.median(median) < 12, median
    assert median.max() < 25, median  # synthesized Spine/Neck/Head included
    assert median[[7, 9, 10]].max() < 25
