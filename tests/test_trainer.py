"""The epoch loop: checkpoint files and their order, best-epoch selection, resume state, the time budget."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import OffsetModel
from torch.utils.data import DataLoader, TensorDataset

from common import checkpoint, trainer, training
from common.clips import SeedableSampler
from common.distributed import DeviceContext
from common.run_logging import RunLogger


def _state(steps_per_epoch: int = 3) -> trainer.TrainingState:
    clips = 2 * steps_per_epoch
    targets = torch.zeros(clips, 4, 17, 3)
    targets[..., 2] = 2.0
    dataset = TensorDataset(torch.zeros(clips, 4, 17, 2), targets, torch.zeros(clips, 9))
    loader = DataLoader(dataset, batch_size=2, sampler=SeedableSampler(clips, seed=0, shuffle=True, flip=False))
    model = OffsetModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return trainer.TrainingState(model, optimizer, loader, training.StepSettings(training.LossWeights(None, 0, 0)),
                                 training.LrSchedule(0.1, lr_decay=0.5), {"note": "tiny"})


def _settings(tmp_path, **changes) -> trainer.LoopSettings:
    return trainer.LoopSettings(**{"epochs": 3, "checkpoint_dir": tmp_path, "checkpoint_frequency": 2,
                                   "progress": False, **changes})


CPU = DeviceContext(device=torch.device("cpu"))


def test_checkpoints_and_best_epoch_follow_the_validation_error(tmp_path):
    state = _state()
    errors = iter([0.30, 0.10, 0.20])  # epoch 2 is the best
    result = trainer.run_epochs(state, _settings(tmp_path), lambda model: next(errors), CPU, RunLogger(None))
    assert result == trainer.LoopResult(epochs_done=3, stopped_by_budget=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_epoch.bin", "epoch_2.bin", "last_epoch.bin"]
    best, last = checkpoint.load_checkpoint(tmp_path / "best_epoch.bin"), checkpoint.load_checkpoint(
        tmp_path / "last_epoch.bin")
    assert best["epoch"] == 2 and best["best_val"] == pytest.approx(0.10)
    assert last["epoch"] == 3 and last["best_val"] == pytest.approx(0.10) and last["model_config"] == {"note": "tiny"}
    assert state.history["epoch"] == [1, 2, 3] and state.history["val_mpjpe"] == [0.30, 0.10, 0.20]
    # lr of the last step of each epoch: 0.1 * 0.5**epoch; the checkpoint stores the next epoch's lr
    assert state.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    assert last["lr"] == pytest.approx(0.0125)
    # SGD on |offset - (0,0,2)| moves z by lr per step: 3 steps at each of 0.1, 0.05, 0.025
    assert float(state.model.offset[2].detach()) == pytest.approx(3 * (0.1 + 0.05 + 0.025))
    assert last["loader_state"]["epoch"] == 3


def test_writes_best_before_last_so_a_kill_never_leaves_a_resume_point_without_best(tmp_path, monkeypatch):
    written = []
    real_save = checkpoint.save_checkpoint
    monkeypatch.setattr(checkpoint, "save_checkpoint", lambda path, **kw: written.append(path.name) or real_save(
        path, **kw))
    trainer.run_epochs(_state(), _settings(tmp_path, epochs=2), None, CPU, RunLogger(None))
    # no validation: every epoch is the best
    assert written == ["best_epoch.bin", "last_epoch.bin", "best_epoch.bin", "epoch_2.bin", "last_epoch.bin"]


def test_restore_state_continues_where_the_checkpoint_ended(tmp_path):
    first = _state()
    trainer.run_epochs(first, _settings(tmp_path, epochs=2), None, CPU, RunLogger(None))
    resumed = _state()
    trainer.restore_state(resumed, checkpoint.load_checkpoint(tmp_path / "last_epoch.bin"), "-r last_epoch.bin")
    assert resumed.start_epoch == 2 and resumed.history == first.history
    assert resumed.loader.sampler.epoch == 2
    assert resumed.optimizer.state_dict()["param_groups"] == first.optimizer.state_dict()["param_groups"]
    with pytest.raises(Exception, match="no optimizer/loader state"):
        trainer.restore_state(_state(), {"epoch": 1, "optimizer": None, "loader_state": None}, "-r x.bin")


def test_time_budget_stops_at_the_first_step_past_it_and_saves_the_partial_epoch(tmp_path, monkeypatch):
    clock = itertools.count(start=1000.0, step=10.0)  # every perf_counter() call advances 10 s
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: next(clock))
    state = _state(steps_per_epoch=50)
    result = trainer.run_epochs(state, _settings(tmp_path, time_budget_seconds=25.0), None, CPU, RunLogger(None))
    assert result.stopped_by_budget and result.epochs_done == 1
    done_steps = round(float(state.model.offset[2].detach()) / 0.1)  # each step moves z by the lr (0.1 in epoch 0)
    assert 1 <= done_steps < 50
    last = checkpoint.load_checkpoint(tmp_path / "last_epoch.bin")
    assert last["epoch"] == 1 and (tmp_path / "best_epoch.bin").is_file()
    assert state.history["epoch"] == [1]


def test_no_budget_means_every_step_runs(tmp_path):
    state = _state(steps_per_epoch=5)
    result = trainer.run_epochs(state, _settings(tmp_path, epochs=1, time_budget_seconds=0.0), None, CPU,
                                RunLogger(None))
    assert not result.stopped_by_budget
    assert float(state.model.offset[2].detach()) == pytest.approx(5 * 0.1)
