"""Atomic files and folders, one file mode, stale temporaries, and the run lock.

Every file negsample writes (training files, stats, reports, resume chunks and
manifests, saved indexes, model folders, caches) goes through this module, which imports
nothing from negsample so that every layer may use it.

- **Atomic.** A file is written to a temporary file in its target folder, then renamed
  onto the target (:func:`os.replace`, atomic on POSIX file systems); a folder likewise
  (:class:`atomic_dir`, which also replaces an existing folder). A failed or interrupted
  write never leaves a half-written target; the temporary is removed on failure.
- **One mode.** Files are ``0o666 & ~umask`` and folders ``0o777 & ~umask`` (what
  ``open`` and ``mkdir`` give), never the private ``0o600``/``0o700`` of
  :func:`tempfile.mkstemp`/:func:`tempfile.mkdtemp`: under the usual umask ``022`` others
  can read the outputs (shared storage for a cluster), under ``077`` nobody else can.
- **Stale temporaries.** They are named ``.<target name>.<8 characters>.tmp`` (a folder
  being replaced moves aside as ``.<name>.<8 characters>.old``), so that a later run
  finds what a killed write left (:func:`remove_stale`).
- **One run at a time.** :func:`hold_lock` is an advisory OS lock on a small file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "RunLocked",
    "atomic_dir",
    "atomic_file",
    "atomic_path",
    "clear_hidden",
    "ensure_file",
    "file_mode",
    "folder_mode",
    "hold_lock",
    "remove_stale",
    "replace_dir",
    "stale_pattern",
    "umask",
    "write_bytes",
    "write_dir_atomic",
    "write_json",
    "write_text",
]

_UMASK_GUARD = threading.Lock()


def umask() -> int:
    """The process's umask, read without changing it (``/proc/self/status`` on Linux;
    elsewhere set and restored under a lock)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_GUARD:  # pragma: no cover - systems without /proc
        old = os.umask(0o022)
        os.umask(old)
    return old  # pragma: no cover


def file_mode() -> int:
    """The mode of every file written here: ``0o666 & ~umask``."""
    return 0o666 & ~umask()


def folder_mode() -> int:
    """The mode of every folder made here: ``0o777 & ~umask``."""
    return 0o777 & ~umask()


def stale_pattern(name: str) -> re.Pattern[str]:
    """The names of the temporaries that an atomic write of a target called ``name``
    makes beside it: ``.<name>.<8 characters>.tmp`` (the file or folder being written)
    and ``.<name>.<8 characters>.old`` (a folder being replaced)."""
    return re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}\.(?:tmp|old)$")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def remove_stale(path: str | os.PathLike[str]) -> int:
    """Remove the temporaries that an interrupted atomic write of ``path`` left beside it
    (:func:`stale_pattern`); the count. Call it only while no other process may be
    writing ``path`` (hold its lock)."""
    p = Path(path)
    if not p.parent.is_dir():
        return 0
    pattern = stale_pattern(p.name)
    n = 0
    for q in p.parent.iterdir():
        if pattern.match(q.name) and (q.is_dir() or q.is_file() or q.is_symlink()):
            _remove(q)
            n += 1
    return n


def clear_hidden(folder: str | os.PathLike[str]) -> int:
    """Remove every entry of ``folder`` whose name starts with a dot (the temporaries of
    a private work folder, where nothing else is hidden); the count."""
    n = 0
    for p in Path(folder).iterdir():
        if p.name.startswith("."):
            _remove(p)
            n += 1
    return n


def _make_parent(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # each folder made: 0o777 & ~umask


def _temp_file(path: Path) -> tuple[int, Path]:
    """A fresh temporary file beside ``path``, with the files' mode: ``(fd, its path)``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0o600
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, Path(tmp)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse it on folders
        pass
    finally:
        os.close(fd)


def _commit(tmp: Path, path: Path, fsync: bool) -> None:
    if fsync:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)
    if fsync:
        _fsync_dir(path.parent)


class atomic_path:
    """``with atomic_path(p) as tmp: write(tmp)``: ``tmp`` is a fresh, empty file beside
    ``p`` (mode ``0o666 & ~umask``), renamed onto ``p`` if the block succeeds and removed
    if it fails. ``fsync=True`` flushes the file (and the rename) to the disk first.

    Parameters
    ----------
    path : str or os.PathLike
        The target file; its missing parent folders are made.
    fsync : bool
        Flush to the disk before and after the rename.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync

    def __enter__(self) -> Path:
        _make_parent(self.path)
        fd, self.tmp = _temp_file(self.path)
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        try:
            _commit(self.tmp, self.path, self.fsync)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise


@contextmanager
def atomic_file(
    path: str | os.PathLike[str], mode: str = "wb", *, fsync: bool = False, **open_kw: Any
) -> Iterator[IO[Any]]:
    """``with atomic_file(p) as f: f.write(...)``: an open temporary file beside ``p``
    (``mode`` ``"wb"`` or ``"w"``, ``open_kw`` such as ``encoding=``), closed and renamed
    onto ``p`` if the block succeeds, removed if it fails (see :class:`atomic_path`)."""
    if mode not in ("w", "wb"):
        raise InputError(f"atomic_file writes a new file: mode must be 'w' or 'wb', got {mode!r}")
    p = Path(path)
    _make_parent(p)
    fd, tmp = _temp_file(p)
    try:
        with os.fdopen(fd, mode, **open_kw) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, p)
        if fsync:
            _fsync_dir(p.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_file`)."""
    with atomic_file(path, "wb", fsync=fsync) as f:
        f.write(data)


def write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_file`)."""
    write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_json(
    path: str | os.PathLike[str], obj: Any, *, fsync: bool = False, **dumps_kw: Any
) -> None:
    """Write ``json.dumps(obj, **dumps_kw)`` to ``path`` atomically (:func:`atomic_file`)."""
    write_text(path, json.dumps(obj, **dumps_kw), fsync=fsync)


def ensure_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` empty (with its missing folders, mode ``0o666 & ~umask``) unless it
    exists: for files that a library then opens itself (an SQLite database, whose
    journal files take the database's mode)."""
    p = Path(path)
    if not os.path.lexists(p):
        _make_parent(p)
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:  # made by another process meanwhile
            pass
    return p


def replace_dir(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Move the folder ``src`` onto ``dst``, replacing what stands there: the old entry is
    first moved aside into ``.<name>.<8 characters>.old`` (same folder), then removed, so
    ``dst`` is at every moment either the old or the new folder, never a mix."""
    s, d = Path(src), Path(dst)
    if not os.path.lexists(d):
        os.replace(s, d)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{d.name}.", suffix=".old", dir=d.parent))
    os.replace(d, old / "previous")
    try:
        os.replace(s, d)
    except BaseException:
        os.replace(old / "previous", d)  # put the old one back
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


class atomic_dir:
    """``with atomic_dir(p) as tmp: write_into(tmp)``: ``tmp`` is a fresh folder beside
    ``p`` (mode ``0o777 & ~umask``), moved onto ``p`` if the block succeeds (an existing
    ``p`` is replaced, see :func:`replace_dir`) and removed if it fails.

    Parameters
    ----------
    path : str or os.PathLike
        The target folder; its missing parent folders are made.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __enter__(self) -> Path:
        _make_parent(self.path)
        p = self.path
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
        try:
            os.chmod(self.tmp, folder_mode())  # mkdtemp makes 0o700
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        return self.tmp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            replace_dir(self.tmp, self.path)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise


def write_dir_atomic(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> None:
    """Call ``write(tmpdir)``, then move the folder onto ``path`` (:class:`atomic_dir`),
    so that no half-written folder is ever left at ``path``."""
    with atomic_dir(path) as tmp:
        write(tmp)


# -- the run lock ---------------------------------------------------------------------------

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
def hold_lock(path: str | os.PathLike[str], *, wait: bool = False) -> Iterator[Path]:
    """Hold the lock file ``path`` for the duration of the block (its folder must exist).

    An advisory OS lock (``fcntl.flock``) on ``path``, created holding the owner's pid and
    removed when the block ends. A second process asking for it fails at once with
    :class:`RunLocked` (naming the file and the holder's pid), or with ``wait=True``
    waits for it (for short critical sections, such as a cache update). Re-entrant within
    one thread; the OS releases it when its holder dies, so a killed run leaves no stale
    lock (a leftover file is simply locked again). On systems without ``fcntl``
    (Windows) no lock is taken.

    Raises
    ------
    RunLocked
        At once, when another process (or another thread) holds it and ``wait`` is
        False.
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
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o666)  # 0o666 & ~umask, like every file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
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
