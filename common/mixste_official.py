"""Official MixSTE checkpoints <-> `PoseMetaFormer` with the ``mixste`` preset: explicit, strict key mapping.

The official code (MixSTE repository, ``common/model_cross.py``, class ``MixSTE2``) names its parameters
``Spatial_patch_to_embedding``, ``Spatial_pos_embed``, ``Temporal_pos_embed``, ``STEblocks.<i>`` / ``TTEblocks.<i>``
(``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``), ``Spatial_norm``, ``Temporal_norm`` and
``head.0`` (LayerNorm) / ``head.1`` (Linear). Its ``run.py`` saves ``{epoch, lr, random_state, optimizer, model_pos}``
with ``model_pos`` taken from a ``DataParallel`` wrapper, so every key starts with ``module.``.

The mapping is strict: any official key without a counterpart, any parameter of ours left without a value and any
shape mismatch is reported together in one `UserError` (the official loader silently loads nothing when prefixes do
not match; we never do).

SECURITY: an official checkpoint contains a pickled ``numpy.random.RandomState``, so reading it needs
``torch.load(weights_only=False)``, which can execute arbitrary code from the file. Only load files you trust.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping

import torch

from common.errors import UserError
from common.model import PRESETS, ModelConfig, PoseMetaFormer

DATA_PARALLEL_PREFIX = "module."

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
# Official block list -> ours, and official parameter path inside a block -> ours.
BLOCK_LISTS = {"STEblocks": "spatial_blocks", "TTEblocks": "temporal_blocks"}
BLOCK_PARAMETER_NAMES = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "attn.qkv.weight": "mixer.qkv.weight",
    "attn.qkv.bias": "mixer.qkv.bias",
    "attn.proj.weight": "mixer.proj.weight",
    "attn.proj.bias": "mixer.proj.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
_BLOCK_KEY = re.compile(r"^(?P<list>\w+)\.(?P<index>\d+)\.(?P<rest>.+)$")


def official_to_our_name(name: str) -> str | None:
    """Our parameter name for an official one (without ``module.``), or None if the official name is unknown."""
    if name in TOP_LEVEL_NAMES:
        return TOP_LEVEL_NAMES[name]
    match = _BLOCK_KEY.match(name)
    if match and match["list"] in BLOCK_LISTS and match["rest"] in BLOCK_PARAMETER_NAMES:
        return f"{BLOCK_LISTS[match['list']]}.{match['index']}.{BLOCK_PARAMETER_NAMES[match['rest']]}"
    return None


def our_to_official_name(name: str) -> str | None:
    """Official parameter name (without ``module.``) for one of ours, or None if MixSTE has no such parameter."""
    for official, ours in TOP_LEVEL_NAMES.items():
        if ours == name:
            return official
    match = _BLOCK_KEY.match(name)
    if match:
        lists = {ours: official for official, ours in BLOCK_LISTS.items()}
        inside = {ours: official for official, ours in BLOCK_PARAMETER_NAMES.items()}
        if match["list"] in lists and match["rest"] in inside:
            return f"{lists[match['list']]}.{match['index']}.{inside[match['rest']]}"
    return None


def strip_data_parallel_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.`` when EVERY key carries it (a DataParallel checkpoint); a mixture is left as is (and fails)."""
    if state_dict and all(key.startswith(DATA_PARALLEL_PREFIX) for key in state_dict):
        return {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in state_dict.items()}
    return dict(state_dict)


def _format_problems(source: str, missing: list[str], unexpected: list[str], misshaped: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} key(s): {', '.join(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected)}")
    if misshaped:
        parts.append(f"mis-shaped {len(misshaped)} key(s): {', '.join(misshaped)}")
    return f"{source}: does not match a MixSTE model of this configuration; " + "; ".join(parts)


def official_state_dict_to_ours(
    official: Mapping[str, torch.Tensor], model: PoseMetaFormer, source: str = "official MixSTE weights"
) -> dict[str, torch.Tensor]:
    """Rename an official ``model_pos`` dict to ``model``'s names; every problem is listed in one `UserError`.

    Missing keys are named as ours, unexpected keys as found in the file, mis-shaped ones as
    ``official_name (file shape) -> our_name (model shape)``.
    """
    official = strip_data_parallel_prefix(official)
    expected = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    unexpected, misshaped, misshaped_ours = [], [], set()
    for name, value in official.items():
        ours = official_to_our_name(name)
        if ours is None or ours not in expected:
            unexpected.append(name)
        elif tuple(value.shape) != tuple(expected[ours].shape):
            misshaped.append(f"{name} {tuple(value.shape)} -> {ours} {tuple(expected[ours].shape)}")
            misshaped_ours.add(ours)
        else:
            converted[ours] = value
    missing = [name for name in expected if name not in converted and name not in misshaped_ours]
    if missing or unexpected or misshaped:
        raise UserError(_format_problems(source, missing, unexpected, misshaped))
    return converted


def our_state_dict_to_official(state_dict: Mapping[str, torch.Tensor], data_parallel: bool = True) -> dict:
    """Export: our ``mixste``-preset weights under the official names (``module.`` prefixed by default)."""
    prefix = DATA_PARALLEL_PREFIX if data_parallel else ""
    exported, unknown = {}, []
    for name, value in state_dict.items():
        official = our_to_official_name(name)
        if official is None:
            unknown.append(name)
        else:
            exported[prefix + official] = value
    if unknown:
        raise UserError(f"export to MixSTE: these parameters have no MixSTE counterpart: {', '.join(unknown)}")
    return exported


def config_from_official_state_dict(
    official: Mapping[str, torch.Tensor], num_heads: int = 8, **overrides
) -> ModelConfig:
    """The ``mixste``-preset config whose shapes match an official ``model_pos`` (frames, joints, width, depth).

    The number of heads is not visible in the weights (MixSTE always uses 8); pass ``num_heads`` if it differs.
    """
    official = strip_data_parallel_prefix(official)
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
    )
    values.update(overrides)
    return ModelConfig.from_dict(values)


def load_official_checkpoint(path: str | os.PathLike, trust: bool = True) -> dict:
    """Read an official MixSTE checkpoint file (``{epoch, lr, random_state, optimizer, model_pos}``).

    ONLY FOR FILES YOU TRUST: the checkpoint holds a pickled ``numpy.random.RandomState``, so it is read with
    ``torch.load(weights_only=False)``, which can run arbitrary code stored in the file. With ``trust=False`` the
    file is read with ``weights_only=True`` instead, which refuses such checkpoints (a `UserError` explains why).
    """
    if not os.path.isfile(path):
        raise UserError(f"{path}: MixSTE checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as error:
        if trust:
            raise UserError(f"{path}: not a readable MixSTE checkpoint ({error})") from None
        raise UserError(
            f"{path}: this checkpoint contains pickled Python objects (MixSTE stores a numpy RandomState); "
            "load it with trust=True only if you trust the file (unpickling can execute code)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable MixSTE checkpoint ({error})") from None
    if not isinstance(checkpoint, dict) or "model_pos" not in checkpoint:
        keys = ", ".join(map(str, checkpoint)) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise UserError(f"{path}: expected an official MixSTE checkpoint with a 'model_pos' entry (found: {keys})")
    return checkpoint


def load_official_weights(model: PoseMetaFormer, path: str | os.PathLike, trust: bool = True) -> dict:
    """Load an official MixSTE checkpoint file into ``model`` (strict); returns the checkpoint dict.

    Unpickles the file (see `load_official_checkpoint`): only for files you trust.
    """
    checkpoint = load_official_checkpoint(path, trust=trust)
    weights = official_state_dict_to_ours(checkpoint["model_pos"], model, source=str(path))
    model.load_state_dict(weights, strict=True)
    return checkpoint


def is_official_state_dict(state_dict: Mapping) -> bool:
    """True if ``state_dict`` looks like an official MixSTE ``model_pos`` (with or without ``module.``)."""
    keys = strip_data_parallel_prefix({str(k): None for k in state_dict})
    return "Spatial_patch_to_embedding.weight" in keys and "Temporal_pos_embed" in keys
