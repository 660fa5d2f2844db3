"""Ragged rows of ids (CSR): positives and exclusions per query, never padded.

A query may have one positive or twenty thousand; padding every row to the widest one
makes memory grow with ``queries x the largest positive count``. :class:`Ragged` keeps the
ids of all rows in one flat array and the row boundaries in ``indptr`` (the CSR layout of
``scipy.sparse``), so memory is ``O(total ids)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InputError, InputTypeError

__all__ = ["Ragged", "as_ragged", "dedupe", "segment_argbest", "segment_sum", "to_ragged"]

IntArray = npt.NDArray[np.int64]
_FEW = 8  # rows this short are tested for membership column by column, not by sorted keys


@dataclass(frozen=True, eq=False)
class Ragged:
    """Rows of int64 ids: row ``i`` is ``values[indptr[i]:indptr[i + 1]]``.

    Attributes
    ----------
    indptr : int64 ``(n_rows + 1,)``, non-decreasing, ``indptr[0] == 0``.
    values : int64 ``(indptr[-1],)``.
    """

    indptr: IntArray
    values: IntArray

    @property
    def n_rows(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def nnz(self) -> int:
        return int(self.values.shape[0])

    def __len__(self) -> int:
        return self.n_rows

    @property
    def lengths(self) -> IntArray:
        """Ids per row, ``(n_rows,)``."""
        return np.diff(self.indptr)

    @property
    def row_of(self) -> IntArray:
        """The row of each value, ``(nnz,)``."""
        return np.repeat(np.arange(self.n_rows, dtype=np.int64), self.lengths)

    @property
    def slot_of(self) -> IntArray:
        """The position of each value within its row, ``(nnz,)``."""
        return np.arange(self.nnz, dtype=np.int64) - np.repeat(self.indptr[:-1], self.lengths)

    def row(self, i: int) -> IntArray:
        return self.values[self.indptr[i] : self.indptr[i + 1]]

    def slice(self, start: int, stop: int) -> Ragged:
        """Rows ``start:stop`` (a view of ``values``)."""
        ip = self.indptr[start : stop + 1]
        return Ragged(ip - ip[0], self.values[ip[0] : ip[-1]])

    def take(self, rows: npt.ArrayLike) -> Ragged:
        """Rows ``rows`` (any order, repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        indptr = np.zeros(rows.size + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        start = np.repeat(self.indptr[rows] - indptr[:-1], lengths)
        return Ragged(indptr, self.values[start + np.arange(indptr[-1], dtype=np.int64)])

    def take_values(self, values_of: npt.ArrayLike, rows: npt.ArrayLike) -> np.ndarray:
        """``values_of`` (an array aligned with :attr:`values`) for the rows ``rows``, in the
        layout :meth:`take` gives."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        ends = np.cumsum(lengths)
        start = np.repeat(self.indptr[rows] - (ends - lengths), lengths)
        return np.asarray(values_of)[start + np.arange(int(ends[-1]) if ends.size else 0)]

    def to_padded(self, fill: int = -1) -> IntArray:
        """An ``(n_rows, max(1, widest row))`` array padded with ``fill`` (for small data and
        tests only: this is the layout :class:`Ragged` exists to avoid)."""
        width = max(1, int(self.lengths.max(initial=0)))
        out = np.full((self.n_rows, width), fill, np.int64)
        out[self.row_of, self.slot_of] = self.values
        return out

    def to_lists(self) -> list[IntArray]:
        return [self.row(i) for i in range(self.n_rows)]

    def contains(self, ids: IntArray) -> npt.NDArray[np.bool_]:
        """``ids[r, c]`` is in row ``r``, for ``ids`` ``(n_rows, K)`` (``-1`` never is)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.nnz == 0 or ids.size == 0:
            return np.zeros(ids.shape, dtype=bool)
        widest = int(self.lengths.max())
        if widest <= _FEW:  # a few ids per row: compare column by column
            out = np.zeros(ids.shape, dtype=bool)
            for col in self.to_padded(fill=-2).T[:widest]:
                out |= ids == col[:, None]
            return out
        width = np.int64(max(int(ids.max(initial=-1)), int(self.values.max())) + 2)
        keys = np.sort(self.row_of * width + (self.values + 1))
        q = np.arange(ids.shape[0], dtype=np.int64)[:, None] * width + (ids + 1)
        at = np.minimum(np.searchsorted(keys, q), keys.size - 1)
        return (keys[at] == q) & (ids >= 0)

    def union(self, other: Ragged) -> Ragged:
        """Row-wise union (this row's ids, then the other's new ones, each once)."""
        if other.n_rows != self.n_rows:
            raise InputError(f"cannot join {self.n_rows} rows with {other.n_rows}")
        rows = np.r_[self.row_of, other.row_of]
        vals = np.r_[self.values, other.values]
        order = np.argsort(rows, kind="stable")
        indptr = np.zeros(self.n_rows + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=self.n_rows), out=indptr[1:])
        return dedupe(Ragged(indptr, vals[order].astype(np.int64)))[0]

    @classmethod
    def empty(cls, n_rows: int) -> Ragged:
        return cls(np.zeros(n_rows + 1, np.int64), np.empty(0, np.int64))


def as_ragged(
    rows: Any,
    n_rows: int,
    n_corpus: int | None,
    name: str = "positives",
    *,
    allow_empty: bool = False,
) -> tuple[Ragged, int]:
    """Validate ids per query and return them as a :class:`Ragged` with duplicates removed
    (first occurrence kept, order otherwise unchanged), and the number of duplicates removed.

    ``rows`` is one sequence of corpus row ids per query (ragged), an int ``(n, P)`` array
    padded with ``-1`` at the end of each row, or a :class:`Ragged`. Every row needs at
    least one id unless ``allow_empty``; ids must be in ``[0, n_corpus)``.
    """
    raw = to_ragged(rows, n_rows, n_corpus, name, allow_empty=allow_empty)
    rag, kept = dedupe(raw)
    return rag, 0 if kept is None else raw.nnz - kept.size


def to_ragged(
    rows: Any,
    n_rows: int,
    n_corpus: int | None,
    name: str = "positives",
    *,
    allow_empty: bool = False,
) -> Ragged:
    """:func:`as_ragged` without removing duplicates (the ids as given, validated)."""
    if isinstance(rows, Ragged):
        rag = rows
        if rag.n_rows != n_rows:
            raise InputError(f"{name} has {rag.n_rows} rows but there are {n_rows} queries")
    elif isinstance(rows, np.ndarray) and rows.ndim == 2 and rows.dtype.kind in "iu":
        if rows.shape[0] != n_rows:
            raise InputError(f"{name} has {rows.shape[0]} rows but there are {n_rows} queries")
        pos = rows.astype(np.int64, copy=False)
        present = pos >= 0
        lengths = present.sum(axis=1)
        first_pad = np.where(~present, np.arange(pos.shape[1]), pos.shape[1]).min(axis=1)
        if np.any(lengths != first_pad):
            row = int(np.argmax(lengths != first_pad))
            raise InputError(f"{name} row {row}: -1 padding must come after the ids")
        if np.any(pos < -1):
            r, c = (int(v) for v in np.argwhere(pos < -1)[0])
            raise InputError(f"{name}[{r}] holds a negative id ({pos[r, c]})")
        indptr = np.zeros(n_rows + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        rag = Ragged(indptr, pos[present])
    else:
        if isinstance(rows, str | bytes) or not isinstance(rows, Sequence | np.ndarray):
            raise InputTypeError(
                f"{name} must be a sequence with one sequence of corpus row ids per query, "
                f"got {type(rows).__name__}"
            )
        if len(rows) != n_rows:
            raise InputError(f"{name} has {len(rows)} entries but there are {n_rows} queries")
        parts = []
        for i, p in enumerate(rows):
            a = np.atleast_1d(np.asarray(p))
            if a.ndim != 1:
                raise InputError(f"{name}[{i}] must be a flat sequence of ids, got shape {a.shape}")
            if a.size and a.dtype.kind not in "iu":
                raise InputTypeError(
                    f"{name}[{i}] must hold integer corpus row ids, got dtype {a.dtype}"
                )
            parts.append(a.astype(np.int64, copy=False))
        lengths = np.fromiter((a.size for a in parts), dtype=np.int64, count=len(parts))
        indptr = np.zeros(n_rows + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        values = np.concatenate(parts) if parts else np.empty(0, np.int64)
        rag = Ragged(indptr, values.astype(np.int64, copy=False))
    values = rag.values
    if values.size and values.min() < 0:
        at = int(np.argmax(values < 0))
        r = int(np.searchsorted(rag.indptr, at, side="right") - 1)
        raise InputError(f"{name}[{r}] holds a negative id ({values[at]})")
    if n_corpus is not None and values.size and values.max() >= n_corpus:
        at = int(np.argmax(values >= n_corpus))
        r = int(np.searchsorted(rag.indptr, at, side="right") - 1)
        raise InputError(
            f"{name}[{r}] holds id {values[at]}, out of range for a corpus of {n_corpus} rows"
        )
    lengths = rag.lengths
    if n_rows and not allow_empty and np.any(lengths == 0):
        row = int(np.argmax(lengths == 0))
        n_empty = int((lengths == 0).sum())
        raise InputError(
            f"query {row} has no {name} ({n_empty} queries in all); every query needs at "
            f"least one labelled positive (drop those queries first)"
        )
    return rag


def dedupe(rag: Ragged) -> tuple[Ragged, IntArray | None]:
    """Drop repeated ids within a row (the first occurrence stays, in place). Returns the
    new rows and the flat positions kept in ``rag.values`` (``None`` when nothing repeats)."""
    if rag.nnz < 2:
        return rag, None
    width = np.int64(int(rag.values.max()) + 1)
    key = rag.row_of * width + rag.values
    order = np.argsort(key, kind="stable")
    dup_sorted = np.zeros(key.size, dtype=bool)
    dup_sorted[1:] = key[order][1:] == key[order][:-1]
    if not dup_sorted.any():
        return rag, None
    keep = np.ones(key.size, dtype=bool)
    keep[order[dup_sorted]] = False
    lengths = np.bincount(rag.row_of[keep], minlength=rag.n_rows).astype(np.int64)
    indptr = np.zeros(rag.n_rows + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return Ragged(indptr, rag.values[keep]), np.flatnonzero(keep)


def segment_sum(values: npt.ArrayLike, indptr: IntArray) -> np.ndarray:
    """Sum of ``values`` over each row's segment (0 for an empty row); works on 1-D values
    and on ``(nnz, d)`` arrays (summed row-wise)."""
    v = np.asarray(values)
    n = indptr.shape[0] - 1
    out = np.zeros((n, *v.shape[1:]), dtype=np.result_type(v.dtype, np.float64))
    lengths = np.diff(indptr)
    nonempty = np.flatnonzero(lengths > 0)
    if nonempty.size:
        out[nonempty] = np.add.reduceat(v, indptr[nonempty], axis=0)
    return out


def segment_argbest(
    values: npt.ArrayLike, indptr: IntArray, usable: npt.ArrayLike, largest: bool
) -> IntArray:
    """Per row, the flat position of the largest (or smallest) ``values`` among the
    ``usable`` entries, the first one on ties; ``-1`` for a row with none usable."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.asarray(usable, dtype=bool)
    n = indptr.shape[0] - 1
    lengths = np.diff(indptr)
    rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
    key = np.where(ok, -v if largest else v, np.inf)
    # sort by row, then by the key, then by position (lexsort: last key first)
    order = np.lexsort((np.arange(v.size), key, rows))
    first = order[indptr[:-1][lengths > 0]]
    out = np.full(n, -1, np.int64)
    out[lengths > 0] = first
    out[(out >= 0) & ~ok[np.maximum(out, 0)]] = -1
    return out
