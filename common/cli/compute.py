"""Where the model runs: a ``--device`` name checked against this machine, and the CPU thread policy.

Thread policy (``--threads``, default chosen by model size): torch's intra-op threading splits every operator over
all cores, which pays off for large operators only. A small model's operators are too short to share, and on a machine
whose cores are also busy with other work the threads wait for each other: the quick-start model (F=27 C=64 depth 2,
about 1 MMAC per frame) trained several times faster with one thread than with torch's default on a shared 2-core
machine. Models under `SMALL_MODEL_MACS_PER_FRAME` therefore run with one thread; larger ones keep torch's default.
An explicit ``OMP_NUM_THREADS`` (or ``--threads N``) always wins.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from common.core.errors import UserError
from common.model.config import ModelConfig
from common.model.cost import count_macs

SMALL_MODEL_MACS_PER_FRAME = 20e6
"""Below this many multiply-accumulates per predicted frame a model runs on one CPU thread by default."""


def resolve_device(text: str | None, flag: str = "--device") -> torch.device:
    """The torch device named ``text`` (default: cuda when available, else cpu); UserError if this machine lacks it."""
    if not text:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UserError(f"{flag} {text}: expected cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(f"{flag} {text}: this machine has no CUDA device (use --device cpu)")
        if device.index is not None and device.index >= count:
            raise UserError(f"{flag} {text}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
    elif device.type != "cpu":
        raise UserError(f"{flag} {text}: expected cpu, cuda or cuda:N")
    return device


def default_threads(config: ModelConfig) -> int | None:
    """1 for small models, None (torch's default) for large ones (see the module docstring)."""
    return 1 if count_macs(config)["per_frame"] < SMALL_MODEL_MACS_PER_FRAME else None


def apply_thread_policy(requested: int | None, config: ModelConfig, device: torch.device,
                        log: Callable[[str], object]) -> int:
    """Set torch's intra-op threads (``--threads``, else `default_threads` unless OMP_NUM_THREADS is set) and say so.

    Returns the number of threads in use.
    """
    if requested is not None:
        torch.set_num_threads(requested)
        reason = "--threads"
    elif os.environ.get("OMP_NUM_THREADS"):
        reason = "OMP_NUM_THREADS"
    elif device.type == "cpu" and default_threads(config) is not None:
        torch.set_num_threads(default_threads(config))
        reason = f"small model (< {SMALL_MODEL_MACS_PER_FRAME / 1e6:g} MMACs/frame; --threads N to change)"
    else:
        reason = "torch's default"
    threads = torch.get_num_threads()
    if device.type == "cpu":
        log(f"CPU threads: {threads} ({reason})")
    return threads
