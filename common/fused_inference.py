"""Fused CPU kernels for inference with the pooling / graph / fc presets (eval mode, no autograd, float32).

`PoseMetaFormer.forward` hands a call to `forward` here when `applies` says so; it computes the same function as the
paper-figure forward (tests compare them to 1e-5 for every non-attention preset), in fewer passes over memory.
Per block it runs:

1. ``norm_mix_norm`` (C++, ``common/csrc/fused_blocks.cpp``): the previous stream's shared LayerNorm and the
   temporal position embedding (where the model has them), ``norm1``, the token mixer (minus the identity), the
   mixer's residual add with its layer scale, ``norm2``, and the MLP's output bias added to the residual, in one
   pass over the activations; the residual is written over the block's input. The mixer enters as a sparse
   ``L x L`` matrix along its axis (pooling windows, skeleton neighbours, the fc mixer's dense ``W - I``), so every
   such mixer runs through the same kernel.
2. the MLP's first product (MKL, no bias), then ``bias_gelu_`` (C++): bias and exact GELU in one in-place pass;
3. the MLP's second product accumulated into the residual (``addmm_``, layer scale folded into its weight).

Eager PyTorch needs about eight passes over memory per block for the work of step 1 (three LayerNorms, pooling, the
subtraction, the residual add, the bias broadcast for fc1, the residual plus fc2 bias); on this project's 2-core
CPU the fused path makes a paper-size inference call about 10 % faster (`benchmarks/bench_model.py
--compare-eager` times both in the same run, `--no-fused` the eager path alone).

The kernels are compiled on first use with the C++ compiler PyTorch's extension builder finds (``-O3
-march=native``: built for the CPU it runs on, and cached by PyTorch under ``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``, in a directory named after this CPU's instruction set). Where they cannot be
built (no compiler, no OpenMP, or no GCC / Clang vector extensions as with MSVC), `status` says why, a single line
is printed once, and inference runs the eager path. ``POOLMIXSTE_FUSED_KERNELS=0`` turns the kernels off (and
`eager_only` for the calls inside a ``with`` block).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

ENV_SWITCH = "POOLMIXSTE_FUSED_KERNELS"
SOURCE = Path(__file__).resolve().parent / "csrc" / "fused_blocks.cpp"
NAMESPACE = "poolmixste_fused"
CHANNEL_MULTIPLE = 16  # the kernels work on vectors of 16 channels
COMPILE_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-fno-signed-zeros",
                 "-fassociative-math")


@dataclass
class KernelStatus:
    available: bool
    detail: str  # where the library came from, or why it is not used


_status: KernelStatus | None = None
_lock = threading.Lock()
_eager_only = threading.local()  # set by `eager_only()` for the calls made inside it


def enabled_by_environment() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def eager_only():
    """Run the calls made inside this block through the eager inference path (to compare the two, or to count the
    eager operators)."""
    previous = getattr(_eager_only, "active", False)
    _eager_only.active = True
    try:
        yield
    finally:
        _eager_only.active = previous


def _cpu_tag() -> str:
    """A short name for this CPU's instruction set: builds with -march=native must not be shared between CPUs."""
    description = platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            description += next((line for line in cpuinfo if line.startswith(("flags", "Features"))), "")
    except OSError:
        description += platform.processor()
    return hashlib.sha1(description.encode()).hexdigest()[:10]


def _loaded() -> bool:
    """Whether this process has the kernels' operators registered already."""
    try:
        return getattr(torch.ops, NAMESPACE).norm_mix_norm is not None
    except (AttributeError, RuntimeError):
        return False


def _build() -> KernelStatus:
    if not enabled_by_environment():
        return KernelStatus(False, f"turned off by {ENV_SWITCH}={os.environ[ENV_SWITCH]}")
    if _loaded():
        return KernelStatus(True, "already loaded in this process")
    try:
        # importing the extension builder logs a warning about CUDA when a CUDA toolkit but no GPU runtime is found;
        # these kernels are CPU-only, so that warning is noise here
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        from torch.utils import cpp_extension

        name = f"{NAMESPACE}_{_cpu_tag()}"
        build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
        built = [library.stat().st_mtime for library in build_dir.glob("*.so")]
        if not built or max(built) < SOURCE.stat().st_mtime:  # a build is coming: say why this call takes a while
            print(f"fused CPU inference kernels: building {name} (once per CPU and source version, ~15 s)",
                  file=sys.stderr, flush=True)
        cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=list(COMPILE_FLAGS),
                           is_python_module=False, verbose=False)
        return KernelStatus(True, f"{name} in {build_dir}")
    except Exception as error:  # noqa: BLE001 - any build failure means: run the eager path, and say why
        reason = str(error).strip().splitlines()
        return KernelStatus(False, f"could not be built ({type(error).__name__}: {reason[0] if reason else ''})")


def status() -> KernelStatus:
    """Build (or load the cached build of) the kernels once per process and report whether they are usable."""
    global _status
    with _lock:
        if _status is None:
            _status = _build()
            if not _status.available and enabled_by_environment():
                print(f"fused CPU inference kernels unavailable, using the eager inference path: {_status.detail}",
                      file=sys.stderr, flush=True)
        return _status


def supports(model: nn.Module) -> bool:
    """Whether every block of ``model`` can run the fused kernels (independent of the input and of the machine)."""
    from common.mixers import FcMixer, GraphMixer, PoolMixer

    config = model.config
    if config.embed_dim % CHANNEL_MULTIPLE or model.joint_embed.weight.dtype != torch.float32:
        return False
    norms = [norm for norm in (model.spatial_norm, model.temporal_norm) if isinstance(norm, nn.LayerNorm)]
    for block in (*model.spatial_blocks, *model.temporal_blocks):
        mlp = block.mlp
        if not isinstance(block.mixer, (PoolMixer, GraphMixer, FcMixer)):
            return False
        if getattr(mlp.act, "approximate", None) != "none" or mlp.fc1.bias is None or mlp.fc2.bias is None:
            return False
        norms += [block.norm1, block.norm2]
    return all(norm.weight is not None and norm.bias is not None for norm in norms)


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return compiler.is_compiling()
    return torch._dynamo.is_compiling()  # torch < 2.3


def applies(model: nn.Module, keypoints_2d: torch.Tensor) -> bool:
    """Whether this call of ``model`` takes the fused path (cheap checks first; builds the kernels on first use)."""
    if model.training or torch.is_grad_enabled() or keypoints_2d.device.type != "cpu":
        return False
    if _is_compiling():  # torch.compile traces the eager inference path (it fuses on its own)
        return False
    if keypoints_2d.dtype != torch.float32 or torch.is_autocast_enabled("cpu"):
        return False
    if getattr(_eager_only, "active", False) or not enabled_by_environment() or not supports(model):
        return False
    return status().available


def _layer_scale(module: nn.Module) -> torch.Tensor | None:
    return getattr(module, "gamma", None)


def _run_block(block: nn.Module, x: torch.Tensor, temporal: bool, pre_norm: nn.Module | None,
               pos: torch.Tensor | None) -> torch.Tensor:
    """One MetaFormer block on ``x`` (B, F, J, C), after ``pre_norm`` and ``+ pos`` (the model's stream norm and
    temporal position embedding that precede it). Returns the block's output, computed in ``x``'s memory: ``x`` is
    consumed."""
    ops = getattr(torch.ops, NAMESPACE)
    b, f, j, c = x.shape
    length = f if temporal else j
    rows, cols, values = block.mixer.sparse_mixing(length, x.device)
    scale1, scale2 = _layer_scale(block.layer_scale1), _layer_scale(block.layer_scale2)
    fc1, fc2 = block.mlp.fc1, block.mlp.fc2
    fc2_weight = fc2.weight if scale2 is None else fc2.weight * scale2[:, None]
    fc2_bias = fc2.bias if scale2 is None else fc2.bias * scale2
    residual, normed = ops.norm_mix_norm(
        x, temporal,
        None if pre_norm is None else pre_norm.weight, None if pre_norm is None else pre_norm.bias,
        0.0 if pre_norm is None else pre_norm.eps, pos,
        block.norm1.weight, block.norm1.bias, block.norm1.eps, rows, cols, values, scale1,
        block.norm2.weight, block.norm2.bias, block.norm2.eps, fc2_bias,
    )  # the residual is written over x (not needed any more)
    hidden = torch.mm(normed.view(-1, c), fc1.weight.t())
    ops.bias_gelu_(hidden, fc1.bias)
    residual.view(-1, c).addmm_(hidden, fc2_weight.t())
    return residual


def forward(model: nn.Module, keypoints_2d: torch.Tensor) -> torch.Tensor:
    """`PoseMetaFormer.forward` through the fused kernels (same order of operations as the paper-figure forward)."""
    x = (model.joint_embed(keypoints_2d) + model.spatial_pos).contiguous()
    pending_norm, pending_pos = None, None  # applied at the start of the next block, inside its kernel
    for layer, (spatial_block, temporal_block) in enumerate(zip(model.spatial_blocks, model.temporal_blocks)):
        x = _run_block(spatial_block, x, False, pending_norm, pending_pos)
        pending_norm = model.spatial_norm if isinstance(model.spatial_norm, nn.LayerNorm) else None
        pending_pos = model.temporal_pos[0] if layer == 0 else None
        x = _run_block(temporal_block, x, True, pending_norm, pending_pos)
        pending_norm = model.temporal_norm if isinstance(model.temporal_norm, nn.LayerNorm) else None
        pending_pos = None
    if pending_norm is not None:
        x = pending_norm(x)
    return model.head(model.head_norm(x))
