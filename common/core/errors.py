"""User-facing errors: bad input is reported as one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM


class UserError(Exception):
    """A mistake in the user's input (file, flag, data). The message must name the file/flag and what was expected."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same cleanup runs (temporary files are removed, nothing half-written)."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when empty), for one-line `UserError`s."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def existing_file(path: str | os.PathLike, what: str, expected: str | None = None) -> Path:
    """``path`` as a Path when it is a file; otherwise a `UserError` naming it and what was expected (``expected``,
    by default "a WHAT")."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory; expected {expected or 'a ' + what}")
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    return path


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def run_cli(main: Callable[[], object]) -> None:
    """Run a command-line entry point; a UserError becomes one line on stderr and exit code 2.

    SIGTERM is handled like Ctrl-C (a `KeyboardInterrupt` in the main thread), so interrupted writes clean up.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except Terminated:
        print("terminated", file=sys.stderr)
        sys.exit(EXIT_TERMINATED)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
