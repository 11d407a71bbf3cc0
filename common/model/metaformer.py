"""Pose MetaFormer: MixSTE (CVPR 2022) with a choice of token mixer per stream, (B, F, J, 2) -> (B, F, J, 3).

Reading order (with `common.model.config` for the choices and `common.model.mixers` for the token mixers):

1. `MetaFormerBlock`: ``x = x + DropPath(LayerScale(mixer(norm1(x))))``,
   then ``x = x + DropPath(LayerScale(MLP(norm2(x))))``; the block only calls ``self.mixer(x)``.
2. `PoseMetaFormer`: per-joint embedding, learned spatial / temporal position embeddings, ``depth`` strictly
   alternating spatial / temporal blocks, head ``LayerNorm + Linear(C -> 3)``. Its `forward` is the only forward
   (training and inference alike; ``--compile`` / `torch.compile` is the supported way to go faster).

The activations keep the layout ``(B, F, J, C)`` throughout; each mixer mixes along its own axis. Only the temporal
mixers move information between frames (the temporal position embedding is added per frame; norms, MLPs and the head
work per token), so a causal config (``causal=True``: causal temporal mixers) makes the whole model causal: the output
of frame t depends on input frames <= t only. The model outputs a
3D pose for every input frame (seq2seq); it is trained towards root-relative targets, but like MixSTE it does not
force joint 0 to zero itself (the training / evaluation code does).
"""

from __future__ import annotations

import einops
import torch
from timm.layers import LayerScale, Mlp, trunc_normal_
from timm.layers import drop_path as timm_drop_path
from torch import nn

from common.model.config import ModelConfig
from common.model.mixers import SPATIAL, TEMPORAL, create_mixer


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


class MetaFormerBlock(nn.Module):
    """``x + DropPath(LayerScale(mixer(norm1(x))))`` then ``x + DropPath(LayerScale(MLP(norm2(x))))``."""

    def __init__(self, config: ModelConfig, axis: str, layer: int, drop_path: float) -> None:
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mixer = create_mixer(config.mixer(axis), config, axis, layer)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), act_layer=nn.GELU, drop=config.drop_rate)
        if config.layer_scale_init is None:
            self.layer_scale1, self.layer_scale2 = nn.Identity(), nn.Identity()
        else:
            self.layer_scale1 = LayerScale(dim, config.layer_scale_init)
            self.layer_scale2 = LayerScale(dim, config.layer_scale_init)
        self.drop_path = SequenceDropPath(drop_path, axis) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale1(self.mixer(self.norm1(x))))
        return x + self.drop_path(self.layer_scale2(self.mlp(self.norm2(x))))


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
        # Each stream's position embedding is added once, before its first block (MixSTE's order of operations).
        x = self.pos_drop(self.joint_embed(keypoints_2d) + self.spatial_pos)
        for layer, (spatial_block, temporal_block) in enumerate(zip(self.spatial_blocks, self.temporal_blocks)):
            x = self.spatial_norm(spatial_block(x))
            if layer == 0:
                x = self.pos_drop(x + einops.rearrange(self.temporal_pos, "1 f c -> 1 f 1 c"))
            x = self.temporal_norm(temporal_block(x))
        return self.head(self.head_norm(x))


def _init_trunc_normal(module: nn.Module) -> None:
    """timm / PoolFormer initialisation: Linear weights ~ trunc_normal(std 0.02), zero biases."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_model(config: ModelConfig) -> PoseMetaFormer:
    """Construct the model for ``config`` (random weights; load checkpoints with `common.model.checkpoints`)."""
    return PoseMetaFormer(config)
