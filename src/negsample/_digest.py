"""Content digests of arrays and files: streamed in bounded blocks, hashed by a few
threads, and cached for files so that a rerun does not read gigabytes again.

A digest is BLAKE2b-256 over fixed leaves (8 MiB of a file; as many whole rows of an
array as fit in 8 MiB), the leaves' digests combined in order with a header (the kind,
dtype and shape): the value does not depend on the number of threads or on how the
caller feeds the rows. An array's digest depends on its dtype, shape and values only
(a memory-mapped ``.npy`` and the same array in memory have the same digest).

File digests, and the digests of arrays memory-mapped whole from a ``.npy``, are cached
by :class:`DigestCache` under a key that changes whenever the content may have changed:
the file's real path, device, inode, size, modification time and change time
(``st_ctime`` is set by the system on every write or ``utime``, and cannot be set back, so
a content change that restores the modification time still changes the key). A digest
is not cached while the file's times are within :data:`RACY_SECONDS` of the hash (a
write in the same clock tick could keep the key).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ._files import hold_lock, write_json
from .errors import InputError

__all__ = [
    "LEAF_BYTES",
    "DigestCache",
    "RowDigest",
    "StreamDigest",
    "array_digest",
    "default_cache",
    "file_digest",
    "folder_digest",
]

#: Bytes per leaf of a digest.
LEAF_BYTES = 8 << 20
#: A file written less than this many seconds before it is hashed is not cached (2 s on
#: file systems whose times are whole seconds).
RACY_SECONDS = 0.05
_MAX_ENTRIES = 4096
_DIGEST_SIZE = 32


def _threads(threads: int | None) -> int:
    if threads is not None:
        return max(1, int(threads))
    env = os.environ.get("NEGSAMPLE_DIGEST_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(8, os.cpu_count() or 1))


def _leaf(data: Any) -> bytes:
    return hashlib.blake2b(data, digest_size=_DIGEST_SIZE).digest()


class _Leaves:
    """Leaf digests computed by up to ``threads`` threads (at most twice as many in
    flight, so memory stays bounded), combined in order into one digest."""

    def __init__(self, header: Mapping[str, Any], threads: int | None) -> None:
        self._root = hashlib.blake2b(digest_size=_DIGEST_SIZE)
        self._root.update(json.dumps(dict(header), sort_keys=True).encode())
        n = _threads(threads)
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="negsample-digest") if n > 1 else None
        self._limit = 2 * n
        self._pending: deque[Future[bytes]] = deque()
        self.leaves = 0

    def add(self, fn: Callable[..., bytes], *args: Any) -> None:
        self.leaves += 1
        if self._pool is None:
            self._root.update(fn(*args))
            return
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) > self._limit:
            self._root.update(self._pending.popleft().result())

    def hexdigest(self) -> str:
        try:
            while self._pending:
                self._root.update(self._pending.popleft().result())
        finally:
            self.close()
        return self._root.hexdigest()

    def close(self) -> None:
        if self._pool is not None:
            for f in self._pending:
                f.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None


def _contiguous_leaf(block: np.ndarray) -> bytes:
    return _leaf(np.ascontiguousarray(block))


class RowDigest:
    """The digest of an array fed in row blocks of any size, in order (the digest of
    :func:`array_digest` for the same dtype, shape and values).

    Parameters
    ----------
    dtype : numpy dtype
        The rows' dtype.
    shape : tuple of int
        The whole array's shape, rows first (``()``: one scalar, fed as one row).
    threads : int or None
        Hashing threads (default: up to 8, ``NEGSAMPLE_DIGEST_THREADS``).
    """

    def __init__(self, dtype: Any, shape: tuple[int, ...], threads: int | None = None) -> None:
        self.dtype, self.shape = np.dtype(dtype), tuple(int(s) for s in shape)
        self._n = self.shape[0] if self.shape else 1
        self._row = self.shape[1:]
        row_bytes = self.dtype.itemsize * int(np.prod(self._row, dtype=np.int64))
        self.rows_per_leaf = max(1, LEAF_BYTES // max(1, row_bytes))
        self._leaves = _Leaves(
            {"kind": "array", "dtype": self.dtype.str, "shape": list(self.shape)}, threads
        )
        self._carry: list[np.ndarray] = []
        self._carried = 0
        self.rows = 0

    def update(self, block: Any) -> None:
        """Add the next rows (``(m, *shape[1:])``, of the dtype)."""
        try:
            self._update(np.asarray(block))
        except BaseException:
            self._leaves.close()
            raise

    def _update(self, b: np.ndarray) -> None:
        if b.dtype != self.dtype or b.shape[1:] != self._row:
            raise InputError(
                f"rows of {b.dtype} {b.shape[1:]} fed to the digest of {self.dtype} {self.shape}"
            )
        self.rows += b.shape[0]
        if self.rows > self._n:
            raise InputError(f"{self.rows} rows fed to the digest of {self._n}")
        rpl, i = self.rows_per_leaf, 0
        if self._carried:
            i = min(rpl - self._carried, b.shape[0])
            self._carry.append(np.array(b[:i]))
            self._carried += i
            if self._carried == rpl:
                self._leaves.add(_contiguous_leaf, np.concatenate(self._carry))
                self._carry, self._carried = [], 0
        while b.shape[0] - i >= rpl:
            self._leaves.add(_contiguous_leaf, b[i : i + rpl])
            i += rpl
        if i < b.shape[0]:
            self._carry.append(np.array(b[i:]))  # a copy: the caller may reuse its buffer
            self._carried += b.shape[0] - i

    def hexdigest(self) -> str:
        """The digest (once every row was fed)."""
        if self.rows != self._n:
            self._leaves.close()
            raise InputError(f"{self.rows} rows fed to the digest of {self._n}")
        if self._carry:
            self._leaves.add(_contiguous_leaf, np.concatenate(self._carry))
            self._carry, self._carried = [], 0
        return self._leaves.hexdigest()


class StreamDigest:
    """The digest of a byte stream of unknown length (a serialized index), fed in pieces
    of any size; 8 MiB leaves, hashed by a few threads."""

    def __init__(self, kind: str = "stream", threads: int | None = None) -> None:
        self._leaves = _Leaves({"kind": kind}, threads)
        self._buf = bytearray()
        self.size = 0

    def update(self, data: bytes) -> None:
        """Add the next bytes."""
        self._buf += data
        self.size += len(data)
        while len(self._buf) >= LEAF_BYTES:
            self._leaves.add(_leaf, bytes(self._buf[:LEAF_BYTES]))
            del self._buf[:LEAF_BYTES]

    def hexdigest(self) -> str:
        """The digest of everything fed (with its length)."""
        if self._buf:
            self._leaves.add(_leaf, bytes(self._buf))
            self._buf = bytearray()
        self._leaves.add(lambda n: _leaf(str(n).encode()), self.size)
        return self._leaves.hexdigest()


def _hash_array(a: np.ndarray, threads: int | None) -> str:
    d = RowDigest(a.dtype, a.shape, threads)
    rows = a.reshape(1) if a.ndim == 0 else a
    for s in range(0, rows.shape[0], d.rows_per_leaf):
        d.update(rows[s : s + d.rows_per_leaf])
    return d.hexdigest()


def _mapped_file(a: np.ndarray) -> tuple[str, int] | None:
    """``(file, offset)`` of an array memory-mapped whole from a file by ``np.load`` or
    ``np.memmap`` (not a view of one), else ``None``."""
    if not isinstance(a, np.memmap) or not isinstance(a.base, mmap.mmap):
        return None
    name = getattr(a, "filename", None)
    if not name or not os.path.isfile(name) or not a.flags.c_contiguous:
        return None
    return str(name), int(a.offset)


def array_digest(a: Any, *, threads: int | None = None, cache: DigestCache | None = None) -> str:
    """The digest of an array's dtype, shape and values (see the module's description).

    An array memory-mapped whole from a file is looked up in (and added to) ``cache``
    (default: :func:`default_cache`), so an unchanged ``.npy`` is read once.
    """
    arr = np.asanyarray(a)  # (a memmap stays one)
    mapped = _mapped_file(arr)
    if mapped is None:
        return _hash_array(arr, threads)
    path, offset = mapped
    cache = default_cache() if cache is None else cache
    what = f"array:{offset}:{arr.dtype.str}:{list(arr.shape)}"
    return cache.digest(path, what, lambda: _hash_array(arr, threads))


def _file_leaf(fd: int, offset: int, size: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise OSError(f"short read at byte {offset} (the file changed while it was hashed)")
    return _leaf(data)


def _hash_file(path: str, threads: int | None) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        leaves = _Leaves({"kind": "file", "size": size}, threads)
        try:
            for off in range(0, size, LEAF_BYTES):
                leaves.add(_file_leaf, fd, off, min(LEAF_BYTES, size - off))
            return leaves.hexdigest()
        finally:
            leaves.close()
    finally:
        os.close(fd)


def file_digest(
    path: str | os.PathLike[str], *, threads: int | None = None, cache: DigestCache | None = None
) -> str:
    """The digest of a file's bytes, read in 8 MiB blocks by a few threads; looked up in
    (and added to) ``cache`` (default: :func:`default_cache`)."""
    p = str(path)
    cache = default_cache() if cache is None else cache
    return cache.digest(p, "file", lambda: _hash_file(p, threads))


def folder_digest(
    path: str | os.PathLike[str], *, threads: int | None = None, cache: DigestCache | None = None
) -> dict[str, str]:
    """``{relative path: file digest}`` of every file under a folder (a saved index)."""
    root = Path(path)
    return {
        str(f.relative_to(root)): file_digest(f, threads=threads, cache=cache)
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


# -- the cache of file digests ------------------------------------------------------------


def _stat_key(path: str) -> tuple[str, os.stat_result]:
    st = os.stat(path)
    key = "|".join(
        str(v)
        for v in (
            os.path.realpath(path),
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        )
    )
    return key, st


def _racy(st: os.stat_result, now: float) -> bool:
    coarse = st.st_mtime_ns % 1_000_000_000 == 0 and st.st_ctime_ns % 1_000_000_000 == 0
    newest = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9
    return now - newest < (2.0 if coarse else RACY_SECONDS)


class DigestCache:
    """File digests by ``(real path, device, inode, size, mtime, ctime)``.

    Kept in a small JSON file (``path``; ``None``: this process only), read once, and
    written atomically under a lock after each new digest, so that several processes
    share it (each merges what the others wrote). A cache that cannot be read or written
    (a read-only home folder) is counted in ``errors`` and otherwise ignored. At most
    4,096 entries are kept (the least recently used go first).

    Attributes
    ----------
    hits, misses, errors : int
        Digests found, digests computed, cache files that could not be read or written.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = None if path is None else Path(path)
        self.hits = self.misses = self.errors = 0
        self._entries: dict[str, dict[str, Any]] | None = None
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"DigestCache({None if self.path is None else str(self.path)!r}, hits={self.hits}, "
            f"misses={self.misses})"
        )

    def _read(self) -> dict[str, dict[str, Any]]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = data.get("entries", {}) if isinstance(data, dict) else {}
            return {
                k: v
                for k, v in entries.items()
                if isinstance(v, dict) and isinstance(v.get("digest"), str)
            }
        except (OSError, ValueError, UnicodeDecodeError):
            self.errors += 1
            return {}

    @contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with hold_lock(self.path.with_name(self.path.name + ".lock"), wait=True):
            yield

    def lookup(self, key: str) -> str | None:
        """The digest cached under ``key``, or ``None``."""
        with self._guard:
            if self._entries is None:
                self._entries = self._read()
            hit = self._entries.get(key)
        return None if hit is None else str(hit["digest"])

    def store(self, key: str, digest: str) -> None:
        """Cache ``digest`` under ``key`` (and write the cache file)."""
        entry = {"digest": digest, "used": time.time()}
        with self._guard:
            if self._entries is None:
                self._entries = self._read()
            self._entries[key] = entry
            if self.path is None:
                return
            try:
                with self._locked():
                    merged = {**self._read(), key: entry}
                    if len(merged) > _MAX_ENTRIES:
                        keep = sorted(merged, key=lambda k: merged[k].get("used", 0.0))
                        merged = {k: merged[k] for k in keep[-_MAX_ENTRIES:]}
                    write_json(self.path, {"version": 1, "entries": merged})
                    self._entries = merged
            except OSError:
                self.errors += 1

    def digest(self, path: str, what: str, compute: Callable[[], str]) -> str:
        """The digest ``what`` (``"file"``, or an array's offset, dtype and shape) of the
        file ``path``: cached, or ``compute()`` (then cached when the file did not change
        while it was read and is not too fresh)."""
        key, _ = _stat_key(path)
        key = f"{key}|{what}"
        hit = self.lookup(key)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        value = compute()
        after_key, after = _stat_key(path)
        if f"{after_key}|{what}" == key and not _racy(after, time.time()):
            self.store(key, value)
        return value


_DEFAULT: dict[str, DigestCache] = {}


def default_cache() -> DigestCache:
    """The cache of this process, in ``<negsample cache>/fingerprints.json``
    (``$NEGSAMPLE_CACHE``, or ``~/.cache/negsample``; see
    :func:`negsample.io.encoding.default_cache_dir`)."""
    from .io.encoding import default_cache_dir

    path = str(default_cache_dir() / "fingerprints.json")
    cache = _DEFAULT.get(path)
    if cache is None:
        cache = _DEFAULT[path] = DigestCache(path)
    return cache
