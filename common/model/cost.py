"""Model size and compute: parameter count and analytic multiply-accumulates (MACs) per clip and per frame.

`count_macs(config)` counts every matrix product of one forward pass of one clip:

- joint embedding ``Linear(in_chans -> C)`` and head ``Linear(C -> out_chans)`` on every (frame, joint) token;
- per block: the MLP (``fc1`` and ``fc2``: ``2 * C * hidden`` per token);
- attention mixer: ``qkv`` (``3 C^2``) and ``proj`` (``C^2``) per token, plus the attention matmuls ``Q K^T`` and
  ``A V``: ``2 * heads * L^2 * head_dim = 2 * L^2 * C`` per sequence of ``L`` tokens (J per frame for the spatial
  stream, F per joint for the temporal stream; a causal model's masked temporal attention is counted in full);
- fc and graph mixers: a ``J x J`` matrix times the ``J x C`` tokens of every frame, ``J^2 C`` per frame (the graph
  mixer is a fixed matrix, but it is computed as a matrix product, so it is counted like one);
- pooling mixer: no multiplications (0 MACs); its additions are reported separately as ``pool_adds``.

LayerNorm, GELU, softmax, residual additions and position embeddings are not counted (as in FlopCounterMode, which
this count is checked against: FLOPs = 2 * MACs).
"""

from __future__ import annotations

from torch import nn

from common.model.config import ModelConfig
from common.model.mixers import temporal_pool_windows


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _pool_adds(length: int, window: int, dilation: int, causal: bool = False) -> int:
    """Additions of a window mean over one sequence (summing the valid taps of every token; causal: `window` taps at
    or before the token, see `common.model.mixers.window_mean`)."""
    offsets = range(-window + 1, 1) if causal else range(-(window // 2), window // 2 + 1)
    taps = sum(sum(1 for m in offsets if 0 <= t + m * dilation < length) for t in range(length))
    return taps - length


def count_macs(config: ModelConfig) -> dict[str, int | float]:
    """Analytic MACs of one forward pass: ``per_clip``, ``per_frame`` and a breakdown by component."""
    frames, joints, dim = config.num_frames, config.num_joints, config.embed_dim
    hidden = int(dim * config.mlp_ratio)
    tokens = frames * joints
    breakdown = {
        "embed": tokens * config.in_chans * dim,
        "mlp": 2 * config.depth * tokens * 2 * dim * hidden,
        "spatial_mixer": 0,
        "temporal_mixer": 0,
        "head": tokens * dim * config.out_chans,
    }
    pool_adds = 0
    for stream, mixer, length, sequences in (
        ("spatial_mixer", config.spatial_mixer, joints, frames),
        ("temporal_mixer", config.temporal_mixer, frames, joints),
    ):
        if mixer == "attention":
            projections = tokens * 4 * dim * dim  # qkv (3 C^2) + proj (C^2) per token
            attention = sequences * 2 * length * length * dim  # Q K^T and A V over all heads
            breakdown[stream] = config.depth * (projections + attention)
        elif mixer in ("fc", "graph"):
            breakdown[stream] = config.depth * frames * joints * joints * dim
        elif stream == "spatial_mixer":
            pool_adds += config.depth * sequences * dim * _pool_adds(length, config.pool_size, 1)
        else:
            pool_adds += sum(sequences * dim * _pool_adds(length, w, d, config.causal)
                             for w, d in temporal_pool_windows(config))
    per_clip = sum(breakdown.values())
    return {"per_clip": per_clip, "per_frame": per_clip / frames, "pool_adds": pool_adds, **breakdown}


def _human(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def describe_model(model: nn.Module, config: ModelConfig) -> str:
    """One line for logs: mixers (``causal`` for a causal model), size, parameters and MACs per clip / per frame."""
    macs = count_macs(config)
    mixers = f"{config.spatial_mixer}+{config.temporal_mixer}"
    if config.temporal_mixer == "pool":
        mixers += f"(pool {config.pool_size}, {config.temporal_pool_schedule})"
    if config.causal:
        mixers += " causal"
    return (
        f"model {mixers}: F={config.num_frames} C={config.embed_dim} depth={config.depth}, "
        f"{count_parameters(model) / 1e6:.3f}M params, {_human(macs['per_clip'])}MACs/clip, "
        f"{_human(macs['per_frame'])}MACs/frame"
    )
