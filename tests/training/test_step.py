"""common/training/step.py: one step (the loss back-propagated as is, clipping, divergence), the lr schedule, epochs."""

from __future__ import annotations

import math
import re

import pytest
import torch
from conftest import OffsetModel
from torch.utils.data import DataLoader, TensorDataset

from common.training import step
from common.training.losses import LossWeights


def test_train_step_backpropagates_the_loss_itself():
    """MixSTE's loss.backward(loss) would scale the gradient by the loss value; ours is d(loss)/d(theta)."""
    model = OffsetModel()
    inputs = torch.zeros(2, 4, 17, 2)
    targets = torch.zeros(2, 4, 17, 3)
    targets[..., 0] = 3.0  # every joint 3 m away along x: loss = |offset - (3,0,0)| = 3, gradient (-1, 0, 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    settings = step.StepSettings(LossWeights(None, 0.0, 0.0))
    terms = step.train_step(model, inputs, targets, optimizer, settings)
    assert terms["total"] == pytest.approx(3.0)
    # SGD step: offset = 0 - 0.1 * (-1, 0, 0); with loss.backward(loss) it would be 0.3 instead of 0.1
    torch.testing.assert_close(model.offset.detach(), torch.tensor([0.1, 0.0, 0.0]))


def test_cosine_schedule_anneals_to_zero_by_step():
    cosine = step.LrSchedule(lr=2e-3, kind="cosine", total_epochs=4)
    assert step.learning_rate(cosine, 0, step=0, steps_per_epoch=10) == pytest.approx(2e-3)
    assert step.learning_rate(cosine, 2, step=0, steps_per_epoch=10) == pytest.approx(1e-3)  # half way: cos = 0
    assert step.learning_rate(cosine, 1, step=0, steps_per_epoch=10) == pytest.approx(1e-3 * (1 + 2**-0.5))
    assert step.learning_rate(cosine, 3, step=9, steps_per_epoch=10) == pytest.approx(1e-3 * (1 + math.cos(
        math.pi * 39 / 40)))
    assert step.learning_rate(cosine, 4, step=0, steps_per_epoch=10) == 0.0  # past the end (a resumed longer run)
    warm = step.LrSchedule(lr=2e-3, kind="cosine", total_epochs=4, warmup_epochs=1)
    assert step.learning_rate(warm, 0, step=4, steps_per_epoch=10) == pytest.approx(
        1e-3 * (1 + math.cos(math.pi * 4 / 40)) * 5 / 10)


def test_a_time_budget_ends_the_cosine_when_it_comes_first():
    cosine = step.LrSchedule(lr=2e-3, kind="cosine", total_epochs=4)
    # 10 % of the steps done, half the budget used: the budget sets the progress
    assert step.learning_rate(cosine, 0, step=4, steps_per_epoch=10, budget_used=0.5) == pytest.approx(1e-3)
    # the steps ahead of the clock: they do
    assert step.learning_rate(cosine, 2, step=0, steps_per_epoch=10, budget_used=0.1) == pytest.approx(1e-3)
    assert step.learning_rate(cosine, 0, step=0, steps_per_epoch=10, budget_used=1.3) == 0.0
    exponential = step.LrSchedule(lr=2e-3, lr_decay=0.5)  # only the cosine reads the budget
    assert step.learning_rate(exponential, 1, budget_used=0.9) == pytest.approx(1e-3)


def test_the_budget_clock_sets_each_steps_learning_rate_and_ends_the_epoch():
    model = OffsetModel()
    inputs, targets = torch.zeros(10, 4, 17, 2), torch.zeros(10, 4, 17, 3)
    targets[..., 2] = 5.0  # loss |offset - (0,0,5)|: SGD moves z by the lr of each step while z < 5
    loader = [(inputs[i:i + 1], targets[i:i + 1]) for i in range(10)]
    fractions = iter([0.0, 0.25, 0.5, 0.75, 1.0, 1.0])  # one call before the first step, then one after each step
    schedule = step.LrSchedule(lr=1.0, kind="cosine", total_epochs=1000)  # the epochs alone would barely anneal
    stats = step.train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=1.0),
                                 step.StepSettings(LossWeights(None, 0.0, 0.0)), schedule, 0, torch.device("cpu"),
                                 progress=False, budget_used=lambda: next(fractions))
    assert stats.steps == 4 and stats.stopped_early
    lrs = [0.5 * (1 + math.cos(math.pi * max(k / 10_000, used))) for k, used in enumerate((0.0, 0.25, 0.5, 0.75))]
    assert float(model.offset[2].detach()) == pytest.approx(sum(lrs))
    assert stats.last_lr == pytest.approx(lrs[-1])


def test_gradient_clipping_bounds_the_step():
    model = OffsetModel()
    inputs = torch.zeros(1, 3, 17, 2)
    targets = torch.zeros(1, 3, 17, 3)
    targets[..., 1] = 1.0
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    weights = LossWeights(None, 0.0, 0.0)
    step.train_step(model, inputs, 10 * targets, optimizer, step.StepSettings(weights, grad_clip=0.25))
    # gradient (0, -1, 0) has norm 1, clipped to 0.25
    torch.testing.assert_close(model.offset.detach(), torch.tensor([0.0, 0.25, 0.0]))


def test_learning_rate_schedule():
    schedule = step.LrSchedule(lr=1e-3, lr_decay=0.9)
    assert step.learning_rate(schedule, 0) == pytest.approx(1e-3)
    assert step.learning_rate(schedule, 3, step=7, steps_per_epoch=10) == pytest.approx(1e-3 * 0.9**3)
    warm = step.LrSchedule(lr=1e-3, lr_decay=0.9, warmup_epochs=2)
    # linear warm-up over 2 epochs of 10 steps, on top of the decay
    assert step.learning_rate(warm, 0, step=0, steps_per_epoch=10) == pytest.approx(1e-3 / 20)
    assert step.learning_rate(warm, 1, step=4, steps_per_epoch=10) == pytest.approx(1e-3 * 0.9 * 15 / 20)
    assert step.learning_rate(warm, 2, step=0, steps_per_epoch=10) == pytest.approx(1e-3 * 0.81)


def test_optimizer_is_adamw_with_weight_decay():
    optimizer = step.make_optimizer(OffsetModel(), lr=2e-4, weight_decay=0.1)
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
    schedule = step.LrSchedule(lr=0.5, lr_decay=0.5)
    stats = step.train_one_epoch(model, loader, optimizer, step.StepSettings(LossWeights(None, 0, 0)),
                                     schedule, epoch=1, device=torch.device("cpu"), progress=False)
    # epoch 1: lr 0.25 for 3 steps of gradient (0,0,-1): the loss goes 2.0, 1.75, 1.5 -> frame-weighted mean 1.75
    assert stats.steps == 3 and stats.frames == 6 * 4
    assert stats.losses["total"] == pytest.approx(1.75)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.25)
    torch.testing.assert_close(model.offset.detach(), torch.tensor([0.0, 0.0, 0.75]))


def test_seed_epoch_is_a_function_of_seed_and_epoch():
    step.seed_epoch(3, 5)
    first = torch.rand(3)
    torch.manual_seed(123)
    step.seed_epoch(3, 5)
    assert torch.equal(first, torch.rand(3))
    step.seed_epoch(3, 6)
    assert not torch.equal(first, torch.rand(3))


def test_amp_scaler_is_cuda_only():
    assert step.make_grad_scaler(torch.float16, torch.device("cpu")) is None
    assert step.make_grad_scaler(None, torch.device("cpu")) is None


class _InfiniteGradientModel(OffsetModel):
    """Output = OffsetModel's + sqrt(p - p): the same values, but d sqrt(u)/du at u = 0 is infinite (inf * 0 = nan)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + torch.sqrt(self.offset - self.offset.detach())


def _one_step(model, weights: LossWeights):
    targets = torch.zeros(1, 3, 17, 3)
    targets[..., 0] = 1.0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return step.train_step(model, torch.zeros(1, 3, 17, 2), targets, optimizer, step.StepSettings(weights))


@pytest.mark.parametrize(("model", "weights", "expected"), [
    (OffsetModel, LossWeights(None, lambda_tc=float("nan")), r"\btc\b.*weight nan"),
    (OffsetModel, LossWeights(None, lambda_vel=float("inf")), r"\bvel\b.*weight inf"),
    (_InfiniteGradientModel, LossWeights(None), r"gradient norm is nan"),
])
def test_non_finite_loss_or_gradient_stops_before_the_update(model, weights, expected):
    model = model()
    with pytest.raises(step.NonFiniteLossError, match=expected):
        _one_step(model, weights)
    assert torch.equal(model.offset.detach(), torch.zeros(3))  # the update was not applied


def test_non_finite_output_is_blamed_on_the_weights():
    model = OffsetModel()
    with torch.no_grad():
        model.offset[0] = float("nan")
    with pytest.raises(step.NonFiniteLossError, match="model's output is not finite"):
        _one_step(model, LossWeights(None))


def test_diverging_epoch_names_epoch_step_and_hint():
    targets = torch.zeros(8, 4, 17, 3)
    targets[..., 0] = 1.0
    targets[2:4, :, 5, 1] = float("inf")  # the second batch's targets make the position term infinite
    loader = DataLoader(TensorDataset(torch.zeros(8, 4, 17, 2), targets, torch.zeros(8, 9)), batch_size=2)
    model = OffsetModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    with pytest.raises(step.NonFiniteLossError) as raised:
        step.train_one_epoch(model, loader, optimizer, step.StepSettings(LossWeights(None, 0.0, 0.0)),
                                 step.LrSchedule(lr=0.5, lr_decay=1.0), epoch=2, device=torch.device("cpu"),
                                 progress=False)
    message = str(raised.value)
    assert re.search(r"epoch 3\b.*step 2\b.*\bposition\b.*\binf\b", message) and "-lr" in message
    assert "\n" not in message
    # step 1 (lr 0.5, gradient (-1, 0, 0)) was applied, step 2 was not
    torch.testing.assert_close(model.offset.detach(), torch.tensor([0.5, 0.0, 0.0]))
