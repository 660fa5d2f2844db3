"""The parser of every command, and ``main``: a command's exceptions become one line on
stderr and an exit code (see :mod:`negsample.cli`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import demo, mine, probe, report, train
from ._args import Parser
from ._errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    is_usage_error,
)
from ._signals import EXIT_TERMINATED, Terminated, sigterm_as_interrupt, terminated

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``negsample`` parser: one subcommand per module of this package."""
    from .. import __version__

    parser = Parser(prog="negsample", description="Hard-negative sampling for dense retrievers.")
    parser.add_argument("--version", action="version", version=f"negsample {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (demo, mine, report, train, probe):
        command.add_parser(sub)
    return parser


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is at each record."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@contextmanager
def _library_log_on_stderr() -> Iterator[None]:
    """While a command runs, the library's diagnostics (the ``negsample`` logger, INFO and
    above) go to stderr; the logger is left as it was afterwards."""
    logger = logging.getLogger("negsample")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("negsample: %(levelname)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    if level == logging.NOTSET or level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    with _library_log_on_stderr():
        return _main(argv)


def _main(argv: Sequence[str] | None = None) -> int:
    from ..errors import RunFailed, os_error_message
    from ..pipeline.lock import RunLocked

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else 2)
    np.set_printoptions(precision=4)
    resume = (
        "; rerun the same command to resume (finished chunks are kept)"
        if args.command == "mine"
        else ""
    )
    try:
        with sigterm_as_interrupt():
            rc: int = args.func(args)
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated) or terminated():  # (a library may re-raise it plain)
            print(f"negsample: terminated (SIGTERM){resume}", file=sys.stderr)
            return EXIT_TERMINATED
        print(f"negsample: interrupted{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RunLocked as exc:
        return fail(EXIT_LOCKED, exc)
    except RunFailed as exc:
        return fail(EXIT_FAILURE, exc)
    except (ValueError, TypeError) as exc:
        if is_usage_error(exc):
            return fail(EXIT_USAGE, exc)
        if os.environ.get("NEGSAMPLE_DEBUG"):
            raise
        return _unexpected(exc)
    except (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError) as exc:
        return fail(EXIT_USAGE, os_error_message(exc))
    except FileExistsError as exc:
        return fail(EXIT_USAGE, os_error_message(exc))
    except OSError as exc:  # disk full, I/O error: temporary files are already removed
        return fail(EXIT_FAILURE, os_error_message(exc))
    except ImportError as exc:
        return fail(EXIT_FAILURE, exc)
    except Exception as exc:
        if os.environ.get("NEGSAMPLE_DEBUG"):
            raise
        return _unexpected(exc)
    return rc


def _unexpected(exc: BaseException) -> int:
    return fail(
        EXIT_FAILURE,
        f"unexpected {type(exc).__name__}: {exc} (NEGSAMPLE_DEBUG=1 shows the traceback)",
    )
