"""Token mixers of the pose MetaFormer: the only part of a block that moves information between tokens.

Every mixer takes and returns the model's activation tensor ``(B, F, J, C)`` (clips, frames, joints, channels) and
mixes along ONE token axis, leaving the other one as a batch of independent sequences:

- spatial stream (``axis="spatial"``): the J joint tokens of every frame;
- temporal stream (``axis="temporal"``): the F frame tokens of every joint (the same weights for every joint).

As in timm's MetaFormer, the mixers are classes in a registry (`TOKEN_MIXERS`, name -> class) with one constructor
signature, ``Mixer(config, axis, layer)``: each reads what it needs from the `ModelConfig` (``layer`` only matters to
the temporal pooling schedule). `TOKEN_MIXERS` and each class's ``axes`` are the one list of mixer names (the config
and the command line take theirs from `mixer_names`).

- `PoolMixer` (``pool``): PoolFormer's pooling, ``mean over a window of tokens - identity``; stride 1, the padding is
  not counted (tokens at the edges average over fewer neighbours), optional dilation, no parameters. In a causal model
  (``config.causal``) the temporal window holds the same number of taps, all at or before the token (`window_mean`).
- `GraphMixer` (``graph``, spatial only): mean over each joint's skeleton neighbours (parent, children, itself)
  minus the identity.
- `FcMixer` (``fc``, spatial only): MetaFormer's learned token mixing, ``W x - x`` with a learnable J x J matrix ``W``.
- `AttentionMixer` (``attention``): multi-head self-attention exactly as MixSTE (qkv projection with bias,
  softmax(q k^T / sqrt(d)) v, output projection); parameter names ``qkv`` / ``proj`` match MixSTE's. In a causal model
  the temporal stream's attention is masked to the current and earlier frames (the fused kernel's ``is_causal``).

Causality is a property of the temporal mixers alone: the spatial mixers mix the joints of one frame, and everything
else in the model (embeddings, norms, MLPs, head) works on one token at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import einops
import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from common.core.errors import UserError

if TYPE_CHECKING:  # the config module takes its mixer names from here; mixers only read a config's fields
    from common.model.config import ModelConfig

SPATIAL = "spatial"
TEMPORAL = "temporal"
AXES = (SPATIAL, TEMPORAL)
TEMPORAL_POOL_SCHEDULES = ("fixed", "growing", "dilated")


def _check_axis(axis: str) -> None:
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")


def temporal_pool_windows(config: ModelConfig) -> list[tuple[int, int]]:
    """``(window, dilation)`` of the temporal pooling mixer of every layer.

    - ``fixed``: ``pool_size`` everywhere (pool 3 over 8 layers reaches 8 frames on each side);
    - ``growing``: the window doubles its reach every layer, ``1 + (pool_size - 1) * 2**i`` (3, 5, 9, 17, ...);
    - ``dilated``: ``pool_size`` taps with dilation ``2**i`` (1, 2, 4, ...): the same reach as ``growing`` at a
      constant cost per layer.
    """
    schedule, size = config.temporal_pool_schedule, config.pool_size
    if schedule == "fixed":
        return [(size, 1)] * config.depth
    if schedule == "growing":
        return [(1 + (size - 1) * 2**i, 1) for i in range(config.depth)]
    return [(size, 2**i) for i in range(config.depth)]


def window_mean(x: torch.Tensor, axis: str, window: int, dilation: int = 1, causal: bool = False) -> torch.Tensor:
    """Mean of every token's window, counting only tokens inside the sequence.

    Centred (default): the taps ``t + m * dilation`` with ``|m| <= window // 2``. Causal: the same number of taps,
    all at or before the token, ``t - m * dilation`` with ``0 <= m < window`` (a token's mean then depends on no later
    token, and the reach into the past doubles).

    ``x`` is ``(B, F, J, C)``; ``axis`` selects F (temporal) or J (spatial). ``window`` is odd. Windows wider than the
    sequence simply average everything in reach.
    """
    _check_axis(axis)
    dim = 1 if axis == TEMPORAL else 2
    if causal:
        return _causal_window_mean(x, dim, window, dilation)
    length, radius = x.shape[dim], window // 2
    if dilation == 1:
        # ``(B, F, J, C)`` seen as ``(B, C, F, J)`` is a channels-last view (no copy): avg_pool2d pools along F with a
        # (k, 1) kernel or along J with a (1, k) kernel, vectorised over the channels.
        radius = min(radius, length - 1)  # a wider window reaches nothing more (and avg_pool needs pad <= kernel/2)
        if radius == 0:
            return x
        size, pad = ((2 * radius + 1, 1), (radius, 0)) if axis == TEMPORAL else ((1, 2 * radius + 1), (0, radius))
        channels_last = einops.rearrange(x, "b f j c -> b c f j")
        pooled = F.avg_pool2d(channels_last, size, stride=1, padding=pad, count_include_pad=False)
        return einops.rearrange(pooled, "b c f j -> b f j c")
    # Dilated window: sum of shifted copies over a zero-padded sequence, divided by the number of real tokens.
    reach = radius * dilation
    padded = F.pad(x, [0, 0] * (x.dim() - 1 - dim) + [reach, reach])
    offsets = range(-radius, radius + 1)
    total = sum(padded.narrow(dim, reach + m * dilation, length) for m in offsets)
    positions = torch.arange(length, device=x.device)
    count = sum(((positions + m * dilation >= 0) & (positions + m * dilation < length)).to(x.dtype) for m in offsets)
    return total / _along(count, x, dim)


def _along(values: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    """A ``(L,)`` tensor shaped to broadcast along dimension ``dim`` of ``x``."""
    shape = [1] * x.dim()
    shape[dim] = values.shape[0]
    return values.view(shape)


def _causal_window_mean(x: torch.Tensor, dim: int, window: int, dilation: int) -> torch.Tensor:
    """`window_mean` with the taps ``t - m * dilation``, ``0 <= m < window``: zeros before the sequence start are
    summed (they add nothing) but not counted. Every output token is computed from its own taps only."""
    length = x.shape[dim]
    taps = min(window, (length - 1) // dilation + 1)  # taps reaching before the first token add nothing
    if taps == 1:
        return x
    reach = (taps - 1) * dilation
    padded = F.pad(x, [0, 0] * (x.dim() - 1 - dim) + [reach, 0])  # zeros before the first token only
    if dilation == 1:
        # window sums of a (B, C, F', J) channels-last view: avg_pool2d with a (taps, 1) / (1, taps) kernel, divisor 1
        kernel = (taps, 1) if dim == 1 else (1, taps)
        channels_last = einops.rearrange(padded, "b f j c -> b c f j")
        total = einops.rearrange(F.avg_pool2d(channels_last, kernel, stride=1, divisor_override=1),
                                 "b c f j -> b f j c")
    else:
        total = sum(padded.narrow(dim, reach - m * dilation, length) for m in range(taps))
    positions = torch.arange(length, device=x.device)
    count = torch.clamp(torch.div(positions, dilation, rounding_mode="floor") + 1, max=taps).to(x.dtype)
    return total / _along(count, x, dim)


def mix_joints(mixing: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``mixing @ x`` for a ``(J, J)`` matrix and ``(B, F, J, C)`` tokens (the same mixing for every clip and frame).

    One batched product over the ``B * F`` frames, each ``(J, J) @ (J, C)`` read in place from the model layout.
    (``torch.matmul`` with a broadcast ``(J, J)`` operand instead transposes ``x`` into a copy and runs one thin
    ``(B F C, J) @ (J, J)`` product, and its backward copies again: 4x slower forward, 1.7x slower backward here.)
    """
    b, f, j, _ = x.shape
    frames = einops.rearrange(x, "b f j c -> (b f) j c")
    return einops.rearrange(torch.bmm(mixing.expand(b * f, j, j), frames), "(b f) j c -> b f j c", b=b)


def skeleton_neighbour_matrix(parents: tuple[int, ...] | list[int]) -> torch.Tensor:
    """Row-normalised ``(J, J)`` matrix averaging each joint with its skeleton neighbours (parent, children, itself)."""
    adjacency = torch.eye(len(parents))
    for child, parent in enumerate(parents):
        if parent >= 0:
            adjacency[child, parent] = adjacency[parent, child] = 1.0
    return adjacency / adjacency.sum(dim=1, keepdim=True)


class PoolMixer(nn.Module):
    """PoolFormer token mixer: ``window_mean(x) - x`` along one axis (no parameters).

    The spatial stream pools ``pool_size`` joint indices; the temporal stream uses the window and dilation of its
    layer in the ``temporal_pool_schedule`` (`temporal_pool_windows`), causal windows in a causal model.
    """

    axes = AXES

    def __init__(self, config: ModelConfig, axis: str, layer: int) -> None:
        super().__init__()
        _check_axis(axis)
        self.axis = axis
        self.window, self.dilation = (config.pool_size, 1) if axis == SPATIAL else temporal_pool_windows(config)[layer]
        self.causal = axis == TEMPORAL and config.causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return window_mean(x, self.axis, self.window, self.dilation, self.causal) - x

    def extra_repr(self) -> str:
        return f"axis={self.axis}, window={self.window}, dilation={self.dilation}, causal={self.causal}"


class GraphMixer(nn.Module):
    """Mean over each joint's skeleton neighbours minus the identity (spatial stream, no learned parameters).

    Neighbouring joint *indices* are not neighbouring joints (the Head, index 10, sits next to the LShoulder, 11), so
    the neighbourhood comes from the config's ``skeleton_parents`` rather than from a window over indices.
    """

    axes = (SPATIAL,)

    def __init__(self, config: ModelConfig, axis: str, layer: int) -> None:
        super().__init__()
        parents = config.skeleton_parents
        mixing = skeleton_neighbour_matrix(parents) - torch.eye(len(parents))
        self.register_buffer("mixing", mixing, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mix_joints(self.mixing, x)


class FcMixer(nn.Module):
    """MetaFormer's learned spatial token mixing: a learnable ``J x J`` matrix ``W`` across joints, ``W x - x``.

    Content independent (the same mixing for every frame and clip) and nearly free: ``J * J * C`` MACs per frame.
    """

    axes = (SPATIAL,)

    def __init__(self, config: ModelConfig, axis: str, layer: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(config.num_joints, config.num_joints))
        trunc_normal_(self.weight, std=0.02)
        self.register_buffer("identity", torch.eye(config.num_joints), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mix_joints(self.weight - self.identity, x)  # (W - I) x in one product


class AttentionMixer(nn.Module):
    """Multi-head self-attention over one axis, numerically MixSTE's ``Attention`` (scale ``head_dim ** -0.5``).

    Spatial sequences (the joints of a frame) are contiguous in the model layout, so the qkv projection runs on it
    directly; temporal sequences (the frames of a joint) are gathered by one copy of the input. The heads are split
    by a view (4-D ``(sequences, heads, length, head dim)``: the fused CPU kernel of ``scaled_dot_product_attention``
    takes only 4-D inputs); one copy merges the heads back into ``(B, F, J, C)``.
    """

    axes = AXES

    def __init__(self, config: ModelConfig, axis: str, layer: int) -> None:
        super().__init__()
        _check_axis(axis)
        dim = config.embed_dim  # a multiple of num_heads (ModelConfig checks it)
        self.axis, self.num_heads, self.attn_drop = axis, config.num_heads, config.attn_drop_rate
        self.causal = axis == TEMPORAL and config.causal  # frame t attends to frames <= t
        self.qkv = nn.Linear(dim, dim * 3, bias=config.qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f, j, _ = x.shape
        if self.axis == SPATIAL:  # (b, f, sequence of j)
            tokens, merge = x, "(b f) h j d -> b f j (h d)"
        else:  # (b, j, sequence of f)
            tokens, merge = einops.rearrange(x, "b f j c -> b j f c"), "(b j) h f d -> b f j (h d)"
        qkv = self.qkv(tokens)
        q, k, v = einops.rearrange(qkv, "n m l (three h d) -> three (n m) h l d", three=3, h=self.num_heads)
        mixed = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0,
                                               is_causal=self.causal)
        return self.proj_drop(self.proj(einops.rearrange(mixed, merge, b=b, f=f, j=j)))

    def extra_repr(self) -> str:
        return f"axis={self.axis}, num_heads={self.num_heads}, attn_drop={self.attn_drop}, causal={self.causal}"


TOKEN_MIXERS: dict[str, type[nn.Module]] = {
    "pool": PoolMixer,
    "graph": GraphMixer,
    "fc": FcMixer,
    "attention": AttentionMixer,
}


def mixer_names(axis: str) -> tuple[str, ...]:
    """The registered mixers that can mix along ``axis`` (graph and fc mix joints: spatial only)."""
    _check_axis(axis)
    return tuple(name for name, mixer in TOKEN_MIXERS.items() if axis in mixer.axes)


def create_mixer(name: str, config: ModelConfig, axis: str, layer: int) -> nn.Module:
    """The registered mixer ``name`` for the ``axis`` block of layer ``layer``; UserError for an unknown name."""
    if name not in mixer_names(axis):
        raise UserError(f"{axis} mixer: expected one of {', '.join(mixer_names(axis))}, got {name!r}")
    return TOKEN_MIXERS[name](config, axis, layer)
