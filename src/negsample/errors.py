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
import os
import re
import traceback

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
    an :class:`InputError`, or, for now, what :func:`_raised_on_purpose` accepts."""
    if isinstance(exc, InputError):
        return True
    return isinstance(exc, ValueError | TypeError) and _raised_on_purpose(exc)


_PACKAGE = os.path.dirname(os.path.realpath(__file__))
_RAISE = re.compile(r"\s*raise\s+(ValueError|TypeError)\b")


def _raised_on_purpose(exc: BaseException) -> bool:
    """TRANSITIONAL: a plain ``ValueError``/``TypeError`` counts as the user's error when
    negsample raised it on purpose: the last frame of its traceback is in a negsample
    module and its line is an explicit ``raise ValueError(...)`` / ``raise TypeError(...)``.
    One raised inside numpy, faiss, torch or the standard library, or by an operation
    that failed in negsample's own code, is a bug (so is any, when the source of the
    package cannot be read: the line is unknown).

    The library's input checks still say ``raise ValueError(``; once one pass has turned
    them into ``raise InputError(`` (``InputTypeError`` for a ``TypeError``), this
    function is deleted and :func:`is_input_error` keeps only its ``isinstance`` test.
    """
    tb = exc.__traceback__
    if tb is None:
        return False
    last = traceback.extract_tb(tb)[-1]
    if not os.path.realpath(last.filename).startswith(_PACKAGE + os.sep):
        return False
    return bool(_RAISE.match(last.line or ""))
