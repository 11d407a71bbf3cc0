"""Training loop pieces: the loss (MixSTE's terms, back-propagated as is), the lr schedule, clipping, epoch stats."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import OffsetModel
from torch.utils.data import DataLoader, TensorDataset

from common import training
from common.metrics import H36M_JOINT_WEIGHTS


def _clips(seed: int = 0, batch: int = 3, frames: int = 5):
    generator = torch.Generator().manual_seed(seed)
    predicted = torch.randn(batch, frames, 17, 3, generator=generator, dtype=torch.float64)
    target = torch.randn(batch, frames, 17, 3, generator=generator, dtype=torch.float64)
    return predicted, target


def test_pose_loss_matches_independent_formula():
    predicted, target = _clips()
    weights = training.LossWeights(H36M_JOINT_WEIGHTS, lambda_tc=0.5, lambda_vel=2.0)
    total, terms = training.pose_loss(predicted, target, weights)
    p, t, w = predicted.numpy(), target.numpy(), np.array(H36M_JOINT_WEIGHTS)
    position = np.mean(w * np.linalg.norm(p - t, axis=-1))
    consistency = np.mean(w[:, None] * np.diff(p, axis=1) ** 2)
    velocity = np.mean(np.linalg.norm(np.diff(p, axis=1) - np.diff(t, axis=1), axis=-1))
    plain = np.mean(np.linalg.norm(p - t, axis=-1))
    assert float(terms["position"]) == pytest.approx(position, rel=1e-12)
    assert float(terms["tc"]) == pytest.approx(consistency, rel=1e-12)
    assert float(terms["vel"]) == pytest.approx(velocity, rel=1e-12)
    assert float(terms["mpjpe"]) == pytest.approx(plain, rel=1e-12)
    assert float(total) == pytest.approx(position + 0.5 * consistency + 2.0 * velocity, rel=1e-12)
    unweighted_total, unweighted = training.pose_loss(predicted, target, training.LossWeights(None, 0.0, 0.0))
    assert float(unweighted_total) == pytest.approx(plain, rel=1e-12)


def test_train_step_backpropagates_the_loss_itself():
    """MixSTE's loss.backward(loss) would scale the gradient by the loss value; ours is d(loss)/d(theta)."""
    model = OffsetModel()
    inputs = torch.zeros(2, 4, 17, 2)
    targets = torch.zeros(2, 4, 17, 3)
    targets[..., 0] = 3.0  # every joint 3 m away along x: loss = |offset - (3,0,0)| = 3, gradient (-1, 0, 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    settings = training.StepSettings(training.LossWeights(None, 0.0, 0.0))
    terms = training.train_step(model, inputs, targets, optimizer, settings)
    assert terms["total"] == pytest.approx(3.0)
    # SGD step: offset = 0 - 0.1 * (-1, 0, 0); with loss.backward(loss) it would be 0.3 instead of 0.1
    torch.testing.assert_close(model.offset.detach(), torch.tensor([0.1, 0.0, 0.0]))


def test_gradient_clipping_bounds_the_step():
    model = OffsetModel()
    inputs = torch.zeros(1, 3, 17, 2)
    targets = torch.zeros(1, 3, 17, 3)
    targets[..., 1] = 1.0
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    weights = training.LossWeights(None, 0.0, 0.0)
    training.train_step(model, inputs, 10 * targets, optimizer, training.StepSettings(weights, grad_clip=0.25))
    # gradient (0, -1, 0) has norm 1, clipped to 0.25
    torch.testing.assert_close(model.offset.detach(), torch.tensor([0.0, 0.25, 0.0]))


def test_learning_rate_schedule():
    schedule = training.LrSchedule(lr=1e-3, lr_decay=0.9)
    assert training.learning_rate(schedule, 0) == pytest.approx(1e-3)
    assert training.learning_rate(schedule, 3, step=7, steps_per_epoch=10) == pytest.approx(1e-3 * 0.9**3)
    warm = training.LrSchedule(lr=1e-3, lr_decay=0.9, warmup_epochs=2)
    # linear warm-up over 2 epochs of 10 steps, on top of the decay
    assert training.learning_rate(warm, 0, step=0, steps_per_epoch=10) == pytest.approx(1e-3 / 20)
    assert training.learning_rate(warm, 1, step=4, steps_per_epoch=10) == pytest.approx(1e-3 * 0.9 * 15 / 20)
    assert training.learning_rate(warm, 2, step=0, steps_per_epoch=10) == pytest.approx(1e-3 * 0.81)


def test_optimizer_is_adamw_with_weight_decay():
    optimizer = training.make_optimizer(OffsetModel(), lr=2e-4, weight_decay=0.1)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["weight_decay"] == 0.1 and optimizer.param_groups[0]["lr"] == 2e-4


def test_train_one_epoch_statistics_and_lr():
    torch.manual_seed(0)
    inputs = torch.zeros(6, 4, 17, 2)
    targets = torch.zeros(6, 4, 17, 3)
    targets[..., 2] = 2.0
    loader = DataLoader(TensorDataset(inputs, targets, torch.zeros(6, 9)), batch_size=2)
    model = OffsetModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = training.LrSchedule(lr=0.5, lr_decay=0.5)
    stats = training.train_one_epoch(model, loader, optimizer, training.StepSettings(training.LossWeights(None, 0, 0)),
                                     schedule, epoch=1, device=torch.device("cpu"), progress=False)
    # epoch 1: lr 0.25 for 3 steps of gradient (0,0,-1): the loss goes 2.0, 1.75, 1.5 -> frame-weighted mean 1.75
    assert stats.steps == 3 and stats.frames == 6 * 4
    assert stats.losses["total"] == pytest.approx(1.75)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.25)
    torch.testing.assert_close(model.offset.detach(), torch.tensor([0.0, 0.0, 0.75]))
    assert stats.seconds > 0 and stats.frames_per_second == pytest.approx(24 / stats.seconds)
    assert 0 <= stats.data_share <= 1


def test_seed_epoch_is_a_function_of_seed_and_epoch():
    training.seed_epoch(3, 5)
    first = torch.rand(3)
    torch.manual_seed(123)
    training.seed_epoch(3, 5)
    assert torch.equal(first, torch.rand(3))
    training.seed_epoch(3, 6)
    assert not torch.equal(first, torch.rand(3))


def test_amp_is_cuda_only():
    assert training.make_grad_scaler(torch.float16, torch.device("cpu")) is None
    assert training.make_grad_scaler(None, torch.device("cpu")) is None
    assert math.isclose(training.AMP_DTYPES["bf16"].itemsize, 2)
