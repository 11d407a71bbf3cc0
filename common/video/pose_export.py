"""Export 3D pose sequences by file extension: ``.npy``, ``.json``, ``.csv`` and ``.bvh`` (motion capture).

``.npy``, ``.json`` and ``.csv`` store the positions as given, ``(T, J, 3)`` in metres, together (json, csv) with the
joint names, the frame rate, the units and the coordinate convention (``coordinates``, by default the camera space of
the predictions: x right, y down, z forward, root-relative).

``.bvh`` writes a skeleton animation that Blender, Maya, MotionBuilder or Unity import:

- Units: centimetres (the usual BVH unit). Axes: Y up, right-handed; the rest pose faces +Z with the subject's left
  towards +X (the convention of most BVH files). The positions first go through `poses_for_display` (camera y down ->
  up is up, the lowest joint of the sequence on the floor Y = 0), then (x, y, z) with z up -> (x, z, -y): for a level
  camera, BVH = 100 * (x, -y, -z) of the camera space, so a subject facing the camera faces +Z.
- Offsets: the rest pose is a T-pose built from the subject's median bone lengths: the spine and head chain points up
  (+Y), the bones from the pelvis/thorax to the hips/shoulders point sideways (+X left, -X right), the legs down (-Y)
  and the arms sideways. A joint with several children (pelvis, thorax) keeps its central child (spine, neck) and
  every side child hangs from a zero-length "carrier" joint named ``<Parent>_<Child>`` (e.g. ``Hip_RHip``), so that
  every bone has a rotation of its own and the file reproduces any motion whose bone lengths are constant.
- Root: 6 channels (position in cm, then rotation); every other joint 3 rotation channels ``Zrotation Xrotation
  Yrotation`` (rotation matrix Rz Rx Ry, degrees, unwrapped over time). Leaves end in an ``End Site`` that extends
  their incoming bone by a quarter of its length.
- Rotations are solved from the positions with this twist convention: the root (and any branching joint with a
  left/right pair of children, i.e. the thorax) takes the frame spanned by its central bone and the left-minus-right
  line of that pair (pelvis: spine direction + hip line; thorax: neck direction + shoulder line); every other joint's
  rotation is the shortest rotation (no twist about the bone) that turns its rest bone direction, expressed in its
  parent's frame, onto the observed one. Joint positions are then reproduced exactly when bone lengths are constant;
  otherwise every bone keeps its observed direction but its median length, so the error at a joint is at most the
  sum of the length deviations of the bones between it and the root (tests/video/test_pose_export.py checks both;
  Human3.6M motion capture has constant bone lengths and is reproduced to < 0.1 mm, while adding 20 mm of noise per
  joint, about a lifting model's error, gives bone length deviations of 22 mm and position errors of 30 mm on average).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.core.errors import UserError
from common.core.files import atomic_write
from common.geometry.skeleton import Skeleton
from common.video.rendering import poses_for_display

CAMERA_COORDINATES = "camera space: x right, y down, z forward (away from the camera), root-relative"
EXPORT_FORMATS = {
    ".npy": "float32 (T, J, 3), metres, as given",
    ".json": "joint names, fps, units, coordinates and (T, J, 3) poses in metres, as given",
    ".csv": "one row per frame, x y z per joint in metres, as given",
    ".bvh": "skeleton animation, stood up (Y up), centimetres",
}
"""Extension -> what the file holds (printed by the entry points)."""
EXPORT_SUFFIXES = tuple(EXPORT_FORMATS)
BVH_SCALE = 100.0
"""BVH units per metre (centimetres)."""
END_SITE_FRACTION = 0.25
ROTATION_CHANNELS = "Zrotation Xrotation Yrotation"
_UP, _DOWN, _LEFT = np.array([0.0, 1.0, 0.0]), np.array([0.0, -1.0, 0.0]), np.array([1.0, 0.0, 0.0])


def check_export_path(path: str | os.PathLike, flag: str = "--export") -> Path:
    """The export path (``.npy`` appended when it has no extension, as numpy does), or UserError naming ``flag``
    when its extension is not one of `EXPORT_SUFFIXES`."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".npy")
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        raise UserError(f"{flag} {path}: unknown extension {path.suffix or '(none)'!r}, expected one of "
                        f"{', '.join(EXPORT_SUFFIXES)}")
    return path


def export_poses(path: str | os.PathLike, poses: np.ndarray, fps: float, skeleton: Skeleton, *,
                 flag: str = "--export", coordinates: str = CAMERA_COORDINATES,
                 orientation: np.ndarray | None = None) -> Path:
    """Write ``poses`` ``(T, J, 3)`` (metres) to ``path`` in the format of its extension, atomically.

    ``coordinates`` describes the frame of ``poses`` (stored in .json/.csv); ``orientation`` is the camera's
    camera-to-world quaternion used to put the .bvh upright (see `poses_for_display`; None: a level camera).
    """
    path = check_export_path(path, flag)
    poses = np.asarray(poses, dtype=np.float32)
    if poses.ndim != 3 or poses.shape[1:] != (skeleton.num_joints(), 3) or len(poses) == 0:
        raise ValueError(f"poses of shape {poses.shape}, expected (T, {skeleton.num_joints()}, 3) with T > 0")
    names = skeleton.joint_names() or [f"joint{j}" for j in range(skeleton.num_joints())]
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return atomic_write(path, lambda tmp: np.save(tmp, poses))
    if suffix == ".json":
        text = json.dumps({"joint_names": names, "parents": skeleton.parents().tolist(), "fps": float(fps),
                           "units": "metres", "coordinates": coordinates, "shape": "frames x joints x (x, y, z)",
                           "poses": np.round(poses.astype(np.float64), 6).tolist()})
    elif suffix == ".csv":
        text = _csv_text(poses, fps, names, coordinates)
    else:
        text = bvh_text(poses_for_display(poses, orientation), fps, skeleton)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _csv_text(poses: np.ndarray, fps: float, names: list[str], coordinates: str) -> str:
    buffer = io.StringIO()
    buffer.write(f"# 3D poses: one row per frame, x y z of every joint\n# fps: {fps:g}\n# units: metres\n"
                 f"# coordinates: {coordinates}\n")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["frame", "time_s"] + [f"{name}_{axis}" for name in names for axis in "xyz"])
    for index, pose in enumerate(poses):
        writer.writerow([index, f"{index / fps:.6f}"] + [f"{v:.6f}" for v in pose.reshape(-1)])
    return buffer.getvalue()


# --- BVH -----------------------------------------------------------------------------------------------------------


@dataclass
class _BvhJoint:
    name: str
    parent: int  # index of the parent BVH joint, -1 for the root
    source: int  # skeleton joint at which this BVH joint sits
    offset: np.ndarray  # rest offset from the parent, BVH units
    aim: int | None = None  # skeleton joint whose bone this joint's rotation orients (None: a leaf)
    aim_direction: np.ndarray | None = None  # rest direction of that bone
    twist_pair: tuple[int, int] | None = None  # (left, right) skeleton joints giving the twist


def _bvh_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def _bvh_hierarchy(skeleton: Skeleton, lengths: np.ndarray) -> list[_BvhJoint]:
    """The BVH joints in depth-first order (parents first); see the module docstring for the design."""
    names = [_bvh_name(n) for n in (skeleton.joint_names() or [f"joint{j}" for j in range(skeleton.num_joints())])]
    left, right = set(skeleton.joints_left()), set(skeleton.joints_right())
    children = skeleton.children()
    roots = [j for j, p in enumerate(skeleton.parents()) if p < 0]
    if len(roots) != 1:
        raise ValueError(f"BVH export needs a single root joint, the skeleton has {len(roots)}")
    joints: list[_BvhJoint] = []

    def side_direction(child: int) -> np.ndarray:
        return _LEFT if child in left else -_LEFT

    def add(source: int, parent: int, offset: np.ndarray, chain: np.ndarray, is_root: bool) -> None:
        index = len(joints)
        joints.append(_BvhJoint(names[source], parent, source, offset))
        kids = children[source]
        if len(kids) == 1:
            joints[index].aim, joints[index].aim_direction = kids[0], chain
            add(kids[0], index, chain * lengths[kids[0]], chain, False)
            return
        central = [c for c in kids if c not in left and c not in right]
        if len(kids) > 1 and len(central) != 1:
            raise ValueError(f"BVH export: joint {names[source]} branches without exactly one central child")
        if not kids:
            return
        pairs = [(a, b) for a, b in zip(skeleton.joints_left(), skeleton.joints_right()) if a in kids and b in kids]
        joints[index].aim, joints[index].aim_direction = central[0], _UP
        joints[index].twist_pair = pairs[0] if pairs else None
        add(central[0], index, _UP * lengths[central[0]], _UP, False)
        for kid in kids:
            if kid == central[0]:
                continue
            side = side_direction(kid)
            carrier = len(joints)
            joints.append(_BvhJoint(f"{names[source]}_{names[kid]}", index, source, np.zeros(3), kid, side))
            add(kid, carrier, side * lengths[kid], _DOWN if is_root else side, False)

    add(roots[0], -1, np.zeros(3), _UP, True)
    return joints


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _shortest_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` rotations turning the unit vector ``a`` (3,) onto the unit vectors ``b`` (T, 3) without twist."""
    a = np.broadcast_to(a, b.shape)
    axis = np.cross(a, b)
    cos = np.sum(a * b, axis=-1)
    skew = np.zeros(b.shape[:-1] + (3, 3))
    skew[..., 0, 1], skew[..., 0, 2], skew[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    skew = skew - np.swapaxes(skew, -1, -2)
    opposite = cos < -1 + 1e-9
    factor = 1.0 / np.where(opposite, 1.0, 1.0 + cos)
    rotation = np.eye(3) + skew + skew @ skew * factor[..., None, None]
    if np.any(opposite):  # half turn about any axis perpendicular to a
        normal = _normalize(np.cross(a[opposite], np.where(np.abs(a[opposite, :1]) < 0.9, _LEFT, _UP)))
        rotation[opposite] = 2 * normal[..., :, None] * normal[..., None, :] - np.eye(3)
    return rotation


def _frame(main: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Orthonormal ``(..., 3, 3)`` frames with columns (second orthogonalized, main, second x main)."""
    main = _normalize(main)
    second = second - np.sum(second * main, axis=-1, keepdims=True) * main
    degenerate = np.linalg.norm(second, axis=-1) < 1e-9
    second[degenerate] = np.cross(main[degenerate], [0.0, 0.0, 1.0])  # only when the pair lines up with the bone
    second = _normalize(second)
    return np.stack([second, main, np.cross(second, main)], axis=-1)


def _solve_rotations(joints: list[_BvhJoint], positions: np.ndarray) -> np.ndarray:
    """Local rotation matrices ``(T, len(joints), 3, 3)`` of every BVH joint (positions in BVH axes)."""
    num_frames = len(positions)
    global_rotations = np.zeros((num_frames, len(joints), 3, 3))
    local = np.zeros_like(global_rotations)
    identity = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
    for index, joint in enumerate(joints):
        parent = global_rotations[:, joint.parent] if joint.parent >= 0 else identity
        if joint.aim is None:
            rotation = np.array(parent)
        else:
            bone = _normalize(positions[:, joint.aim] - positions[:, joint.source])
            if joint.twist_pair is not None:
                line = positions[:, joint.twist_pair[0]] - positions[:, joint.twist_pair[1]]
                rest = _frame(joint.aim_direction[None], _LEFT[None])
                rotation = _frame(bone, line) @ np.swapaxes(rest, -1, -2)
            else:
                in_parent = np.einsum("tji,tj->ti", parent, bone)
                rotation = parent @ _shortest_rotation(joint.aim_direction, in_parent)
        global_rotations[:, index] = rotation
        local[:, index] = np.swapaxes(parent, -1, -2) @ rotation
    return local


def _euler_zxy(rotation: np.ndarray) -> np.ndarray:
    """Angles ``(..., 3)`` in degrees (z, x, y) with ``rotation = Rz(z) Rx(x) Ry(y)``."""
    x = np.arcsin(np.clip(rotation[..., 2, 1], -1.0, 1.0))
    z = np.arctan2(-rotation[..., 0, 1], rotation[..., 1, 1])
    y = np.arctan2(-rotation[..., 2, 0], rotation[..., 2, 2])
    locked = np.abs(rotation[..., 2, 1]) > 1 - 1e-9  # gimbal lock: put the whole turn about the vertical into z
    z = np.where(locked, np.arctan2(rotation[..., 1, 0], rotation[..., 0, 0]), z)
    y = np.where(locked, 0.0, y)
    return np.degrees(np.stack([z, x, y], axis=-1))


def _numbers(values: np.ndarray) -> str:
    return " ".join(f"{v + 0.0:.6f}" for v in values)  # + 0.0: no "-0.000000"


def _hierarchy_text(joints: list[_BvhJoint], lengths: np.ndarray) -> list[str]:
    kids = [[k for k, j in enumerate(joints) if j.parent == index] for index in range(len(joints))]
    lines = ["HIERARCHY"]

    def emit(index: int, depth: int) -> None:
        joint, pad = joints[index], "  " * depth
        lines.append(f"{pad}{'ROOT' if joint.parent < 0 else 'JOINT'} {joint.name}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {_numbers(joint.offset)}")
        channels = "6 Xposition Yposition Zposition " if joint.parent < 0 else "3 "
        lines.append(f"{pad}  CHANNELS {channels}{ROTATION_CHANNELS}")
        for kid in kids[index]:
            emit(kid, depth + 1)
        if not kids[index]:
            incoming = joint.offset / max(np.linalg.norm(joint.offset), 1e-12)
            end = incoming * END_SITE_FRACTION * lengths[joint.source]
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_numbers(end)}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    return lines


def bvh_text(poses_display: np.ndarray, fps: float, skeleton: Skeleton) -> str:
    """BVH file contents for world-aligned poses ``(T, J, 3)`` (metres, z up, as `poses_for_display` returns)."""
    poses_display = np.asarray(poses_display, dtype=np.float64)
    positions = np.stack([poses_display[..., 0], poses_display[..., 2], -poses_display[..., 1]], axis=-1) * BVH_SCALE
    lengths = np.zeros(skeleton.num_joints())
    for child, parent in skeleton.bones():
        lengths[child] = np.median(np.linalg.norm(positions[:, child] - positions[:, parent], axis=-1))
    joints = _bvh_hierarchy(skeleton, lengths)
    angles = np.unwrap(_euler_zxy(_solve_rotations(joints, positions)), period=360.0, axis=0)
    root = positions[:, joints[0].source]
    motion = np.concatenate([root, angles.reshape(len(positions), -1)], axis=1)
    buffer = io.StringIO()
    np.savetxt(buffer, motion, fmt="%.6f")
    lines = _hierarchy_text(joints, lengths)
    lines += ["MOTION", f"Frames: {len(positions)}", f"Frame Time: {1.0 / fps:.8f}"]
    return "\n".join(lines) + "\n" + buffer.getvalue()
