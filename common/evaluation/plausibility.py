"""How right a 3D prediction looks when there is no ground truth: a plausibility report from the prediction alone.

Four measurements, each a property every real motion has:

- **bone length variation**: a person's bones do not change length. Per bone, the standard deviation of its length
  over time divided by its median length (coefficient of variation); reported as the median and the worst bone.
- **left/right asymmetry**: mirrored bones (left / right upper arm, forearm, thigh, shin, ...) have nearly equal
  lengths. Per pair, ``|L - R| / mean(L, R)`` of the median lengths; reported as the median and the worst pair.
- **2D reprojection error**: the 3D should explain the 2D it was lifted from. Each frame's root-relative 3D is fitted
  to the 2D keypoints with a weak-perspective camera (scale and 2D translation, closed-form least squares; no
  rotation: the prediction is in the camera's frame), then the mean distance between the reprojected and the given
  2D joints, in pixels and as a fraction of the person's 2D height (the frame's keypoint bounding-box height).
- **jitter**: real joints accelerate smoothly. Mean magnitude of the root-relative joint acceleration
  ``(x[t+1] - 2 x[t] + x[t-1]) * fps^2`` in m/s^2.

`format_report` prints them in one block; the same numbers on Human3.6M predictions, where MPJPE is known, calibrate
what a value means (docs/MODEL_ZOO.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from common.core.errors import UserError
from common.geometry.skeleton import Skeleton


@dataclass(frozen=True)
class PlausibilityReport:
    """The report's numbers (fractions are plain ratios, not percent)."""

    frames: int
    bone_variation_median: float
    bone_variation_max: float
    worst_bone: str
    asymmetry_median: float
    asymmetry_max: float
    worst_pair: str
    reprojection_px: float | None
    reprojection_height_fraction: float | None
    jitter_m_s2: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def bone_lengths(poses: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(T, B) length of every bone ``(child, parent)`` of `skeleton.bones()` in every frame."""
    children, parents = (np.array(side) for side in zip(*skeleton.bones()))
    return np.linalg.norm(poses[:, children] - poses[:, parents], axis=-1)


def mirrored_bone_pairs(skeleton: Skeleton) -> list[tuple[int, int]]:
    """Index pairs into `skeleton.bones()` of bones whose child joints mirror each other (left, right)."""
    bone_of_child = {child: index for index, (child, _) in enumerate(skeleton.bones())}
    return [(bone_of_child[left], bone_of_child[right])
            for left, right in zip(skeleton.joints_left(), skeleton.joints_right())
            if left in bone_of_child and right in bone_of_child]


def _bone_name(skeleton: Skeleton, bone: int) -> str:
    child, parent = skeleton.bones()[bone]
    names = skeleton.joint_names()
    return f"{names[parent]}-{names[child]}" if names else f"{parent}-{child}"


def weak_perspective_reprojection(poses: np.ndarray, keypoints_2d: np.ndarray) -> np.ndarray:
    """(T, J, 2) the 3D x/y of each frame mapped onto the 2D by the least-squares scale and translation."""
    xy = poses[..., :2] - poses[..., :2].mean(axis=1, keepdims=True)
    centre_2d = keypoints_2d.mean(axis=1, keepdims=True)
    target = keypoints_2d - centre_2d
    scale = (xy * target).sum(axis=(1, 2)) / np.maximum((xy * xy).sum(axis=(1, 2)), 1e-12)
    return scale[:, None, None] * xy + centre_2d


def _check(poses: np.ndarray, skeleton: Skeleton, keypoints_2d: np.ndarray | None) -> None:
    if poses.ndim != 3 or poses.shape[1:] != (skeleton.num_joints(), 3):
        raise UserError(f"plausibility: expected 3D poses (T, {skeleton.num_joints()}, 3), got {poses.shape}")
    if not np.isfinite(poses).all():
        raise UserError("plausibility: the 3D prediction contains NaN or infinite values")
    if keypoints_2d is not None and keypoints_2d.shape != (*poses.shape[:2], 2):
        raise UserError(f"plausibility: 2D keypoints {keypoints_2d.shape} do not match the 3D {poses.shape[:2]}")


def plausibility_report(poses: np.ndarray, skeleton: Skeleton, fps: float | None = None,
                        keypoints_2d: np.ndarray | None = None) -> PlausibilityReport:
    """The report for ``poses`` (T, J, 3) metres; ``keypoints_2d`` (T, J, 2) pixels of the same frames (optional);
    ``fps`` for the jitter (None: no jitter)."""
    poses = np.asarray(poses, dtype=np.float64)
    _check(poses, skeleton, keypoints_2d)
    lengths = bone_lengths(poses, skeleton)
    medians = np.median(lengths, axis=0)
    variation = lengths.std(axis=0) / np.maximum(medians, 1e-9)
    pairs = mirrored_bone_pairs(skeleton)
    asymmetry = np.array([abs(medians[a] - medians[b]) / max((medians[a] + medians[b]) / 2, 1e-9) for a, b in pairs])
    worst_pair = pairs[int(asymmetry.argmax())]
    reprojection_px = height_fraction = jitter = None
    if keypoints_2d is not None:
        keypoints_2d = np.asarray(keypoints_2d, dtype=np.float64)
        errors = np.linalg.norm(weak_perspective_reprojection(poses, keypoints_2d) - keypoints_2d, axis=-1).mean(1)
        heights = np.ptp(keypoints_2d[..., 1], axis=1)
        reprojection_px = float(errors.mean())
        height_fraction = float((errors / np.maximum(heights, 1e-9)).mean())
    if fps is not None and len(poses) >= 3:
        relative = poses - poses[:, :1]
        acceleration = (relative[2:] - 2 * relative[1:-1] + relative[:-2]) * fps**2
        jitter = float(np.linalg.norm(acceleration, axis=-1).mean())
    return PlausibilityReport(
        frames=len(poses),
        bone_variation_median=float(np.median(variation)), bone_variation_max=float(variation.max()),
        worst_bone=_bone_name(skeleton, int(variation.argmax())),
        asymmetry_median=float(np.median(asymmetry)), asymmetry_max=float(asymmetry.max()),
        worst_pair=f"{_bone_name(skeleton, worst_pair[0])} / {_bone_name(skeleton, worst_pair[1])}",
        reprojection_px=reprojection_px, reprojection_height_fraction=height_fraction, jitter_m_s2=jitter,
    )


def format_report(report: PlausibilityReport) -> str:
    """The report as a few printable lines."""
    lines = [
        f"plausibility of the 3D ({report.frames} frames, from the prediction alone):",
        f"  bone length variation (std / median over time): median {report.bone_variation_median:.1%}, "
        f"worst {report.bone_variation_max:.1%} ({report.worst_bone})",
        f"  left/right bone asymmetry: median {report.asymmetry_median:.1%}, worst {report.asymmetry_max:.1%} "
        f"({report.worst_pair})",
    ]
    if report.reprojection_px is not None:
        lines.append(f"  2D reprojection error (weak-perspective fit per frame): {report.reprojection_px:.1f} px "
                     f"= {report.reprojection_height_fraction:.1%} of the person's 2D height")
    if report.jitter_m_s2 is not None:
        lines.append(f"  jitter (mean root-relative joint acceleration): {report.jitter_m_s2:.2f} m/s^2")
    return "\n".join(lines)
