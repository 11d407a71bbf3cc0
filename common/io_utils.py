"""File helpers: atomic writes (never a half-written output) and npz loading with clear errors."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from common.errors import UserError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, writer: Callable[[str], object], suffix: str | None = None) -> Path:
    """Call ``writer(tmp_path)`` on a temporary file next to ``path``, then rename it over ``path``.

    The temporary name keeps the final suffix (``suffix`` or the one of ``path``) so that writers which pick a
    format from the extension (numpy, matplotlib, imageio) behave as for the final file.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UserError(f"{path}: output directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise UserError(f"{path}: output directory {directory} is not writable")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + (suffix or path.suffix), dir=directory)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_savez(path: str | os.PathLike, compressed: bool = True, **arrays) -> Path:
    """Write an ``.npz`` atomically. ``path`` must end in ``.npz`` (numpy would otherwise append it)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise UserError(f"{path}: expected a file name ending in .npz")
    save = np.savez_compressed if compressed else np.savez
    return atomic_write(path, lambda tmp: save(tmp, **arrays))


def load_npz(path: str | os.PathLike, required_keys: Iterable[str] = (), what: str = "npz file") -> dict:
    """Load every array of an npz file (pickles allowed: VideoPose3D stores dicts) with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        with np.load(path, allow_pickle=True) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as error:
        raise UserError(f"{path}: not a readable {what} ({error})") from None
    missing = [key for key in required_keys if key not in arrays]
    if missing:
        raise UserError(f"{path}: {what} lacks the key(s) {', '.join(missing)} (has: {', '.join(arrays) or 'none'})")
    return arrays
