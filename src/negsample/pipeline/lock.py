"""One run per output at a time: an advisory OS lock (``fcntl.flock``) on a small file.

:func:`hold_lock` creates ``path`` (holding the owner's pid), locks it without waiting, and
removes it when the block ends. A second process that asks for the same lock fails at once
with :class:`RunLocked`, which names the lock file and the pid of the run that holds it.
The lock is re-entrant within one thread (the CLI holds it around a whole command, and
:func:`~negsample.mine_resumable` takes it again inside), and the OS releases it when its
holder dies, so a killed run never leaves a stale lock behind (a leftover file is simply
locked again).

On systems without ``fcntl`` (Windows) no lock is taken.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunLocked", "hold_lock"]

_HELD: dict[tuple[str, int], int] = {}  # (lock path, thread) -> depth
_GUARD = threading.Lock()


class RunLocked(RuntimeError):
    """Another run holds the lock on this output (or work folder)."""

    def __init__(self, path: Path, pid: str) -> None:
        self.path, self.pid = path, pid
        super().__init__(
            f"{path} is held by another negsample run (pid {pid}) on the same output; "
            "wait for it to end, or write to another path"
        )


def _owner(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text or "unknown"


@contextmanager
def hold_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock file ``path`` for the duration of the block (its folder must exist).

    Raises
    ------
    RunLocked
        at once, when another process (or another thread) holds it.
    """
    p = Path(path)
    key = (os.path.realpath(p), threading.get_ident())
    with _GUARD:
        depth = _HELD.get(key, 0)
        if depth:
            _HELD[key] = depth + 1
    if depth:
        try:
            yield p
        finally:
            with _GUARD:
                _HELD[key] -= 1
        return
    if fcntl is None:  # pragma: no cover - Windows
        yield p
        return
    while True:
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held by another process (or thread)
            pid = _owner(fd)
            os.close(fd)
            raise RunLocked(p, pid) from None
        except OSError:  # no lock support here (some network file systems): say so
            os.close(fd)
            raise
        # the holder before us may have removed the file after we opened it: then we
        # locked an orphan; start again on the file now at ``path``
        try:
            same = os.stat(p).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:  # the pid is for messages only (a full disk must not stop here)
            pass
        with _GUARD:
            _HELD[key] = 1
        try:
            yield p
        finally:
            with _GUARD:
                del _HELD[key]
            p.unlink(missing_ok=True)  # while still locked: the next holder re-checks
    finally:
        os.close(fd)
