"""Exit codes, and the one-line message a failure ends in (docs/cli.md has the table)."""

from __future__ import annotations

import sys

from ..errors import is_input_error as is_usage_error

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_USAGE",
    "fail",
    "is_usage_error",
    "one_line",
]

#: Exit codes (docs/cli.md has the table).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_LOCKED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


def one_line(msg: object) -> str:
    """``msg`` on one line (its lines joined by spaces), nothing else changed."""
    return " ".join(part.strip() for part in str(msg).splitlines() if part.strip())


def fail(code: int, msg: object) -> int:
    """Print ``negsample: error: <msg>`` on stderr; return ``code``."""
    print(f"negsample: error: {one_line(msg)}", file=sys.stderr)
    return code
