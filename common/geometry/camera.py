"""Camera geometry: screen normalization, quaternion rigid transforms and (distorted) pinhole projection.

Every function is written once, in torch, and accepts numpy arrays or torch tensors: numpy input is converted at the
boundary and the result converted back (VideoPose3D's ``wrap`` pattern), so the result has the type of the main input,
and numpy results keep its floating dtype (integers become float64). Conventions (docs/ARCHITECTURE.md):

- Normalized screen coordinates: ``x / w * 2 - [1, h / w]`` (x in [-1, 1], y scaled by the same factor).
- Quaternions are ``(w, x, y, z)`` and describe the camera-to-world rotation; translations are the camera position in
  world coordinates (metres).
- Intrinsic vector (9 values, normalized units): ``[fx, fy, cx, cy, k1, k2, k3, p1, p2]`` with ``f = f_px / w * 2`` and
  ``c`` normalized like a point.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

INTRINSIC_SIZE = 9


def _as(value, reference: torch.Tensor) -> torch.Tensor:
    """`value` (array-like or tensor) as a tensor with the dtype and device of `reference`."""
    return torch.as_tensor(value, dtype=reference.dtype, device=reference.device)


def _numpy_to_tensor(value, dtype: np.dtype) -> torch.Tensor:
    array = np.asarray(value, dtype=dtype)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _torch_core(function=None, *, main: str | None = None):
    """Decorator for a function written with torch tensors whose argument `main` (default: the first) decides the
    result type.

    A tensor main argument goes straight in (an integer tensor becomes float64). Otherwise every numpy array, list or
    tuple argument becomes a tensor of the main argument's floating dtype (integers -> float64) and the result is
    returned as a numpy array.
    """
    if function is None:
        return functools.partial(_torch_core, main=main)
    signature = inspect.signature(function)
    main = main or next(iter(signature.parameters))

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        arguments = signature.bind(*args, **kwargs).arguments
        reference = arguments[main]
        if isinstance(reference, torch.Tensor):
            arguments[main] = reference if reference.is_floating_point() else reference.double()
            return function(**arguments)
        dtype = np.asarray(reference).dtype
        dtype = dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)
        for name, value in arguments.items():
            if isinstance(value, (np.ndarray, list, tuple)):
                arguments[name] = _numpy_to_tensor(value, dtype)
        return function(**arguments).numpy()

    return wrapper


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cross product over the last axis, as separate products and differences (numpy's `cross`, bit for bit)."""
    (a1, a2, a3), (b1, b2, b3) = a.unbind(-1), b.unbind(-1)
    return torch.stack([a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1], dim=-1)


def _check_last(x: torch.Tensor, size: int, what: str) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"expected (..., {size}) {what}, got shape {tuple(x.shape)}")


# --- screen coordinates --------------------------------------------------------------------------------------------


@_torch_core
def normalize_screen_coordinates(points: Array, w: float, h: float) -> Array:
    """Pixels -> normalized screen coordinates: ``x / w * 2 - [1, h / w]`` (last axis = (x, y))."""
    _check_last(points, 2, "pixel coordinates")
    return points / w * 2 - _as([1.0, h / w], points)


@_torch_core
def image_coordinates(points: Array, w: float, h: float) -> Array:
    """Normalized screen coordinates -> pixels (inverse of `normalize_screen_coordinates`)."""
    _check_last(points, 2, "normalized coordinates")
    return (points + _as([1.0, h / w], points)) * w / 2


# --- quaternions and rigid transforms ------------------------------------------------------------------------------


@_torch_core(main="v")
def qrot(q: Array, v: Array) -> Array:
    """Rotate 3D vectors ``v (..., 3)`` by unit quaternions ``q (..., 4)`` (w, x, y, z); leading dims broadcast."""
    q = _as(q, v)
    if q.shape[-1] != 4 or v.shape[-1] != 3:
        raise ValueError(f"qrot expects (..., 4) and (..., 3), got {tuple(q.shape)} and {tuple(v.shape)}")
    axis, v = torch.broadcast_tensors(q[..., 1:], v)
    uv = _cross(axis, v)
    uuv = _cross(axis, uv)
    return v + 2 * (q[..., :1] * uv + uuv)


@_torch_core
def qinverse(q: Array) -> Array:
    """Inverse of unit quaternions (the conjugate): ``(w, -x, -y, -z)``."""
    _check_last(q, 4, "quaternions")
    return q * _as([1.0, -1.0, -1.0, -1.0], q)


@_torch_core
def world_to_camera(points: Array, orientation, translation) -> Array:
    """World points ``(..., 3)`` -> camera space, for a camera with camera-to-world `orientation` and position
    `translation` (same units as the points)."""
    return qrot(qinverse(_as(orientation, points)), points - _as(translation, points))


@_torch_core
def camera_to_world(points: Array, orientation, translation) -> Array:
    """Camera-space points ``(..., 3)`` -> world space (inverse of `world_to_camera`)."""
    return qrot(_as(orientation, points), points) + _as(translation, points)


# --- projection ----------------------------------------------------------------------------------------------------


def _broadcast_intrinsic(intrinsic, points: torch.Tensor) -> torch.Tensor:
    """Shape the intrinsic vector(s) so they broadcast against ``points (..., 3)``.

    ``(9,)`` applies to every point; ``(B, 9)`` (or any leading dims that prefix the points' leading dims) applies
    per leading index, as VideoPose3D's ``(N, 9)`` camera batches do.
    """
    intrinsic = _as(intrinsic, points)
    _check_last(intrinsic, INTRINSIC_SIZE, "intrinsic parameters")
    lead = intrinsic.shape[:-1]
    if tuple(points.shape[: len(lead)]) != tuple(lead):
        raise ValueError(f"intrinsic batch {tuple(lead)} does not prefix the points' shape {tuple(points.shape)}")
    missing = points.ndim - intrinsic.ndim
    return intrinsic.reshape(tuple(lead) + (1,) * missing + (INTRINSIC_SIZE,))


@_torch_core
def project_to_2d(points: Array, intrinsic) -> Array:
    """Project camera-space points ``(..., 3)`` to normalized screen coordinates with lens distortion.

    Distortion model (VideoPose3D's): with ``u = clamp(x/z, -1, 1)`` and ``r2 = |u|^2``,
    ``u_d = u * (1 + k1 r2 + k2 r2^2 + k3 r2^3 + p . u) + p * r2`` and the result is ``f * u_d + c``.
    `intrinsic` is ``(9,)`` or batched ``(B, 9)`` matching the first axis of `points`. The clamp of ``x/z`` is
    VideoPose3D's guard against points near or behind the camera.
    """
    _check_last(points, 3, "camera-space points")
    params = _broadcast_intrinsic(intrinsic, points)
    f, c, k, p = params[..., 0:2], params[..., 2:4], params[..., 4:7], params[..., 7:9]
    u = torch.clamp(points[..., :2] / points[..., 2:], min=-1.0, max=1.0)
    r2 = (u**2).sum(dim=-1, keepdim=True)
    radial = 1 + (k * torch.cat([r2, r2**2, r2**3], dim=-1)).sum(dim=-1, keepdim=True)
    tangential = (p * u).sum(dim=-1, keepdim=True)
    distorted = u * (radial + tangential) + p * r2
    return f * distorted + c


def camera_to_pixels(points: Array, intrinsic, w: float, h: float) -> Array:
    """Camera-space points ``(..., 3)`` -> pixels ``(..., 2)``: `project_to_2d` then `image_coordinates`."""
    return image_coordinates(project_to_2d(points, intrinsic), w, h)


def project_world_to_pixels(positions_world: np.ndarray, camera: Mapping) -> np.ndarray:
    """World points ``(..., 3)`` (metres) -> float32 pixels ``(..., 2)`` through one camera, with lens distortion.

    `camera` is a VideoPose3D-style camera dict (as `common.geometry.h36m_cameras.h36m_cameras` returns) with
    ``orientation``, ``translation``, ``intrinsic``, ``res_w`` and ``res_h``; the computation runs in float64.
    """
    points = np.asarray(positions_world, dtype=np.float64)
    in_camera = world_to_camera(points, camera["orientation"], camera["translation"])
    intrinsic = np.asarray(camera["intrinsic"], dtype=np.float64)
    return camera_to_pixels(in_camera, intrinsic, camera["res_w"], camera["res_h"]).astype(np.float32)


# --- intrinsic vectors ---------------------------------------------------------------------------------------------


def intrinsic_from_pixels(focal, center, radial, tangential, w: float, h: float) -> np.ndarray:
    """Build the normalized 9-value intrinsic vector from pixel focal length/centre and distortion coefficients.

    Args:
        focal: (fx, fy) in pixels. center: (cx, cy) in pixels.
        radial: (k1, k2, k3). tangential: (p1, p2) in the VideoPose3D convention.
        w, h: image resolution in pixels.
    Returns:
        float32 ``[fx, fy, cx, cy, k1, k2, k3, p1, p2]`` with ``f / w * 2`` and the centre normalized like a point.
    """
    focal = np.asarray(focal, dtype=np.float64).reshape(2)
    center = np.asarray(center, dtype=np.float64).reshape(2)
    radial = np.asarray(radial, dtype=np.float64).reshape(3)
    tangential = np.asarray(tangential, dtype=np.float64).reshape(2)
    return np.concatenate(
        [focal / w * 2, normalize_screen_coordinates(center, w, h), radial, tangential]
    ).astype(np.float32)


@_torch_core
def flip_intrinsic(intrinsic: Array) -> Array:
    """Intrinsics of the horizontally mirrored image (x -> -x in normalized coordinates): negate cx and p1.

    With these, ``project_to_2d(mirrored points, flip_intrinsic(K))`` equals the mirror of ``project_to_2d(points, K)``.
    Works on ``(..., 9)`` numpy arrays or tensors and returns a new array.
    """
    _check_last(intrinsic, INTRINSIC_SIZE, "intrinsic parameters")
    sign = [1.0] * INTRINSIC_SIZE
    sign[2] = sign[7] = -1.0
    return intrinsic * _as(sign, intrinsic)
