"""common/training/run_logging.py: the text log, TensorBoard scalars read back, silent ranks, training curves."""

from __future__ import annotations

import pytest
from PIL import Image

from common.core.errors import UserError
from common.training.run_logging import RunLogger, export_training_curves


def test_messages_go_to_the_console_and_the_text_log(tmp_path, capsys):
    with RunLogger(tmp_path / "log") as logger:
        logger.info("first message")
        logger.info("second message")
    assert capsys.readouterr().out.splitlines() == ["first message", "second message"]
    lines = (tmp_path / "log" / "log.txt").read_text(encoding="utf-8").splitlines()
    assert lines[-2:] == ["first message", "second message"]


def test_scalars_are_readable_by_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with RunLogger(tmp_path) as logger:
        logger.scalars({"train/loss": 0.5, "train/lr": 1e-3}, step=1)
        logger.scalar("train/loss", 0.25, step=2)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, 0.5), (2, 0.25)]
    assert [e.value for e in events.Scalars("train/lr")] == [pytest.approx(1e-3)]


@pytest.mark.parametrize("kwargs", [{"enabled": False}, {"is_main": False}])
def test_disabled_or_other_ranks_write_no_file(tmp_path, capsys, kwargs):
    with RunLogger(tmp_path / "log", **kwargs) as logger:
        logger.info("hello")
        logger.scalar("x", 1.0, 1)
    assert not (tmp_path / "log").exists()
    assert capsys.readouterr().out == ("hello\n" if kwargs.get("is_main", True) else "")


def test_a_log_folder_that_is_a_file_is_a_user_error(tmp_path):
    blocker = tmp_path / "log"
    blocker.write_text("a file")
    with pytest.raises(UserError, match="-l/--log"):
        RunLogger(blocker)


def test_training_curves(tmp_path):
    history = {"epoch": [1, 2, 3], "train_mpjpe": [0.3, 0.2, 0.1], "val_mpjpe": [None, 0.15, 0.12],
               "lr": [1e-3, 9e-4, 8e-4]}
    written = export_training_curves(history, tmp_path)
    assert sorted(p.name for p in written) == ["loss_3d.png", "lr.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss_3d.png", "lr.png"]  # no temporary file left
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 100
    assert export_training_curves({"epoch": []}, tmp_path / "missing") == []
