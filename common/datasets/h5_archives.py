"""Read the ``.h5`` files of the 3d-pose-baseline archive layout from a directory, a ``.zip`` or a ``.tar(.gz)``
without extracting it (`H5Source`)."""

from __future__ import annotations

import io
import os
import re
import tarfile
import zipfile
from pathlib import Path

import h5py
import numpy as np

from common.core.errors import UserError


class H5Source:
    """The ``.h5`` files of a directory tree, a ``.zip`` or a ``.tar``/``.tar.gz`` archive, read without extracting.

    Members are named by their POSIX path relative to the directory / inside the archive. `find` selects the files
    ``.../S<n>/<folder>/<name>.h5`` of a folder such as ``MyPoses/3D_positions`` or ``StackedHourglass``, whatever
    prefix (``h36m/`` or none) the archive uses.
    """

    def __init__(self, path: str | os.PathLike, flag: str) -> None:
        self.path = Path(path)
        self.flag = flag
        if self.path.is_dir():
            self._kind = "dir"
            names = [p.relative_to(self.path).as_posix() for p in self.path.rglob("*.h5")]
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._kind = "zip"
            self._archive = zipfile.ZipFile(self.path)
            names = [n for n in self._archive.namelist() if n.endswith(".h5")]
        elif self.path.is_file() and _is_tarfile(self.path):
            self._kind = "tar"
            self._archive = tarfile.open(self.path)
            names = [m.name for m in self._archive.getmembers() if m.isfile() and m.name.endswith(".h5")]
        else:
            raise UserError(f"{flag} {self.path}: expected a directory, a .zip or a .tar(.gz) archive")
        self.names = sorted(names)

    def find(self, folder: str) -> dict[str, dict[str, str]]:
        """``{subject: {file stem: member name}}`` for the files ``S<n>/<folder>/<stem>.h5``."""
        pattern = re.compile(r"(?:^|/)(S\d+)/" + re.escape(folder.strip("/")) + r"/([^/]+)\.h5$")
        found: dict[str, dict[str, str]] = {}
        for name in self.names:
            match = pattern.search(name)
            if not match:
                continue
            subject, stem = match.groups()
            if stem in found.setdefault(subject, {}):
                raise UserError(
                    f"{self.flag} {self.path}: {subject}/{folder}/{stem}.h5 appears twice "
                    f"({found[subject][stem]} and {name})"
                )
            found[subject][stem] = name
        return found

    def read(self, name: str, dataset: str) -> np.ndarray:
        """The array ``dataset`` of the h5 member ``name``."""
        where = f"{self.flag} {self.path}: {name}"
        try:
            if self._kind == "dir":
                handle = h5py.File(self.path / name, "r")
            else:
                member = self._archive.open(name) if self._kind == "zip" else self._archive.extractfile(name)
                handle = h5py.File(io.BytesIO(member.read()), "r")
        except OSError as error:
            raise UserError(f"{where}: not a readable HDF5 file ({error})") from None
        with handle:
            if dataset not in handle:
                raise UserError(f"{where}: has no dataset '{dataset}' (has: {', '.join(handle.keys())})")
            return np.asarray(handle[dataset][()])

    def close(self) -> None:
        """Close the archive (no-op for a directory)."""
        if self._kind != "dir":
            self._archive.close()

    def __enter__(self) -> H5Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_tarfile(path: Path) -> bool:
    """True when ``path`` is a tar archive (compressed or not)."""
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False
