"""Candidates from elsewhere: a TREC run file (``qid Q0 docid rank score tag``), e.g. BM25."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .._ragged import Ragged
from .._types import Candidates
from ..errors import InputError
from ._reading import DataError, parse_float, text_lines
from .texts import Texts, as_texts, lookup

if TYPE_CHECKING:
    from .data import BeirDataset

__all__ = ["RunCandidates", "read_trec_run", "scores_of"]


@dataclass(frozen=True)
class RunCandidates:
    """A TREC run aligned to a dataset's split queries.

    Attributes
    ----------
    candidates : :class:`~negsample.Candidates` ``(n_queries, K)``, best score first,
        ``-1``/NaN padded; row ``i`` is ``dataset.query_ids[i]``.
    stats : ``lines``, ``queries_not_in_split`` (run queries outside the split, skipped),
        ``queries_without_candidates`` (split queries absent from the run: empty rows),
        ``truncated`` (candidates beyond ``depth``, dropped).
    """

    candidates: Candidates
    stats: dict[str, int] = field(default_factory=dict)


def read_trec_run(
    path: str | os.PathLike[str], dataset: BeirDataset, *, depth: int | None = None
) -> RunCandidates:
    """Read a TREC run file as candidates for ``dataset``'s split queries.

    Each line is ``qid Q0 docid rank score tag`` (whitespace-separated). Candidates are
    ordered by score, highest first (ties by rank), and cut to the best ``depth`` per query.
    Queries of the run that are not in the split are skipped and counted; split queries
    missing from the run get an empty row (the sampler then counts them short).

    Raises
    ------
    DataError
        naming the file and line for a malformed line (not 6 fields; a rank or score that
        is not a finite decimal number, or a score beyond float32's range: the candidates'
        scores are float32), bytes that are not UTF-8, a NUL byte, a document id not in
        the corpus, or a document listed twice for one query. Blank lines are skipped.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: not found")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise InputError(f"depth must be an integer >= 1, got {depth!r}")
    qids: list[str] = []
    dids: list[str] = []
    scores: list[float] = []
    ranks: list[float] = []
    lines_: list[int] = []
    pending: DataError | None = None  # the first malformed line's error, raised in order
    n_lines = 0
    try:
        for lineno, line in text_lines(p):
            n_lines += 1
            parts = line.split()
            if len(parts) != 6:
                raise DataError(
                    p, lineno, f"expected 6 fields 'qid Q0 docid rank score tag', got {len(parts)}"
                )
            qid, _q0, did, rank_s, score_s, _tag = parts
            ranks.append(parse_float(p, lineno, "rank", rank_s, float32=False))
            scores.append(parse_float(p, lineno, "score", score_s, float32=True))
            qids.append(qid)
            dids.append(did)
            lines_.append(lineno)
    except DataError as exc:
        pending = exc
    q_all = lookup(as_texts(dataset.query_ids), Texts.from_strings(qids))
    d_all = lookup(as_texts(dataset.corpus_ids), Texts.from_strings(dids))
    in_split = q_all >= 0
    unknown = np.flatnonzero(in_split & (d_all < 0))
    if unknown.size:  # met, line by line, before any later malformed line
        i = int(unknown[0])
        raise DataError(
            p,
            lines_[i],
            f"document id {dids[i]!r} (query {qids[i]!r}) is not in the corpus",
        )
    if pending is not None:
        raise pending
    if n_lines == 0:
        raise DataError(p, None, "the run file is empty")
    skipped_q = {qids[i] for i in np.flatnonzero(~in_split).tolist()}
    keep_rows = np.flatnonzero(in_split)
    rows = q_all[keep_rows]
    docs = d_all[keep_rows]
    lines_ = [lines_[i] for i in keep_rows.tolist()]
    scores = [scores[i] for i in keep_rows.tolist()]
    ranks = [ranks[i] for i in keep_rows.tolist()]
    n_q = dataset.n_queries
    r_a = np.asarray(rows, np.int64)
    d_a = np.asarray(docs, np.int64)
    s_a = np.asarray(scores, np.float64)
    k_a = np.asarray(ranks, np.float64)
    # duplicates (same query, same document)
    key = r_a * dataset.n_corpus + d_a
    order = np.argsort(key, kind="stable")
    dup = np.flatnonzero(key[order][1:] == key[order][:-1])
    if dup.size:
        i0, i1 = order[dup[0]], order[dup[0] + 1]
        raise DataError(
            p,
            lines_[i1],
            f"document {dataset.corpus_ids[d_a[i1]]!r} listed twice for query "
            f"{dataset.query_ids[r_a[i1]]!r} (first on line {lines_[i0]})",
        )
    # by query, then score descending, then rank ascending
    order = np.lexsort((k_a, -s_a, r_a))
    r_a, d_a, s_a = r_a[order], d_a[order], s_a[order]
    counts = np.bincount(r_a, minlength=n_q)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col = np.arange(r_a.size) - starts[r_a]
    width = int(counts.max(initial=0))
    k = width if depth is None else min(depth, width)
    keep = col < k
    ids = np.full((n_q, max(k, 1)), -1, np.int64)
    sc = np.full((n_q, max(k, 1)), np.nan, np.float32)
    ids[r_a[keep], col[keep]] = d_a[keep]
    sc[r_a[keep], col[keep]] = s_a[keep]
    stats = {
        "lines": n_lines,
        "queries_not_in_split": len(skipped_q),
        "queries_without_candidates": int((counts == 0).sum()),
        "truncated": int((~keep).sum()),
    }
    return RunCandidates(Candidates(ids, sc), stats)


def scores_of(candidates: Candidates, positives: Ragged) -> npt.NDArray[np.float32]:
    """The candidate score of each positive (flat, aligned with ``positives.values``), NaN
    where that document is not among its row's candidates."""
    ids, sc = np.asarray(candidates.ids), np.asarray(candidates.scores)
    out = np.full(positives.nnz, np.nan, np.float32)
    present = ids >= 0
    if positives.nnz == 0 or not present.any():
        return out
    width = np.int64(max(int(ids.max()), int(positives.values.max())) + 2)
    r, c = np.nonzero(present)
    ckey = r.astype(np.int64) * width + ids[r, c] + 1
    order = np.argsort(ckey)
    ckey, cval = ckey[order], sc[r, c][order]
    pkey = positives.row_of * width + positives.values + 1
    at = np.minimum(np.searchsorted(ckey, pkey), ckey.size - 1)
    found = ckey[at] == pkey
    out[found] = cval[at[found]]
    return out
