"""Exit codes, and the one-line messages failures end in (docs/cli.md has the table)."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Failure",
    "enospc",
    "fail",
    "kept",
    "one_line",
    "os_message",
]

#: Exit codes (docs/cli.md has the table).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_LOCKED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


class Failure(Exception):
    """A runtime failure (exit 1) whose message is ready for the user."""


def one_line(msg: object) -> str:
    return " ".join(part.strip() for part in str(msg).splitlines() if part.strip())


def os_message(exc: OSError) -> str:
    if exc.filename is None:
        return str(exc)
    where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
    return f"{where}: {exc.strerror or exc}"


def fail(code: int, msg: object) -> int:
    print(f"negsample: error: {one_line(msg)}", file=sys.stderr)
    return code


def enospc(exc: OSError) -> str:
    return " (disk full: free some space and rerun)" if exc.errno == errno.ENOSPC else ""


def kept(work: Path) -> str:
    return (
        f"the mined chunks are kept in {work}: rerun the same command to write without mining again"
    )
