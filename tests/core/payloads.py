"""Crafted pickle payloads for the tests: objects that run a shell command when a loader unpickles them."""

from __future__ import annotations

import os
import shlex
from pathlib import Path


class ShellPayload:
    """Unpickling this object runs ``touch MARKER`` through ``os.system``, as a crafted file from a stranger would.

    A loader is safe when, after reading a file that carries it, ``MARKER`` does not exist.
    """

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class EvalPayload(ShellPayload):
    """The same through ``builtins.eval``: a builtin that is not plain data must be refused too."""

    def __reduce__(self):
        return eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",)
