"""Devices and data parallelism: ``-gpu 0,1`` DataParallel (the seed's way) and torchrun DistributedDataParallel.

- `parse_gpu_list("0,1") -> [0, 1]`.
- `setup_devices(gpu_flag, log)`: under ``torchrun`` (environment ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``)
  initialises the process group (nccl on CUDA, gloo on the CPU; also for one process) and returns the rank's
  context; otherwise picks the first GPU of the list (DataParallel over all of them) or, without CUDA, says once that
  it runs on the CPU.
- `wrap_model(model, ctx)`: DDP, DataParallel, or the bare model. `common.model.checkpoints.unwrap_model` undoes it.
- Only rank 0 logs, evaluates and writes checkpoints (`DeviceContext.is_main`); `barrier()` and `cleanup()` around it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from common.core.errors import UserError

NO_GPU_MESSAGE = "no GPU found: running on the CPU"
# rank 0 validates and evaluates alone while the other ranks wait at a barrier: longer than NCCL's 10-minute default
PROCESS_GROUP_TIMEOUT = timedelta(hours=2)


@dataclass
class DeviceContext:
    """Where this process runs and how the model is parallelised."""

    device: torch.device
    device_ids: list[int] = field(default_factory=list)  # DataParallel GPUs (more than one => DataParallel)
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that logs, evaluates and writes checkpoints."""
        return self.rank == 0

    @property
    def data_parallel(self) -> bool:
        return not self.distributed and len(self.device_ids) > 1

    def describe(self) -> str:
        if self.distributed:
            return f"DistributedDataParallel: rank {self.rank}/{self.world_size} on {self.device}"
        if self.data_parallel:
            return f"DataParallel over GPUs {','.join(map(str, self.device_ids))}"
        return f"device {self.device}"


def parse_gpu_list(text: str) -> list[int]:
    """'0,1' -> [0, 1]; '' or 'cpu' -> [] (CPU). UserError for anything else."""
    text = (text or "").strip()
    if text.lower() in ("", "cpu", "-1"):
        return []
    try:
        ids = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise UserError(f"-gpu {text}: expected GPU ids separated by commas (e.g. 0,1) or 'cpu'") from None
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise UserError(f"-gpu {text}: expected distinct non-negative GPU ids")
    return ids


def torchrun_environment() -> tuple[int, int, int] | None:
    """(rank, world_size, local_rank) when launched by torchrun, else None."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))


def setup_devices(gpu_flag: str, log: Callable[[str], object] = print) -> DeviceContext:
    """Choose the device(s) for ``-gpu`` and initialise torch.distributed under torchrun."""
    ids = parse_gpu_list(gpu_flag)
    cuda = torch.cuda.is_available() and bool(ids)
    if cuda:
        count = torch.cuda.device_count()
        unknown = [i for i in ids if i >= count]
        if unknown:
            raise UserError(f"-gpu {gpu_flag}: GPU(s) {unknown} do not exist (this machine has {count})")
    env = torchrun_environment()
    if env is not None:
        rank, world_size, local_rank = env
        if cuda:
            if local_rank >= len(ids):
                raise UserError(f"-gpu {gpu_flag}: torchrun started local rank {local_rank}, but -gpu lists "
                                f"{len(ids)} GPU(s); give one GPU per process (e.g. -gpu 0,1 for --nproc_per_node 2)")
            gpu = ids[local_rank]
            torch.cuda.set_device(gpu)
            device, backend = torch.device("cuda", gpu), "nccl"
        else:
            device, backend = torch.device("cpu"), "gloo"
        if not dist.is_initialized():  # also for one process: DDP and NCCL run as they do with several
            dist.init_process_group(backend=backend, timeout=PROCESS_GROUP_TIMEOUT)
        if rank == 0 and not cuda and ids:
            log(NO_GPU_MESSAGE)
        return DeviceContext(device=device, device_ids=[device.index] if cuda else [], rank=rank,
                             world_size=world_size, local_rank=local_rank, distributed=True)
    if cuda:
        torch.cuda.set_device(ids[0])
        return DeviceContext(device=torch.device("cuda", ids[0]), device_ids=ids)
    if ids:
        log(NO_GPU_MESSAGE)
    return DeviceContext(device=torch.device("cpu"))


def wrap_model(model: nn.Module, ctx: DeviceContext) -> nn.Module:
    """Move ``model`` to the context's device and wrap it for DDP / DataParallel when needed."""
    model = model.to(ctx.device)
    if ctx.distributed:
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if ctx.data_parallel:
        return AutocastDataParallel(model, device_ids=ctx.device_ids)
    return model


class _AutocastReplica(nn.Module):
    """One DataParallel replica run under the caller's autocast dtype."""

    def __init__(self, replica: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.replica, self.dtype = replica, dtype

    def forward(self, *args, **kwargs):
        with torch.autocast("cuda", dtype=self.dtype):
            return self.replica(*args, **kwargs)


class AutocastDataParallel(nn.DataParallel):
    """`nn.DataParallel` that keeps the autocast dtype: its replica threads re-enter autocast without one, and the
    per-thread default is float16, so ``--amp bf16`` would silently run the replicas in fp16 without a scaler."""

    def parallel_apply(self, replicas, inputs, kwargs):
        if torch.is_autocast_enabled("cuda"):
            dtype = torch.get_autocast_dtype("cuda")
            replicas = [_AutocastReplica(replica, dtype) for replica in replicas]
        return super().parallel_apply(replicas, inputs, kwargs)


def barrier(ctx: DeviceContext) -> None:
    """Wait for every rank (no-op outside torchrun)."""
    if ctx.distributed and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: list[float], ctx: DeviceContext) -> list[float]:
    """Sum ``values`` over ranks (identity outside torchrun); used for epoch statistics."""
    if not (ctx.distributed and dist.is_initialized()):
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_value(value: float, ctx: DeviceContext) -> float:
    """Rank 0's number on every rank (e.g. the fraction of the time budget used, by rank 0's clock)."""
    if not (ctx.distributed and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def cleanup(ctx: DeviceContext) -> None:
    """Destroy the process group created by `setup_devices`."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
