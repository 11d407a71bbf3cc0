"""Pose MetaFormer: MixSTE (CVPR 2022) with a choice of token mixer per stream, (B, F, J, 2) -> (B, F, J, 3).

Reading order, top to bottom:

1. `ModelConfig`, `PRESETS`, `apply_preset`: every architectural choice, validated, with the named presets
   ``mixste`` (attention + attention: numerically the official MixSTE), ``poolformer`` (pooling in both streams, the
   seed's literal design) and ``default`` (learned spatial fc mixer + temporal pooling, the best measured combination).
2. `temporal_pool_windows`: the per-layer temporal pooling window (``fixed``, ``growing``, ``dilated``) and its reach.
3. `MetaFormerBlock`: ``x = x + DropPath(LayerScale(mixer(norm1(x))))``,
   then ``x = x + DropPath(LayerScale(MLP(norm2(x))))`` (in eval mode without autograd, `forward_inference` computes
   the same function with the residual adds folded into the matrix products).
4. `PoseMetaFormer`: per-joint embedding, learned spatial / temporal position embeddings, ``depth`` strictly alternating
   spatial / temporal blocks, head ``LayerNorm + Linear(C -> 3)``. In eval mode on the CPU without autograd, models
   without attention hand the call to `common.fused_inference` (the same function through fused C++ kernels).

The activations keep the layout ``(B, F, J, C)`` throughout; each mixer mixes along its own axis (see
`common.mixers`). The model outputs a 3D pose for every input frame (seq2seq); it is trained towards root-relative
targets, but like MixSTE it does not force joint 0 to zero itself (the training / evaluation code does).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from timm.layers import LayerScale, Mlp, trunc_normal_
from timm.layers import drop_path as timm_drop_path
from torch import nn

from common import fused_inference
from common.errors import UserError
from common.mixers import SPATIAL, TEMPORAL, AttentionMixer, FcMixer, GraphMixer, PoolMixer, add_linear

H36M_17_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
SPATIAL_MIXERS = ("pool", "graph", "fc", "attention")
TEMPORAL_MIXERS = ("pool", "attention")
TEMPORAL_POOL_SCHEDULES = ("fixed", "growing", "dilated")
WEIGHT_INITS = ("trunc_normal", "torch_default")

# Named presets: the fields each one sets (anything else keeps the ModelConfig default). The "default" preset is also
# what ModelConfig() gives; change the project's default model HERE, in one place.
PRESETS: dict[str, dict] = {
    "mixste": {
        "spatial_mixer": "attention", "temporal_mixer": "attention", "layer_scale_init": None,
        "shared_stream_norms": True, "norm_eps": 1e-6, "head_norm_eps": 1e-5, "weight_init": "torch_default",
    },
    "poolformer": {
        "spatial_mixer": "pool", "temporal_mixer": "pool", "pool_size": 3, "temporal_pool_schedule": "fixed",
        "layer_scale_init": 1e-5, "shared_stream_norms": False, "weight_init": "trunc_normal",
    },
    "default": {
        "spatial_mixer": "fc", "temporal_mixer": "pool", "pool_size": 3, "temporal_pool_schedule": "fixed",
        "layer_scale_init": None, "shared_stream_norms": True, "weight_init": "trunc_normal",
    },
}
_DEFAULT = PRESETS["default"]


@dataclass
class ModelConfig:
    """Every architectural choice of `PoseMetaFormer` (validated on construction; bad values raise `UserError`)."""

    num_frames: int = 243
    num_joints: int = 17
    in_chans: int = 2
    out_chans: int = 3
    embed_dim: int = 512
    depth: int = 8
    mlp_ratio: float = 2.0
    spatial_mixer: str = _DEFAULT["spatial_mixer"]  # pool | graph | fc | attention
    temporal_mixer: str = _DEFAULT["temporal_mixer"]  # pool | attention
    pool_size: int = _DEFAULT["pool_size"]  # odd window of the pooling mixers (first temporal layer for widening)
    temporal_pool_schedule: str = _DEFAULT["temporal_pool_schedule"]  # fixed | growing | dilated (see below)
    num_heads: int = 8
    qkv_bias: bool = True
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    layer_scale_init: float | None = _DEFAULT["layer_scale_init"]  # None: no layer scale (MixSTE)
    norm_eps: float = 1e-6  # LayerNorm eps inside blocks and of the shared stream norms
    head_norm_eps: float = 1e-5
    shared_stream_norms: bool = _DEFAULT["shared_stream_norms"]  # MixSTE's one LayerNorm after every S / T block
    weight_init: str = _DEFAULT["weight_init"]  # trunc_normal (timm / PoolFormer) | torch_default (MixSTE)
    skeleton_parents: tuple[int, ...] = field(default=H36M_17_PARENTS)  # for the graph mixer

    def __post_init__(self) -> None:
        self.skeleton_parents = tuple(int(p) for p in self.skeleton_parents)
        self.validate()

    def validate(self) -> None:
        """Raise `UserError` naming the first offending field."""

        def bad(name: str, expected: str) -> UserError:
            return UserError(f"model config {name}: expected {expected}, got {getattr(self, name)!r}")

        for name in ("num_frames", "num_joints", "in_chans", "out_chans", "embed_dim", "depth", "num_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, "a positive integer")
        if self.spatial_mixer not in SPATIAL_MIXERS:
            raise bad("spatial_mixer", f"one of {', '.join(SPATIAL_MIXERS)}")
        if self.temporal_mixer not in TEMPORAL_MIXERS:
            hint = " (graph and fc mix joints: spatial stream only)" if self.temporal_mixer in SPATIAL_MIXERS else ""
            raise bad("temporal_mixer", f"one of {', '.join(TEMPORAL_MIXERS)}{hint}")
        if self.temporal_pool_schedule not in TEMPORAL_POOL_SCHEDULES:
            raise bad("temporal_pool_schedule", f"one of {', '.join(TEMPORAL_POOL_SCHEDULES)}")
        if self.weight_init not in WEIGHT_INITS:
            raise bad("weight_init", f"one of {', '.join(WEIGHT_INITS)}")
        if isinstance(self.pool_size, bool) or not isinstance(self.pool_size, int) or self.pool_size < 3:
            raise bad("pool_size", "an odd integer >= 3")
        if self.pool_size % 2 == 0:
            raise bad("pool_size", "an odd integer >= 3")
        if "attention" in (self.spatial_mixer, self.temporal_mixer) and self.embed_dim % self.num_heads:
            raise bad("embed_dim", f"a multiple of num_heads={self.num_heads} for attention")
        if not self.mlp_ratio > 0:
            raise bad("mlp_ratio", "a positive number")
        for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, "a probability in [0, 1)")
        if self.layer_scale_init is not None and not self.layer_scale_init > 0:
            raise bad("layer_scale_init", "a positive number or None")
        for name in ("norm_eps", "head_norm_eps"):
            if not getattr(self, name) > 0:
                raise bad(name, "a positive number")
        parents = self.skeleton_parents
        if len(parents) != self.num_joints or any(p < -1 or p >= len(parents) or p == i for i, p in enumerate(parents)):
            raise bad("skeleton_parents", f"{self.num_joints} parent indices (-1 for the root)")

    def to_dict(self) -> dict:
        """Plain-Python dict (JSON friendly) of every field."""
        data = dataclasses.asdict(self)
        data["skeleton_parents"] = list(self.skeleton_parents)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys raise `UserError` (a checkpoint from another model family)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"model config: unknown field(s) {', '.join(unknown)}")
        return cls(**data)


def apply_preset(name: str, overrides: dict | None = None) -> ModelConfig:
    """Config of preset ``name`` with ``overrides`` on top (individual flags win; ``None`` values mean "not given")."""
    if name not in PRESETS:
        raise UserError(f"--preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    values = dict(PRESETS[name])
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return ModelConfig.from_dict(values)


def temporal_pool_windows(config: ModelConfig) -> list[tuple[int, int]]:
    """``(window, dilation)`` of the temporal pooling mixer of every layer.

    - ``fixed``: ``pool_size`` everywhere (pool 3 over 8 layers reaches 8 frames on each side);
    - ``growing``: the window doubles its reach every layer, ``1 + (pool_size - 1) * 2**i`` (3, 5, 9, 17, ...);
    - ``dilated``: ``pool_size`` taps with dilation ``2**i`` (1, 2, 4, ...): the same reach as ``growing`` at a
      constant cost per layer.
    """
    windows = []
    for i in range(config.depth):
        if config.temporal_pool_schedule == "fixed":
            windows.append((config.pool_size, 1))
        elif config.temporal_pool_schedule == "growing":
            windows.append((1 + (config.pool_size - 1) * 2**i, 1))
        else:
            windows.append((config.pool_size, 2**i))
    return windows


def temporal_reach(config: ModelConfig) -> int:
    """Frames on each side of an output frame that can influence it (``num_frames - 1`` means the whole clip)."""
    if config.temporal_mixer == "attention":
        return config.num_frames - 1
    radius = sum((window // 2) * dilation for window, dilation in temporal_pool_windows(config))
    return min(radius, config.num_frames - 1)


def drop_path_rates(config: ModelConfig) -> list[float]:
    """Stochastic depth of layer ``i`` (its spatial and its temporal block): linear from 0 to ``drop_path_rate``."""
    return [float(rate) for rate in torch.linspace(0, config.drop_path_rate, config.depth)]


class SequenceDropPath(nn.Module):
    """Stochastic depth per token sequence, as MixSTE applies it: a frame (spatial) or a joint track (temporal).

    timm's `DropPath` drops whole samples of dim 0; MixSTE's blocks see ``(B*F, J, C)`` / ``(B*J, F, C)`` batches, so
    the keep mask here is drawn per (clip, frame) or per (clip, joint) with timm's ``drop_path`` on a ones tensor.
    """

    def __init__(self, drop_prob: float, axis: str) -> None:
        super().__init__()
        self.drop_prob, self.axis = drop_prob, axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        b, f, j, _ = x.shape
        shape = (b, f, 1, 1) if self.axis == SPATIAL else (b, 1, j, 1)
        keep = timm_drop_path(x.new_ones(shape[0] * shape[1] * shape[2], 1), self.drop_prob, training=True)
        return x * keep.view(shape)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}, axis={self.axis}"


def build_mixer(config: ModelConfig, axis: str, layer: int) -> nn.Module:
    """The token mixer of the spatial or temporal block of layer ``layer``."""
    name = config.spatial_mixer if axis == SPATIAL else config.temporal_mixer
    if name == "attention":
        return AttentionMixer(
            axis, config.embed_dim, config.num_heads, config.qkv_bias, config.attn_drop_rate, config.drop_rate
        )
    if name == "pool" and axis == SPATIAL:
        return PoolMixer(SPATIAL, config.pool_size)
    if name == "pool":
        window, dilation = temporal_pool_windows(config)[layer]
        return PoolMixer(TEMPORAL, window, dilation)
    if name == "graph":
        return GraphMixer(config.skeleton_parents)
    return FcMixer(config.num_joints)


class MetaFormerBlock(nn.Module):
    """``x + DropPath(LayerScale(mixer(norm1(x))))`` then ``x + DropPath(LayerScale(MLP(norm2(x))))``."""

    def __init__(self, config: ModelConfig, axis: str, layer: int, drop_path: float) -> None:
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mixer = build_mixer(config, axis, layer)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), act_layer=nn.GELU, drop=config.drop_rate)
        if config.layer_scale_init is None:
            self.layer_scale1, self.layer_scale2 = nn.Identity(), nn.Identity()
        else:
            self.layer_scale1 = LayerScale(dim, config.layer_scale_init)
            self.layer_scale2 = LayerScale(dim, config.layer_scale_init)
        self.drop_path = SequenceDropPath(drop_path, axis) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and not torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type):
            return self.forward_inference(x)  # (its in-place products need one dtype: not under autocast)
        x = x + self.drop_path(self.layer_scale1(self.mixer(self.norm1(x))))
        return x + self.drop_path(self.layer_scale2(self.mlp(self.norm2(x))))

    def forward_inference(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` in eval mode without autograd (DropPath and dropout are identities): the same function, computed
        in fewer passes over memory. Each residual is accumulated by the matrix product that ends its branch (the
        MLP's fc2, the attention output projection, the fc mixer's ``W - I``), layer scale is folded into those
        weights, and GELU runs in place. Tests check it against `forward` with autograd on."""
        x = self.mixer.add_mixed(x, self.norm1(x), _layer_scale(self.layer_scale1))
        hidden = self.mlp.fc1(self.norm2(x))
        hidden = torch.ops.aten.gelu_(hidden, approximate=self.mlp.act.approximate)
        return add_linear(x, hidden, self.mlp.fc2, _layer_scale(self.layer_scale2))


def _layer_scale(module: nn.Module) -> torch.Tensor | None:
    """The per-channel factors of a timm `LayerScale`, or None for `nn.Identity` (no layer scale)."""
    return module.gamma if isinstance(module, LayerScale) else None


class PoseMetaFormer(nn.Module):
    """2D keypoint clips ``(B, F, J, 2)`` -> 3D poses ``(B, F, J, 3)`` for every frame (seq2seq)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        dim, depth = config.embed_dim, config.depth
        self.joint_embed = nn.Linear(config.in_chans, dim)
        self.spatial_pos = nn.Parameter(torch.zeros(1, config.num_joints, dim))  # one per joint token
        self.temporal_pos = nn.Parameter(torch.zeros(1, config.num_frames, dim))  # one per frame token
        self.pos_drop = nn.Dropout(config.drop_rate)
        rates = drop_path_rates(config)
        self.spatial_blocks = nn.ModuleList(MetaFormerBlock(config, SPATIAL, i, rates[i]) for i in range(depth))
        self.temporal_blocks = nn.ModuleList(MetaFormerBlock(config, TEMPORAL, i, rates[i]) for i in range(depth))
        shared = config.shared_stream_norms
        self.spatial_norm = nn.LayerNorm(dim, eps=config.norm_eps) if shared else nn.Identity()
        self.temporal_norm = nn.LayerNorm(dim, eps=config.norm_eps) if shared else nn.Identity()
        self.head_norm = nn.LayerNorm(dim, eps=config.head_norm_eps)
        self.head = nn.Linear(dim, config.out_chans)
        if config.weight_init == "trunc_normal":
            self.apply(_init_trunc_normal)
            trunc_normal_(self.spatial_pos, std=0.02)
            trunc_normal_(self.temporal_pos, std=0.02)

    def forward(self, keypoints_2d: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        expected = (cfg.num_frames, cfg.num_joints, cfg.in_chans)
        if keypoints_2d.dim() != 4 or tuple(keypoints_2d.shape[1:]) != expected:
            raise ValueError(
                f"PoseMetaFormer expects input (B, {', '.join(map(str, expected))}) "
                f"(the temporal position embedding has {cfg.num_frames} frames), got {tuple(keypoints_2d.shape)}"
            )
        if fused_inference.applies(self, keypoints_2d):  # eval on the CPU: the same function through fused kernels
            return fused_inference.forward(self, keypoints_2d)
        # Each stream's position embedding is added once, before its first block (MixSTE's order of operations).
        x = self.pos_drop(self.joint_embed(keypoints_2d) + self.spatial_pos)
        for layer, (spatial_block, temporal_block) in enumerate(zip(self.spatial_blocks, self.temporal_blocks)):
            x = self.spatial_norm(spatial_block(x))
            if layer == 0:
                x = self.pos_drop(x + self.temporal_pos.unsqueeze(2))
            x = self.temporal_norm(temporal_block(x))
        return self.head(self.head_norm(x))


def _init_trunc_normal(module: nn.Module) -> None:
    """timm / PoolFormer initialisation: Linear weights ~ trunc_normal(std 0.02), zero biases."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_model(config: ModelConfig) -> PoseMetaFormer:
    """Construct the model for ``config`` (random weights; load checkpoints with `common.checkpoint`)."""
    return PoseMetaFormer(config)
