"""Policies across queries: the same document used as a negative by many queries, and
another query's positive used as a negative.

Both depend on the whole set of queries mined together, while everything else in
negsample is a function of one query; this module holds what keeps them independent of
how the queries are split into chunks, threads and workers:

- :class:`PositiveMask`: one bit per corpus row, set for every labelled positive of the
  set. ``mine()`` counts the sampled negatives it holds (``stats.other_positives``) and,
  with ``exclude_other_positives=True``, removes those candidates before the sampler
  (``stats.removed["other_positive"]``), deepening the search of a query whose top ranks
  they crowd (:func:`negsample.mining.search_depths`).
- :class:`ReuseCap`: the cap on how many rows one document may be a negative of
  (``max_negative_reuse``). Each row is mined with spare draws in draw order
  (:func:`negsample.scoring.draw_plan`, the one rule for how many draws a row gets);
  the cap is then applied once to all rows together: a row-proposing deferred
  acceptance in which every row takes its first ``n`` draws not refused to it, and a
  document wanted by more than ``N`` rows keeps the ``N`` with the smallest random key
  (a function of ``(seed, query index, document id)``), refusing the others, who take
  their next draws, until nothing changes. docs/algorithms.md gives the rule and why its
  result does not depend on the order in which rows are processed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ._ragged import Ragged
from ._rng import Stream, uniform_at
from ._types import Negatives, ReuseStats
from ._validate import check_int, to_numpy
from .errors import InputError, InputTypeError

if TYPE_CHECKING:
    from .samplers.base import BaseSampler

__all__ = [
    "PositiveMask",
    "ReuseCap",
    "cap_negative_reuse",
    "check_oversample",
    "remove_other_positives",
    "reuse_cap",
    "reuse_keys",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


class PositiveMask:
    """Which corpus rows are a labelled positive of some query of a set: one bit per
    corpus row (``ntotal / 8`` bytes, 1.1 MB for 8.8M passages), never a per-query list.

    Parameters
    ----------
    ids : array-like of int
        Corpus rows (any shape; ``-1`` is ignored), e.g. every positive of every query.
    ntotal : int
        Corpus rows.

    Examples
    --------
    >>> from negsample.crossquery import PositiveMask
    >>> m = PositiveMask.of([[3], [5, 7]], 10)
    >>> m.contains([[3, 4, -1], [7, 0, 5]]).tolist(), m.count([[3, 5, 9]]), m.size
    ([[True, False, False], [True, False, True]], 2, 3)
    """

    def __init__(self, ids: npt.ArrayLike, ntotal: int) -> None:
        ntotal = check_int("ntotal", ntotal, 1)
        flat = np.asarray(ids, dtype=np.int64).ravel()
        flat = flat[flat >= 0]
        if flat.size and int(flat.max()) >= ntotal:
            raise InputError(
                f"positive id {int(flat.max())} is out of range for a corpus of {ntotal} rows"
            )
        flat = np.unique(flat)
        bits = np.zeros((ntotal + 7) // 8, np.uint8)
        np.bitwise_or.at(bits, flat >> 3, np.left_shift(1, flat & 7).astype(np.uint8))
        self.bits = bits
        self.ntotal = ntotal
        self.size = int(flat.size)

    def __repr__(self) -> str:
        return f"PositiveMask({self.size} of {self.ntotal} rows)"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PositiveMask)
            and other.ntotal == self.ntotal
            and np.array_equal(other.bits, self.bits)
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def of(cls, positives: Any, ntotal: int) -> PositiveMask:
        """The mask of ``positives``: a :class:`PositiveMask` (returned as is, checked
        against ``ntotal``), a :class:`~negsample._ragged.Ragged`, one sequence of ids per
        query, or an int array (``-1`` ignored)."""
        if isinstance(positives, PositiveMask):
            if positives.ntotal != ntotal:
                raise InputError(
                    f"the positive mask covers {positives.ntotal} corpus rows, the index {ntotal}"
                )
            return positives
        if isinstance(positives, Ragged):
            return cls(positives.values, ntotal)
        if isinstance(positives, np.ndarray) or hasattr(positives, "__array__"):
            arr = to_numpy(positives, "positives")
            if arr.size and arr.dtype.kind not in "iu":
                raise InputTypeError(f"positives must hold integers, got dtype {arr.dtype}")
            return cls(arr, ntotal)
        if isinstance(positives, Sequence):
            parts = [np.atleast_1d(np.asarray(p, dtype=np.int64)).ravel() for p in positives]
            return cls(np.concatenate(parts) if parts else np.empty(0, np.int64), ntotal)
        raise InputTypeError(
            f"positives must be ids per query or a PositiveMask, got {type(positives).__name__}"
        )

    def contains(self, ids: npt.ArrayLike) -> BoolArray:
        """Whether each id is set, same shape as ``ids`` (``-1`` and other negative ids:
        False)."""
        a = np.asarray(ids, dtype=np.int64)
        ok = (a >= 0) & (a < self.ntotal)
        safe = np.where(ok, a, 0)
        hit = (self.bits[safe >> 3] >> (safe & 7).astype(np.uint8)) & 1
        return np.asarray(ok & hit.astype(bool))

    def count(self, ids: npt.ArrayLike) -> int:
        """How many of ``ids`` are set."""
        return int(self.contains(ids).sum())


def remove_other_positives(
    ids: IntArray,
    scores: FloatArray,
    mask: PositiveMask,
    positives: Ragged,
    exclude: Ragged | None,
) -> tuple[IntArray, FloatArray, int]:
    """Candidates ``(b, K)`` with every id of ``mask`` that is not one of its row's own
    ``positives`` nor ``exclude`` ids (those are removed, and counted, as such) turned into
    ``-1`` / NaN, so that :func:`~negsample.candidates.build_batch` compacts them away.
    Returns the new ids and scores and how many were removed."""
    hit = mask.contains(ids)
    if not hit.any():
        return ids, scores, 0
    hit &= ~positives.contains(ids)
    if exclude is not None:
        hit &= ~exclude.contains(ids)
    k = int(hit.sum())
    if k == 0:
        return ids, scores, 0
    return np.where(hit, -1, ids), np.where(hit, np.float32(np.nan), scores), k


# -- the reuse cap ------------------------------------------------------------------------


def reuse_keys(seed: int, query_index: IntArray, doc_ids: IntArray) -> npt.NDArray[np.float64]:
    """The random key of each (query, document) pair, in (0, 1): the cap keeps, for a
    document wanted by too many rows, the rows with the smallest keys. A function of
    ``(seed, query index, document id)`` only (stream ``Stream.REUSE``)."""
    qi = np.asarray(query_index, np.int64)
    d = np.asarray(doc_ids, np.int64)
    return uniform_at(seed, qi, d[:, None], Stream.REUSE)[:, 0]


def _first_n(avail: BoolArray, n: int) -> BoolArray:
    """The first ``n`` True cells of each row."""
    return np.asarray(avail & (np.cumsum(avail, axis=1) <= n))


@dataclass
class _Capped:
    sel: BoolArray  # (rows, draws): the cells each row keeps
    stats: ReuseStats


def _cap_cells(
    ids: IntArray,
    query_index: IntArray,
    anchor_ids: IntArray,
    *,
    n: int,
    max_reuse: int,
    seed: int,
) -> _Capped:
    """Deferred acceptance over the draws ``ids`` ``(rows, draws)`` (``-1`` = none):
    which cells each row keeps so that no document is kept by more than ``max_reuse``
    rows. Vectorised: each round, the documents over the cap refuse their worst holders
    (largest ``(key, query index, anchor id)``) and the rows refused take their next
    draws; only documents drawn by more than ``max_reuse`` rows in all are ever looked at."""
    rows, width = ids.shape
    valid = ids >= 0
    sel = _first_n(valid, n)
    st = ReuseStats(max_reuse=max_reuse, draws=width)
    cell_r, cell_c = np.nonzero(valid)
    if cell_r.size == 0:
        return _Capped(sel, st)
    flat = ids[cell_r, cell_c]
    uniq, inv, total = np.unique(flat, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    st.max_before = int(np.bincount(inv[sel[cell_r, cell_c]], minlength=uniq.size).max())
    popular = total > max_reuse  # only these can ever be wanted by more than the cap
    if not popular.any():
        st.max_after = st.max_before
        return _Capped(sel, st)
    p_of_u = np.cumsum(popular) - 1
    pc = np.flatnonzero(popular[inv])
    pr, pcol, pdoc = cell_r[pc], cell_c[pc], p_of_u[inv[pc]]
    n_pop = int(popular.sum())
    # the popular document of each cell, -1 if none (int32 while it fits: rows x draws)
    pd = np.full((rows, width), -1, np.int32 if n_pop < 2**31 - 1 else np.int64)
    pd[pr, pcol] = pdoc
    # the cells of each popular document, best key first (ties: query index, anchor id)
    key = reuse_keys(seed, query_index[pr], flat[pc])
    order = np.lexsort((anchor_ids[pr], query_index[pr], key, pdoc))
    sr, sc = pr[order], pcol[order]
    seg_len = np.bincount(pdoc, minlength=n_pop)
    seg_start = np.concatenate([[0], np.cumsum(seg_len)[:-1]])
    held_cells = sel & (pd >= 0)
    count = np.bincount(pd[held_cells], minlength=n_pop)
    avail = valid.copy()
    capped = np.zeros(n_pop, bool)
    todo = np.flatnonzero(count > max_reuse)
    while todo.size:
        st.rounds += 1
        lens = seg_len[todo]
        starts = np.repeat(seg_start[todo], lens)
        base = np.repeat(np.cumsum(lens) - lens, lens)
        idx = starts + (np.arange(int(lens.sum()), dtype=np.int64) - base)
        cr, cc = sr[idx], sc[idx]
        held = sel[cr, cc]
        csum = np.cumsum(held)
        before = np.repeat(csum[np.cumsum(lens) - lens] - held[np.cumsum(lens) - lens], lens)
        refused = held & (csum - before > max_reuse)
        br, bc = cr[refused], cc[refused]
        sel[br, bc] = False
        avail[br, bc] = False
        st.removed += int(refused.sum())
        capped[pd[br, bc]] = True
        count[todo] = max_reuse
        changed = np.unique(br)
        new_sel = _first_n(avail[changed], n)
        added = new_sel & ~sel[changed]
        sel[changed] = new_sel
        ar, ac = np.nonzero(added)
        got = pd[changed[ar], ac]
        got = got[got >= 0]
        if got.size == 0:
            break
        np.add.at(count, got, 1)
        todo = np.unique(got[count[got] > max_reuse])
    st.documents_capped = int(capped.sum())
    st.max_after = int(np.bincount(inv[sel[cell_r, cell_c]], minlength=uniq.size).max())
    return _Capped(sel, st)


@dataclass(frozen=True)
class ReuseCap:
    """The cap on how many rows one document may be a negative of, and the draws it needs
    (made by :func:`reuse_cap`).

    Attributes
    ----------
    n : negatives per row in the output.
    max_reuse : the cap ``N``.
    draws : draws mined per row (``>= n``): a row that loses a draw takes its next one.
    on_short : rows left with fewer than ``n`` negatives: ``"pad"`` (``-1``) or ``"drop"``
        (the sampler's ``on_shortfall="drop"``: the draws are mined with ``"pad"``, rows
        are dropped after the cap).
    """

    n: int
    max_reuse: int
    draws: int
    on_short: str = "pad"

    def apply(
        self, draws: Negatives, *, seed: int, positives: PositiveMask | None = None
    ) -> Negatives:
        """The capped negatives ``(rows, n)`` of ``draws`` (``(rows, self.draws)``, every
        row's draws in draw order; at most ``draws`` columns are read), with
        ``stats.reuse`` and the output's ``n_rows``, ``short_rows``, ``padded`` and
        ``dropped_rows``; ``stats.other_positives`` recounted against ``positives`` when
        given. Rows keep their order; with ``on_short="drop"`` a row left short is dropped
        and the cap applied again to the others (freed places go to the rows refused
        them), until no row is left short."""
        return cap_negative_reuse(
            draws,
            n=self.n,
            max_reuse=self.max_reuse,
            seed=seed,
            on_short=self.on_short,
            positives=positives,
        )


def reuse_cap(
    sampler: Any,
    n: int,
    max_reuse: int,
    *,
    oversample: float = 2.0,
    n_corpus: int,
) -> tuple[ReuseCap, BaseSampler]:
    """The :class:`ReuseCap` for ``n`` negatives per row and the sampler to mine its draws
    with: ``draws`` from :func:`negsample.scoring.draw_plan` (``ceil(oversample * n)``, at
    most the sampler's region and ``n_corpus - 1``), and the sampler with
    ``on_shortfall="drop"`` turned into ``"pad"`` (rows are dropped after the cap)."""
    from .samplers.base import BaseSampler as _Base

    max_reuse = check_int("max_negative_reuse", max_reuse, 1)
    oversample = check_oversample(oversample)
    if not isinstance(sampler, _Base):
        raise InputTypeError(
            f"max_negative_reuse needs a negsample BaseSampler (its draws come in draw "
            f"order, so spare draws extend its first n), got {type(sampler).__name__}"
        )
    from .scoring.mine import draw_plan

    plan = draw_plan(sampler, int(n), oversample=oversample, n_corpus=int(n_corpus))
    return ReuseCap(int(n), max_reuse, plan.first, plan.on_short), plan.sampler


def cap_negative_reuse(
    draws: Negatives,
    *,
    n: int,
    max_reuse: int,
    seed: int,
    on_short: str = "pad",
    positives: PositiveMask | None = None,
) -> Negatives:
    """Keep ``n`` negatives per row of ``draws`` so that no document is a negative of more
    than ``max_reuse`` rows (docs/algorithms.md, "Negatives reused across queries").

    Parameters
    ----------
    draws : Negatives
        Every row's draws in draw order (``mine(..., n=m)`` with ``m >= n``: its first
        ``n`` are the ``n`` it gives), e.g. denoised draws (``denoise(..., n=m)``).
    n : int
        Negatives per output row.
    max_reuse : int
        Rows one document may be a negative of.
    seed : int
        Seeds the keys (:func:`reuse_keys`).
    on_short : str
        ``"pad"`` or ``"drop"`` the rows left with fewer than ``n``.
    positives : PositiveMask or None
        Recount ``stats.other_positives`` against it.

    Returns
    -------
    Negatives
        ``(rows, n)``, rows in the order of ``draws``; the same bytes whatever the order of
        the rows of ``draws``. ``stats.reuse`` holds the counts.

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> from negsample.crossquery import cap_negative_reuse
    >>> ids = np.array([[9, 1, 2], [9, 3, 4], [9, 5, 6]])  # every row wants document 9 first
    >>> draws = ns.Negatives(ids, np.zeros((3, 3), np.float32), np.arange(3),
    ...                      np.full(3, -1), ns.MiningStats())
    >>> out = cap_negative_reuse(draws, n=2, max_reuse=2, seed=0)
    >>> int((out.ids == 9).sum()), out.stats.reuse.removed
    (2, 1)
    """
    n = check_int("n", n, 1)
    max_reuse = check_int("max_reuse", max_reuse, 1)
    if on_short not in ("pad", "drop"):
        raise InputError(f"on_short must be 'pad' or 'drop', got {on_short!r}")
    if not isinstance(draws, Negatives):
        raise InputTypeError(f"draws must be a negsample Negatives, got {type(draws).__name__}")
    ids = np.asarray(draws.ids, np.int64)
    qi = np.asarray(draws.query_index, np.int64)
    ai = np.asarray(draws.anchor_ids, np.int64)
    if ids.shape[1] < n:
        raise InputError(f"the draws have {ids.shape[1]} columns, fewer than n={n}")
    valid_n = (ids >= 0).sum(axis=1)
    alive = np.ones(len(draws), bool) if on_short == "pad" else valid_n >= n
    dropped_first = int((~alive).sum())
    while True:
        rows = np.flatnonzero(alive)
        res = _cap_cells(ids[rows], qi[rows], ai[rows], n=n, max_reuse=max_reuse, seed=seed)
        kept = res.sel.sum(axis=1)
        if on_short == "drop" and (kept < n).any():
            alive[rows[kept < n]] = False  # their places go to the rows refused them
            continue
        break
    from .samplers.base import first_true, take_positions

    pos = first_true(res.sel, n)
    out_ids = take_positions(ids[rows], pos, -1).astype(np.int64)
    out_sc = take_positions(np.asarray(draws.scores)[rows], pos, np.nan).astype(np.float32)
    st = res.stats
    if on_short == "pad":
        lost = np.minimum(valid_n, n) - kept
        st.rows_short = int((lost > 0).sum())
        st.slots_short = int(lost.sum())
    else:  # rows dropped because of the cap: they had n valid draws
        st.rows_short = int(len(draws) - dropped_first - rows.size)
    stats = dataclasses.replace(
        draws.stats,
        removed=dict(draws.stats.removed),
        timings=dict(draws.stats.timings),
        emptied=dict(draws.stats.emptied),
    )
    stats.n_rows = int(rows.size)
    stats.short_rows = int((out_ids < 0).any(axis=1).sum())
    stats.padded = int((out_ids < 0).sum())
    stats.dropped_rows = draws.stats.dropped_rows + int(len(draws) - rows.size)
    stats.reuse = st
    if positives is not None:
        stats.other_positives = positives.count(out_ids)
    return Negatives(out_ids, out_sc, qi[rows], ai[rows], stats)


def check_oversample(oversample: Any) -> float:
    """``reuse_oversample`` checked: a finite number >= 1."""
    if (
        isinstance(oversample, bool)
        or not isinstance(oversample, int | float | np.integer | np.floating)
        or not math.isfinite(oversample)
        or oversample < 1
    ):
        raise InputError(f"reuse_oversample must be a finite number >= 1, got {oversample!r}")
    return float(oversample)
