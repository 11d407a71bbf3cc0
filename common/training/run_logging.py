"""Run logging: console messages with a plain-text copy, TensorBoard scalars, and PNG training curves.

`RunLogger(log_dir, enabled, is_main)`: ``info(msg)`` prints on rank 0 and appends to ``<log_dir>/log.txt``;
``scalar(tag, value, step)`` writes TensorBoard scalars (loss terms, lr, validation metrics, epoch time, throughput);
``--nolog`` (``enabled=False``) disables both files (the console still shows everything). Other ranks are silent.
`export_training_curves(history, directory)` writes ``loss_3d.png`` (training and validation MPJPE per epoch) and
``lr.png`` atomically. `command_line()` is the command that started the process (logged first).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from common.core.errors import UserError
from common.core.files import atomic_write


class RunLogger:
    """Console + text file + TensorBoard, active on the main process only."""

    def __init__(self, log_dir: str | os.PathLike | None, enabled: bool = True, is_main: bool = True) -> None:
        self.is_main = is_main
        self.enabled = bool(enabled and is_main and log_dir)
        self.log_dir = Path(log_dir) if log_dir else None
        self._file = None
        self._writer = None
        if not self.enabled:
            return
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.log_dir / "log.txt", "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        except OSError as error:
            raise UserError(f"-l/--log {log_dir}: cannot write the log there ({error.strerror})") from None
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(self.log_dir))
        self._file.write(f"\n=== {datetime.now().isoformat(timespec='seconds')} ===\n")

    def info(self, message: str = "") -> None:
        """Print a message (rank 0) and append it to the text log."""
        if not self.is_main:
            return
        print(message, flush=True)
        if self._file is not None:
            self._file.write(message + "\n")
            self._file.flush()

    def scalar(self, tag: str, value: float, step: int) -> None:
        """One TensorBoard scalar."""
        if self._writer is not None:
            self._writer.add_scalar(tag, value, step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        """One TensorBoard scalar per ``{tag: value}``."""
        for tag, value in values.items():
            self.scalar(tag, value, step)

    def text(self, tag: str, value: str) -> None:
        if self._writer is not None:
            self._writer.add_text(tag, value)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def command_line() -> str:
    """The command that started this process."""
    return "python " + " ".join(sys.argv)


def export_training_curves(history: dict[str, list], directory: str | os.PathLike) -> list[Path]:
    """PNG curves from ``history`` (``epoch``, ``train_mpjpe``, ``val_mpjpe`` (None when not evaluated), ``lr``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = history.get("epoch", [])
    if not epochs:
        return []
    written = []
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(epochs, [v * 1000 for v in history["train_mpjpe"]], "--", color="C0", label="train MPJPE (training mode)")
    val = [(e, v * 1000) for e, v in zip(epochs, history.get("val_mpjpe", [])) if v is not None]
    if val:
        axis.plot(*zip(*val), color="C1", label="validation MPJPE (eval)")
    axis.set_xlabel("epoch")
    axis.set_ylabel("MPJPE (mm)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    written.append(atomic_write(Path(directory) / "loss_3d.png", lambda tmp: figure.savefig(tmp, dpi=100)))
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6, 3))
    axis.plot(epochs, history["lr"], color="C2")
    axis.set_xlabel("epoch")
    axis.set_ylabel("learning rate")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    written.append(atomic_write(Path(directory) / "lr.png", lambda tmp: figure.savefig(tmp, dpi=100)))
    plt.close(figure)
    return written
