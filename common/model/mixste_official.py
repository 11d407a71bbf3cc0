"""Official MixSTE checkpoints -> `PoseMetaFormer` with the ``mixste`` preset: an explicit key mapping.

The official code (MixSTE repository, ``common/model_cross.py``, class ``MixSTE2``) names its parameters
``Spatial_patch_to_embedding``, ``Spatial_pos_embed``, ``Temporal_pos_embed``, ``STEblocks.<i>`` / ``TTEblocks.<i>``
(``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``), ``Spatial_norm``, ``Temporal_norm`` and
``head.0`` (LayerNorm) / ``head.1`` (Linear). Its ``run.py`` saves ``{epoch, lr, random_state, optimizer, model_pos}``
with ``model_pos`` taken from a ``DataParallel`` wrapper (every key starts with ``module.``; `load_checkpoint` of
`common.model.checkpoints` reads such files safely and strips the prefix).

`official_state_dict_to_ours` only renames; the strict check (every missing, unexpected or mis-shaped key listed in
one `UserError`) is the project's one weight loader, `common.model.checkpoints.load_model_weights`. Official keys
without a counterpart keep their name, so that check reports them as found in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from common.core.errors import UserError
from common.model.config import PRESETS, ModelConfig

# MixSTE's training value (its run.py builds the training model with drop_path_rate=0.1); it only matters when
# training continues from an official checkpoint.
OFFICIAL_DROP_PATH_RATE = 0.1

# Official top-level name -> ours.
TOP_LEVEL_NAMES = {
    "Spatial_patch_to_embedding.weight": "joint_embed.weight",
    "Spatial_patch_to_embedding.bias": "joint_embed.bias",
    "Spatial_pos_embed": "spatial_pos",
    "Temporal_pos_embed": "temporal_pos",
    "Spatial_norm.weight": "spatial_norm.weight",
    "Spatial_norm.bias": "spatial_norm.bias",
    "Temporal_norm.weight": "temporal_norm.weight",
    "Temporal_norm.bias": "temporal_norm.bias",
    "head.0.weight": "head_norm.weight",
    "head.0.bias": "head_norm.bias",
    "head.1.weight": "head.weight",
    "head.1.bias": "head.bias",
}
# Official block list -> ours, and official module path inside a block -> ours.
BLOCK_LISTS = {"STEblocks": "spatial_blocks", "TTEblocks": "temporal_blocks"}
BLOCK_MODULES = {"norm1": "norm1", "attn.qkv": "mixer.qkv", "attn.proj": "mixer.proj", "norm2": "norm2",
                 "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
_BLOCK_KEY = re.compile(r"^(?P<list>\w+)\.(?P<index>\d+)\.(?P<module>.+)\.(?P<tensor>weight|bias)$")


def official_to_our_name(name: str) -> str | None:
    """Our parameter name for an official one (without ``module.``), or None if the official name is unknown."""
    if name in TOP_LEVEL_NAMES:
        return TOP_LEVEL_NAMES[name]
    match = _BLOCK_KEY.match(name)
    if match and match["list"] in BLOCK_LISTS and match["module"] in BLOCK_MODULES:
        return f"{BLOCK_LISTS[match['list']]}.{match['index']}.{BLOCK_MODULES[match['module']]}.{match['tensor']}"
    return None


def official_state_dict_to_ours(official: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official ``model_pos`` (without ``module.``) under our names; unknown official names are kept as they are."""
    return {official_to_our_name(name) or name: value for name, value in official.items()}


def config_from_official_state_dict(
    official: Mapping[str, torch.Tensor], num_heads: int = 8, **overrides
) -> ModelConfig:
    """The ``mixste``-preset config whose shapes match an official ``model_pos`` (frames, joints, width, depth).

    The number of heads is not visible in the weights (MixSTE always uses 8); pass ``num_heads`` if it differs.
    """
    try:
        _, num_frames, _ = official["Temporal_pos_embed"].shape
        _, num_joints, embed_dim = official["Spatial_pos_embed"].shape
        in_chans = official["Spatial_patch_to_embedding.weight"].shape[1]
        out_chans = official["head.1.weight"].shape[0]
        hidden = official["STEblocks.0.mlp.fc1.weight"].shape[0]
    except (KeyError, ValueError, AttributeError) as error:
        raise UserError(f"official MixSTE weights: cannot infer the model shape ({error!r})") from None
    depth = 1 + max(int(m["index"]) for key in official if (m := _BLOCK_KEY.match(key)) and m["list"] == "STEblocks")
    values = dict(PRESETS["mixste"])
    values.update(
        num_frames=int(num_frames), num_joints=int(num_joints), embed_dim=int(embed_dim), in_chans=int(in_chans),
        out_chans=int(out_chans), depth=depth, mlp_ratio=hidden / embed_dim, num_heads=num_heads,
        drop_path_rate=OFFICIAL_DROP_PATH_RATE,
    )
    values.update(overrides)
    return ModelConfig.from_dict(values)
