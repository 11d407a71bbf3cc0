"""Detector-shaped corruption of training 2D: make ground-truth 2D look like a 2D detector's output.

At video time the model reads MediaPipe/COCO keypoints converted to its Human3.6M tokens
(`common.geometry.keypoint_layouts`), not projected ground truth. `DetectorNoise.apply` corrupts a batch of training
clips ``(B, F, 17, 2)`` (model joint order, normalized screen coordinates) in the ways such 2D differs, each drawn per
clip with its own probability; magnitudes are fractions of the clip's 2D person height, all scaled by ``strength``:

- **COCO synthesis** (``synthesis_rate``): pelvis, spine and thorax are rebuilt from hips and shoulders with the COCO
  layout's own recipe (the joints the video path synthesizes are synthesized in training too), and the neck/nose and
  head points, which a COCO detector derives from the face, are moved along the thorax direction by a random factor
  in ``1 +- face_scale`` (the head point extrapolated from the eyes overshoots or falls short).
- **Jitter** (every clip): per-frame Gaussian noise (``frame_sigma``) plus a per-clip, per-joint offset
  (``joint_bias``), twice as large on the face-derived joints.
- **Outliers** (``outlier_rate`` per joint and frame): a displacement of up to ``outlier_size`` in a random direction.
- **Left/right swaps** (``swap_rate``): for a random run of frames the left and right arms, legs or both trade their
  2D (a detector confusing sides, e.g. behind an overlapping person); the 3D target keeps the true sides.
- **Scale and shift** (every clip): the whole clip scaled about its centre by ``1 +- scale`` and shifted by up to
  ``shift`` (people of every size and place in the frame; root-relative 3D is unchanged to first order).

``strength`` 0 turns everything off (`run.py --detector-noise`, default 0: MixSTE's clean recipe). The randomness comes
from a numpy Generator the caller passes (`TrainClips` seeds one per batch from the epoch-seeded global RNG, so runs
stay reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.geometry.keypoint_layouts import COCO, NUM_MODEL_JOINTS
from common.geometry.skeleton import H36M_17_LEFT, H36M_17_NAMES, H36M_17_RIGHT


def _coco_resynthesis() -> tuple[np.ndarray, tuple[int, ...]]:
    """``(17, 17)`` matrix rebuilding the model joints that the COCO recipe synthesizes from body joints alone (others
    kept), and the face-derived model joints (a COCO face point is among their sources)."""
    coco_to_model = {next(iter(src)): t for t, src in COCO.recipe.items() if len(src) == 1}
    matrix = np.eye(NUM_MODEL_JOINTS)
    face = []
    for target, sources in COCO.recipe.items():
        if len(sources) == 1:
            continue
        if all(COCO.joint_names[s][1:] in {"Hip", "Shoulder"} for s in sources):
            matrix[target] = 0.0
            for source, weight in sources.items():
                matrix[target, coco_to_model[source]] += weight
        else:
            face.append(target)
    face += [t for t, src in COCO.recipe.items() if len(src) == 1 and COCO.joint_names[next(iter(src))] == "Nose"]
    return matrix, tuple(sorted(face))


RESYNTHESIS, FACE_JOINTS = _coco_resynthesis()
THORAX = H36M_17_NAMES.index("Thorax")
SWAP_GROUPS = {
    "arms": tuple((l, r) for l, r in zip(H36M_17_LEFT, H36M_17_RIGHT) if H36M_17_NAMES[l][1:] in
                  {"Shoulder", "Elbow", "Wrist"}),
    "legs": tuple((l, r) for l, r in zip(H36M_17_LEFT, H36M_17_RIGHT) if H36M_17_NAMES[l][1:] in
                  {"Hip", "Knee", "Foot"}),
}
SWAP_GROUPS["both"] = SWAP_GROUPS["arms"] + SWAP_GROUPS["legs"]


@dataclass(frozen=True)
class DetectorNoise:
    """Magnitudes of the corruptions at ``strength`` 1 (see the module docstring)."""

    strength: float = 1.0
    synthesis_rate: float = 0.5
    face_scale: float = 0.3
    frame_sigma: float = 0.008
    joint_bias: float = 0.01
    outlier_rate: float = 0.004
    outlier_size: float = 0.15
    swap_rate: float = 0.1
    scale: float = 0.2
    shift: float = 0.1

    def apply(self, poses_2d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Corrupted copy of ``(B, F, 17, 2)`` float32 2D (model joint order); the input is not modified."""
        if poses_2d.ndim != 4 or poses_2d.shape[2] != NUM_MODEL_JOINTS or poses_2d.shape[3] != 2:
            raise ValueError(f"detector noise expects (B, F, {NUM_MODEL_JOINTS}, 2) 2D, got {poses_2d.shape}")
        x = poses_2d.astype(np.float64, copy=True)
        if self.strength <= 0:
            return x.astype(poses_2d.dtype)
        batch, frames = x.shape[:2]
        k = self.strength
        height = np.median(np.ptp(x[..., 1], axis=-1), axis=-1)[:, None, None, None]  # (B, 1, 1, 1)
        self._synthesize(x, rng.random(batch) < min(1.0, self.synthesis_rate * k), rng)
        joint_scale = np.ones((1, 1, NUM_MODEL_JOINTS, 1))
        joint_scale[:, :, list(FACE_JOINTS)] = 2.0
        x += height * joint_scale * k * (self.frame_sigma * rng.standard_normal(x.shape)
                                         + self.joint_bias * rng.standard_normal((batch, 1, NUM_MODEL_JOINTS, 2)))
        outliers = rng.random(x.shape[:3]) < min(1.0, self.outlier_rate * k)
        if outliers.any():
            angle = rng.uniform(0, 2 * np.pi, outliers.sum())
            size = height[:, :, :, 0].repeat(frames, 1).repeat(NUM_MODEL_JOINTS, 2)[outliers]
            size = size * rng.uniform(0, self.outlier_size * k, outliers.sum())
            x[outliers] += np.stack([np.cos(angle), np.sin(angle)], axis=-1) * size[:, None]
        self._swap(x, rng.random(batch) < min(1.0, self.swap_rate * k), rng)
        centre = x.mean(axis=(1, 2), keepdims=True)
        factor = 1.0 + rng.uniform(-self.scale * k, self.scale * k, (batch, 1, 1, 1))
        offset = rng.uniform(-self.shift * k, self.shift * k, (batch, 1, 1, 2))
        x = (x - centre) * factor + centre + offset
        return x.astype(poses_2d.dtype)

    def _synthesize(self, x: np.ndarray, chosen: np.ndarray, rng: np.random.Generator) -> None:
        if not chosen.any():
            return
        clips = x[chosen]
        rebuilt = np.einsum("tj,bfjc->bftc", RESYNTHESIS, clips)
        thorax = rebuilt[:, :, THORAX : THORAX + 1]
        factor = 1.0 + rng.uniform(-self.face_scale * self.strength, self.face_scale * self.strength,
                                   (len(clips), 1, len(FACE_JOINTS), 1))
        rebuilt[:, :, list(FACE_JOINTS)] = thorax + (clips[:, :, list(FACE_JOINTS)] - thorax) * factor
        x[chosen] = rebuilt

    @staticmethod
    def _swap(x: np.ndarray, chosen: np.ndarray, rng: np.random.Generator) -> None:
        frames = x.shape[1]
        names = tuple(SWAP_GROUPS)
        for clip in np.flatnonzero(chosen):
            pairs = np.array(SWAP_GROUPS[names[rng.integers(len(names))]])
            length = int(rng.integers(1, frames + 1))
            start = int(rng.integers(0, frames - length + 1))
            span = slice(start, start + length)
            x[clip, span, pairs[:, 0]], x[clip, span, pairs[:, 1]] = (x[clip, span, pairs[:, 1]].copy(),
                                                                      x[clip, span, pairs[:, 0]].copy())
