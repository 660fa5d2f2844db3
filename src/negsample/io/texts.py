"""Compact text columns: millions of strings as UTF-8 bytes in a few buffers.

A corpus of 8.8M passages held as Python strings costs about 3x its file size (an object
header per string, a list slot, and a second copy for ``title + " " + text``).
:class:`Texts` keeps the UTF-8 bytes of every row in a few large buffers (one per block
read) with int64 offsets, and decodes a row only when it is asked for. It is a read-only
``Sequence[str]``: indexing gives a ``str``, slicing a ``list[str]``, iteration yields
``str``; it compares equal to any sequence of the same strings.

The titles and texts of a BEIR corpus are views over the documents' bytes
(``title + " " + text``), so the three columns cost one copy of the text.

Everything here needs numpy only; :func:`lookup` and :func:`first_duplicate` use pyarrow's
hash kernels when it is installed, and Python dictionaries otherwise.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from ..errors import InputError, InputTypeError

__all__ = ["Texts", "TextsBuilder", "as_texts", "document_groups", "first_duplicate", "lookup"]

IntArray = npt.NDArray[np.int64]
ByteArray = npt.NDArray[np.uint8]

#: Every character ``str.isspace()`` holds true for: ``str.strip()``'s set.
WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
# the first UTF-8 byte of each whitespace character (a blank row is empty or starts with one)
_SPACE_LEAD = np.zeros(256, bool)
_SPACE_LEAD[sorted({c.encode()[0] for c in WHITESPACE})] = True

# which part of each row a view shows: the whole row, the part before the cut (a BEIR
# title), or the part after it (the text, past the separating space when there is one)
_ALL, _HEAD, _TAIL = 0, 1, 2


def _readonly(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


class Texts(Sequence[str]):
    """A read-only sequence of strings stored as UTF-8 bytes.

    Each chunk is a ``uint8`` buffer and ``int64`` offsets into it (row ``j`` of a chunk is
    ``data[offsets[j]:offsets[j + 1]]``). Build one with :meth:`from_strings`,
    :meth:`from_chunks` or (pyarrow) :meth:`from_arrow`.

    Examples
    --------
    >>> t = Texts.from_strings(["a cat", "a dog"])
    >>> t[1], t[:1], len(t), t == ["a cat", "a dog"]
    ('a dog', ['a cat'], 2, True)
    """

    __slots__ = ("_chunks", "_cuts", "_part", "_row0", "_views")

    def __init__(
        self,
        chunks: Sequence[tuple[ByteArray, IntArray]],
        *,
        _cuts: Sequence[npt.NDArray[np.int32]] | None = None,
        _part: int = _ALL,
    ) -> None:
        checked = []
        for data, offsets in chunks:
            data = np.asarray(data)
            offsets = np.asarray(offsets)
            if data.dtype != np.uint8 or data.ndim != 1:
                raise InputTypeError(f"chunk data must be 1-D uint8, got {data.dtype} {data.shape}")
            if offsets.dtype != np.int64 or offsets.ndim != 1 or offsets.size < 1:
                raise InputTypeError("chunk offsets must be 1-D int64 with n + 1 entries")
            if offsets.size > 1 and (offsets[0] < 0 or offsets[-1] > data.size):
                raise InputError("chunk offsets point outside the data")
            if offsets.size == 1:
                continue  # an empty chunk
            checked.append((_readonly(data), _readonly(offsets)))
        self._chunks: list[tuple[ByteArray, IntArray]] = checked
        sizes = [o.size - 1 for _, o in checked]
        self._row0: list[int] = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).tolist()
        self._views: list[memoryview] | None = None
        self._part = _part
        self._cuts: list[npt.NDArray[np.int32]] | None = None
        if _cuts is not None:
            cuts = [c for c in _cuts if c.size]
            if [c.size for c in cuts] != sizes:
                raise InputError("one cut per row is needed")
            self._cuts = [_readonly(np.asarray(c, dtype=np.int32)) for c in cuts]

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> Texts:
        """A column holding ``strings`` (each must be a ``str`` that encodes to UTF-8)."""
        encoded = []
        for i, s in enumerate(strings):
            if not isinstance(s, str):
                raise InputTypeError(f"item {i} is a {type(s).__name__}, not a string")
            encoded.append(s.encode("utf-8"))
        return cls.from_bytes(encoded)

    @classmethod
    def from_bytes(cls, items: Sequence[bytes]) -> Texts:
        """A column whose rows are the given UTF-8 ``bytes`` (not checked)."""
        lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        offsets = np.zeros(len(items) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.frombuffer(b"".join(items), dtype=np.uint8)
        return cls([(data, offsets)])

    @classmethod
    def from_chunks(cls, chunks: Sequence[tuple[ByteArray, IntArray]]) -> Texts:
        """A column over ``(data, offsets)`` chunks, in order (no copy)."""
        return cls(chunks)

    @classmethod
    def from_arrow(cls, array: Any) -> Texts:
        """A column over a pyarrow ``string``/``large_string`` (or binary) array or chunked
        array, without copying its buffers. Nulls are read as empty strings."""
        chunks = array.chunks if hasattr(array, "chunks") else [array]
        return cls([_arrow_chunk(c) for c in chunks])

    # -- the Sequence protocol ----------------------------------------------------------
    def __len__(self) -> int:
        return self._row0[-1]

    def _locate(self, i: int) -> tuple[int, int]:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"row {i} out of range for {n} texts")
        c = bisect.bisect_right(self._row0, i) - 1
        return c, i - self._row0[c]

    def _span(self, c: int, j: int) -> tuple[int, int]:
        offsets = self._chunks[c][1]
        s, e = int(offsets[j]), int(offsets[j + 1])
        if self._part == _ALL:
            return s, e
        assert self._cuts is not None
        cut = int(self._cuts[c][j])
        if self._part == _HEAD:
            return s, s + cut
        return s + cut + int(0 < cut < e - s), e

    def _memory(self, c: int) -> memoryview:
        if self._views is None:
            self._views = [memoryview(d.data) for d, _ in self._chunks]
        return self._views[c]

    def row_bytes(self, i: int) -> bytes:
        """The UTF-8 bytes of row ``i``."""
        c, j = self._locate(i)
        s, e = self._span(c, j)
        return self._memory(c)[s:e].tobytes()

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        try:
            i = index.__index__()
        except AttributeError:
            raise InputTypeError(
                f"Texts indices must be integers or slices, not {type(index).__name__}"
            ) from None
        c, j = self._locate(i)
        s, e = self._span(c, j)
        return str(self._memory(c)[s:e], "utf-8")

    def _chunk_spans(self, c: int) -> tuple[IntArray, IntArray]:
        offsets = self._chunks[c][1]
        s, e = offsets[:-1], offsets[1:]
        if self._part == _ALL:
            return s, e
        assert self._cuts is not None
        cut = self._cuts[c].astype(np.int64)
        if self._part == _HEAD:
            return s, s + cut
        return s + cut + ((cut > 0) & (cut < e - s)), e

    def _segments(self) -> list[ByteArray]:
        """The bytes of the whole rows, chunk by chunk (each chunk's rows are contiguous)."""
        return [d[int(o[0]) : int(o[-1])] for d, o in self._chunks]

    def iter_bytes(self) -> Iterator[memoryview]:
        """Each row's UTF-8 bytes (as read-only memoryviews), in order."""
        for c in range(len(self._chunks)):
            mv = self._memory(c)
            s, e = self._chunk_spans(c)
            for a, b in zip(s.tolist(), e.tolist(), strict=True):
                yield mv[a:b]

    def __iter__(self) -> Iterator[str]:
        for c in range(len(self._chunks)):
            mv = self._memory(c)
            s, e = self._chunk_spans(c)
            for a, b in zip(s.tolist(), e.tolist(), strict=True):
                yield str(mv[a:b], "utf-8")

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        b = value.encode("utf-8", "surrogatepass")
        return any(m == b for m in self.iter_bytes())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Texts):
            if len(other) != len(self):
                return False
            if not np.array_equal(self.byte_lengths(), other.byte_lengths()):
                return False
            if self._part == other._part == _ALL:  # same lengths: compare the byte streams
                return _same_stream(self._segments(), other._segments())
            return all(a == b for a, b in zip(self.iter_bytes(), other.iter_bytes(), strict=True))
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            if len(other) != len(self):
                return False
            return all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, like a list

    def __repr__(self) -> str:
        head = ", ".join(repr(t if len(t) <= 40 else t[:37] + "...") for t in self[:3])
        more = ", ..." if len(self) > 3 else ""
        return f"Texts([{head}{more}], n={len(self)}, nbytes={self.nbytes})"

    def __reduce__(self) -> tuple[Any, ...]:
        # only the bytes the rows span (a chunk may be part of a larger buffer)
        chunks = [(d[int(o[0]) : int(o[-1])], o - o[0]) for d, o in self._chunks]
        return (_rebuild, (type(self), chunks, self._cuts, self._part))

    def shares_rows(self, other: Texts) -> bool:
        """Whether ``other`` is over the same rows' bytes (a view of this column, or this
        one of it)."""
        return len(self._chunks) == len(other._chunks) and all(
            a[1] is b[1] for a, b in zip(self._chunks, other._chunks, strict=True)
        )

    # -- bulk access --------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes held: the rows' bytes (shared with views), offsets and cuts."""
        total = sum(int(o[-1] - o[0]) + o.nbytes for _, o in self._chunks)
        return total + sum(c.nbytes for c in self._cuts or [])

    def byte_lengths(self) -> IntArray:
        """The UTF-8 length of every row, int64."""
        parts = [e - s for s, e in (self._chunk_spans(c) for c in range(len(self._chunks)))]
        return np.concatenate(parts) if parts else np.empty(0, np.int64)

    def tolist(self) -> list[str]:
        """Every row as a Python string (what the compact column avoids holding)."""
        return list(self)

    def take(self, rows: Sequence[int] | IntArray) -> Texts:
        """A new compact column with the given rows, in that order (one buffer)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n = len(self)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"rows out of range for {n} texts")
        rows = np.where(rows < 0, rows + n, rows)
        chunk = np.searchsorted(np.asarray(self._row0), rows, side="right") - 1
        starts = np.empty(rows.size, np.int64)
        ends = np.empty(rows.size, np.int64)
        for c in np.unique(chunk).tolist():
            at = np.flatnonzero(chunk == c)
            s, e = self._chunk_spans(c)
            local = rows[at] - self._row0[c]
            starts[at], ends[at] = s[local], e[local]
        lengths = ends - starts
        offsets = np.zeros(rows.size + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        out = np.empty(int(offsets[-1]), np.uint8)
        # gather in batches of rows holding about 8 MiB, one flat index per batch
        batch_end = np.searchsorted(offsets, np.arange(8 << 20, int(offsets[-1]), 8 << 20))
        bounds = np.unique(np.concatenate([[0], batch_end, [rows.size]]))
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            for c in np.unique(chunk[a:b]).tolist():
                at = a + np.flatnonzero(chunk[a:b] == c)
                size = lengths[at]
                row = np.repeat(at, size)
                t = np.arange(row.size) - np.repeat(np.cumsum(size) - size, size)
                out[offsets[row] + t] = self._chunks[c][0][starts[row] + t]
        return Texts([(out, offsets)])

    def titles(self, cuts: Sequence[npt.NDArray[np.int32]]) -> Texts:
        """The first ``cuts[c][j]`` bytes of each row (a view; no copy)."""
        return Texts(self._chunks, _cuts=cuts, _part=_HEAD)

    def after_titles(self, cuts: Sequence[npt.NDArray[np.int32]]) -> Texts:
        """What follows the first ``cuts[c][j]`` bytes of each row, past one separating
        space when both parts are non-empty (a view; no copy)."""
        return Texts(self._chunks, _cuts=cuts, _part=_TAIL)

    def to_arrow(self) -> Any:
        """A pyarrow ``large_binary`` chunked array over the same buffers (whole rows
        only)."""
        if self._part != _ALL:
            return _pa().chunked_array(
                [Texts.from_bytes([b.tobytes() for b in self.iter_bytes()]).to_arrow()]
            )
        pa = _pa()
        arrays = [
            pa.Array.from_buffers(
                pa.large_binary(), o.size - 1, [None, pa.py_buffer(o), pa.py_buffer(d)]
            )
            for d, o in self._chunks
        ]
        return pa.chunked_array(arrays, type=pa.large_binary())


class TextsBuilder:
    """Rows appended block by block, then :meth:`finish`: each block becomes a chunk over
    its own exact buffer (the bytes joined once, or pyarrow's string buffers kept as they
    are: no copy)."""

    def __init__(self) -> None:
        self._chunks: list[tuple[ByteArray, IntArray]] = []

    def add(self, data: ByteArray, offsets: IntArray) -> None:
        """Rows ``data[offsets[j]:offsets[j + 1]]`` (int64 offsets), kept (not copied)."""
        if offsets.size >= 2:
            self._chunks.append((data, offsets))

    def add_bytes(self, items: Sequence[bytes]) -> None:
        lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        offsets = np.zeros(len(items) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        self.add(np.frombuffer(b"".join(items), dtype=np.uint8), offsets)

    def add_arrow(self, array: Any) -> None:
        for chunk in array.chunks if hasattr(array, "chunks") else [array]:
            self.add(*_arrow_chunk(chunk))

    def finish(self) -> Texts:
        return Texts(self._chunks)


def _rebuild(
    cls: type[Texts],
    chunks: list[tuple[ByteArray, IntArray]],
    cuts: list[npt.NDArray[np.int32]] | None,
    part: int,
) -> Texts:
    return cls(chunks, _cuts=cuts, _part=part)


def _same_stream(a: list[ByteArray], b: list[ByteArray]) -> bool:
    """Whether two lists of byte arrays hold the same bytes end to end."""
    i = j = 0
    x = y = 0  # positions inside a[i], b[j]
    while i < len(a) and j < len(b):
        m = min(a[i].size - x, b[j].size - y)
        if not np.array_equal(a[i][x : x + m], b[j][y : y + m]):
            return False
        x, y = x + m, y + m
        if x == a[i].size:
            i, x = i + 1, 0
        if y == b[j].size:
            j, y = j + 1, 0
    rest = sum(s.size for s in a[i:]) - x + sum(s.size for s in b[j:]) - y
    return rest == 0


def _pa() -> Any:
    import pyarrow

    return pyarrow


def _have_arrow() -> bool:
    try:
        import pyarrow.compute  # noqa: F401
    except ImportError:
        return False
    return True


def _arrow_chunk(arr: Any) -> tuple[ByteArray, IntArray]:
    """``(data, offsets)`` views of a pyarrow string/binary array (int64 offsets; an
    array with int32 offsets gets a converted copy of its offsets only)."""
    pa = _pa()
    if arr.null_count:
        arr = arr.fill_null(
            "" if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) else b""
        )
    bufs = arr.buffers()
    wide = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    dtype = np.int64 if wide else np.int32
    offsets = np.frombuffer(bufs[1], dtype=dtype)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    return data, offsets.astype(np.int64, copy=False)


def as_texts(values: Sequence[str]) -> Texts:
    """``values`` itself when it is a :class:`Texts`, else a compact copy."""
    return values if isinstance(values, Texts) else Texts.from_strings(values)


def lookup(table: Texts, keys: Texts) -> IntArray:
    """The row of ``table`` holding each key (``-1`` where absent). ``table``'s rows must
    be unique (the first one wins otherwise).

    With pyarrow, the hash table is built over the distinct keys when they are fewer than
    the table's rows (8.8M corpus ids probed against the qrels' ids), else over the table.
    """
    if len(keys) == 0:
        return np.empty(0, np.int64)
    if not _have_arrow():
        row: dict[bytes, int] = {}
        for r, b in enumerate(table.iter_bytes()):
            row.setdefault(b.tobytes(), r)
        return np.fromiter(
            (row.get(b.tobytes(), -1) for b in keys.iter_bytes()), np.int64, len(keys)
        )
    import pyarrow.compute as pc

    key_arr = keys.to_arrow()
    distinct = pc.unique(key_arr)
    if len(distinct) >= len(table):
        got = pc.index_in(key_arr, value_set=table.to_arrow().combine_chunks())
        return np.asarray(got.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    # which distinct key each table row holds, then the (first) row of each distinct key
    hit = pc.index_in(table.to_arrow(), value_set=distinct)
    hit = np.asarray(hit.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    rows = np.flatnonzero(hit >= 0)
    row_of = np.full(len(distinct), -1, np.int64)
    row_of[hit[rows[::-1]]] = rows[::-1]  # the first row wins
    which = pc.index_in(key_arr, value_set=distinct)
    return row_of[np.asarray(which.to_numpy(zero_copy_only=False), dtype=np.int64)]


def first_duplicate(texts: Texts) -> tuple[int, int] | None:
    """``(first row, repeat row)`` of the first row (in order) that repeats an earlier one,
    or ``None`` when every row is unique. Fingerprints of the bytes select the candidates
    (rows sharing one), their bytes decide."""
    if len(texts) < 2:
        return None
    keys = fingerprints(texts)
    ordered = np.sort(keys)
    if not (ordered[1:] == ordered[:-1]).any():
        return None
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    same = ordered[1:] == ordered[:-1]
    shared = np.zeros(order.size, bool)
    shared[1:] |= same
    shared[:-1] |= same
    seen: dict[bytes, int] = {}
    for r in np.sort(order[shared]).tolist():
        first = seen.setdefault(texts.row_bytes(r), r)
        if first != r:
            return first, r
    return None


# -- fingerprints and duplicate groups -------------------------------------------------------
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser (wrapping uint64 arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], dtype=np.uint64)


def _windows(data: ByteArray) -> npt.NDArray[np.uint64]:
    """Every 8-byte window of ``data`` as a little-endian uint64 (an overlapping view of
    the bytes, no copy: element ``i`` is ``data[i:i + 8]``)."""
    if data.size < 8:
        data = np.concatenate([data, np.zeros(8 - data.size, np.uint8)])
    return np.ndarray(shape=(data.size - 7,), dtype="<u8", buffer=data, offset=0, strides=(1,))


def _word(
    windows: npt.NDArray[np.uint64], pos: IntArray, length: IntArray
) -> npt.NDArray[np.uint64]:
    """The (up to) 8 bytes at ``pos`` of each row, little-endian, those past ``length``
    zeroed: a function of the row's own bytes only."""
    last = windows.size - 1
    at = np.minimum(pos, last)
    shift = ((pos - at) * 8).astype(np.uint64)  # rows near the end: a window started earlier
    w = windows[at] >> shift
    return w & _LOW_BYTES[np.minimum(length, 8)]


def fingerprints(texts: Texts) -> npt.NDArray[np.uint64]:
    """A 64-bit fingerprint of each row's bytes: its length and its first, last and middle
    8 bytes, mixed. Equal rows have equal fingerprints; unequal ones usually differ (a
    candidate filter: equality is checked on the bytes)."""
    out = []
    for c in range(len(texts._chunks)):
        windows = _windows(texts._chunks[c][0])
        s, e = texts._chunk_spans(c)
        n = e - s
        z = _mix(n.astype(np.uint64) * _GOLDEN ^ _word(windows, s, n))
        longest = int(n.max(initial=0))
        # a row of 8 bytes or fewer is whole in its first word, of 16 in its first and last
        # (decided row by row: the fingerprint is a function of the row alone)
        if longest > 8:
            z = np.where(n > 8, _mix(z ^ _word(windows, np.maximum(e - 8, s), n)), z)
        if longest > 16:
            z = np.where(n > 16, _mix(z ^ _word(windows, s + np.maximum(n - 8, 0) // 2, n)), z)
        out.append(z)
    return np.concatenate(out) if out else np.empty(0, np.uint64)


def document_groups(texts: Texts, rows: IntArray) -> tuple[IntArray, IntArray]:
    """Rows of ``texts`` whose bytes equal those of one of ``rows``, and their groups.

    Returns ``(members, group)``: every row (sorted) whose text is identical to the text
    of at least one row of ``rows`` and shared by two rows or more, and for each a group
    number (rows with the same text, same number). Fingerprints select the candidates;
    their bytes decide.
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    empty = np.empty(0, np.int64)
    if rows.size == 0 or len(texts) < 2:
        return empty, empty
    keys = fingerprints(texts)
    cand = np.flatnonzero(np.isin(keys, np.unique(keys[rows])))
    if cand.size == rows.size:  # only the rows themselves: any sharing is among them
        counts = np.unique(keys[cand], return_counts=True)[1]
        if counts.max(initial=1) < 2:
            return empty, empty
    group_of: dict[bytes, int] = {}
    gid = np.fromiter(
        (group_of.setdefault(texts.row_bytes(int(r)), len(group_of)) for r in cand.tolist()),
        np.int64,
        count=cand.size,
    )
    wanted = np.zeros(len(group_of), bool)
    wanted[gid[np.isin(cand, rows)]] = True
    shared = np.bincount(gid, minlength=len(group_of)) > 1
    keep = (wanted & shared)[gid]
    return cand[keep], gid[keep]
