"""common/training/losses.py: MixSTE's TCLoss and objective against independent numpy formulas, the joint weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.geometry.skeleton import h36m_17, mpi_inf_3dhp_17
from common.training.losses import (
    H36M_JOINT_WEIGHTS,
    LossWeights,
    joint_weights_for,
    mixste_loss,
    temporal_consistency_loss,
)


def _clips(seed: int, shape=(2, 5, 17, 3)) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.normal(size=shape)), torch.tensor(rng.normal(size=shape))


def test_temporal_consistency_loss_matches_mixste_formula():
    predicted, _ = _clips(2)
    predicted.requires_grad_(True)
    loss = temporal_consistency_loss(predicted, H36M_JOINT_WEIGHTS)
    difference = (predicted[:, 1:] - predicted[:, :-1]).detach().numpy()
    expected = np.mean(difference**2 * np.asarray(H36M_JOINT_WEIGHTS)[None, None, :, None])
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    loss.backward()
    assert predicted.grad is not None and torch.isfinite(predicted.grad).all()


def test_temporal_consistency_loss_by_hand():
    still = torch.randn(1, 17, 3).repeat(4, 1, 1)
    assert temporal_consistency_loss(still).item() == 0.0  # a constant sequence has no temporal inconsistency
    ramp = torch.arange(4.0, dtype=torch.float64)[:, None, None] * torch.ones(4, 17, 3, dtype=torch.float64) * 0.1
    assert temporal_consistency_loss(ramp).item() == pytest.approx(0.01)  # unweighted: mean squared step
    with pytest.raises(ValueError, match="joint weights"):
        temporal_consistency_loss(ramp, [1.0, 2.0])


def test_mixste_loss_matches_independent_formula():
    predicted, target = _clips(0, (3, 5, 17, 3))
    terms = mixste_loss(predicted, target, LossWeights(H36M_JOINT_WEIGHTS, lambda_tc=0.5, lambda_vel=2.0))
    p, t, w = predicted.numpy(), target.numpy(), np.array(H36M_JOINT_WEIGHTS)
    position = np.mean(w * np.linalg.norm(p - t, axis=-1))
    consistency = np.mean(w[:, None] * np.diff(p, axis=1) ** 2)
    velocity = np.mean(np.linalg.norm(np.diff(p, axis=1) - np.diff(t, axis=1), axis=-1))
    plain = np.mean(np.linalg.norm(p - t, axis=-1))
    assert float(terms["position"]) == pytest.approx(position, rel=1e-12)
    assert float(terms["tc"]) == pytest.approx(consistency, rel=1e-12)
    assert float(terms["vel"]) == pytest.approx(velocity, rel=1e-12)
    assert float(terms["mpjpe"]) == pytest.approx(plain, rel=1e-12)
    assert float(terms["total"]) == pytest.approx(position + 0.5 * consistency + 2.0 * velocity, rel=1e-12)
    unweighted = mixste_loss(predicted, target, LossWeights(None, 0.0, 0.0))
    assert float(unweighted["total"]) == pytest.approx(plain, rel=1e-12)


def test_mixste_loss_keeps_the_graph_of_total_only():
    predicted, target = _clips(3)
    predicted.requires_grad_(True)
    terms = mixste_loss(predicted, target, LossWeights(H36M_JOINT_WEIGHTS))
    assert terms["total"].requires_grad and not terms["mpjpe"].requires_grad
    terms["total"].backward()
    assert torch.isfinite(predicted.grad).all() and predicted.grad.abs().sum() > 0


def test_joint_weights_lookup():
    assert H36M_JOINT_WEIGHTS == (1, 1, 2.5, 2.5, 1, 2.5, 2.5, 1, 1, 1, 1.5, 1.5, 4, 4, 1.5, 4, 4)  # MixSTE's values
    weights = joint_weights_for(h36m_17())
    assert weights is not None and weights.dtype == np.float32 and weights.tolist() == list(H36M_JOINT_WEIGHTS)
    assert joint_weights_for(17) is not None and joint_weights_for("h36m") is not None
    assert joint_weights_for(15) is None and joint_weights_for("humaneva15") is None
    assert joint_weights_for(mpi_inf_3dhp_17()) is None
