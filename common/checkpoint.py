"""Project checkpoints: atomic save, safe load (``weights_only``), model rebuilding and official MixSTE detection.

A project checkpoint is a dict with VideoPose3D/MixSTE's keys plus what an exact resume and a self-describing
evaluation need:

- ``epoch`` (epochs completed), ``lr`` (learning rate of the next epoch), ``optimizer`` (state dict),
  ``model_pos`` (model state dict, never with the ``module.`` prefix of DataParallel/DDP);
- ``random_state``: ``{"torch": ByteTensor, "numpy": [...], "python": [...]}`` as plain Python objects, so that our
  files load with ``torch.load(weights_only=True)`` (VideoPose3D stores a pickled numpy RandomState instead);
- ``model_config`` (`ModelConfig.to_dict()`), ``best_val`` (best validation MPJPE in metres or None),
  ``loader_state`` (the training sampler's state dict), ``history`` (per-epoch curves), ``scaler`` (AMP scaler state or
  None), ``args`` (the command line, for the record), ``format`` / ``format_version``.

Official MixSTE checkpoints (no ``model_config``) are recognised by `is_official_mixste` and mapped onto our model by
`common.mixste_official`.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.errors import UserError
from common.io_utils import atomic_write

FORMAT = "poolmixste-checkpoint"
FORMAT_VERSION = 1
MAX_LISTED_KEYS = 8


def capture_random_state() -> dict:
    """The torch, numpy and Python global RNG states as weights_only-loadable objects."""
    np_state = np.random.get_state()  # noqa: NPY002 (the global state is what we save)
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": list(_listify(random.getstate())),
    }


def _listify(value):
    return [_listify(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tupleify(value):
    return tuple(_tupleify(v) for v in value) if isinstance(value, (tuple, list)) else value


def restore_random_state(state: dict) -> None:
    """Inverse of `capture_random_state` (ignores a VideoPose3D-style numpy RandomState object)."""
    if not isinstance(state, dict):
        return
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    if "python" in state:
        random.setstate(_tupleify(state["python"]))


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside DataParallel / DistributedDataParallel wrappers."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


def strip_module_prefix(state_dict: dict) -> dict:
    """Remove the ``module.`` prefix that DataParallel/DDP state dicts carry."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module."):]: value for key, value in state_dict.items()}
    return dict(state_dict)


def save_checkpoint(path: str | os.PathLike, *, epoch: int, lr: float, model: nn.Module, optimizer, model_config: dict,
                    best_val: float | None, loader_state: dict | None, history: dict | None = None,
                    scaler_state: dict | None = None, args: dict | None = None) -> Path:
    """Write a project checkpoint atomically (temporary file + rename)."""
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "epoch": int(epoch),
        "lr": float(lr),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "model_pos": unwrap_model(model).state_dict(),
        "random_state": capture_random_state(),
        "model_config": dict(model_config),
        "best_val": None if best_val is None else float(best_val),
        "loader_state": loader_state,
        "history": history or {},
        "scaler": scaler_state,
        "args": {key: value for key, value in (args or {}).items() if isinstance(value, (str, int, float, bool))
                 or value is None},
    }
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def _numpy_random_state_globals() -> list:
    """numpy objects that a VideoPose3D/MixSTE checkpoint pickles in ``random_state`` (allow-listed, nothing else)."""
    from numpy.random import MT19937, RandomState
    from numpy.random import _pickle as np_random_pickle

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    allowed = [np.ndarray, np.dtype, multiarray._reconstruct, RandomState, MT19937,
               np_random_pickle.__bit_generator_ctor, np_random_pickle.__randomstate_ctor]
    allowed += [type(np.dtype(name)) for name in ("uint32", "int64", "float64")]
    ctor = getattr(np_random_pickle, "__legacy_ctor", None)
    return allowed + ([ctor] if ctor is not None else [])


def resolve_checkpoint_path(name: str, checkpoint_dir: str | os.PathLike, flag: str) -> Path:
    """``name`` inside ``checkpoint_dir`` (VideoPose3D's convention), else ``name`` as a path; UserError if neither."""
    inside = Path(checkpoint_dir) / name
    if inside.is_file():
        return inside
    direct = Path(name)
    if direct.is_file():
        return direct
    raise UserError(f"{flag} {name}: checkpoint not found (looked for {inside} and {direct})")


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a project or official MixSTE/VideoPose3D checkpoint on the CPU; UserError if it is not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(_numpy_random_state_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile,
            AttributeError, ImportError, KeyError, TypeError, IndexError) as error:
        first_line = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: not a checkpoint readable by torch.load ({first_line})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_pos"), dict):
        raise UserError(f"{path}: not a pose checkpoint (expected a dict with a 'model_pos' state dict)")
    data["model_pos"] = strip_module_prefix(data["model_pos"])
    return data


def is_official_mixste(checkpoint: dict) -> bool:
    """True for a checkpoint written by the official MixSTE/VideoPose3D code (no stored model configuration)."""
    return "model_config" not in checkpoint


def describe_mismatch(model: nn.Module, state_dict: dict) -> list[str]:
    """Human-readable differences between ``model``'s parameters and ``state_dict`` (empty when they match)."""
    expected = unwrap_model(model).state_dict()
    problems = []
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    shapes = [f"{key} {tuple(state_dict[key].shape)} vs {tuple(expected[key].shape)}"
              for key in expected if key in state_dict and tuple(state_dict[key].shape) != tuple(expected[key].shape)]
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape (file vs model)", shapes)):
        if keys:
            shown = ", ".join(keys[:MAX_LISTED_KEYS]) + (f", ... ({len(keys)} in all)" if len(keys) > MAX_LISTED_KEYS
                                                           else "")
            problems.append(f"{label}: {shown}")
    return problems


def load_model_weights(model: nn.Module, state_dict: dict, source: str | os.PathLike) -> None:
    """Strictly load ``state_dict`` into ``model``; a checkpoint of another architecture is a UserError listing keys."""
    state_dict = strip_module_prefix(state_dict)
    problems = describe_mismatch(model, state_dict)
    if problems:
        raise UserError(f"{source}: checkpoint of another architecture ({'; '.join(problems)})")
    unwrap_model(model).load_state_dict(state_dict, strict=True)


def model_with_weights(config, checkpoint: dict, source: str | os.PathLike) -> nn.Module:
    """Build the model of ``config`` and load the weights of a loaded checkpoint (project or official MixSTE).

    Official MixSTE weights go through the strict key mapping of `common.mixste_official`; project weights through
    `load_model_weights`. Any missing, unexpected or mis-shaped key is a `UserError` that lists them.
    """
    from common.mixste_official import official_state_dict_to_ours
    from common.model import build_model

    model = build_model(config)
    if is_official_mixste(checkpoint):
        model.load_state_dict(official_state_dict_to_ours(checkpoint["model_pos"], model, source=str(source)),
                              strict=True)
    else:
        load_model_weights(model, checkpoint["model_pos"], source)
    return model
