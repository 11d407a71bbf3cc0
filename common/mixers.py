"""Token mixers of the pose MetaFormer: the only part of a block that moves information between tokens.

Every mixer takes and returns the model's activation tensor ``(B, F, J, C)`` (clips, frames, joints, channels) and
mixes along ONE token axis, leaving the other one as a batch of independent sequences:

- spatial stream (``axis="spatial"``): the J joint tokens of every frame;
- temporal stream (``axis="temporal"``): the F frame tokens of every joint (the same weights for every joint).

Mixers:

- `PoolMixer`: PoolFormer's pooling, ``mean over a window of tokens - identity``; stride 1, the padding is not counted
  (tokens at the edges average over fewer neighbours), optional dilation, no parameters.
- `GraphMixer` (spatial only): mean over each joint's skeleton neighbours (parent, children and itself) - identity.
- `FcMixer` (spatial only): MetaFormer's learned token mixing, ``W x - x`` with a learnable J x J matrix ``W``.
- `AttentionMixer`: multi-head self-attention exactly as MixSTE (qkv projection with bias, softmax(q k^T / sqrt(d)) v,
  output projection); parameter names ``qkv`` / ``proj`` match MixSTE's so its checkpoints map one to one.

Every mixer also has ``add_mixed(x, normed, scale)`` = ``x + scale * mixer(normed)``, the residual update of its block,
used by the block's inference path (eval mode, no autograd). It is the same function computed in fewer passes over
memory: where the mixer ends in a matrix product (`FcMixer`'s ``W - I``, `AttentionMixer`'s output projection) the
residual is accumulated by that product itself, otherwise it is one fused ``x + scale * m`` (``addcmul``).

`PoolMixer`, `GraphMixer` and `FcMixer` are linear maps along their axis; ``sparse_mixing(L)`` gives each as a sparse
``L x L`` matrix (compressed rows), the form in which the fused CPU kernels of `common.fused_inference` run them.

The pooling mixer works on the ``(B, F, J, C)`` memory layout directly: viewed as a ``(B, C, F, J)`` tensor it is
exactly PyTorch's channels-last layout, so ``avg_pool2d`` pools along F (kernel ``(k, 1)``) or J (kernel ``(1, k)``)
with its vectorised channels-last kernel and no transpose copy.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

SPATIAL = "spatial"
TEMPORAL = "temporal"
AXES = (SPATIAL, TEMPORAL)


def _check_axis(axis: str) -> None:
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")


def window_mean(x: torch.Tensor, axis: str, window: int, dilation: int = 1) -> torch.Tensor:
    """Mean of every token's window ``t + m * dilation`` (``|m| <= window // 2``), counting only tokens inside.

    ``x`` is ``(B, F, J, C)``; ``axis`` selects F (temporal) or J (spatial). ``window`` is odd. Windows wider than the
    sequence simply average everything in reach.
    """
    _check_axis(axis)
    dim = 1 if axis == TEMPORAL else 2
    length = x.shape[dim]
    radius = window // 2
    if dilation == 1:
        radius = min(radius, length - 1)  # a wider window reaches nothing more (and avg_pool needs pad <= kernel/2)
        kernel = 2 * radius + 1
        if kernel == 1:
            return x
        as_channels_last = x.permute(0, 3, 1, 2)  # (B, C, F, J) view with channels-last strides: no copy
        size, pad = ((kernel, 1), (radius, 0)) if axis == TEMPORAL else ((1, kernel), (0, radius))
        pooled = F.avg_pool2d(as_channels_last, size, stride=1, padding=pad, count_include_pad=False)
        return pooled.permute(0, 2, 3, 1)
    # Dilated window: sum of shifted copies over a zero-padded sequence, divided by the number of real tokens.
    reach = radius * dilation
    padding = [0, 0] * (x.dim() - 1 - dim) + [reach, reach]
    padded = F.pad(x, padding)
    total = sum(padded.narrow(dim, reach + m * dilation, length) for m in range(-radius, radius + 1))
    positions = torch.arange(length, device=x.device)
    count = torch.zeros(length, device=x.device, dtype=x.dtype)
    for m in range(-radius, radius + 1):
        count += ((positions + m * dilation >= 0) & (positions + m * dilation < length)).to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = length
    return total / count.view(shape)


def sparse_rows(matrix: torch.Tensor, keep_zeros: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A dense ``(L, L)`` token-mixing matrix in compressed sparse row form ``(row offsets, columns, values)``: the
    form the fused CPU kernels (`common.fused_inference`) take a mixer in. ``keep_zeros`` keeps every entry (a dense
    matrix, which those kernels run with their dense-matrix loop)."""
    matrix = matrix.detach().float()
    nonzero = torch.ones_like(matrix, dtype=torch.bool) if keep_zeros else matrix != 0
    offsets = torch.zeros(matrix.shape[0] + 1, dtype=torch.long, device=matrix.device)
    offsets[1:] = nonzero.sum(dim=1).cumsum(0)
    columns = nonzero.nonzero()[:, 1].contiguous()
    return offsets, columns, matrix[nonzero].contiguous()


def add_scaled(x: torch.Tensor, mixed: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """``x + scale * mixed`` in one pass (``scale``: per-channel layer scale, or None for 1)."""
    return x + mixed if scale is None else torch.addcmul(x, scale, mixed)


class PoolMixer(nn.Module):
    """PoolFormer token mixer: ``window_mean(x) - x`` along one axis (no parameters)."""

    def __init__(self, axis: str, window: int = 3, dilation: int = 1) -> None:
        super().__init__()
        _check_axis(axis)
        if window < 1 or window % 2 == 0:
            raise ValueError(f"pool window must be an odd positive integer, got {window}")
        if dilation < 1:
            raise ValueError(f"pool dilation must be >= 1, got {dilation}")
        self.axis, self.window, self.dilation = axis, window, dilation
        self._sparse_cache: dict = {}

    def reach(self) -> int:
        """How many tokens on each side one application of this mixer can see."""
        return (self.window // 2) * self.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return window_mean(x, self.axis, self.window, self.dilation) - x

    def add_mixed(self, x: torch.Tensor, normed: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        return add_scaled(x, self(normed), scale)

    def mixing_matrix(self, length: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """This mixer as an ``(L, L)`` matrix along its axis (``mixer(x) = M x``): the mixer applied to the identity."""
        identity = torch.eye(length, device=device)
        tokens = identity.view(1, length, 1, length) if self.axis == TEMPORAL else identity.view(1, 1, length, length)
        mixed = self(tokens)  # channel s of token t = M[t, s]
        return mixed[0, :, 0, :] if self.axis == TEMPORAL else mixed[0, 0]

    def sparse_mixing(self, length: int, device: torch.device | str = "cpu"):
        """`mixing_matrix` in sparse row form (cached: pooling has no parameters)."""
        key = (length, str(device))
        if key not in self._sparse_cache:
            with torch.no_grad():
                self._sparse_cache[key] = sparse_rows(self.mixing_matrix(length, device))
        return self._sparse_cache[key]

    def extra_repr(self) -> str:
        return f"axis={self.axis}, window={self.window}, dilation={self.dilation}"


def skeleton_neighbour_matrix(parents: tuple[int, ...] | list[int]) -> torch.Tensor:
    """Row-normalised ``(J, J)`` matrix averaging each joint with its skeleton neighbours (parent, children, itself)."""
    num = len(parents)
    adjacency = torch.eye(num)
    for child, parent in enumerate(parents):
        if parent >= 0:
            adjacency[child, parent] = 1.0
            adjacency[parent, child] = 1.0
    return adjacency / adjacency.sum(dim=1, keepdim=True)


class GraphMixer(nn.Module):
    """Mean over each joint's skeleton neighbours minus the identity (spatial stream, no learned parameters).

    Neighbouring joint *indices* are not neighbouring joints (the Head, index 10, sits next to the LShoulder, 11), so
    the neighbourhood comes from the parent list rather than from a window over indices.
    """

    def __init__(self, parents: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        mixing = skeleton_neighbour_matrix(parents) - torch.eye(len(parents))
        self.register_buffer("mixing", mixing, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mix_joints(self.mixing, x)

    def add_mixed(self, x: torch.Tensor, normed: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        return mix_joints(self.mixing, normed, x) if scale is None else add_scaled(x, self(normed), scale)

    def sparse_mixing(self, length: int, device: torch.device | str = "cpu"):
        """The neighbour matrix minus the identity in sparse row form (``length`` must be J)."""
        if length != self.mixing.shape[0]:
            raise ValueError(f"graph mixer has {self.mixing.shape[0]} joints, asked for {length}")
        return sparse_rows(self.mixing.to(device))


class FcMixer(nn.Module):
    """MetaFormer's learned spatial token mixing: a learnable ``J x J`` matrix ``W`` across joints, ``W x - x``.

    Content independent (the same mixing for every frame and clip) and nearly free: ``J * J * C`` MACs per frame.
    """

    def __init__(self, num_tokens: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_tokens, num_tokens))
        trunc_normal_(self.weight, std=0.02)
        self.register_buffer("identity", torch.eye(num_tokens), persistent=False)
        self._dense_structure: tuple[torch.Tensor, torch.Tensor] | None = None  # row offsets, columns of a J x J matrix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mix_joints(self.weight - self.identity, x)  # (W - I) x in one product (J x J, folded before use)

    def add_mixed(self, x: torch.Tensor, normed: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        if scale is not None:
            return add_scaled(x, self(normed), scale)
        return mix_joints(self.weight - self.identity, normed, x)

    def sparse_mixing(self, length: int, device: torch.device | str = "cpu"):
        """``W - I`` as a dense matrix in sparse row form (``length`` must be J); follows the current weights."""
        if length != self.weight.shape[0]:
            raise ValueError(f"fc mixer has {self.weight.shape[0]} joints, asked for {length}")
        values = (self.weight - self.identity).detach().to(device=device, dtype=torch.float32).reshape(-1)
        if self._dense_structure is None or self._dense_structure[0].device != values.device:
            self._dense_structure = sparse_rows(torch.ones(length, length, device=values.device), True)[:2]
        return (*self._dense_structure, values.contiguous())


def mix_joints(mixing: torch.Tensor, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    """``mixing @ x`` for a ``(J, J)`` matrix and ``(B, F, J, C)`` tokens (the same mixing for every clip and frame),
    plus ``residual`` when given, accumulated by the same product (``baddbmm``) instead of a separate add.

    One batched product over the ``B * F`` frames, each ``(J, J) @ (J, C)`` read in place from the model layout.
    (``torch.matmul`` with a broadcast ``(J, J)`` operand instead transposes ``x`` into a copy and runs one thin
    ``(B F C, J) @ (J, J)`` product, and its backward copies again: 4x slower forward, 1.7x slower backward here.)
    """
    b, f, j, c = x.shape
    frames, mixing = (b * f, j, c), mixing.expand(b * f, j, j)
    if residual is None:
        return torch.bmm(mixing, x.reshape(frames)).view(b, f, j, c)
    return torch.baddbmm(residual.reshape(frames), mixing, x.reshape(frames)).view(b, f, j, c)


class AttentionMixer(nn.Module):
    """Multi-head self-attention over one axis, numerically MixSTE's ``Attention`` (scale ``head_dim ** -0.5``)."""

    def __init__(
        self, axis: str, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        _check_axis(axis)
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} heads")
        self.axis, self.num_heads, self.attn_drop = axis, num_heads, attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """Attention over this mixer's axis BEFORE the output projection, in and out in the model layout (B, F, J, C).

        Spatial sequences (the joints of a frame) are already contiguous in the model layout, so the qkv projection
        runs on it directly; temporal sequences (the frames of a joint) are gathered by one copy of the input. The
        heads are split by a view; the only other copy merges the heads back into ``(B, F, J, C)``.
        """
        b, f, j, _ = x.shape
        if self.axis == SPATIAL:  # (b, f, sequence of j)
            tokens, merge = x, "(b f) h j d -> b f j (h d)"
        else:  # (b, j, sequence of f)
            tokens, merge = einops.rearrange(x, "b f j c -> b j f c"), "(b j) h f d -> b f j (h d)"
        qkv = self.qkv(tokens)
        # 4-D (sequences, heads, length, head dim) views: SDPA's fused CPU kernel takes only 4-D inputs
        q, k, v = einops.rearrange(qkv, "n m l (three h d) -> three (n m) h l d", three=3, h=self.num_heads)
        mixed = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return einops.rearrange(mixed, merge, b=b, f=f, j=j)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_drop(self.proj(self.attend(x)))

    def add_mixed(self, x: torch.Tensor, normed: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        return add_linear(x, self.attend(normed), self.proj, scale)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, num_heads={self.num_heads}, attn_drop={self.attn_drop}"


def add_linear(x: torch.Tensor, inputs: torch.Tensor, linear: nn.Linear, scale: torch.Tensor | None) -> torch.Tensor:
    """``x + scale * linear(inputs)`` with the residual accumulated by the matrix product itself (``addmm_`` into
    ``x + bias``): no separate bias copy and residual add. ``scale`` (layer scale) is folded into the weights."""
    weight, bias = linear.weight, linear.bias
    if scale is not None:
        weight = weight * scale[:, None]
        bias = None if bias is None else bias * scale
    out = (x.clone() if bias is None else x + bias).contiguous()
    out.view(-1, out.shape[-1]).addmm_(inputs.reshape(-1, inputs.shape[-1]), weight.t())
    return out
