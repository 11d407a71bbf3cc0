"""Devices and data parallelism on the CPU: -gpu parsing, DataParallel degenerating to one device, DDP with gloo."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from common.core.errors import UserError
from common.model import checkpoints
from common.model.config import ModelConfig
from common.model.metaformer import build_model
from common.training import distributed, step
from common.training.losses import H36M_JOINT_WEIGHTS, LossWeights

CONFIG = dict(num_frames=9, embed_dim=16, depth=1, drop_path_rate=0.0)
SETTINGS = step.StepSettings(LossWeights(H36M_JOINT_WEIGHTS, 0.5, 2.0))


def _batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(4, 9, 17, 2, generator=generator), torch.randn(4, 9, 17, 3, generator=generator) * 0.3


def _fresh_model():
    torch.manual_seed(0)
    return build_model(ModelConfig(**CONFIG))


def test_parse_gpu_list():
    assert distributed.parse_gpu_list("0,1") == [0, 1]
    assert distributed.parse_gpu_list("3") == [3]
    assert distributed.parse_gpu_list("cpu") == [] and distributed.parse_gpu_list("") == []
    for bad in ("a,b", "0,0", "-2"):
        with pytest.raises(UserError, match="-gpu"):
            distributed.parse_gpu_list(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_no_gpu_says_so_once_and_uses_the_cpu(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    messages = []
    ctx = distributed.setup_devices("0,1", messages.append)
    assert ctx.device == torch.device("cpu") and not ctx.distributed and ctx.is_main
    assert messages == [distributed.NO_GPU_MESSAGE]
    messages.clear()
    distributed.setup_devices("cpu", messages.append)
    assert messages == []  # an explicit CPU request is not news


def test_data_parallel_degenerates_on_the_cpu(tmp_path):
    model = _fresh_model()
    ctx = distributed.DeviceContext(device=torch.device("cpu"), device_ids=[0, 1])
    wrapped = distributed.wrap_model(model, ctx)
    assert isinstance(wrapped, torch.nn.DataParallel)
    inputs, targets = _batch()
    torch.testing.assert_close(wrapped(inputs), model(inputs))
    optimizer = step.make_optimizer(wrapped, 1e-3, 0.1)
    step.train_step(wrapped, inputs, targets, optimizer, SETTINGS)
    path = checkpoints.save_checkpoint(tmp_path / "dp.bin", epoch=1, lr=1e-3, model=wrapped, optimizer=optimizer,
                                      model_config=ModelConfig(**CONFIG).to_dict(), best_val=None, loader_state=None)
    saved = torch.load(path, weights_only=True)["model_pos"]
    assert list(saved) == list(model.state_dict())  # no "module." prefix
    assert torch.equal(saved["head.weight"], model.head.weight.detach())
    assert checkpoints.unwrap_model(wrapped) is model


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    """Plain SGD: its update is the averaged gradient itself (Adam would magnify the rounding of tiny gradients,
    which differs between one batch and two averaged halves)."""
    return torch.optim.SGD(model.parameters(), lr=1.0)


def _ddp_worker(rank: int, world_size: int, port: int, out_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = distributed.setup_devices("cpu", print)
    try:
        assert ctx.distributed and ctx.rank == rank and ctx.world_size == world_size
        assert distributed.broadcast_value(0.25 + rank, ctx) == 0.25  # rank 0's number (the budget clock) everywhere
        model = distributed.wrap_model(_fresh_model(), ctx)
        optimizer = _sgd(model)
        inputs, targets = _batch()
        share = len(inputs) // world_size  # per-rank batch = global batch / world size
        part = slice(rank * share, (rank + 1) * share)
        step.train_step(model, inputs[part], targets[part], optimizer, SETTINGS)
        if ctx.is_main:
            torch.save(checkpoints.unwrap_model(model).state_dict(), out_path)
        distributed.barrier(ctx)
    finally:
        distributed.cleanup(ctx)


def test_ddp_two_processes_equal_one_process_on_the_global_batch(tmp_path):
    out_path = str(tmp_path / "ddp.pt")
    # fork (not spawn): the children inherit the imported modules instead of importing torch/timm again
    mp.start_processes(_ddp_worker, args=(2, _free_port(), out_path), nprocs=2, join=True, start_method="fork")
    ddp_state = torch.load(out_path, weights_only=True)

    model = _fresh_model()
    optimizer = _sgd(model)
    inputs, targets = _batch()
    step.train_step(model, inputs, targets, optimizer, SETTINGS)
    start = _fresh_model().state_dict()
    changed = 0
    for name, value in model.state_dict().items():
        torch.testing.assert_close(ddp_state[name], value, rtol=0, atol=1e-6, msg=name)
        changed += not torch.equal(value, start[name])
    assert changed > len(start) // 2  # the step really moved the weights


def test_torchrun_needs_one_gpu_per_local_rank(monkeypatch):
    """``torchrun --nproc_per_node 2`` with the default ``-gpu 0`` would put both ranks on GPU 0 (NCCL then stops
    with "Duplicate GPU detected"): it is refused with a line naming -gpu, before any CUDA call."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda _: pytest.fail("no device may be chosen"))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(UserError, match=r"-gpu 0: torchrun started local rank 1.*one GPU per process"):
        distributed.setup_devices("0", print)


def test_one_torchrun_process_still_runs_ddp(monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    ctx = distributed.setup_devices("cpu", print)
    try:
        assert ctx.distributed and ctx.world_size == 1
        assert isinstance(distributed.wrap_model(_fresh_model(), ctx), torch.nn.parallel.DistributedDataParallel)
    finally:
        distributed.cleanup(ctx)
