"""The model of a run: a new one from the preset and flags, or the one stored in a checkpoint (project or official).

`build_from_checkpoint` is the one place where flags and a checkpoint's stored configuration are reconciled; `run.py`
(``--evaluate``, ``-r``, the final evaluation) and `inference/video_to_3d.py` both use it. ``overrides`` are the
`ModelConfig` fields the user set explicitly (`common.cli.run_arguments.model_overrides`): the checkpoint wins over
defaults, an explicit flag that contradicts it is an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from common.cli.run_arguments import model_field_flags
from common.core.errors import UserError, first_line
from common.geometry.keypoint_layouts import NUM_MODEL_JOINTS
from common.model import checkpoints, pretrained
from common.model.config import PRESETS, ModelConfig, ModelConfigError, apply_preset
from common.model.mixste_official import config_from_official_state_dict
from common.training import distributed

# Fields an official MixSTE file cannot tell (not visible in its weights): flags may set them.
OFFICIAL_FREE_FIELDS = ("num_heads", "drop_rate", "drop_path_rate")


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint file."""

    model: nn.Module
    config: ModelConfig
    stored: dict
    path: Path

    @property
    def official(self) -> bool:
        return checkpoints.is_official_mixste(self.stored)

    def describe(self) -> str:
        kind = "official MixSTE" if self.official else "project"
        return f"{self.path} ({kind} checkpoint, {self.stored.get('epoch', '?')} epochs)"


def _in_flag_names(text: str, flags: dict[str, str]) -> str:
    """``text`` with each `ModelConfig` field that a flag sets named by its flag (``num_heads``: ``--num-heads``)."""
    return re.sub(r"\b[a-z_]+\b", lambda match: flags.get(match.group(0), match.group(0)), text)


def new_model_config(overrides: dict, preset: str | None, num_joints: int) -> ModelConfig:
    """A new model: the preset (default: 'default') with the flags on top; a bad value names its flag."""
    try:
        return apply_preset(preset or "default", {**overrides, "num_joints": num_joints})
    except ModelConfigError as error:
        flags = model_field_flags()
        if error.field not in flags:
            raise
        source = "" if error.field in overrides else f" (the default of --preset {preset or 'default'})"
        raise UserError(f"{flags[error.field]} {error.value}{source}: expected "
                        f"{_in_flag_names(error.expected, flags)}") from None


def _stored_config(stored: object, source: str) -> ModelConfig:
    """The checkpoint's ``model_config`` as a `ModelConfig`; a bad one is a UserError naming the file."""
    if not isinstance(stored, dict):
        raise UserError(f"{source}: the checkpoint's model_config is a {type(stored).__name__}; expected a dict of "
                        "model settings (written by run.py)")
    try:
        return ModelConfig.from_dict(stored)
    except UserError as error:
        raise UserError(f"{source}: the checkpoint's model_config is not usable ({error})") from None
    except (TypeError, ValueError) as error:
        raise UserError(f"{source}: the checkpoint's model_config is not usable ({type(error).__name__}: "
                        f"{first_line(error)[:120]})") from None


def stored_model_config(stored: dict, overrides: dict, preset: str | None, num_joints: int | None,
                        source: str) -> ModelConfig:
    """The configuration stored in a project checkpoint; flags (and ``--preset``) must agree with it."""
    config = _stored_config(stored, source)
    if preset:
        apply_preset(preset)  # an unknown preset name is a UserError
        overrides = {**PRESETS[preset], **overrides}
    flags = model_field_flags()
    conflicts = [f"{flags.get(k, k)}={v!r} (checkpoint: {stored.get(k)!r})"
                 for k, v in overrides.items() if stored.get(k) != v]
    if conflicts:
        raise UserError(f"{source}: flags contradict the model stored in the checkpoint: {', '.join(conflicts)}")
    if num_joints is not None and config.num_joints != num_joints:
        raise UserError(f"{source}: model predicts {config.num_joints} joints, the data has {num_joints}")
    return config


def official_model_config(weights: dict, overrides: dict, source: str) -> ModelConfig:
    """The configuration of official MixSTE weights; flags may only set what the weights cannot tell."""
    free = {k: v for k, v in overrides.items() if k in OFFICIAL_FREE_FIELDS}
    config = config_from_official_state_dict(weights, **free)
    conflicts = [f"{k}={v!r} (file: {getattr(config, k)!r})" for k, v in overrides.items()
                 if k not in free and getattr(config, k) != v]
    if conflicts:
        raise UserError(f"{source}: official MixSTE weights do not match the flags: {', '.join(conflicts)}")
    return config


def build_from_checkpoint(path: str | os.PathLike, overrides: dict | None = None, preset: str | None = None,
                          num_joints: int | None = None) -> LoadedModel:
    """The model of a project or official MixSTE checkpoint with its weights (eval mode)."""
    path = Path(path)
    overrides = overrides or {}
    stored = checkpoints.load_checkpoint(path)
    if checkpoints.is_official_mixste(stored):
        config = official_model_config(stored["model_pos"], overrides, str(path))
        if num_joints is not None and config.num_joints != num_joints:
            raise UserError(f"{path}: model predicts {config.num_joints} joints, the data has {num_joints}")
    else:
        config = stored_model_config(stored["model_config"], overrides, preset, num_joints, str(path))
    model = checkpoints.model_with_weights(config, stored, path)
    return LoadedModel(model.eval(), config, stored, path)


def load_video_lifter(value: str | os.PathLike, use: str, log: Callable[[str], object] = print) -> LoadedModel:
    """The lifter of ``--checkpoint VALUE`` for a video script (``use``: "video lifting", "live lifting"): a shipped
    model's name or a project / official MixSTE checkpoint file (a shipped file is verified by its sha256 first and
    ``log`` gets the line naming it). It must take the 17 Human3.6M joints as (x, y) and predict (x, y, z)."""
    path = pretrained.resolve_checkpoint(os.fspath(value), None, "--checkpoint", log=log)
    entry = pretrained.find_entry(os.fspath(value)) or pretrained.shipped_entry_of(path)
    if entry is not None:
        log(f"model: {entry.summary()}")
    loaded = build_from_checkpoint(path)
    config = loaded.config
    if config.num_joints != NUM_MODEL_JOINTS or config.in_chans != 2 or config.out_chans != 3:
        raise UserError(
            f"--checkpoint {path}: the model takes {config.num_joints} joints x {config.in_chans} inputs and predicts "
            f"{config.out_chans} values, but {use} gives {NUM_MODEL_JOINTS} Human3.6M joints (x, y) -> (x, y, z)")
    return loaded


def place_model(model: nn.Module, ctx, compile_model: bool, training: bool, log: Callable[[str], object]):
    """``--compile`` (in place: state-dict keys stay unchanged), then the device and DP/DDP wrapping (evaluation under
    torchrun runs on rank 0 alone, so it gets the bare model: a DDP forward would wait for the other ranks)."""
    if compile_model and ctx.data_parallel:
        raise UserError(f"--compile with -gpu {','.join(map(str, ctx.device_ids))}: DataParallel replicas do not "
                        "carry the compiled graph; use torchrun for --compile on several GPUs")
    if compile_model:
        model.compile()
        log("--compile: the model runs through torch.compile (inductor); the first steps include compilation")
    if ctx.distributed and not training:
        return model.to(ctx.device)
    return distributed.wrap_model(model, ctx)
