"""3D pose errors and training losses (metres in, metres out).

Every function accepts numpy arrays or torch tensors of shape ``(..., J, 3)`` (any leading dims: ``(T, J, 3)`` whole
sequences for evaluation, ``(B, F, J, 3)`` clips for training) and returns the matching type: a 0-dim tensor (which
keeps the autograd graph) for torch inputs, a Python-compatible ``numpy.float64`` for numpy inputs (numpy inputs are
evaluated in float64).

- `mpjpe` (protocol #1), `weighted_mpjpe`, `p_mpjpe` (protocol #2: per-frame similarity Procrustes, reflections
  excluded), `n_mpjpe` (per-frame optimal scale), `mean_velocity_error` (MPJVE).
- `temporal_consistency_loss`: MixSTE's TCLoss, the joint-weighted mean squared first difference over frames.
- `mixste_loss`: MixSTE's training objective (weighted MPJPE + 0.5 TCLoss + 2.0 velocity error).
- `pck` / `auc`: MPI-INF-3DHP 3DPCK at 150 mm and its area under the curve over 0..150 mm (31 thresholds), in percent.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from common.skeleton import Skeleton, h36m_17

Array = TypeVar("Array", np.ndarray, torch.Tensor)

H36M_JOINT_WEIGHTS = (1.0, 1.0, 2.5, 2.5, 1.0, 2.5, 2.5, 1.0, 1.0, 1.0, 1.5, 1.5, 4.0, 4.0, 1.5, 4.0, 4.0)
"""MixSTE's per-joint weights for the H36M-17 order (weighted MPJPE and TCLoss): limbs' ends count more."""

PCK_THRESHOLD = 0.150
"""3DPCK threshold in metres."""

AUC_THRESHOLDS = np.linspace(0.0, 0.150, 31)
"""3DPCK thresholds (metres) averaged by `auc`: 0, 5, ..., 150 mm."""


def _is_torch(x: object) -> bool:
    return isinstance(x, torch.Tensor)


def _prepare(predicted, target):
    """Validate shapes and bring both inputs to one type (float64 numpy, or torch with the predicted dtype)."""
    if _is_torch(predicted) or _is_torch(target):
        reference = predicted if _is_torch(predicted) else target
        predicted = torch.as_tensor(predicted, dtype=reference.dtype, device=reference.device)
        target = torch.as_tensor(target, dtype=reference.dtype, device=reference.device)
    else:
        predicted = np.asarray(predicted, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
    if tuple(predicted.shape) != tuple(target.shape):
        raise ValueError(f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} shapes differ")
    if predicted.ndim < 2:
        raise ValueError(f"expected (..., J, C) poses, got shape {tuple(predicted.shape)}")
    return predicted, target


def _norm(x):
    """Euclidean norm over the last axis."""
    if _is_torch(x):
        return torch.linalg.vector_norm(x, dim=-1)
    return np.linalg.norm(x, axis=-1)


def _mean(x):
    return x.mean() if _is_torch(x) else np.float64(np.mean(x))


def _weights_like(weights, reference, num_joints: int):
    if _is_torch(reference):
        weights = torch.as_tensor(weights, dtype=reference.dtype, device=reference.device)
    else:
        weights = np.asarray(weights, dtype=np.float64)
    if tuple(weights.shape) != (num_joints,):
        raise ValueError(f"expected {num_joints} joint weights, got shape {tuple(weights.shape)}")
    return weights


# --- position errors -----------------------------------------------------------------------------------------------


def joint_errors(predicted: Array, target: Array) -> Array:
    """Per-joint Euclidean distances ``(..., J)`` (the quantity every error below averages)."""
    predicted, target = _prepare(predicted, target)
    return _norm(predicted - target)


def mpjpe(predicted: Array, target: Array):
    """Mean per-joint position error (protocol #1): mean Euclidean distance over every joint of every frame."""
    return _mean(joint_errors(predicted, target))


def weighted_mpjpe(predicted: Array, target: Array, weights):
    """MPJPE with per-joint weights ``(J,)``: ``mean(w_j * |pred - target|)`` (MixSTE's training loss)."""
    predicted, target = _prepare(predicted, target)
    weights = _weights_like(weights, predicted, predicted.shape[-2])
    return _mean(weights * _norm(predicted - target))


def n_mpjpe(predicted: Array, target: Array):
    """MPJPE after scaling each frame's prediction by the least-squares optimal factor
    ``sum(pred . target) / sum(pred . pred)`` over its joints."""
    predicted, target = _prepare(predicted, target)
    if _is_torch(predicted):
        numerator = (predicted * target).sum(dim=(-1, -2), keepdim=True)
        denominator = (predicted * predicted).sum(dim=(-1, -2), keepdim=True)
    else:
        numerator = (predicted * target).sum(axis=(-1, -2), keepdims=True)
        denominator = (predicted * predicted).sum(axis=(-1, -2), keepdims=True)
    return _mean(_norm(numerator / denominator * predicted - target))


def procrustes_align(predicted: Array, target: Array) -> Array:
    """Align every frame ``(J, 3)`` of `predicted` to `target` by the similarity transform (scale, rotation,
    translation) that minimises the squared error; improper rotations (reflections) are excluded."""
    predicted, target = _prepare(predicted, target)
    torch_mode = _is_torch(predicted)
    shape = predicted.shape
    pred = predicted.reshape(-1, shape[-2], shape[-1])
    gt = target.reshape(-1, shape[-2], shape[-1])

    mu_pred = pred.mean(1, keepdim=True) if torch_mode else pred.mean(1, keepdims=True)
    mu_gt = gt.mean(1, keepdim=True) if torch_mode else gt.mean(1, keepdims=True)
    pred0, gt0 = pred - mu_pred, gt - mu_gt
    norm_pred = _norm(pred0.reshape(pred0.shape[0], -1))[:, None, None]
    norm_gt = _norm(gt0.reshape(gt0.shape[0], -1))[:, None, None]
    pred0, gt0 = pred0 / norm_pred, gt0 / norm_gt

    # Cross-covariance H = gt0^T pred0 = U S V^T; the best rotation applied as `pred @ R` is R = V U^T.
    linalg = torch.linalg if torch_mode else np.linalg
    u, s, vt = linalg.svd(gt0.transpose(1, 2) @ pred0 if torch_mode else gt0.transpose(0, 2, 1) @ pred0)
    v = vt.transpose(1, 2) if torch_mode else vt.transpose(0, 2, 1)
    ut = u.transpose(1, 2) if torch_mode else u.transpose(0, 2, 1)
    det_sign = torch.sign(linalg.det(v @ ut)) if torch_mode else np.sign(linalg.det(v @ ut))
    # Reflection fix: flip the axis of the smallest singular value when det(R) = -1.
    flip = torch.ones_like(s) if torch_mode else np.ones_like(s)
    flip[:, -1] = det_sign
    rotation = (v * flip[:, None, :]) @ ut
    trace = (s * flip).sum(-1)[:, None, None]

    scale = trace * norm_gt / norm_pred
    translation = mu_gt - scale * (mu_pred @ rotation)
    aligned = scale * (pred @ rotation) + translation
    return aligned.reshape(shape)


def p_mpjpe(predicted: Array, target: Array):
    """Procrustes-aligned MPJPE (protocol #2): `mpjpe` after per-frame `procrustes_align`."""
    predicted, target = _prepare(predicted, target)
    return _mean(_norm(procrustes_align(predicted, target) - target))


def mean_velocity_error(predicted: Array, target: Array, axis: int | None = None):
    """Mean per-joint velocity error: mean distance between the first differences of prediction and target.

    `axis` is the frame axis; by default the axis just before the joints (axis 0 of ``(T, J, 3)``, as VideoPose3D
    evaluates sequences; axis 1 of ``(B, F, J, 3)`` clips, as MixSTE trains).
    """
    predicted, target = _prepare(predicted, target)
    axis = predicted.ndim - 3 if axis is None else axis
    if _is_torch(predicted):
        velocity_error = torch.diff(predicted, dim=axis) - torch.diff(target, dim=axis)
    else:
        velocity_error = np.diff(predicted, axis=axis) - np.diff(target, axis=axis)
    return _mean(_norm(velocity_error))


# --- training losses ----------------------------------------------------------------------------------------------


def temporal_consistency_loss(predicted: Array, joint_weights=None, axis: int | None = None):
    """MixSTE's temporal consistency loss: ``mean(w_j * (x_{t+1} - x_t)^2)`` over frames, joints and coordinates.

    `joint_weights` ``(J,)`` (None: all ones); `axis` is the frame axis (default: the axis before the joints).
    """
    if predicted.ndim < 3:
        raise ValueError(f"expected (..., F, J, C) poses, got shape {tuple(predicted.shape)}")
    axis = predicted.ndim - 3 if axis is None else axis
    if _is_torch(predicted):
        difference = torch.diff(predicted, dim=axis)
    else:
        difference = np.diff(np.asarray(predicted, dtype=np.float64), axis=axis)
    squared = difference**2
    if joint_weights is not None:
        squared = squared * _weights_like(joint_weights, squared, predicted.shape[-2])[:, None]
    return _mean(squared)


def mixste_loss(
    predicted: Array,
    target: Array,
    joint_weights=None,
    tc_weight: float = 0.5,
    velocity_weight: float = 2.0,
) -> dict:
    """MixSTE's training objective on ``(B, F, J, 3)`` clips.

    ``total = weighted_mpjpe(w) + tc_weight * temporal_consistency_loss(w) + velocity_weight * mean_velocity_error``
    with ``w = joint_weights`` (None: plain MPJPE and an unweighted TCLoss). Returns a dict with ``total`` and the
    three terms (``position``, ``temporal_consistency``, ``velocity``).
    """
    if joint_weights is None:
        position = mpjpe(predicted, target)
    else:
        position = weighted_mpjpe(predicted, target, joint_weights)
    consistency = temporal_consistency_loss(predicted, joint_weights)
    velocity = mean_velocity_error(predicted, target)
    total = position + tc_weight * consistency + velocity_weight * velocity
    return {"total": total, "position": position, "temporal_consistency": consistency, "velocity": velocity}


def joint_weights_for(layout: str | int | Skeleton) -> np.ndarray | None:
    """MixSTE's joint weights when predictions are in the H36M-17 order, else None.

    `layout` is a layout/dataset name (``"h36m"``), a joint count (17: the model's token order, which is always
    H36M-17, see docs/ARCHITECTURE.md) or a `Skeleton` (weights only if its tree is the H36M-17 one).
    """
    if isinstance(layout, Skeleton):
        is_h36m = layout == h36m_17()
    elif isinstance(layout, str):
        is_h36m = layout.lower() in ("h36m", "h36m17", "h36m_17")
    else:
        is_h36m = int(layout) == len(H36M_JOINT_WEIGHTS)
    return np.array(H36M_JOINT_WEIGHTS, dtype=np.float32) if is_h36m else None


# --- MPI-INF-3DHP ---------------------------------------------------------------------------------------------------


def _masked_fraction(correct, mask):
    if mask is None:
        return _mean(correct)
    if _is_torch(correct):
        mask = torch.as_tensor(mask, dtype=torch.bool, device=correct.device)
    else:
        mask = np.asarray(mask, dtype=bool)
    if tuple(mask.shape) != tuple(correct.shape):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the joints {tuple(correct.shape)}")
    if not mask.any():
        raise ValueError("mask selects no joint")
    return _mean(correct[mask])


def pck(predicted: Array, target: Array, threshold: float = PCK_THRESHOLD, mask=None):
    """3DPCK in percent: share of joints whose error is below `threshold` metres (strictly, as the MPI-INF-3DHP
    evaluation does). `mask` ``(..., J)`` optionally selects the joints that count."""
    errors = joint_errors(predicted, target)
    correct = (errors < threshold).to(errors.dtype) if _is_torch(errors) else (errors < threshold).astype(np.float64)
    return _masked_fraction(correct, mask) * 100


def auc(predicted: Array, target: Array, thresholds=AUC_THRESHOLDS, mask=None):
    """Area under the 3DPCK curve in percent: mean of `pck` over `thresholds` (default 0..150 mm, 5 mm steps)."""
    errors = joint_errors(predicted, target)
    values = []
    for threshold in np.asarray(thresholds, dtype=np.float64):
        correct = errors < float(threshold)
        correct = correct.to(errors.dtype) if _is_torch(errors) else correct.astype(np.float64)
        values.append(_masked_fraction(correct, mask) * 100)
    return torch.stack(values).mean() if _is_torch(errors) else np.float64(np.mean(values))
