"""Reciprocal rank fusion (Cormack et al., SIGIR 2009) of ranked candidate lists."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._types import Candidates
from ._validate import to_numpy
from .errors import InputError

__all__ = ["DEFAULT_K_RRF", "check_k_rrf", "reciprocal_rank_fusion"]

#: Cormack, Clarke and Buettcher's constant: ``rrf(d) = sum 1 / (60 + rank)``.
DEFAULT_K_RRF = 60.0


def reciprocal_rank_fusion(
    rankings: Sequence[npt.ArrayLike],
    *,
    k_rrf: float = DEFAULT_K_RRF,
    depth: int | None = None,
) -> Candidates:
    """Fuse ranked lists of corpus ids, row by row, by reciprocal rank fusion.

    ``rrf(d) = sum over the lists holding d of 1 / (k_rrf + rank(d))``, ranks from 1
    (column ``j`` of a list is rank ``j + 1``); a document absent from a list gets nothing
    from it. Documents are ordered by ``rrf`` descending, equal values by the smaller id.
    Each document's terms are added smallest first, so two documents with the same ranks
    in different lists have bit-identical sums (an exact tie, broken by id).

    Parameters
    ----------
    rankings : sequence of array-like of int
        Each ``(b, L_j)``, the ids of one ranked list per row, best first, ``-1`` padding
        at the end of a row; an id at most once per row of a list.
    k_rrf : float
        The constant, ``>= 0`` (default 60, the paper's).
    depth : int or None
        Keep the best ``depth`` per row (``None``: every fused document).

    Returns
    -------
    Candidates
        ``ids`` int64 ``(b, width)`` and ``scores`` float32 ``rrf`` (ordered by the exact
        float64 values), ``-1`` / NaN padded.

    References
    ----------
    G. V. Cormack, C. L. A. Clarke, S. Buettcher, *Reciprocal rank fusion outperforms
    Condorcet and individual rank learning methods*, SIGIR 2009.

    Examples
    --------
    >>> fused = reciprocal_rank_fusion([[[3, 1, 2]], [[1, 4, -1]]], k_rrf=60)
    >>> fused.ids.tolist()          # 1: 1/62 + 1/61; 3: 1/61; 4: 1/62; 2: 1/63
    [[1, 3, 4, 2]]
    """
    k_rrf = check_k_rrf(k_rrf)
    if depth is not None and (isinstance(depth, bool) or int(depth) != depth or depth < 0):
        raise InputError(f"depth must be None or an integer >= 0, got {depth!r}")
    if not rankings:
        raise InputError("no ranked lists to fuse")
    lists: list[npt.NDArray[np.int64]] = []
    for j, r in enumerate(rankings):
        a = to_numpy(r, f"rankings[{j}]")
        if a.ndim != 2 or (a.size and a.dtype.kind not in "iu"):
            raise InputError(f"rankings[{j}] must be a 2-D integer array (b, L), got {a.shape}")
        a = a.astype(np.int64)
        if lists and a.shape[0] != lists[0].shape[0]:
            raise InputError(
                f"rankings[{j}] has {a.shape[0]} rows, rankings[0] {lists[0].shape[0]}"
            )
        _check_list(a, j)
        lists.append(a)
    b = lists[0].shape[0]
    row = np.concatenate([np.repeat(np.arange(b), a.shape[1]) for a in lists])
    ids = np.concatenate([a.ravel() for a in lists])
    rank = np.concatenate([np.tile(np.arange(1, a.shape[1] + 1), b) for a in lists])
    keep = ids >= 0
    row, ids, rank = row[keep], ids[keep], rank[keep]
    term = 1.0 / (k_rrf + rank.astype(np.float64))
    # group by (row, id), each group's terms smallest first
    order = np.lexsort((term, ids, row))
    row, ids, term = row[order], ids[order], term[order]
    start = np.flatnonzero(np.r_[True, (row[1:] != row[:-1]) | (ids[1:] != ids[:-1])])
    start = start[: term.size]  # none when every list is empty
    total = np.add.reduceat(term, start) if term.size else term
    g_row, g_id = row[start], ids[start]
    order = np.lexsort((g_id, -total, g_row))  # by row, rrf descending, then id
    g_row, g_id, total = g_row[order], g_id[order], total[order]
    counts = np.bincount(g_row, minlength=b)
    col = np.arange(g_row.size) - np.r_[0, np.cumsum(counts)[:-1]][g_row]
    width = int(counts.max(initial=0)) if depth is None else int(depth)
    sel = col < width
    out_ids = np.full((b, width), -1, np.int64)
    out_sc = np.full((b, width), np.nan, np.float32)
    out_ids[g_row[sel], col[sel]] = g_id[sel]
    out_sc[g_row[sel], col[sel]] = total[sel]
    return Candidates(out_ids, out_sc)


def check_k_rrf(k_rrf: Any) -> float:
    """``k_rrf`` as a float, checked: a finite number ``>= 0``.

    Raises
    ------
    ValueError
        naming the value.
    """
    if isinstance(k_rrf, bool) or not isinstance(k_rrf, int | float | np.number):
        raise InputError(f"k_rrf must be a number, got {k_rrf!r}")
    if not (math.isfinite(float(k_rrf)) and float(k_rrf) >= 0):
        raise InputError(f"k_rrf must be a finite number >= 0, got {k_rrf!r}")
    return float(k_rrf)


def _check_list(a: npt.NDArray[np.int64], j: int) -> None:
    """Padding only at the end of a row; an id at most once per row."""
    if np.any(a < -1):
        r, c = np.argwhere(a < -1)[0]
        raise InputError(f"rankings[{j}] row {r} holds {a[r, c]}; use -1 for padding")
    present = a >= 0
    if np.any(~present[:, :-1] & present[:, 1:]):
        r = int(np.argwhere(~present[:, :-1] & present[:, 1:])[0][0])
        raise InputError(f"rankings[{j}] row {r} has an id after -1 padding")
    srt = np.sort(np.where(present, a, -1 - np.arange(a.shape[1])[None, :]), axis=1)
    dup = srt[:, 1:] == srt[:, :-1]
    if dup.any():
        r, c = np.argwhere(dup)[0]
        raise InputError(f"rankings[{j}] row {r} holds id {srt[r, c]} twice")
