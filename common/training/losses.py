"""MixSTE's training objective on ``(B, F, J, 3)`` clips of torch tensors (metres).

- `H36M_JOINT_WEIGHTS` / `joint_weights_for(layout)`: MixSTE's per-joint weights, only for the H36M-17 order.
- `temporal_consistency_loss`: MixSTE's TCLoss, the joint-weighted mean squared first difference over frames.
- `LossWeights` and `mixste_loss(predicted, target, weights)`: weighted MPJPE + ``lambda_tc`` * TCLoss +
  ``lambda_vel`` * velocity error (`common.evaluation.metrics.mean_velocity_error`), with every term by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from common.evaluation.metrics import mean_velocity_error, mpjpe, weighted_mpjpe
from common.geometry.skeleton import Skeleton, h36m_17

H36M_JOINT_WEIGHTS = (1.0, 1.0, 2.5, 2.5, 1.0, 2.5, 2.5, 1.0, 1.0, 1.0, 1.5, 1.5, 4.0, 4.0, 1.5, 4.0, 4.0)
"""MixSTE's per-joint weights for the H36M-17 order (weighted MPJPE and TCLoss): limbs' ends count more."""

TERMS = {"position": "(joint-weighted) MPJPE", "tc": "temporal consistency", "vel": "velocity error"}
"""The terms whose weighted sum is the ``total`` of `mixste_loss`, with what they measure."""


@dataclass(frozen=True)
class LossWeights:
    """Training objective: (weighted) MPJPE + ``lambda_tc`` * temporal consistency + ``lambda_vel`` * velocity error."""

    joint_weights: tuple[float, ...] | None = None  # None: plain MPJPE and an unweighted TC loss
    lambda_tc: float = 0.5
    lambda_vel: float = 2.0

    def factor(self, term: str) -> float:
        """The weight of one of `TERMS` in the total."""
        return {"position": 1.0, "tc": self.lambda_tc, "vel": self.lambda_vel}[term]


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


def temporal_consistency_loss(predicted: torch.Tensor, joint_weights=None) -> torch.Tensor:
    """``mean(w_j * (x_{t+1} - x_t)^2)`` over clips, frames, joints and coordinates of ``(..., F, J, 3)`` poses.

    `joint_weights` ``(J,)`` (None: all ones).
    """
    if predicted.ndim < 3:
        raise ValueError(f"expected (..., F, J, C) poses, got shape {tuple(predicted.shape)}")
    squared = torch.diff(predicted, dim=-3) ** 2
    if joint_weights is not None:
        weights = torch.as_tensor(joint_weights, dtype=predicted.dtype, device=predicted.device)
        if tuple(weights.shape) != (predicted.shape[-2],):
            raise ValueError(f"expected {predicted.shape[-2]} joint weights, got shape {tuple(weights.shape)}")
        squared = squared * weights[:, None]
    return squared.mean()


def mixste_loss(predicted: torch.Tensor, target: torch.Tensor, weights: LossWeights) -> dict[str, torch.Tensor]:
    """The loss terms of a batch as 0-dim tensors.

    ``total`` (the loss to back-propagate) = ``position`` (weighted MPJPE, plain MPJPE without joint weights)
    + ``lambda_tc * tc`` + ``lambda_vel * vel``; ``mpjpe`` is the plain MPJPE, detached (logs comparable with
    validation).
    """
    if weights.joint_weights is None:
        position = mpjpe(predicted, target)
    else:
        position = weighted_mpjpe(predicted, target, weights.joint_weights)
    terms = {"position": position, "tc": temporal_consistency_loss(predicted, weights.joint_weights),
             "vel": mean_velocity_error(predicted, target)}
    total = sum(weights.factor(name) * terms[name] for name in TERMS)
    return {"total": total, **terms, "mpjpe": mpjpe(predicted.detach(), target)}
