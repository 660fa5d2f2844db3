"""The library's own error classes: what the user gave is wrong, or a run failed.

:class:`InputError` is bad input or settings given by the user (a malformed file, an
unknown id, an option out of range, an output path that is an input...). It subclasses
``ValueError``, so ``except ValueError`` keeps catching it. The command line maps it to
exit code 2 ("bad usage or bad input"); any other ``ValueError`` or ``TypeError`` is a
bug (exit code 1, "unexpected ...").

:class:`RunFailed` is a runtime failure whose message is ready for the user and says what
was kept (a full disk while writing, a judge that refuses every request): exit code 1.

:func:`is_input_error` tells the user's errors from bugs (the CLI's exit 2 or 1; a run
keeps its finished chunks after a bug, not after bad input). :func:`os_error_message`
makes one line of an ``OSError`` (the file, the reason, and a
hint when the disk is full).

Nothing here imports anything else of negsample, so every module may import it.

Examples
--------
>>> from negsample.errors import InputError
>>> isinstance(InputError("--n must be >= 1"), ValueError)
True
"""

from __future__ import annotations

import errno

__all__ = ["InputError", "InputTypeError", "RunFailed", "is_input_error", "os_error_message"]


class InputError(ValueError):
    """Bad input or settings given by the user; the message names the problem and where
    it is (the file and line, the row, or the option)."""


class InputTypeError(InputError, TypeError):
    """Input of the wrong type given by the user (also a ``TypeError``)."""


class RunFailed(RuntimeError):
    """A run failed at runtime (not the user's input); the message is one line that says
    what went wrong and what was kept for a rerun."""


def os_error_message(exc: OSError) -> str:
    """One line for ``exc``: ``<file>[ -> <file2>]: <reason>``, and ``(disk full: free
    some space and rerun)`` for ``ENOSPC``."""
    if exc.filename is None:
        msg = str(exc)
    else:
        where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
        msg = f"{where}: {exc.strerror or exc}"
    if exc.errno == errno.ENOSPC:
        msg += " (disk full: free some space and rerun)"
    return msg


def is_input_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the user's bad input or settings (exit 2), not a bug (exit 1):
    an :class:`InputError` (every input check of the library raises one, or a subclass
    such as :class:`~negsample.DataError`). A ``ValueError`` or ``TypeError`` raised
    anywhere else (inside numpy, faiss or torch, or by an operation that failed) is a bug."""
    return isinstance(exc, InputError)
