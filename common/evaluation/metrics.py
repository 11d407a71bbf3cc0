"""3D pose errors (metres in, metres out).

Every function accepts numpy arrays or torch tensors of shape ``(..., J, 3)`` (any leading dims: ``(T, J, 3)`` whole
sequences for evaluation, ``(B, F, J, 3)`` clips for training). The work is written once, in torch: torch inputs keep
their dtype, device and autograd graph and give a 0-dim tensor; numpy inputs are evaluated in float64 and give a
``numpy.float64`` (`procrustes_align` / `joint_errors`: an array).

- `mpjpe` (protocol #1), `weighted_mpjpe`, `p_mpjpe` (protocol #2: per-frame similarity Procrustes, reflections
  excluded), `n_mpjpe` (per-frame optimal scale), `mean_velocity_error` (MPJVE).
- `pck` / `auc`: MPI-INF-3DHP 3DPCK at 150 mm and its area under the curve over 0..150 mm (31 thresholds), in percent.

The training losses built on these errors are in `common.training.losses`.
"""

from __future__ import annotations

import functools
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

PCK_THRESHOLD = 0.150
"""3DPCK threshold in metres."""

AUC_THRESHOLDS = np.linspace(0.0, 0.150, 31)
"""3DPCK thresholds (metres) averaged by `auc`: 0, 5, ..., 150 mm."""


def _torch_inside(metric):
    """Run ``metric(predicted, target, ...)`` on torch tensors: numpy inputs become float64 tensors (the result goes
    back to numpy), a torch input sets the dtype and device of both; the shapes must agree."""

    @functools.wraps(metric)
    def wrapper(predicted, target, *args, **kwargs):
        from_numpy = not (isinstance(predicted, torch.Tensor) or isinstance(target, torch.Tensor))
        reference = torch.as_tensor(predicted if isinstance(predicted, torch.Tensor) or from_numpy else target,
                                    dtype=torch.float64 if from_numpy else None)
        predicted = torch.as_tensor(predicted, dtype=reference.dtype, device=reference.device)
        target = torch.as_tensor(target, dtype=reference.dtype, device=reference.device)
        if predicted.shape != target.shape:
            raise ValueError(f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} shapes differ")
        if predicted.ndim < 2:
            raise ValueError(f"expected (..., J, C) poses, got shape {tuple(predicted.shape)}")
        result = metric(predicted, target, *args, **kwargs)
        if not from_numpy:
            return result
        return np.float64(result.item()) if result.ndim == 0 else result.numpy()

    return wrapper


def _like(values, reference: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``values`` (weights, a mask) as a tensor on the device of ``reference`` (with its dtype by default)."""
    return torch.as_tensor(values, dtype=dtype or reference.dtype, device=reference.device)


# --- position errors -----------------------------------------------------------------------------------------------


@_torch_inside
def joint_errors(predicted: Array, target: Array) -> Array:
    """Per-joint Euclidean distances ``(..., J)`` (the quantity every error below averages)."""
    return torch.linalg.vector_norm(predicted - target, dim=-1)


@_torch_inside
def mpjpe(predicted: Array, target: Array):
    """Mean per-joint position error (protocol #1): mean Euclidean distance over every joint of every frame."""
    return joint_errors(predicted, target).mean()


@_torch_inside
def weighted_mpjpe(predicted: Array, target: Array, weights):
    """MPJPE with per-joint weights ``(J,)``: ``mean(w_j * |pred - target|)`` (MixSTE's training loss)."""
    weights = _like(weights, predicted)
    if tuple(weights.shape) != (predicted.shape[-2],):
        raise ValueError(f"expected {predicted.shape[-2]} joint weights, got shape {tuple(weights.shape)}")
    return (weights * joint_errors(predicted, target)).mean()


@_torch_inside
def n_mpjpe(predicted: Array, target: Array):
    """MPJPE after scaling each frame's prediction by the least-squares optimal factor
    ``sum(pred . target) / sum(pred . pred)`` over its joints."""
    numerator = (predicted * target).sum(dim=(-1, -2), keepdim=True)
    denominator = (predicted * predicted).sum(dim=(-1, -2), keepdim=True)
    return mpjpe(numerator / denominator * predicted, target)


@_torch_inside
def procrustes_align(predicted: Array, target: Array) -> Array:
    """Align every frame ``(J, 3)`` of `predicted` to `target` by the similarity transform (scale, rotation,
    translation) that minimises the squared error; improper rotations (reflections) are excluded."""
    shape = predicted.shape
    pred = predicted.reshape(-1, shape[-2], shape[-1])
    gt = target.reshape(-1, shape[-2], shape[-1])

    mu_pred, mu_gt = pred.mean(1, keepdim=True), gt.mean(1, keepdim=True)
    pred0, gt0 = pred - mu_pred, gt - mu_gt
    norm_pred = torch.linalg.vector_norm(pred0, dim=(1, 2))[:, None, None]
    norm_gt = torch.linalg.vector_norm(gt0, dim=(1, 2))[:, None, None]
    pred0, gt0 = pred0 / norm_pred, gt0 / norm_gt

    # Cross-covariance H = gt0^T pred0 = U S V^T; the best rotation applied as `pred @ R` is R = V U^T.
    u, s, vt = torch.linalg.svd(gt0.transpose(1, 2) @ pred0)
    v, ut = vt.transpose(1, 2), u.transpose(1, 2)
    # Reflection fix: flip the axis of the smallest singular value when det(R) = -1.
    flip = torch.ones_like(s)
    flip[:, -1] = torch.sign(torch.linalg.det(v @ ut))
    rotation = (v * flip[:, None, :]) @ ut
    trace = (s * flip).sum(-1)[:, None, None]

    scale = trace * norm_gt / norm_pred
    translation = mu_gt - scale * (mu_pred @ rotation)
    aligned = scale * (pred @ rotation) + translation
    return aligned.reshape(shape)


@_torch_inside
def p_mpjpe(predicted: Array, target: Array):
    """Procrustes-aligned MPJPE (protocol #2): `mpjpe` after per-frame `procrustes_align`."""
    return mpjpe(procrustes_align(predicted, target), target)


@_torch_inside
def mean_velocity_error(predicted: Array, target: Array, axis: int | None = None):
    """Mean per-joint velocity error: mean distance between the first differences of prediction and target.

    `axis` is the frame axis; by default the axis just before the joints (axis 0 of ``(T, J, 3)``, as VideoPose3D
    evaluates sequences; axis 1 of ``(B, F, J, 3)`` clips, as MixSTE trains).
    """
    axis = predicted.ndim - 3 if axis is None else axis
    return mpjpe(torch.diff(predicted, dim=axis), torch.diff(target, dim=axis))


# --- MPI-INF-3DHP ---------------------------------------------------------------------------------------------------


def _correct_share(errors: torch.Tensor, thresholds: torch.Tensor, mask) -> torch.Tensor:
    """Percentage of the (masked) joints whose error is below each threshold, averaged over the thresholds."""
    correct = errors[..., None] < thresholds  # (..., J, K)
    if mask is not None:
        mask = _like(mask, errors, torch.bool)
        if mask.shape != errors.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match the joints {tuple(errors.shape)}")
        if not mask.any():
            raise ValueError("mask selects no joint")
        correct = correct[mask]
    return correct.sum().to(errors.dtype) * (100 / correct.numel())


@_torch_inside
def pck(predicted: Array, target: Array, threshold: float = PCK_THRESHOLD, mask=None):
    """3DPCK in percent: share of joints whose error is below `threshold` metres (strictly, as the MPI-INF-3DHP
    evaluation does). `mask` ``(..., J)`` optionally selects the joints that count."""
    errors = joint_errors(predicted, target)
    return _correct_share(errors, _like([float(threshold)], errors), mask)


@_torch_inside
def auc(predicted: Array, target: Array, thresholds=AUC_THRESHOLDS, mask=None):
    """Area under the 3DPCK curve in percent: mean of `pck` over `thresholds` (default 0..150 mm, 5 mm steps)."""
    errors = joint_errors(predicted, target)
    return _correct_share(errors, _like(np.asarray(thresholds, dtype=np.float64), errors), mask)
