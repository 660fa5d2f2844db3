"""SIGTERM (what Slurm, Kubernetes and ``kill`` send) handled as Ctrl-C is.

While a command runs, SIGTERM raises :class:`Terminated` in the main thread. It is a
``KeyboardInterrupt``, so it takes exactly the path Ctrl-C takes: the chunk being written
is removed, the finished chunks are kept, temporary files are removed, a Ray run cancels
its work in flight and stops its workers, the output lock is released. ``main`` then
prints one line and exits with 143 (128 + 15, what a shell reports for SIGTERM).
A second SIGTERM during that cleanup is ignored (SIGKILL still stops the process).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["EXIT_TERMINATED", "Terminated", "sigterm_as_interrupt", "terminated"]

#: Exit code after SIGTERM: 128 + 15.
EXIT_TERMINATED = 128 + int(signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""


_RECEIVED = threading.Event()


def terminated() -> bool:
    """Whether SIGTERM arrived during the last :func:`sigterm_as_interrupt` block. A
    library that turns a pending ``KeyboardInterrupt`` into its own (Ray's ``ray.wait``
    re-raises any ``KeyboardInterrupt`` a signal handler raised as a plain one) must not
    turn SIGTERM into Ctrl-C: the caller asks this instead of the exception's class."""
    return _RECEIVED.is_set()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Raise :class:`Terminated` on SIGTERM for the duration of the block (the previous
    handler is put back at the end). Outside the main thread, nothing is changed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if fired:  # cleaning up after the first one: let it finish
            return
        fired = True
        _RECEIVED.set()
        raise Terminated

    _RECEIVED.clear()
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
