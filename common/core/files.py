"""File helpers: atomic writes (never a half-written output, no temp file left) and safe npz loading.

Outputs are written under a temporary name ``.NAME.tmp-<pid>-<random><suffix>`` next to the final file and renamed
over it only when complete. A failed or interrupted write (exception, Ctrl-C, SIGTERM through `run_cli`) removes the
temporary file; one left behind by a killed process (SIGKILL, power loss) is removed by the next write into the same
folder once its process is gone. npz files are read without running code that a file may carry (see `safe_pickle`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from common.core.errors import UserError, existing_file, first_line
from common.core.safe_pickle import unpickle_data

TEMP_NAME = re.compile(r"\..+\.tmp-(?P<pid>\d+)-[a-z0-9_]{8}(\.[A-Za-z0-9]+)?")
"""Names of our temporary files: ``.NAME.tmp-<pid>-<8 random characters>`` + the final suffix."""
STALE_AFTER_S = 24 * 3600
"""A temporary file untouched this long is stale even if a process with its pid runs (pids get reused)."""


def current_umask() -> int:
    """The process umask (reading it requires setting it: set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def remove_stale_temps(directory: Path) -> list[Path]:
    """Remove our temporary files in `directory` whose process is gone (or untouched for a day); return them."""
    removed = []
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            match = TEMP_NAME.fullmatch(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):  # vanished meanwhile (another cleaner) or not ours to remove
                stale = not _process_alive(int(match["pid"])) or now - entry.stat().st_mtime > STALE_AFTER_S
                if stale:
                    os.remove(entry.path)
                    removed.append(Path(entry.path))
    return removed


def reserve_temp(path: str | os.PathLike, suffix: str | None = None) -> str:
    """Create an empty temporary file for `path` in its folder (after checking the folder); return its name.

    The name ends in `suffix` (default: the suffix of `path`) so that writers which choose the format from the
    extension (numpy, matplotlib, imageio) behave as for the final file. Stale temporary files are removed first.
    """
    path = Path(path)
    directory = path.parent
    if not directory.is_dir():
        raise UserError(f"{path}: output directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise UserError(f"{path}: output directory {directory} is not writable")
    remove_stale_temps(directory)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", suffix=suffix or path.suffix,
                                   dir=directory)
    except OSError as error:
        raise UserError(write_failure(path, error)) from None
    os.close(fd)
    return tmp


def publish_temp(tmp: str, path: str | os.PathLike) -> None:
    """Give the finished temporary file the usual permissions (mkstemp makes it 0600) and rename it to `path`."""
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)


def write_failure(path: Path, error: OSError) -> str:
    """One line for a failed write of ``path`` (full disk, permissions, a dead encoder)."""
    reason = error.strerror or first_line(error)
    full = error.errno in (errno.ENOSPC, errno.EDQUOT) or os.strerror(errno.ENOSPC) in str(error)
    hint = ": free some space and run again" if full else ""
    return f"{path}: could not write the file ({reason}){hint}"


def atomic_write(path: str | os.PathLike, writer: Callable[[str], object], suffix: str | None = None) -> Path:
    """Call ``writer(tmp_path)`` on a temporary file next to ``path`` (`reserve_temp`), then rename it to ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was; an OSError (full disk,
    permissions) becomes a `UserError` naming ``path``.
    """
    path = Path(path)
    tmp = reserve_temp(path, suffix)
    try:
        writer(tmp)
        publish_temp(tmp, path)
    except OSError as error:
        _remove_quietly(tmp)
        raise UserError(write_failure(path, error)) from None
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, data, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (UTF-8, a final newline) with `atomic_write`."""
    text = json.dumps(data, indent=indent) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _remove_quietly(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)


def atomic_savez(path: str | os.PathLike, compressed: bool = True, **arrays) -> Path:
    """Write an ``.npz`` atomically. ``path`` must end in ``.npz`` (numpy would otherwise append it)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise UserError(f"{path}: expected a file name ending in .npz")
    save = np.savez_compressed if compressed else np.savez
    return atomic_write(path, lambda tmp: save(tmp, **arrays))


def _read_member(archive: zipfile.ZipFile, member: str, source: str) -> np.ndarray:
    """One ``.npy`` member of an npz; object arrays (pickled) go through the restricted unpickler."""
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version in read_header and read_header[version](handle)[2].hasobject:
            value = unpickle_data(handle, source, what="pickled array")
            if not isinstance(value, np.ndarray):
                raise UserError(f"{source}: expected a pickled numpy array, found {type(value).__name__}")
            return value
    with archive.open(member) as handle:
        return np.lib.format.read_array(handle, allow_pickle=False)


def load_npz(path: str | os.PathLike, required_keys: Iterable[str] = (), what: str = "npz file") -> dict:
    """Every array of an npz file, with clear errors; pickled members (VideoPose3D dicts) hold only plain data."""
    path = existing_file(path, what)
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = {}
            for member in archive.namelist():
                key = member[:-4] if member.endswith(".npy") else member
                arrays[key] = _read_member(archive, member, f"{path} ({key})")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as error:
        raise UserError(f"{path}: not a readable {what} ({first_line(error)})") from None
    missing = [key for key in required_keys if key not in arrays]
    if missing:
        raise UserError(f"{path}: {what} lacks the key(s) {', '.join(missing)} (has: {', '.join(arrays) or 'none'})")
    return arrays
