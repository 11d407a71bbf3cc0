"""Tests for common/geometry/camera.py: the VideoPose3D reference fixture, round trips and numpy/torch parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from common.geometry.camera import (
    camera_to_pixels,
    camera_to_world,
    flip_intrinsic,
    image_coordinates,
    intrinsic_from_pixels,
    normalize_screen_coordinates,
    project_to_2d,
    project_world_to_pixels,
    qinverse,
    qrot,
    world_to_camera,
)


@pytest.fixture(scope="module")
def reference(reference_metrics):
    return reference_metrics


@pytest.mark.parametrize("as_torch", [False, True])
def test_world_camera_transforms_match_reference(reference, as_torch):
    convert = torch.from_numpy if as_torch else (lambda a: a)
    q, t = convert(reference["quaternion"]), convert(reference["translation"])
    cam = world_to_camera(convert(reference["world"]), q, t)
    assert isinstance(cam, torch.Tensor) == as_torch
    np.testing.assert_allclose(np.asarray(cam), reference["world_to_camera"], atol=1e-5, rtol=0)
    world = camera_to_world(cam, q, t)
    np.testing.assert_allclose(np.asarray(world), reference["camera_to_world"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(world), reference["world"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("as_torch", [False, True])
def test_projection_chain_matches_reference(reference, as_torch):
    convert = torch.from_numpy if as_torch else (lambda a: a)
    normalized = project_to_2d(convert(reference["camera_points"]), convert(reference["intrinsic"]))
    assert isinstance(normalized, torch.Tensor) == as_torch
    assert tuple(normalized.shape) == (50, 17, 2)
    np.testing.assert_allclose(np.asarray(normalized), reference["projected_normalized"], atol=1e-5, rtol=0)
    pixels = image_coordinates(convert(reference["projected_normalized"].astype(np.float64)), w=1000, h=1002)
    np.testing.assert_allclose(np.asarray(pixels), reference["projected_pixels"], atol=1e-5, rtol=0)
    renormalized = normalize_screen_coordinates(convert(reference["projected_pixels"]), w=1000, h=1002)
    np.testing.assert_allclose(np.asarray(renormalized), reference["renormalized"], atol=1e-5, rtol=0)


def test_batched_intrinsics_apply_per_leading_index(reference):
    points = torch.from_numpy(reference["camera_points"]).reshape(2, 25, 17, 3)
    intrinsic = torch.from_numpy(reference["intrinsic"])
    other = intrinsic.clone()
    other[0] *= 1.5
    out = project_to_2d(points, torch.stack([intrinsic, other]))
    assert out.shape == (2, 25, 17, 2)
    np.testing.assert_allclose(out[0].numpy(), reference["projected_normalized"][:25], atol=1e-6)
    assert not np.allclose(out[1].numpy(), reference["projected_normalized"][25:])
    np.testing.assert_allclose(out[1].numpy(), project_to_2d(points[1], other).numpy(), atol=1e-7)
    with pytest.raises(ValueError):
        project_to_2d(points, torch.zeros(3, 9))


def test_world_to_pixels_chains_the_reference_steps(reference):
    # an identity camera (no rotation, at the origin): world points are the reference's camera points
    camera = {"orientation": [1.0, 0.0, 0.0, 0.0], "translation": [0.0, 0.0, 0.0],
              "intrinsic": reference["intrinsic"], "res_w": 1000, "res_h": 1002}  # fmt: skip
    pixels = project_world_to_pixels(reference["camera_points"], camera)
    assert pixels.dtype == np.float32 and pixels.shape == reference["projected_pixels"].shape
    np.testing.assert_allclose(pixels, reference["projected_pixels"], atol=1e-3)
    direct = camera_to_pixels(reference["camera_points"].astype(np.float64), reference["intrinsic"], 1000, 1002)
    np.testing.assert_allclose(direct, reference["projected_pixels"], atol=1e-4)


def test_distortion_formula_on_a_hand_computed_point():
    point = np.array([0.3, -0.2, 2.0])
    intrinsic = np.array([1.1, 1.2, 0.05, -0.02, -0.2, 0.1, 0.01, 0.003, -0.002])
    x, y = 0.15, -0.1
    r2 = x * x + y * y
    radial = 1 - 0.2 * r2 + 0.1 * r2**2 + 0.01 * r2**3
    tangential = 0.003 * x - 0.002 * y
    xd = x * (radial + tangential) + 0.003 * r2
    yd = y * (radial + tangential) - 0.002 * r2
    expected = [1.1 * xd + 0.05, 1.2 * yd - 0.02]
    np.testing.assert_allclose(project_to_2d(point, intrinsic), expected, atol=1e-14)


def test_screen_normalization_values_and_round_trip():
    pixels = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]])
    normalized = normalize_screen_coordinates(pixels, w=1000, h=1002)
    np.testing.assert_allclose(normalized, [[-1.0, -1.002], [1.0, 1.002], [0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(image_coordinates(normalized, w=1000, h=1002), pixels, atol=1e-9)
    as_float32 = normalize_screen_coordinates(pixels.astype(np.float32), w=1000, h=1002)
    assert as_float32.dtype == np.float32
    with pytest.raises(ValueError):
        normalize_screen_coordinates(np.zeros((4, 3)), w=10, h=10)


def test_quaternion_rotation_matches_axis_angle():
    angle = math.pi / 2
    q = np.array([math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)])  # 90 degrees about z
    np.testing.assert_allclose(qrot(q, np.array([1.0, 0.0, 0.0])), [0.0, 1.0, 0.0], atol=1e-12)
    v = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(qrot(qinverse(q), qrot(q, v)), v, atol=1e-12)
    np.testing.assert_allclose(qinverse(q), [q[0], 0.0, 0.0, -q[3]])
    torch_out = qrot(torch.from_numpy(q), torch.from_numpy(v))
    np.testing.assert_allclose(torch_out.numpy(), qrot(q, v), atol=1e-12)


def test_world_camera_round_trip_float64_and_torch_grad():
    rng = np.random.default_rng(1)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    t = rng.normal(size=3)
    world = rng.normal(size=(3, 7, 3))
    np.testing.assert_allclose(camera_to_world(world_to_camera(world, q, t), q, t), world, atol=1e-12)
    points = torch.tensor(world, requires_grad=True)
    world_to_camera(points, q, t).sum().backward()
    assert points.grad is not None and points.grad.shape == points.shape


def test_intrinsic_from_pixels_and_flip():
    intrinsic = intrinsic_from_pixels(
        [1145.0, 1143.0], [512.5, 515.5], [-0.2, 0.24, -0.003], [-0.001, -0.0014], w=1000, h=1002
    )
    assert intrinsic.dtype == np.float32
    np.testing.assert_allclose(
        intrinsic, [2.29, 2.286, 0.025, 0.031 - 0.002, -0.2, 0.24, -0.003, -0.001, -0.0014], rtol=1e-6, atol=1e-7
    )
    flipped = flip_intrinsic(intrinsic)
    np.testing.assert_allclose(flipped[[2, 7]], -intrinsic[[2, 7]])
    np.testing.assert_allclose(np.delete(flipped, [2, 7]), np.delete(intrinsic, [2, 7]))
    # Projecting mirrored points with flipped intrinsics gives the mirrored projection.
    points = np.random.default_rng(2).uniform([-1, -1, 3], [1, 1, 5], size=(10, 3))
    mirrored = points * [-1, 1, 1]
    np.testing.assert_allclose(
        project_to_2d(mirrored, flipped), project_to_2d(points, intrinsic) * [-1, 1], atol=1e-6
    )
    batch = torch.from_numpy(np.stack([intrinsic, intrinsic]))
    assert torch.equal(flip_intrinsic(flip_intrinsic(batch)), batch)
