"""Reading pickled data from files we did not write, without running code stored in them.

The VideoPose3D npz layout stores dicts as pickled object arrays, and MPI-INF-3DHP ships its cameras as a pickle.
A plain ``pickle.load`` (or ``np.load(allow_pickle=True)``) calls whatever function the file names, so a crafted
file runs a shell command before any check. `RestrictedUnpickler` resolves only the few names these formats use
(builtin containers and numbers, numpy arrays, dtypes and scalars) and refuses every other one with a `UserError`
naming the file and the refused ``module.name``.
"""

from __future__ import annotations

import codecs
import collections
import importlib
import io
import os
import pickle
from typing import BinaryIO

import numpy as np

from common.core.errors import UserError, existing_file, first_line

_BUILTINS = ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float", "bool",
             "complex", "slice", "range")
_NUMPY_PRIVATE = {"multiarray": ("_reconstruct", "scalar"), "numeric": ("_frombuffer",)}
EXPECTED = "plain data (dict, list, tuple, str, numbers, numpy arrays)"


def _numpy_private(module: str):
    """numpy's ``_core.<module>`` (numpy 2), or ``core.<module>`` (numpy 1)."""
    try:
        return importlib.import_module(f"numpy._core.{module}")
    except ImportError:  # numpy < 2
        return importlib.import_module(f"numpy.core.{module}")


def _allowed_globals() -> dict[tuple[str, str], object]:
    """Every global a data pickle of these formats may name, mapped to the object it stands for."""
    import builtins

    allowed: dict[tuple[str, str], object] = {}
    for name in _BUILTINS:
        allowed["builtins", name] = allowed["__builtin__", name] = getattr(builtins, name)  # __builtin__: Python 2
    allowed["collections", "OrderedDict"] = collections.OrderedDict
    allowed["_codecs", "encode"] = codecs.encode  # protocol 2 writes bytes as encode(str, "latin1")
    allowed["numpy", "ndarray"] = np.ndarray
    allowed["numpy", "dtype"] = np.dtype
    for module, names in _NUMPY_PRIVATE.items():
        resolved = _numpy_private(module)
        for name in names:
            for prefix in ("numpy.core", "numpy._core"):  # pickles written by numpy 1 and numpy 2
                allowed[f"{prefix}.{module}", name] = getattr(resolved, name)
    return allowed


_ALLOWED = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain data; any other global is refused with a `UserError` naming `source`."""

    def __init__(self, file: BinaryIO, source: str) -> None:
        super().__init__(file, encoding="latin1")  # latin1: numpy arrays pickled by Python 2 (numpy's advice)
        self.source = source

    def find_class(self, module: str, name: str) -> object:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise UserError(f"{self.source}: refused to load {module}.{name}: a data file may hold only {EXPECTED}; "
                            "this one names other Python objects, which could run code, so it was not read")
        return found

    def persistent_load(self, pid: object) -> object:
        raise UserError(f"{self.source}: refused to load a persistent object reference: a data file may hold only "
                        f"{EXPECTED}")


def unpickle_data(handle: BinaryIO, source: str, what: str = "pickle") -> object:
    """Unpickle plain data from `handle` (positioned at the pickle); a `UserError` naming `source` otherwise.

    Only the allowed constructors can run while unpickling, so any exception here means a damaged file.
    """
    try:
        return RestrictedUnpickler(handle, source).load()
    except UserError:
        raise
    except Exception as error:  # only data constructors run: any failure means a damaged file
        raise UserError(f"{source}: not a readable {what} ({first_line(error)})") from None


def load_pickle(path: str | os.PathLike, what: str = "pickle") -> object:
    """Read the plain data pickled in the file `path` (see `RestrictedUnpickler`), or a `UserError` naming it."""
    path = existing_file(path, what)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    return unpickle_data(io.BytesIO(data), str(path), what)
