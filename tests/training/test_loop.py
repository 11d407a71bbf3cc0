"""common/training/loop.py: checkpoint files and their order, best epoch, resume state, time budget, divergence."""

from __future__ import annotations

import itertools
import os
import signal

import pytest
import torch
from conftest import OffsetModel
from torch.utils.data import DataLoader, TensorDataset

from common.core.errors import EXIT_TERMINATED, UserError, run_cli
from common.datasets.training_clips import SeedableSampler
from common.model import checkpoints
from common.model.config import ModelConfig
from common.model.metaformer import build_model
from common.training import loop, step
from common.training.distributed import DeviceContext
from common.training.losses import H36M_JOINT_WEIGHTS, LossWeights
from common.training.run_logging import RunLogger


def _loader(inputs: torch.Tensor, targets: torch.Tensor) -> DataLoader:
    dataset = TensorDataset(inputs, targets, torch.zeros(len(inputs), 9))
    return DataLoader(dataset, batch_size=2, sampler=SeedableSampler(len(inputs), seed=0, shuffle=True, flip=False))


def _state(steps_per_epoch: int = 3) -> loop.TrainingState:
    clips = 2 * steps_per_epoch
    targets = torch.zeros(clips, 4, 17, 3)
    targets[..., 2] = 2.0
    loader = _loader(torch.zeros(clips, 4, 17, 2), targets)
    model = OffsetModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return loop.TrainingState(model, optimizer, loader, step.StepSettings(LossWeights(None, 0, 0)),
                                 step.LrSchedule(0.1, lr_decay=0.5), {"note": "tiny"})


def _metaformer_state(lr: float) -> loop.TrainingState:
    torch.manual_seed(0)
    config = ModelConfig(num_frames=9, embed_dim=16, depth=1, drop_path_rate=0.0)
    model = build_model(config)
    generator = torch.Generator().manual_seed(1)
    loader = _loader(torch.randn(8, 9, 17, 2, generator=generator), torch.randn(8, 9, 17, 3, generator=generator) * 0.3)
    return loop.TrainingState(model, step.make_optimizer(model, lr, 0.1), loader,
                                 step.StepSettings(LossWeights(H36M_JOINT_WEIGHTS)),
                                 step.LrSchedule(lr, lr_decay=1.0), config.to_dict())


def _settings(tmp_path, **changes) -> loop.LoopSettings:
    return loop.LoopSettings(**{"epochs": 3, "checkpoint_dir": tmp_path, "checkpoint_frequency": 2,
                                   "progress": False, **changes})


CPU = DeviceContext(device=torch.device("cpu"))


def test_checkpoints_and_best_epoch_follow_the_validation_error(tmp_path):
    state = _state()
    errors = iter([0.30, 0.10, 0.20])  # epoch 2 is the best
    result = loop.run_epochs(state, _settings(tmp_path), lambda model: next(errors), CPU, RunLogger(None))
    assert result == loop.LoopResult(epochs_done=3, stopped_by_budget=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_epoch.bin", "epoch_2.bin", "last_epoch.bin"]
    best, last = checkpoints.load_checkpoint(tmp_path / "best_epoch.bin"), checkpoints.load_checkpoint(
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
    real_save = checkpoints.save_checkpoint
    monkeypatch.setattr(checkpoints, "save_checkpoint", lambda path, **kw: written.append(path.name) or real_save(
        path, **kw))
    loop.run_epochs(_state(), _settings(tmp_path, epochs=2), None, CPU, RunLogger(None))
    # no validation: every epoch is the best
    assert written == ["best_epoch.bin", "last_epoch.bin", "best_epoch.bin", "epoch_2.bin", "last_epoch.bin"]


def test_restore_state_continues_where_the_checkpoint_ended(tmp_path):
    first = _state()
    loop.run_epochs(first, _settings(tmp_path, epochs=2), None, CPU, RunLogger(None))
    resumed = _state()
    loop.restore_state(resumed, checkpoints.load_checkpoint(tmp_path / "last_epoch.bin"), "-r last_epoch.bin")
    assert resumed.start_epoch == 2 and resumed.history == first.history
    assert resumed.loader.sampler.epoch == 2
    assert resumed.optimizer.state_dict()["param_groups"] == first.optimizer.state_dict()["param_groups"]
    with pytest.raises(Exception, match="no optimizer/loader state"):
        loop.restore_state(_state(), {"epoch": 1, "optimizer": None, "loader_state": None}, "-r x.bin")


def test_a_resume_keeps_its_own_weight_decay(tmp_path):
    """-r with another --weight-decay: the checkpoint's optimizer state would otherwise bring back the old value."""
    first = _state()
    first.optimizer.param_groups[0]["weight_decay"] = 0.1
    loop.run_epochs(first, _settings(tmp_path, epochs=1), None, CPU, RunLogger(None))
    resumed = _state()  # weight decay 0, as a command with --weight-decay 0
    resumed.optimizer.param_groups[0]["lr"] = 0.7
    loop.restore_state(resumed, checkpoints.load_checkpoint(tmp_path / "last_epoch.bin"), "-r last_epoch.bin")
    assert resumed.optimizer.param_groups[0]["weight_decay"] == 0.0
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # the rest comes from the checkpoint


def test_time_budget_stops_at_the_first_step_past_it_and_saves_the_partial_epoch(tmp_path, monkeypatch):
    clock = itertools.count(start=1000.0, step=10.0)  # every perf_counter() call advances 10 s
    monkeypatch.setattr(loop.time, "perf_counter", lambda: next(clock))
    state = _state(steps_per_epoch=50)
    result = loop.run_epochs(state, _settings(tmp_path, time_budget_seconds=25.0), None, CPU, RunLogger(None))
    assert result.stopped_by_budget and result.epochs_done == 1
    done_steps = round(float(state.model.offset[2].detach()) / 0.1)  # each step moves z by the lr (0.1 in epoch 0)
    assert 1 <= done_steps < 50
    last = checkpoints.load_checkpoint(tmp_path / "last_epoch.bin")
    assert last["epoch"] == 1 and (tmp_path / "best_epoch.bin").is_file()
    assert state.history["epoch"] == [1]


def test_no_budget_means_every_step_runs(tmp_path):
    state = _state(steps_per_epoch=5)
    result = loop.run_epochs(state, _settings(tmp_path, epochs=1, time_budget_seconds=0.0), None, CPU,
                                RunLogger(None))
    assert not result.stopped_by_budget
    assert float(state.model.offset[2].detach()) == pytest.approx(5 * 0.1)


def test_a_huge_learning_rate_stops_with_one_line_and_keeps_the_good_checkpoints(tmp_path):
    state = _metaformer_state(lr=1e-3)
    loop.run_epochs(state, _settings(tmp_path, epochs=1), None, CPU, RunLogger(None))
    before = {name: (tmp_path / name).read_bytes() for name in ("best_epoch.bin", "last_epoch.bin")}
    state.schedule, state.start_epoch = step.LrSchedule(1e12, lr_decay=1.0), 1  # as -lr 1e12 from epoch 2 on
    with pytest.raises(UserError) as raised:
        loop.run_epochs(state, _settings(tmp_path, epochs=2), lambda model: 0.1, CPU, RunLogger(None))
    message = str(raised.value)
    assert "epoch 2" in message and "step 2/4" in message and "not finite" in message and "-lr" in message
    assert "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_epoch.bin", "last_epoch.bin"]  # no temporary file
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


def test_a_nan_loss_weight_names_the_term_and_writes_nothing(tmp_path):
    state = _metaformer_state(lr=1e-3)
    state.step_settings = step.StepSettings(LossWeights(H36M_JOINT_WEIGHTS, lambda_tc=float("nan")))
    with pytest.raises(UserError, match=r"epoch 1\b.*step 1/4.*\btc\b.*weight nan"):
        loop.run_epochs(state, _settings(tmp_path, epochs=1), None, CPU, RunLogger(None))
    assert list(tmp_path.iterdir()) == []


def _break_weights(model: torch.nn.Module) -> float:
    with torch.no_grad():
        model.offset[1] = float("inf")
    return 0.1


@pytest.mark.parametrize(("validate", "expected"), [
    (_break_weights, r"epoch 1\b.*weight.*not finite.*offset"),  # diverged without a non-finite loss (a backstop)
    (lambda model: float("nan"), r"epoch 1\b.*validation MPJPE is nan"),
])
def test_a_non_finite_model_is_never_written(tmp_path, validate, expected):
    with pytest.raises(UserError, match=expected):
        loop.run_epochs(_state(), _settings(tmp_path), validate, CPU, RunLogger(None))
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_files_of_a_killed_run_are_removed_at_the_start(tmp_path):
    stale = tmp_path / ".last_epoch.bin.tmp-999999999-abcdefgh.bin"  # no process has this pid
    stale.write_bytes(b"half a checkpoint")
    mine = tmp_path / "notes.txt"
    mine.write_text("not ours to remove")
    loop.run_epochs(_state(), _settings(tmp_path, epochs=1), None, CPU, RunLogger(None))
    assert not stale.exists() and mine.read_text() == "not ours to remove"


def test_sigterm_while_writing_a_checkpoint_stops_cleanly(tmp_path, monkeypatch):
    """SIGTERM (through `run_cli`, as run.py runs) stops like Ctrl-C: the interrupted write leaves no temporary file and
    the checkpoints of the finished epoch stay as they were."""
    state = _state()
    loop.run_epochs(state, _settings(tmp_path, epochs=1), None, CPU, RunLogger(None))
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    real_save = torch.save

    def save_then_terminate(obj, target, *args, **kwargs):
        real_save(obj, target, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises before the temporary file is renamed

    monkeypatch.setattr(torch, "save", save_then_terminate)
    state.start_epoch = 1
    with pytest.raises(SystemExit) as exited:
        run_cli(lambda: loop.run_epochs(state, _settings(tmp_path, epochs=2), None, CPU, RunLogger(None)))
    assert exited.value.code == EXIT_TERMINATED
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
