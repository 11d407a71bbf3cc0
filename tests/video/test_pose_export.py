"""Pose exports: .npy/.json/.csv round trips, and .bvh read back by an independent parser (PyPI ``bvh``) whose
channels are turned into joint positions by forward kinematics written here, independently of the writer."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import shared_path

from common.core.errors import UserError
from common.geometry.skeleton import H36M_17_KEPT, h36m_17, humaneva15, mpi_inf_3dhp_17
from common.video.pose_export import export_poses

bvh = pytest.importorskip("bvh", reason="the BVH round-trip tests need the PyPI package bvh (requirements-dev.txt)")


def _axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    a = np.radians(degrees)
    c, s, one, zero = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    rows = {"X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
            "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]]}[axis]
    return np.moveaxis(np.array(rows), -1, 0)  # (T, 3, 3)


def bvh_positions(path) -> tuple[dict[str, np.ndarray], object]:
    """Global position ``(T, 3)`` of every joint of a BVH file: offsets + channels in the order the file lists them."""
    mocap = bvh.Bvh(path.read_text())
    frames = np.array(mocap.frames, dtype=np.float64)
    column, solved = 0, {}
    for name in mocap.get_joints_names():
        channels = mocap.joint_channels(name)
        offset = np.array(mocap.joint_offset(name))
        values = frames[:, column:column + len(channels)]
        column += len(channels)
        rotation = np.broadcast_to(np.eye(3), (len(frames), 3, 3))
        translation = np.zeros((len(frames), 3))
        for k, channel in enumerate(channels):
            if channel.endswith("position"):
                translation[:, "XYZ".index(channel[0])] = values[:, k]
            else:
                rotation = rotation @ _axis_rotation(channel[0], values[:, k])
        parent = mocap.joint_parent(name)
        if parent is None:
            solved[name] = (rotation, offset + translation)
        else:
            parent_rotation, parent_position = solved[parent.name]
            solved[name] = (parent_rotation @ rotation, parent_position + parent_rotation @ offset)
    assert column == frames.shape[1]
    return {name: position for name, (_, position) in solved.items()}, mocap


def expected_bvh(camera_poses: np.ndarray) -> np.ndarray:
    """The documented convention for a level camera: 100 * (x, -y, -z), lowest joint of the sequence at Y = 0."""
    out = np.stack([camera_poses[..., 0], -camera_poses[..., 1], -camera_poses[..., 2]], axis=-1) * 100.0
    out[..., 1] -= out[..., 1].min()
    return out


def _names(skeleton) -> list[str]:
    return [name.replace("/", "_") for name in skeleton.joint_names()]


def rigid_motion(skeleton, num_frames: int = 40, seed: int = 0) -> np.ndarray:
    """Constant bone lengths, a moving root and every bone turning freely and smoothly (camera space, metres)."""
    rng = np.random.default_rng(seed)
    lengths = rng.uniform(0.08, 0.45, skeleton.num_joints())
    start, turn = rng.normal(size=(2, skeleton.num_joints(), 3))
    t = np.linspace(0.0, 1.0, num_frames)[:, None, None]
    directions = start + 2.0 * t * turn + 0.3 * np.sin(7 * t) * rng.normal(size=(skeleton.num_joints(), 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    poses = np.zeros((num_frames, skeleton.num_joints(), 3))
    for joint in np.argsort([_depth(skeleton, j) for j in range(skeleton.num_joints())], kind="stable"):
        parent = skeleton.parents()[joint]
        if parent < 0:  # the root walks
            poses[:, joint] = rng.normal(size=3) + t[:, 0] * rng.normal(size=3)
        else:
            poses[:, joint] = poses[:, parent] + directions[:, joint] * lengths[joint]
    return poses.astype(np.float32)


def _depth(skeleton, joint: int) -> int:
    depth = 0
    while skeleton.parents()[joint] >= 0:
        joint, depth = skeleton.parents()[joint], depth + 1
    return depth


def _errors_mm(path, poses_bvh_cm: np.ndarray, skeleton) -> np.ndarray:
    positions, _ = bvh_positions(path)
    names = _names(skeleton)
    return np.stack([np.linalg.norm(positions[n] - poses_bvh_cm[:, j], axis=-1) for j, n in enumerate(names)], 1) * 10


@pytest.mark.parametrize("factory", [h36m_17, humaneva15, mpi_inf_3dhp_17])
def test_bvh_reproduces_constant_length_motion(tmp_path, factory):
    skeleton = factory()
    poses = rigid_motion(skeleton)
    path = export_poses(tmp_path / "motion.bvh", poses, 50, skeleton)
    errors = _errors_mm(path, expected_bvh(poses.astype(np.float64)), skeleton)
    print(f"{factory.__name__}: BVH round trip, constant bone lengths: max error {errors.max():.4f} mm")
    assert errors.max() < 1.0
    _, mocap = bvh_positions(path)
    assert mocap.nframes == len(poses)
    assert mocap.frame_time == pytest.approx(1 / 50)
    assert mocap.joint_channels(mocap.get_joints_names()[0])[:3] == ["Xposition", "Yposition", "Zposition"]
    assert [p.name for p in tmp_path.iterdir()] == ["motion.bvh"]  # atomic: no temporary file left


def _quaternion_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def test_bvh_with_camera_orientation_is_upright_in_world(tmp_path):
    """Camera-space poses of a Human3.6M camera come back as the world poses (z up -> BVH Y up)."""
    from common.geometry.h36m_cameras import h36m_cameras

    skeleton = h36m_17()
    world = rigid_motion(skeleton, seed=3).astype(np.float64) + [0.0, 0.0, 1.0]
    camera = h36m_cameras("S9")[1]
    rotation = _quaternion_matrix(np.asarray(camera["orientation"], dtype=np.float64))  # camera -> world
    camera_poses = (world - camera["translation"]) @ rotation  # R^T (X - t) for row vectors
    path = export_poses(tmp_path / "world.bvh", camera_poses, 50, skeleton, orientation=camera["orientation"])
    shifted = (world - camera["translation"]) * 100.0  # rotation back to the world; the camera position is not kept
    expected = np.stack([shifted[..., 0], shifted[..., 2], -shifted[..., 1]], axis=-1)
    expected[..., 1] -= expected[..., 1].min()
    assert _errors_mm(path, expected, skeleton).max() < 1.0


def test_bvh_on_real_h36m_and_length_violations(tmp_path):
    """Human3.6M S9 (constant bone lengths: exact), then with 20 mm joint noise, which breaks the bone lengths: the
    error at a joint stays within the summed length deviations of the bones up to the root (measured, printed)."""
    data = np.load(shared_path("data", "h36m", "data_3d_h36m.npz"), allow_pickle=True)["positions_3d"].item()
    world = data["S9"]["Walking"][:150, list(H36M_17_KEPT)].astype(np.float64)
    camera_poses = np.stack([world[..., 0], -world[..., 2], world[..., 1]], axis=-1)  # a level camera looking along +y
    skeleton = h36m_17()
    exact = _errors_mm(export_poses(tmp_path / "s9.bvh", camera_poses, 50, skeleton), expected_bvh(camera_poses),
                       skeleton)
    print(f"S9 Walking (150 frames): max error {exact.max():.4f} mm")
    assert exact.max() < 1.0

    noisy = camera_poses + np.random.default_rng(0).normal(scale=0.02, size=camera_poses.shape)
    errors = _errors_mm(export_poses(tmp_path / "noisy.bvh", noisy, 50, skeleton), expected_bvh(noisy), skeleton)
    deviation = np.zeros_like(errors)  # mm: |length - median length| of each joint's incoming bone
    for child, parent in skeleton.bones():
        length = np.linalg.norm(noisy[:, child] - noisy[:, parent], axis=-1) * 1000
        deviation[:, child] = np.abs(length - np.median(length))
    chain = np.zeros_like(errors)
    for joint in np.argsort([_depth(skeleton, j) for j in range(skeleton.num_joints())], kind="stable"):
        parent = skeleton.parents()[joint]
        chain[:, joint] = deviation[:, joint] + (chain[:, parent] if parent >= 0 else 0.0)
    print(f"S9 + 20 mm noise: bone length deviation mean {deviation[:, 1:].mean():.1f} mm, max "
          f"{deviation.max():.1f} mm -> position error mean {errors.mean():.1f} mm, max {errors.max():.1f} mm")
    assert np.all(errors <= chain + 1.0)
    assert errors.mean() > 5.0  # the violation shows: the BVH cannot change bone lengths


def test_json_csv_npy_round_trips(tmp_path):
    skeleton = h36m_17()
    poses = rigid_motion(skeleton, num_frames=7)
    np.testing.assert_array_equal(np.load(export_poses(tmp_path / "p.npy", poses, 25, skeleton)), poses)

    content = json.loads(export_poses(tmp_path / "p.json", poses, 25, skeleton).read_text())
    np.testing.assert_allclose(np.array(content["poses"]), poses, atol=1e-6)
    assert content["joint_names"] == skeleton.joint_names()
    assert content["fps"] == 25 and content["units"] == "metres" and "y down" in content["coordinates"]

    lines = export_poses(tmp_path / "p.csv", poses, 25, skeleton, coordinates="world, z up").read_text().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    assert "# fps: 25" in comments and "# units: metres" in comments and "# coordinates: world, z up" in comments
    rows = list(csv.reader(line for line in lines if not line.startswith("#")))
    assert rows[0][:5] == ["frame", "time_s", "Hip_x", "Hip_y", "Hip_z"] and len(rows) == 1 + len(poses)
    values = np.array([[float(v) for v in row] for row in rows[1:]])
    np.testing.assert_allclose(values[:, 1], np.arange(7) / 25, atol=1e-6)
    np.testing.assert_allclose(values[:, 2:].reshape(poses.shape), poses, atol=1e-6)


def test_unknown_extension_names_the_flag(tmp_path):
    with pytest.raises(UserError, match=r"--viz-export .*p\.fbx.*\.npy, \.json, \.csv, \.bvh"):
        export_poses(tmp_path / "p.fbx", np.zeros((2, 17, 3)), 50, h36m_17(), flag="--viz-export")
    assert not list(tmp_path.iterdir())
    written = export_poses(tmp_path / "output", np.ones((2, 17, 3)), 50, h36m_17())  # run.py --viz-export output
    assert written == tmp_path / "output.npy" and np.load(written).shape == (2, 17, 3)


def test_euler_angles_rebuild_the_rotation_even_at_gimbal_lock():
    from common.video.pose_export import _euler_zxy

    rng = np.random.default_rng(5)
    angles = rng.uniform(-180, 180, size=(50, 3))
    angles[:10, 1] = 90.0  # x = +-90 degrees: z and y turn about the same axis
    angles[10:20, 1] = -90.0

    def matrices(zxy):
        return _axis_rotation("Z", zxy[:, 0]) @ _axis_rotation("X", zxy[:, 1]) @ _axis_rotation("Y", zxy[:, 2])

    rotations = matrices(angles)
    np.testing.assert_allclose(matrices(_euler_zxy(rotations)), rotations, atol=1e-9)
