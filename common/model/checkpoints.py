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

Official MixSTE / VideoPose3D checkpoints (no ``model_config``) are recognised by `is_official_mixste`; their weights
are renamed by `common.model.mixste_official` and then go through the same strict `load_model_weights`.

`load_checkpoint` is the one reader for both kinds and it is safe: ``torch.load(weights_only=True)`` with only the
numpy pieces of the pickled ``RandomState`` that official files carry allow-listed (no arbitrary unpickling). Every
refusal is one line naming the file: the refused global of a crafted file, what a non-checkpoint file is (text, empty,
plain pickle, ...), a directory, or weights that are not finite (`non_finite_tensors`, also the training loop's
check). `save_checkpoint` writes through a Python file handle inside `common.core.files.atomic_write`, so a full disk
is that one-line error too.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.core.errors import UserError, existing_file, first_line
from common.core.files import atomic_write
from common.model.config import ModelConfig
from common.model.metaformer import build_model
from common.model.mixste_official import official_state_dict_to_ours

FORMAT = "poolmixste-checkpoint"
FORMAT_VERSION = 1
MAX_LISTED_KEYS = 8
EXPECTED_FILE = "a checkpoint written by run.py or an official MixSTE checkpoint"
_REFUSED_GLOBAL = re.compile(r"GLOBAL\s+([A-Za-z_][\w.]*)")


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
    return atomic_write(path, lambda tmp: _write_state(state, tmp))


def _write_state(state: dict, tmp: str) -> None:
    """``torch.save`` through a Python file handle: a full disk is then an ``OSError`` (ENOSPC) that `atomic_write`
    reports in one line (torch's own file writer turns it into an opaque RuntimeError)."""
    with open(tmp, "wb") as handle:
        torch.save(state, handle)


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
    if direct.is_dir() or inside.is_dir():
        raise UserError(f"{flag} {name}: is a directory; expected {EXPECTED_FILE}")
    raise UserError(f"{flag} {name}: checkpoint not found (looked for {inside} and {direct})")


def _describe_unreadable(path: Path, error: Exception) -> str:
    """One line for a file ``torch.load(weights_only=True)`` refused: the refused global, or what the file is."""
    if isinstance(error, OSError) and error.errno is not None:
        return f"{path}: cannot read the checkpoint ({error.strerror})"
    refused = _REFUSED_GLOBAL.search(str(error))
    if refused:
        return (f"{path}: refused to load {refused.group(1)}: a checkpoint may hold only tensors, numbers, strings and "
                "containers (and official MixSTE's numpy random state); this one names other Python objects, which "
                "could run code, so it was not read")
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head:
        kind = "the file is empty"
    elif zipfile.is_zipfile(path):
        detail = first_line(error)
        kind = "a zip archive that torch cannot read as a checkpoint" + (
            f": {detail}" if len(detail) <= 120 and not isinstance(error, KeyError) else "")
    elif b"\0" not in head and _is_text(head):
        kind = "a text file"
    elif head[:1] == b"\x80":
        kind = "a plain pickle, not a torch checkpoint"
    else:
        kind = "not a torch checkpoint (neither a zip archive nor a pickle)"
    return f"{path}: not a checkpoint ({kind}); expected {EXPECTED_FILE}"


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def non_finite_tensors(state_dict: dict) -> list[str]:
    """Names of the floating-point tensors of ``state_dict`` that hold NaN or infinity (a diverged model)."""
    return [name for name, value in state_dict.items()
            if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()]


def describe_non_finite(names: list[str]) -> str:
    """``N weight tensor(s) are not finite (NaN or infinity; first: a, b, c)``."""
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return f"{len(names)} weight tensor(s) are not finite (NaN or infinity; first: {shown})"


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a project or official MixSTE/VideoPose3D checkpoint on the CPU; UserError if it is not a checkpoint, if it
    names Python objects beyond plain data, or if its weights are not finite."""
    path = existing_file(path, "checkpoint", EXPECTED_FILE)
    try:
        with torch.serialization.safe_globals(_numpy_random_state_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile,
            AttributeError, ImportError, KeyError, TypeError, IndexError) as error:
        raise UserError(_describe_unreadable(path, error)) from None
    if not isinstance(data, dict) or not isinstance(data.get("model_pos"), dict):
        raise UserError(f"{path}: not a pose checkpoint (expected a dict with a 'model_pos' state dict)")
    data["model_pos"] = strip_module_prefix(data["model_pos"])
    bad = non_finite_tensors(data["model_pos"])
    if bad:
        raise UserError(f"{path}: not a usable model: {describe_non_finite(bad)}; the training that wrote it "
                        "diverged (train again with a lower -lr)")
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


def model_with_weights(config: ModelConfig, checkpoint: dict, source: str | os.PathLike) -> nn.Module:
    """Build the model of ``config`` and load the weights of a loaded checkpoint (project or official MixSTE).

    Official MixSTE weights are first renamed (`common.model.mixste_official`); both kinds then go through the strict
    `load_model_weights`: any missing, unexpected or mis-shaped key is a `UserError` that lists them.
    """
    model = build_model(config)
    weights = checkpoint["model_pos"]
    if is_official_mixste(checkpoint):
        weights = official_state_dict_to_ours(strip_module_prefix(weights))
    load_model_weights(model, weights, source)
    return model
