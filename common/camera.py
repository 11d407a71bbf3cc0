"""Camera geometry: screen normalization, quaternion rigid transforms and (distorted) pinhole projection.

Every function accepts numpy arrays or torch tensors and returns the same type as its main input (numpy results keep
the floating dtype of the input). Conventions (docs/ARCHITECTURE.md):

- Normalized screen coordinates: ``x / w * 2 - [1, h / w]`` (x in [-1, 1], y scaled by the same factor).
- Quaternions are ``(w, x, y, z)`` and describe the camera-to-world rotation; translations are the camera position in
  world coordinates (metres).
- Intrinsic vector (9 values, normalized units): ``[fx, fy, cx, cy, k1, k2, k3, p1, p2]`` with ``f = f_px / w * 2`` and
  ``c`` normalized like a point.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

INTRINSIC_SIZE = 9


def _is_torch(x: object) -> bool:
    return isinstance(x, torch.Tensor)


def _like(value, reference):
    """Convert `value` (array-like) to the array type, dtype and device of `reference`."""
    if _is_torch(reference):
        return torch.as_tensor(value, dtype=reference.dtype, device=reference.device)
    dtype = reference.dtype if np.issubdtype(reference.dtype, np.floating) else np.float64
    return np.asarray(value, dtype=dtype)


def _as_float_array(x):
    """numpy input -> floating numpy array (ints become float64); torch tensors are returned unchanged."""
    if _is_torch(x):
        return x if x.is_floating_point() else x.double()
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


def _cross(a, b):
    if _is_torch(a):
        return torch.linalg.cross(a, b, dim=-1)
    return np.cross(a, b)


def _concat(parts, axis):
    if _is_torch(parts[0]):
        return torch.cat(parts, dim=axis)
    return np.concatenate(parts, axis=axis)


def _sum_last(x):
    """Sum over the last axis, keeping it (size 1)."""
    if _is_torch(x):
        return x.sum(dim=-1, keepdim=True)
    return x.sum(axis=-1, keepdims=True)


def _clip(x, low, high):
    if _is_torch(x):
        return torch.clamp(x, min=low, max=high)
    return np.clip(x, low, high)


# --- screen coordinates --------------------------------------------------------------------------------------------


def normalize_screen_coordinates(points: Array, w: float, h: float) -> Array:
    """Pixels -> normalized screen coordinates: ``x / w * 2 - [1, h / w]`` (last axis = (x, y))."""
    points = _as_float_array(points)
    if points.shape[-1] != 2:
        raise ValueError(f"expected (..., 2) pixel coordinates, got shape {tuple(points.shape)}")
    return points / w * 2 - _like([1.0, h / w], points)


def image_coordinates(points: Array, w: float, h: float) -> Array:
    """Normalized screen coordinates -> pixels (inverse of `normalize_screen_coordinates`)."""
    points = _as_float_array(points)
    if points.shape[-1] != 2:
        raise ValueError(f"expected (..., 2) normalized coordinates, got shape {tuple(points.shape)}")
    return (points + _like([1.0, h / w], points)) * w / 2


# --- quaternions and rigid transforms ------------------------------------------------------------------------------


def qrot(q: Array, v: Array) -> Array:
    """Rotate 3D vectors ``v (..., 3)`` by unit quaternions ``q (..., 4)`` (w, x, y, z); leading dims broadcast."""
    if q.shape[-1] != 4 or v.shape[-1] != 3:
        raise ValueError(f"qrot expects (..., 4) and (..., 3), got {tuple(q.shape)} and {tuple(v.shape)}")
    q = _like(q, v)
    axis = q[..., 1:]
    if _is_torch(v):
        axis, v_b = torch.broadcast_tensors(axis, v)
        w = torch.broadcast_to(q[..., :1], v_b.shape[:-1] + (1,))
    else:
        axis, v_b = np.broadcast_arrays(axis, v)
        w = np.broadcast_to(q[..., :1], v_b.shape[:-1] + (1,))
    uv = _cross(axis, v_b)
    uuv = _cross(axis, uv)
    return v_b + 2 * (w * uv + uuv)


def qinverse(q: Array) -> Array:
    """Inverse of unit quaternions (the conjugate): ``(w, -x, -y, -z)``."""
    q = _as_float_array(q)
    if q.shape[-1] != 4:
        raise ValueError(f"expected (..., 4) quaternions, got shape {tuple(q.shape)}")
    return q * _like([1.0, -1.0, -1.0, -1.0], q)


def world_to_camera(points: Array, orientation, translation) -> Array:
    """World points ``(..., 3)`` -> camera space, for a camera with camera-to-world `orientation` and position
    `translation` (same units as the points)."""
    points = _as_float_array(points)
    translation = _like(translation, points)
    return qrot(qinverse(_like(orientation, points)), points - translation)


def camera_to_world(points: Array, orientation, translation) -> Array:
    """Camera-space points ``(..., 3)`` -> world space (inverse of `world_to_camera`)."""
    points = _as_float_array(points)
    return qrot(_like(orientation, points), points) + _like(translation, points)


# --- projection ----------------------------------------------------------------------------------------------------


def _broadcast_intrinsic(intrinsic, points):
    """Shape the intrinsic vector(s) so they broadcast against ``points (..., 3)``.

    ``(9,)`` applies to every point; ``(B, 9)`` (or any leading dims that prefix the points' leading dims) applies
    per leading index, as VideoPose3D's ``(N, 9)`` camera batches do.
    """
    intrinsic = _like(intrinsic, points)
    if intrinsic.shape[-1] != INTRINSIC_SIZE:
        raise ValueError(f"expected (..., {INTRINSIC_SIZE}) intrinsic parameters, got shape {tuple(intrinsic.shape)}")
    lead = intrinsic.shape[:-1]
    if tuple(points.shape[: len(lead)]) != tuple(lead):
        raise ValueError(f"intrinsic batch {tuple(lead)} does not prefix the points' shape {tuple(points.shape)}")
    missing = points.ndim - intrinsic.ndim
    return intrinsic.reshape(tuple(lead) + (1,) * missing + (INTRINSIC_SIZE,))


def _perspective_divide(points):
    """``x / z`` for camera points, clamped to [-1, 1] (VideoPose3D's guard against points near/behind the camera)."""
    if points.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) camera-space points, got shape {tuple(points.shape)}")
    return _clip(points[..., :2] / points[..., 2:], -1.0, 1.0)


def project_to_2d(points: Array, intrinsic) -> Array:
    """Project camera-space points ``(..., 3)`` to normalized screen coordinates with lens distortion.

    Distortion model (VideoPose3D's): with ``u = clamp(x/z, -1, 1)`` and ``r2 = |u|^2``,
    ``u_d = u * (1 + k1 r2 + k2 r2^2 + k3 r2^3 + p . u) + p * r2`` and the result is ``f * u_d + c``.
    `intrinsic` is ``(9,)`` or batched ``(B, 9)`` matching the first axis of `points`.
    """
    points = _as_float_array(points)
    params = _broadcast_intrinsic(intrinsic, points)
    f, c, k, p = params[..., 0:2], params[..., 2:4], params[..., 4:7], params[..., 7:9]
    u = _perspective_divide(points)
    r2 = _sum_last(u**2)
    radial = 1 + _sum_last(k * _concat([r2, r2**2, r2**3], axis=-1))
    tangential = _sum_last(p * u)
    distorted = u * (radial + tangential) + p * r2
    return f * distorted + c


def project_to_2d_linear(points: Array, intrinsic) -> Array:
    """Pinhole projection without distortion (only fx, fy, cx, cy of the 9-vector are used)."""
    points = _as_float_array(points)
    params = _broadcast_intrinsic(intrinsic, points)
    return params[..., 0:2] * _perspective_divide(points) + params[..., 2:4]


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


def flip_intrinsic(intrinsic: Array) -> Array:
    """Intrinsics of the horizontally mirrored image (x -> -x in normalized coordinates): negate cx and p1.

    With these, ``project_to_2d(mirrored points, flip_intrinsic(K))`` equals the mirror of ``project_to_2d(points, K)``.
    Works on ``(..., 9)`` numpy arrays or tensors and returns a new array.
    """
    intrinsic = _as_float_array(intrinsic)
    if intrinsic.shape[-1] != INTRINSIC_SIZE:
        raise ValueError(f"expected (..., {INTRINSIC_SIZE}) intrinsic parameters, got shape {tuple(intrinsic.shape)}")
    sign = [1.0] * INTRINSIC_SIZE
    sign[2] = sign[7] = -1.0
    return intrinsic * _like(sign, intrinsic)
