"""The drop-in's output: sentence-transformers' four layouts (``triplet``, ``n-tuple``,
``labeled-pair``, ``labeled-list``) as Arrow columns gathered with ``take`` from the
distinct texts (no Python loop over rows), in memory or, for a streamed input, written to
an Arrow file block by block; the dataset's fingerprint; and the summary
sentence-transformers prints with ``verbose=True``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from ..._optional import require
from ..._types import MiningStats
from ...samplers.base import IntArray
from .cache import write_atomic

__all__ = [
    "Mined",
    "Summary",
    "columns",
    "fingerprint",
    "mined_path",
    "print_stats",
    "summary",
    "text_digest",
    "write_dataset",
]

TAKE_ROWS = 65536  # rows gathered per Arrow take (keeps each string chunk well under 2 GiB)


def _take(texts: Any, ids: IntArray) -> Any:
    """``texts[ids]`` as a chunked Arrow ``string`` column (sentence-transformers' type)."""
    pa = require("pyarrow", "mine_hard_negatives")
    ids = np.asarray(ids, np.int64)
    chunks = []
    for s in range(0, ids.size, TAKE_ROWS):
        part = texts.take(pa.array(ids[s : s + TAKE_ROWS]))
        chunks.append(part if part.type == pa.string() else part.cast(pa.string()))
    return pa.chunked_array(chunks, type=pa.string())


def _lists(offsets: IntArray, values: Any) -> Any:
    pa = require("pyarrow", "mine_hard_negatives")
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def _text_lists(texts: Any, offsets: IntArray, ids: IntArray) -> Any:
    """Lists of texts (row ``i``: ``texts[ids[offsets[i]:offsets[i + 1]]]``), chunked by
    rows so that no chunk's strings pass 2 GiB."""
    pa = require("pyarrow", "mine_hard_negatives")
    n_rows = offsets.size - 1
    step = max(1, TAKE_ROWS // max(1, int(np.ceil(ids.size / max(n_rows, 1)))))
    chunks = []
    for a in range(0, n_rows, step):
        b = min(a + step, n_rows)
        vals = _take(texts, ids[offsets[a] : offsets[b]])
        flat = vals.combine_chunks() if vals.num_chunks else pa.array([], pa.string())
        chunks.append(_lists(offsets[a : b + 1] - offsets[a], flat))
    return pa.chunked_array(chunks, type=pa.list_(pa.string()))


@dataclass(frozen=True, kw_only=True)
class Mined:
    """Everything the layouts need, in row numbers.

    Attributes
    ----------
    queries, corpus : pyarrow.Array
        The distinct texts.
    pair_q, pair_p : numpy.ndarray
        int64 ``(pairs,)`` the query and the positive of each distinct pair, grouped by
        query.
    pair_s : numpy.ndarray
        float64 ``(pairs,)`` ``s(q, d+)``.
    neg_ids : numpy.ndarray
        int64 ``(pairs, n)`` the negatives of each pair, best first, ``-1`` last.
    neg_s : numpy.ndarray
        float64 ``(pairs, n)`` their scores, NaN for ``-1``.
    q_first : numpy.ndarray
        int64 ``(queries,)`` the first pair of each query.
    """

    queries: Any
    corpus: Any
    pair_q: IntArray
    pair_p: IntArray
    pair_s: npt.NDArray[np.float64]
    neg_ids: IntArray
    neg_s: npt.NDArray[np.float64]
    q_first: IntArray


def _labeled_pair(m: Mined) -> tuple[IntArray, IntArray, npt.NDArray[np.float64], IntArray]:
    """Per query, its positives (kind 0) then its negatives (kind 1, those of its first
    pair): the query, document, score and kind of each row."""
    valid = m.neg_ids >= 0
    first = m.q_first
    qv = valid[first]
    kind = np.concatenate([np.zeros(m.pair_q.size, np.int64), np.ones(int(qv.sum()), np.int64)])
    qr, qc = np.nonzero(qv)
    entry_q = np.concatenate([m.pair_q, m.pair_q[first][qr]])
    entry_doc = np.concatenate([m.pair_p, m.neg_ids[first][qr, qc]])
    entry_s = np.concatenate([m.pair_s, m.neg_s[first][qr, qc]])
    within = np.concatenate([np.arange(m.pair_q.size), qc])
    order = np.lexsort((within, kind, entry_q))
    return entry_q[order], entry_doc[order], entry_s[order], kind[order]


def columns(m: Mined, fmt: str, scores: bool, anchor: str, positive: str) -> dict[str, Any]:
    """The output's columns, in sentence-transformers' order.

    Parameters
    ----------
    m : Mined
        The negatives of each pair.
    fmt : str
        The output format.
    scores : bool
        ``output_scores``.
    anchor, positive : str
        The input's column names (kept in the output).

    Returns
    -------
    dict[str, Any]
        Arrow columns by name.
    """
    pa = require("pyarrow", "mine_hard_negatives")
    valid = m.neg_ids >= 0
    n = m.neg_ids.shape[1]
    cols: dict[str, Any] = {}
    if fmt == "triplet":
        r, j = np.nonzero(valid)
        cols[anchor] = _take(m.queries, m.pair_q[r])
        cols[positive] = _take(m.corpus, m.pair_p[r])
        cols["negative"] = _take(m.corpus, m.neg_ids[r, j])
        if scores:
            vals = np.stack([m.pair_s[r], m.neg_s[r, j]], axis=1).ravel()
            cols["scores"] = _lists(np.arange(0, 2 * r.size + 1, 2), pa.array(vals))
    elif fmt == "n-tuple":
        (r,) = np.nonzero(valid.all(axis=1))
        cols[anchor] = _take(m.queries, m.pair_q[r])
        cols[positive] = _take(m.corpus, m.pair_p[r])
        for c in range(n):
            cols[f"negative_{c + 1}"] = _take(m.corpus, m.neg_ids[r, c])
        if scores:
            vals = np.concatenate([m.pair_s[r, None], m.neg_s[r]], axis=1).ravel()
            cols["scores"] = _lists(np.arange(0, (n + 1) * r.size + 1, n + 1), pa.array(vals))
    elif fmt == "labeled-list":
        (r,) = np.nonzero(valid.any(axis=1))
        docs = np.concatenate([m.pair_p[r, None], m.neg_ids[r]], axis=1)
        keep = np.concatenate([np.ones((r.size, 1), bool), valid[r]], axis=1)
        offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
        cols[anchor] = _take(m.queries, m.pair_q[r])
        cols[positive] = _text_lists(m.corpus, offsets, docs[keep])
        if scores:
            s = np.concatenate([m.pair_s[r, None], m.neg_s[r]], axis=1)[keep]
            cols["scores"] = _lists(offsets, pa.array(s, pa.float64()))
        else:
            lab = np.concatenate(
                [np.ones((r.size, 1), np.int64), np.zeros((r.size, n), np.int64)], axis=1
            )
            cols["labels"] = _lists(offsets, pa.array(lab[keep], pa.int64()))
    else:  # labeled-pair
        eq, ed, es, kind = _labeled_pair(m)
        cols[anchor] = _take(m.queries, eq)
        cols[positive] = _take(m.corpus, ed)
        if scores:
            cols["score"] = pa.array(es, pa.float64())
        else:
            cols["label"] = pa.array(1 - kind, pa.int64())
    return cols


def _blocks(m: Mined, rows: int) -> Iterator[Mined]:
    """``m`` in blocks of whole queries, about ``rows`` pairs each (a query with more pairs
    is a block of its own)."""
    n_q, n_pairs = m.q_first.size, m.pair_q.size
    qa = 0
    while qa < n_q:
        start = int(m.q_first[qa])
        if start + rows >= n_pairs:
            qb = n_q
        else:
            qb = max(qa + 1, int(np.searchsorted(m.q_first, start + rows, side="right")) - 1)
        stop = int(m.q_first[qb]) if qb < n_q else n_pairs
        yield replace(
            m,
            pair_q=m.pair_q[start:stop],
            pair_p=m.pair_p[start:stop],
            pair_s=m.pair_s[start:stop],
            neg_ids=m.neg_ids[start:stop],
            neg_s=m.neg_s[start:stop],
            q_first=m.q_first[qa:qb] - start,
        )
        qa = qb


def mined_path(fingerprint: str) -> str:
    """Where a streamed input's output goes: ``negsample/mined-{fingerprint}.arrow`` in
    ``datasets``' cache folder (``HF_DATASETS_CACHE``).

    Parameters
    ----------
    fingerprint : str
        The output's fingerprint (a digest of its content).

    Returns
    -------
    str
        The path.
    """
    datasets = require("datasets", "mine_hard_negatives")
    return os.path.join(
        datasets.config.HF_DATASETS_CACHE, "negsample", f"mined-{fingerprint}.arrow"
    )


def write_dataset(
    m: Mined,
    fmt: str,
    scores: bool,
    anchor: str,
    positive: str,
    path: str,
    *,
    rows: int | None = None,
) -> Any:
    """The output written to ``path`` block by block (about ``rows`` pairs at a time, so
    the whole output is never in memory), atomically, then opened memory-mapped. A file
    already there (same fingerprint: the same content) is opened as it is.

    Parameters
    ----------
    m : Mined
        The negatives of each pair.
    fmt : str
        The output format.
    scores : bool
        ``output_scores``.
    anchor, positive : str
        The column names.
    path : str
        The Arrow file.
    rows : int or None
        Pairs per block (``None``: :data:`TAKE_ROWS`).

    Returns
    -------
    datasets.Dataset
        The output, memory-mapped from ``path``.
    """
    datasets = require("datasets", "mine_hard_negatives")
    pa = require("pyarrow", "mine_hard_negatives")

    def write(f: IO[Any]) -> None:
        writer, schema = None, None
        try:
            for part in _blocks(m, rows or TAKE_ROWS):
                table = pa.table(columns(part, fmt, scores, anchor, positive))
                if writer is None:
                    schema = datasets.Features.from_arrow_schema(table.schema).arrow_schema
                    writer = pa.ipc.new_stream(f, schema)
                writer.write_table(pa.Table.from_arrays(table.columns, schema=schema))
        finally:
            if writer is not None:
                writer.close()

    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, write)
    return datasets.Dataset.from_file(path)


@dataclass(frozen=True, kw_only=True)
class Summary:
    """What sentence-transformers' summary reports.

    Attributes
    ----------
    positive, negative, difference : numpy.ndarray
        float64 scores it summarises.
    rows : int
        Rows of the output.
    possible : int
        The most rows the format could have had.
    """

    positive: npt.NDArray[np.float64]
    negative: npt.NDArray[np.float64]
    difference: npt.NDArray[np.float64]
    rows: int
    possible: int


def summary(m: Mined, fmt: str) -> Summary:
    """The scores and row counts the summary reports, from the mined arrays.

    Parameters
    ----------
    m : Mined
        The negatives of each pair.
    fmt : str
        The output format.

    Returns
    -------
    Summary
        Its figures.
    """
    valid = m.neg_ids >= 0
    n = m.neg_ids.shape[1]
    keep_rows: npt.NDArray[np.bool_] = np.ones(len(valid), bool)
    if fmt == "triplet":
        neg, rows, possible = m.neg_s[valid], int(valid.sum()), valid.size
    elif fmt == "n-tuple":
        keep_rows = np.asarray(valid.all(axis=1))
        neg, rows, possible = m.neg_s[keep_rows].ravel(), int(keep_rows.sum()), valid.shape[0]
    elif fmt == "labeled-list":
        neg, rows, possible = m.neg_s[valid], int(valid.any(axis=1).sum()), valid.shape[0]
    else:
        rows = m.pair_q.size + int(valid[m.q_first].sum())
        neg, possible = m.neg_s[valid], m.q_first.size * n + m.pair_q.size
    diff = (m.pair_s[:, None] - m.neg_s)[valid & keep_rows[:, None]]
    return Summary(positive=m.pair_s, negative=neg, difference=diff, rows=rows, possible=possible)


def fingerprint(parts: Sequence[Any]) -> str:
    """A ``datasets`` fingerprint: a digest of arrays (their bytes) and other values (their
    ``repr``).

    Parameters
    ----------
    parts : Sequence[Any]
        What the output depends on.

    Returns
    -------
    str
        32 hex digits.
    """
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def text_digest(texts: Any) -> str:
    """A digest of an Arrow string array (its value bytes and offsets).

    Parameters
    ----------
    texts : pyarrow.Array
        The texts.

    Returns
    -------
    str
        Hex digest.
    """
    h = hashlib.sha256()
    for buf in texts.buffers():
        if buf is not None:
            h.update(memoryview(buf))
    return h.hexdigest()


def print_stats(
    s: Summary, stats: MiningStats, settings: dict[str, float | None], range_min: int
) -> None:
    """The summary sentence-transformers prints with ``verbose=True``.

    Parameters
    ----------
    s : Summary
        The figures.
    stats : MiningStats
        The mining's counts (candidates seen, removed by each filter).
    settings : dict[str, float or None]
        The score filters by name, in sentence-transformers' order.
    range_min : int
        The window's start (named among the hints when set).
    """
    pos, neg, diff = s.positive, s.negative, s.difference
    row = "{:<6} {:>14} {:>14} {:>14}"
    print(row.format("Metric", "Positive", "Negative", "Difference"))
    print(row.format("Count", f"{pos.size:,}", f"{neg.size:,}", ""))

    def f(fn: Any, a: np.ndarray) -> str:
        return f"{fn(a):.4f}" if a.size else "nan"

    for name, fn in [
        ("Mean", np.mean),
        ("Median", np.median),
        ("Std", lambda a: np.std(a, ddof=1) if a.size > 1 else float("nan")),
        ("Min", np.min),
        ("25%", lambda a: np.quantile(a, 0.25)),
        ("50%", lambda a: np.quantile(a, 0.5)),
        ("75%", lambda a: np.quantile(a, 0.75)),
        ("Max", np.max),
    ]:
        print(row.format(name, f(fn, pos), f(fn, neg), f(fn, diff)))
    seen = max(stats.candidates_seen, 1)
    for name, value in settings.items():
        skipped = stats.removed.get(name, 0)
        if value is not None and skipped:
            print(
                f"Skipped {skipped:,} potential negatives ({skipped / seen:.2%}) due to the "
                f"{name} of {value}."
            )
    missing = s.possible - s.rows
    if missing > 0:
        names = ["range_max"] + (["range_min"] if range_min > 0 else [])
        names += [
            k
            for k in ("absolute_margin", "relative_margin", "max_score")
            if settings.get(k) is not None
        ]
        hint = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        print(
            f"Could not find enough negatives for {missing} samples "
            f"({missing / s.possible:.2%}). Consider adjusting the {hint} "
            f"parameter{'s' if len(names) > 1 else ''} if you'd like to find more valid "
            "negatives."
        )
