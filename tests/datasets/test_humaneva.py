"""HumanEva-I (common/datasets/humaneva.py) on the shared files: cameras, joint mapping, evaluation joints."""

from __future__ import annotations

import numpy as np
from conftest import shared_path

from common.datasets.keypoints import load_keypoints
from common.datasets.registry import load_dataset
from common.datasets.sequences import build_sequences
from common.geometry.camera import project_to_2d


def test_humaneva_cameras_reproject_the_ground_truth_2d():
    dataset = load_dataset("humaneva15", shared_path("data", "humaneva", "data_3d_humaneva15.npz"))
    keypoints = load_keypoints(shared_path("data", "humaneva", "data_2d_humaneva15_gt.npz"), dataset)
    assert dataset.fps == 60 and keypoints.layout.name == "humaneva15"
    assert dataset.evaluation_joints == (0, 1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)
    sequences = build_sequences(dataset, keypoints, dataset.test_subjects)
    assert {s.subject for s in sequences} == {"Validate/S1", "Validate/S2", "Validate/S3"}
    errors = []
    for seq in sequences:
        camera_space = dataset.positions_camera(seq.subject, seq.action, seq.camera_index)
        np.testing.assert_allclose(seq.poses_3d, camera_space - camera_space[:, :1], atol=1e-6)
        projected = project_to_2d(camera_space, seq.camera.intrinsic)
        pixels = (projected - seq.poses_2d)[:, list(dataset.evaluation_joints)] * seq.camera.res_w / 2
        errors.append(np.linalg.norm(pixels, axis=-1).ravel())
    assert np.median(np.concatenate(errors)) < 0.1
    # 3D mapped to the model order: Spine synthesized between pelvis and thorax
    with np.load(shared_path("data", "humaneva", "data_3d_humaneva15.npz"), allow_pickle=True) as data:
        raw = data["positions_3d"].item()["Validate/S1"]["Walking 1 chunk0"]
    world = dataset.positions_world("Validate/S1", "Walking 1 chunk0")
    np.testing.assert_allclose(world[:, 7], (raw[:, 0] + raw[:, 1]) / 2, atol=1e-6)
    np.testing.assert_allclose(world[:, 16], raw[:, 7])  # RWrist
