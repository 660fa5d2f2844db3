"""The ``Sampler`` protocol and the template every sampler shares.

A sampler receives a :class:`SamplerBatch` (candidates with positives already removed,
filters applied as a ``valid`` mask) and returns, per row, ``n`` positions into the
candidate matrix. The base class does everything around that one decision: it resolves
the positive anchor, checks the selection (no positive, no duplicate, nothing invalid),
applies the ``on_shortfall`` policy and counts it, and gathers ids and scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .._ragged import Ragged, as_ragged, dedupe, to_ragged
from .._rng import normalize_seed
from .._types import MiningStats, Negatives
from .._validate import check_int, to_numpy
from ..candidates import (
    Anchor,
    SamplerBatch,
    build_batch,
    positive_scores_for,
    resolve_anchor,
    take_positions,
)
from ..errors import InputError, InputTypeError

if TYPE_CHECKING:
    from ..filters import Filters
    from ..index.base import Index

__all__ = [
    "POSITIVE_ANCHORS",
    "SHORTFALL_POLICIES",
    "Anchor",
    "BaseSampler",
    "Sampler",
    "SamplerBatch",
    "build_batch",
    "check_n_fits",
    "check_output",
    "check_sampler",
    "first_true",
    "gumbel_topk",
    "positive_scores_for",
    "region_size_of",
    "resolve_anchor",
    "sample_candidates",
    "take_positions",
]

POSITIVE_ANCHORS = ("max", "min", "mean", "random", "each")
SHORTFALL_POLICIES = ("pad", "fill", "drop")

_take = take_positions

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


def gumbel_topk(logw: npt.NDArray[np.float64], m: int, noise: npt.NDArray[np.float64]) -> IntArray:
    """Weighted sampling of ``m`` columns per row without replacement (Gumbel-top-k).

    ``logw`` holds log-weights, ``-inf`` for excluded entries; adding Gumbel ``noise`` and
    taking the ``m`` largest keys is exactly successive sampling proportional to
    ``exp(logw)``, and never underflows however peaked the weights are. Returns positions
    ``(b, m)`` in draw order, ``-1`` where a row has fewer than ``m`` finite weights.

    Each row's largest finite log-weight is subtracted first: the distribution is the
    same, and huge log-weights (``a=1e17``, ``temperature=1e-9``) keep their noise instead of
    swallowing it in rounding (``1e17 + gumbel == 1e17`` in float64).
    """
    b, k = logw.shape
    finite = np.isfinite(logw)
    top = np.where(finite, logw, -np.inf).max(axis=1, initial=-np.inf, keepdims=True)
    shift = np.where(np.isfinite(top), top, 0.0)
    keys = np.where(finite, (logw - shift) + noise, -np.inf)
    mm = min(m, k)
    if mm == 0:
        return np.full((b, m), -1, dtype=np.int64)
    if mm < k:
        part = np.argpartition(-keys, mm - 1, axis=1)[:, :mm]
    else:
        part = np.broadcast_to(np.arange(k), (b, k))
    pk = np.take_along_axis(keys, part, axis=1)
    order = np.argsort(-pk, axis=1, kind="stable")
    pos = np.take_along_axis(part, order, axis=1).astype(np.int64)
    pos[~np.isfinite(np.take_along_axis(pk, order, axis=1))] = -1
    if m > mm:
        pos = np.concatenate([pos, np.full((b, m - mm), -1, dtype=np.int64)], axis=1)
    return pos


def first_true(mask: BoolArray, m: int) -> IntArray:
    """Positions of the first ``m`` True entries per row, ``-1`` padded."""
    b, k = mask.shape
    key = np.where(mask, np.arange(k)[None, :], k)
    pos = np.sort(key, axis=1)[:, :m]
    pos = np.where(pos >= k, -1, pos).astype(np.int64)
    if pos.shape[1] < m:
        pos = np.concatenate([pos, np.full((b, m - pos.shape[1]), -1, np.int64)], axis=1)
    return pos


@runtime_checkable
class Sampler(Protocol):
    """What :func:`negsample.mine` calls: exactly these two members.

    Any object with them is a sampler for :func:`~negsample.mine` (duck-typed: it need not
    subclass :class:`BaseSampler`, which is the convenient base that implements
    ``sample_batch`` around one ``_select`` method). ``mine()`` also reads these optional
    members when present:

    - ``region_size`` (``int | None``): how many candidates per query the negatives are
      drawn from; an ``n`` above it is refused before any work. Default: ``depth`` (``None``
      when ``depth`` is 0: no limit). A ``check_n(n)`` method, when present, is called
      instead (:class:`BaseSampler`'s applies the same rule).
    - ``vectors_per_query()`` (``int``): corpus vectors the sampler gathers per query, to
      size the sampling chunks; default 0.

    ``mine()`` checks what ``sample_batch`` returns (shape, ids in range, no positive, no
    excluded id, no duplicate in a row) for a sampler that is not a :class:`BaseSampler`.
    A stable ``repr`` identifies the sampler in a resumable run's settings
    (:func:`~negsample.mine_resumable`); ``needs_vectors`` (default False) tells candidate
    sources without vectors (a run file) that it cannot run on scores alone.
    """

    @property
    def depth(self) -> int:
        """Candidates the sampler considers per query (0: it searches nothing)."""
        ...

    def sample_batch(self, batch: SamplerBatch, n: int, stats: MiningStats) -> Negatives:
        """``n`` negatives per row of ``batch`` (``-1`` / NaN where a row is short), one
        output row per batch row unless rows are dropped or expanded; counts
        (``n_queries``, ``n_rows``, ``short_rows``, ``padded``...) go to ``stats``."""
        ...


def region_size_of(sampler: Any) -> int | None:
    """The sampler's ``region_size`` (see :class:`Sampler`), or ``depth`` (``None`` for 0),
    checked: ``None`` or a positive integer."""
    if hasattr(sampler, "region_size"):
        r = sampler.region_size
    else:
        r = int(sampler.depth) or None
    if r is None:
        return None
    return check_int(f"{type(sampler).__name__}.region_size", r, 1)


def check_sampler(sampler: Any) -> None:
    """Raise ``TypeError`` unless ``sampler`` has what :func:`~negsample.mine` calls (the
    :class:`Sampler` protocol: ``depth`` and ``sample_batch``), naming what is missing."""
    missing = [m for m in ("depth", "sample_batch") if not hasattr(sampler, m)]
    if missing or not callable(sampler.sample_batch):
        raise InputTypeError(
            f"sampler must satisfy the negsample Sampler protocol (depth, sample_batch); "
            f"{type(sampler).__name__} lacks {', '.join(missing) or 'a callable sample_batch'}"
        )
    check_int(f"{type(sampler).__name__}.depth", sampler.depth, 0)


def check_n_fits(sampler: Any, n: int) -> None:
    """Refuse an ``n`` the sampler's region can never fill (before any work is done):
    ``sampler.check_n(n)`` when it has one, else the :func:`region_size_of` rule."""
    check = getattr(sampler, "check_n", None)
    if callable(check):
        check(n)
        return
    r = region_size_of(sampler)
    if r is not None and n > r:
        raise InputError(
            f"{type(sampler).__name__} draws its negatives from {r} candidates per query "
            f"(region_size), fewer than the n={n} negatives requested"
        )


@dataclass(frozen=True, kw_only=True)
class BaseSampler:
    """Shared template: parameters are keyword-only, validated at construction, and the
    ``repr`` is the config language (``negsample.sampler_from_string`` parses it back).

    Subclasses set ``name``, implement :meth:`_select` and, if they need more than the
    candidates' scores, set ``needs_vectors = True``.
    """

    on_shortfall: str = field(default="pad")

    name: ClassVar[str] = "base"
    needs_vectors: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not isinstance(self.on_shortfall, str) or self.on_shortfall not in SHORTFALL_POLICIES:
            raise InputError(
                f"on_shortfall must be one of {SHORTFALL_POLICIES}, got {self.on_shortfall!r}"
            )
        anchor = getattr(self, "positive_anchor", None)
        if anchor is not None and (not isinstance(anchor, str) or anchor not in POSITIVE_ANCHORS):
            raise InputError(f"positive_anchor must be one of {POSITIVE_ANCHORS}, got {anchor!r}")

    # -- to override -------------------------------------------------------------------
    @property
    def depth(self) -> int:
        raise NotImplementedError

    @property
    def region_size(self) -> int | None:
        """How many candidates per query the negatives are drawn from (the sampler's
        region, before filters; ``None``: no limit). An ``n`` above it can never be filled
        and is refused by :meth:`check_n` before any work. Default: ``depth`` (``None`` when
        it is 0). Override it when the region is smaller than the search depth: a rank
        window, a second stage."""
        return self.depth or None

    def _region_phrase(self) -> str:
        """The start of :meth:`check_n`'s message, naming the region and its size."""
        r = self.region_size
        if r == self.depth:
            return f"{type(self).__name__} considers {self.depth} candidates per query"
        return f"{type(self).__name__} draws its negatives from {r} candidates per query"

    @property
    def max_n(self) -> int | None:
        """The most negatives one row can get from the sampler's region: ``region_size``.
        Draws come in draw order, so the first ``n`` of ``max_n`` draws are exactly the
        ``n`` draws (a judge can look at draws one after another)."""
        return self.region_size

    def vectors_per_query(self) -> int:
        """Corpus vectors gathered per query (sizes the chunks in :func:`mine`)."""
        return 0

    def check_n(self, n: int) -> None:
        """Refuse an ``n`` above :attr:`region_size` (before any work is done), naming the
        region and its size."""
        r = region_size_of(self)
        if r is not None and n > r:
            raise InputError(
                f"{self._region_phrase()}, fewer than the n={n} negatives requested"
                f"{self._region_hint()}"
            )

    def _region_hint(self) -> str:
        """What to change, appended to :meth:`check_n`'s message (``"; raise k..."``)."""
        return ""

    def _select(self, batch: SamplerBatch, n: int, anchor: Anchor | None) -> IntArray:
        """Positions ``(b, n)`` into ``batch.ids``, ``-1`` where the region ran short."""
        raise NotImplementedError

    def _fill_order(self, batch: SamplerBatch, anchor: Anchor | None) -> IntArray | None:
        """Positions ``(b, j)`` into ``batch.ids`` (``-1`` padded) that ``on_shortfall="fill"``
        takes from, in this order, skipping what was selected; ``None``: every valid candidate,
        best-ranked first."""
        return None

    def _prepare(self, batch: SamplerBatch, n: int, stats: MiningStats) -> SamplerBatch:
        """Hook for samplers that build their own candidates (RandomSampler)."""
        return batch

    # -- the template ----------------------------------------------------------------
    def sample_batch(self, batch: SamplerBatch, n: int, stats: MiningStats) -> Negatives:
        """Sample ``n`` negatives per row of ``batch``; counts go to ``stats``."""
        n = check_int("n", n, 1)
        stats.n_queries += batch.size
        batch = self._prepare(batch, n, stats)
        anchor = None
        policy = getattr(self, "positive_anchor", None)
        if policy is not None:
            if policy == "each":
                stats.skipped_anchors += int(np.isnan(batch.positive_scores).sum())
            batch, anchor = resolve_anchor(batch, policy)
        pos = self._select(batch, n, anchor)
        self._check_selection(batch, pos, n)
        short = (pos < 0).any(axis=1)
        stats.short_rows += int(short.sum())
        keep_rows = np.arange(batch.size)
        if self.on_shortfall == "fill" and short.any():
            pos, filled = _fill(batch.valid, pos, self._fill_order(batch, anchor))
            stats.filled += filled
        elif self.on_shortfall == "drop" and short.any():
            keep_rows = np.flatnonzero(~short)
            stats.dropped_rows += int(short.sum())
            pos = pos[keep_rows]
        stats.padded += int((pos < 0).sum())
        ids = _take(batch.ids[keep_rows], pos, -1)
        scores = _take(batch.scores[keep_rows], pos, np.nan).astype(np.float32)
        stats.n_rows += int(ids.shape[0])
        anchor_ids = (
            anchor.ids[keep_rows] if anchor is not None else np.full(len(keep_rows), -1, np.int64)
        )
        return Negatives(
            ids=ids.astype(np.int64),
            scores=scores,
            query_index=batch.query_index[keep_rows],
            anchor_ids=anchor_ids,
            stats=stats,
        )

    def _check_selection(self, batch: SamplerBatch, pos: IntArray, n: int) -> None:
        if pos.shape != (batch.size, n):
            raise RuntimeError(
                f"{self.name}: selection has shape {pos.shape}, want {(batch.size, n)}"
            )
        picked = pos >= 0
        if np.any(pos >= batch.ids.shape[1]) or not np.all(
            _take(batch.valid, np.where(pos < batch.ids.shape[1], pos, -1), False)[picked]
        ):
            raise RuntimeError(f"{self.name} selected a candidate that is not valid")
        s = np.sort(np.where(picked, pos, -1 - np.arange(n)[None, :]), axis=1)
        if np.any(s[:, 1:] == s[:, :-1]):
            raise RuntimeError(f"{self.name} selected the same candidate twice in a row")

    # -- the direct entry point -----------------------------------------------------------
    def sample(
        self,
        ids: Any,
        scores: Any,
        positives: Any,
        *,
        n: int = 7,
        seed: int | np.random.Generator | None = 0,
        positive_scores: Any = None,
        queries: Any = None,
        index: Index | None = None,
        filters: Filters | None = None,
        query_index: Any = None,
        exclude: Any = None,
    ) -> Negatives:
        """Sample negatives from candidates you already have (your own search, BM25, a
        TREC run): ``ids``/``scores`` ``(b, K)`` best first, ``-1`` padded.

        ``positives`` holds every labelled positive per query (ragged; a repeated id counts
        once, ``stats.duplicate_positives``); they are removed from the candidates. Samplers
        that use ``s(q, d+)`` take it from ``positive_scores`` if given (one score per given
        positive: a ``(b, P)`` array laid out like the positives padded with ``-1``, or one
        sequence per query; NaN = unknown, infinities refused), else from ``queries`` +
        ``index``, else from the candidates when a positive was retrieved (a positive found
        nowhere is marked missing, never scored 0). Samplers that need vectors require
        ``index``. ``query_index``: the global index of each row (``(b,)`` distinct
        non-negative integers; default ``arange(b)``), which keys the random streams.
        ``exclude``: more ids per query (ragged, may be empty) never to sample, e.g.
        documents whose text duplicates a positive's; counted as ``"excluded"``.
        """
        return sample_candidates(
            self,
            ids,
            scores,
            positives,
            n=n,
            seed=seed,
            positive_scores=positive_scores,
            queries=queries,
            index=index,
            filters=filters,
            query_index=query_index,
            exclude=exclude,
        )


def sample_candidates(
    sampler: Sampler,
    ids: Any,
    scores: Any,
    positives: Any,
    *,
    n: int = 7,
    seed: int | np.random.Generator | None = 0,
    positive_scores: Any = None,
    queries: Any = None,
    index: Index | None = None,
    filters: Filters | None = None,
    query_index: Any = None,
    exclude: Any = None,
) -> Negatives:
    """:meth:`BaseSampler.sample` for any :class:`Sampler` (duck-typed): sample ``n``
    negatives per row from candidates you already have (a run file, your own search)."""
    check_sampler(sampler)
    n = check_int("n", n, 1)
    check_n_fits(sampler, n)
    if getattr(sampler, "needs_vectors", False) and index is None:
        raise InputError(
            f"{type(sampler).__name__} needs corpus vectors, which candidates alone do not "
            "give: pass index= (and queries=), or use mine()"
        )
    stats = MiningStats(seed=normalize_seed(seed))
    ids_a = to_numpy(ids, "ids")
    if ids_a.ndim != 2:
        raise InputError(f"ids must be 2-D (n_queries, k), got shape {ids_a.shape}")
    n_q = ids_a.shape[0]
    n_corpus = index.ntotal if index is not None else None
    raw = to_ragged(positives, n_q, n_corpus)
    pos, kept = dedupe(raw)
    if kept is not None:
        stats.duplicate_positives += raw.nnz - kept.size
    ps = None
    if positive_scores is not None:
        ps = _flat_positive_scores(positive_scores, raw)
        ps = ps if kept is None else ps[kept]
    exc = (
        None
        if exclude is None
        else as_ragged(exclude, n_q, n_corpus, "exclude", allow_empty=True)[0]
    )
    q = None
    if queries is not None:
        from ..index.base import prepare_queries

        if index is None:
            raise InputError("queries were given without an index to score them against")
        q = prepare_queries(queries, index.dim, index.metric)
        if q.shape[0] != n_q:
            raise InputError(f"queries has {q.shape[0]} rows, ids has {n_q}")
    qi = _query_index(query_index, n_q)
    batch = build_batch(
        ids_a,
        scores,
        pos,
        query_index=qi,
        seed=stats.seed or 0,
        depth=int(sampler.depth),
        stats=stats,
        positive_scores=ps,
        queries=q,
        index=index,
        exclude=exc,
    )
    filtered = filters is not None and not filters.is_noop
    if filtered:
        assert filters is not None
        batch = replace(batch, valid=filters.apply(batch, stats))
    out = sampler.sample_batch(batch, n, stats)
    if not isinstance(sampler, BaseSampler):
        check_output(sampler, out, batch, n, index.ntotal if index is not None else None)
    if filtered:
        from ..filters import warn_emptied

        warn_emptied(stats)
    return out


def check_output(sampler: Any, out: Any, batch: SamplerBatch, n: int, ntotal: int | None) -> None:
    """What a sampler outside :class:`~negsample.BaseSampler` returned from
    ``sample_batch``, checked: a :class:`~negsample.Negatives` with ``n`` int ids per row
    in ``[-1, ntotal)``, rows of the batch's queries, never a positive, an excluded id or
    the same id twice in a row. ``RuntimeError`` naming the sampler and the row otherwise."""
    name = type(sampler).__name__
    if not isinstance(out, Negatives):
        raise RuntimeError(f"{name}.sample_batch returned {type(out).__name__}, not Negatives")
    ids = np.asarray(out.ids)
    rows = ids.shape[0] if ids.ndim == 2 else -1
    if ids.ndim != 2 or ids.shape[1] != n or ids.dtype.kind not in "iu":
        raise RuntimeError(
            f"{name}.sample_batch returned ids of shape {ids.shape} ({ids.dtype}), want "
            f"(rows, {n}) integers"
        )
    for field_name in ("scores", "query_index", "anchor_ids"):
        got = np.shape(getattr(out, field_name))
        want = ids.shape if field_name == "scores" else (rows,)
        if got != want:
            raise RuntimeError(
                f"{name}.sample_batch returned {field_name} of shape {got}, want {want}"
            )
    out_of_range = (ids < -1) | (ids >= ntotal if ntotal is not None else False)
    if np.any(out_of_range):
        r = int(np.argwhere(out_of_range)[0, 0])
        raise RuntimeError(f"{name}.sample_batch returned an id out of range in row {r}")
    where = np.searchsorted(batch.query_index, out.query_index)
    where = np.minimum(where, batch.size - 1)
    if batch.size == 0 and rows:
        raise RuntimeError(f"{name}.sample_batch returned rows for an empty batch")
    if rows and np.any(batch.query_index[where] != out.query_index):
        raise RuntimeError(f"{name}.sample_batch returned a row for a query not in its batch")
    banned = batch.positives.take(where)
    if batch.exclude is not None:
        banned = banned.union(batch.exclude.take(where))
    bad = (ids >= 0) & banned.contains(ids)
    if bad.any():
        r = int(np.argwhere(bad)[0, 0])
        raise RuntimeError(
            f"{name}.sample_batch returned a positive or excluded id for query "
            f"{int(out.query_index[r])}"
        )
    srt = np.sort(np.where(ids >= 0, ids, -1 - np.arange(n)[None, :]), axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
    if dup.any():
        r = int(np.argmax(dup))
        raise RuntimeError(
            f"{name}.sample_batch returned the same id twice for query {int(out.query_index[r])}"
        )


def _fill(valid: BoolArray, pos: IntArray, source: IntArray | None = None) -> tuple[IntArray, int]:
    """Fill the ``-1`` slots with the best remaining valid candidates, in rank order (or
    in the order of the positions ``source``, ``-1`` padded, when given)."""
    _b, _k = valid.shape
    n = pos.shape[1]
    chosen = np.zeros_like(valid)
    rows = np.nonzero(pos >= 0)
    chosen[rows[0], pos[rows]] = True
    avail = valid & ~chosen
    # compact the existing picks to the front, keeping their order
    order = np.argsort(pos < 0, axis=1, kind="stable")
    pos = np.take_along_axis(pos, order, axis=1)
    have = (pos >= 0).sum(axis=1)
    if source is None:
        extra = first_true(avail, n)  # best-ranked available, in order
    else:
        # a source may have no columns (e.g. TopK's window covers every candidate)
        ok = (source >= 0) & _take(avail, source, False).astype(bool)
        extra = _take(source, first_true(ok, n), -1)
    slot = np.arange(n)[None, :]
    src = np.where(slot >= have[:, None], slot - have[:, None], -1)
    got = _take(extra, src, -1)
    take = got >= 0
    pos = np.where(take, got, pos)
    return pos, int(take.sum())


def _flat_positive_scores(scores: Any, raw: Ragged) -> np.ndarray:
    """One score per given positive, flat in the order of ``raw.values``, from one sequence
    per query or from a ``(b, P)`` array laid out like the positives padded with ``-1``."""
    lengths = raw.lengths
    if (
        isinstance(scores, list | tuple)
        and len(scores) == raw.n_rows
        and all(np.ndim(r) <= 1 and np.size(r) == w for r, w in zip(scores, lengths, strict=True))
    ):
        parts = [np.atleast_1d(np.asarray(r, dtype=np.float64)) for r in scores]
        return np.concatenate(parts) if parts else np.empty(0)  # cast (checked) by build_batch
    arr = to_numpy(scores, "positive_scores")
    if arr.ndim != 2 or arr.shape[0] != raw.n_rows or arr.shape[1] < lengths.max(initial=0):
        raise InputError(
            f"positive_scores has shape {arr.shape}; want one score per positive: "
            f"({raw.n_rows}, >= {int(lengths.max(initial=0))}) laid out like the positives "
            "padded with -1, or one sequence per query"
        )
    if arr.dtype.kind not in "fiu":
        raise InputTypeError(f"positive_scores must hold numbers, got dtype {arr.dtype}")
    return np.asarray(arr[raw.row_of, raw.slot_of])  # cast (checked) by build_batch


def _query_index(query_index: Any, n_q: int) -> IntArray:
    """``arange(n_q)``, or the given global row indices, checked."""
    if query_index is None:
        return np.arange(n_q, dtype=np.int64)
    qi = to_numpy(query_index, "query_index")
    if qi.ndim != 1 or qi.shape[0] != n_q:
        raise InputError(f"query_index must have one entry per row ({n_q}), got shape {qi.shape}")
    if qi.size and qi.dtype.kind not in "iu":
        raise InputTypeError(f"query_index must hold integers, got dtype {qi.dtype}")
    qi = qi.astype(np.int64)
    if qi.size and qi.min() < 0:
        raise InputError(f"query_index must be >= 0, got {int(qi.min())}")
    if np.unique(qi).size != qi.size:
        raise InputError("query_index holds a row index twice; each row needs its own")
    return qi
