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

from .._rng import Stream, gumbel, normalize_seed, uniform
from .._types import MiningStats, Negatives
from .._validate import pad_positives, to_numpy

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
    "gumbel_topk",
]

POSITIVE_ANCHORS = ("max", "min", "mean", "random", "each")
_FEW_POSITIVES = 16  # up to this many positive columns, membership is tested column by column
SHORTFALL_POLICIES = ("pad", "fill", "drop")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SamplerBatch:
    """Everything a sampler may use for a batch of ``b`` rows.

    Attributes
    ----------
    query_index : int64 ``(b,)`` global query index of each row (drives the random streams).
    ids, scores : ``(b, K)`` candidates with the positives removed, best first; ``-1``/NaN pad.
    valid : bool ``(b, K)`` candidates that passed every filter.
    positive_ids : int64 ``(b, P)`` all labelled positives, ``-1`` padded.
    positive_scores : float32 ``(b, P)`` ``s(q, d+)``, NaN where unknown (padding, or a
        positive that is not among the candidates when no vectors are available).
    seed : the integer seed.
    queries : float32 ``(b, dim)`` query vectors, when known.
    index : the :class:`~negsample.index.Index`, for corpus vectors, when known.
    rng_sub : int64 ``(b,)`` tells apart several rows of one query (``"each"``).
    """

    query_index: IntArray
    ids: IntArray
    scores: FloatArray
    valid: BoolArray
    positive_ids: IntArray
    positive_scores: FloatArray
    seed: int
    queries: FloatArray | None = None
    index: Index | None = None
    rng_sub: IntArray | None = None

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])

    def take(self, rows: IntArray, rng_sub: IntArray | None = None) -> SamplerBatch:
        """The batch restricted (or expanded) to ``rows``."""
        return replace(
            self,
            query_index=self.query_index[rows],
            ids=self.ids[rows],
            scores=self.scores[rows],
            valid=self.valid[rows],
            positive_ids=self.positive_ids[rows],
            positive_scores=self.positive_scores[rows],
            queries=None if self.queries is None else self.queries[rows],
            rng_sub=rng_sub
            if rng_sub is not None
            else (None if self.rng_sub is None else self.rng_sub[rows]),
        )

    def gumbel(self, n: int, stream: int) -> npt.NDArray[np.float64]:
        return gumbel(self.seed, self.query_index, n, stream, self.rng_sub)

    def uniform(self, n: int, stream: int) -> npt.NDArray[np.float64]:
        return uniform(self.seed, self.query_index, n, stream, self.rng_sub)

    def candidate_vectors(self, positions: IntArray | None = None) -> FloatArray:
        """Corpus vectors of the candidates (or of ``positions`` into them), ``(b, m, dim)``."""
        index = self._need_index("candidate vectors")
        ids = self.ids if positions is None else _take(self.ids, positions, -1)
        return index.vectors(ids)

    def _need_index(self, what: str) -> Index:
        if self.index is None:
            raise ValueError(
                f"this sampler needs {what}: pass index= (an Index over the corpus) to "
                "sample(), or use mine()"
            )
        return self.index


@dataclass(frozen=True)
class Anchor:
    """The positive each row is sampled against: its id (``-1`` for ``"mean"``), its slot in
    ``positive_ids`` (``-1`` for ``"mean"``) and ``s(q, d+)``."""

    ids: IntArray
    slots: IntArray
    scores: npt.NDArray[np.float64]
    policy: str

    def vectors(self, batch: SamplerBatch) -> FloatArray:
        """The positive's corpus vector per row, ``(b, dim)``; the mean of the known
        positives' vectors for ``"mean"``."""
        index = batch._need_index("the positives' corpus vectors")
        if self.policy != "mean":
            return index.vectors(self.ids)
        known = ~np.isnan(batch.positive_scores)
        v = index.vectors(np.where(known, batch.positive_ids, -1))
        return (v.sum(axis=1) / known.sum(axis=1, keepdims=True)).astype(np.float32)


def _take(a: np.ndarray, positions: IntArray, fill: Any) -> np.ndarray:
    out = np.take_along_axis(a, np.maximum(positions, 0), axis=1)
    return np.where(positions >= 0, out, fill)


def gumbel_topk(logw: npt.NDArray[np.float64], m: int, noise: npt.NDArray[np.float64]) -> IntArray:
    """Weighted sampling of ``m`` columns per row without replacement (Gumbel-top-k).

    ``logw`` holds log-weights, ``-inf`` for excluded entries; adding Gumbel ``noise`` and
    taking the ``m`` largest keys is exactly successive sampling proportional to
    ``exp(logw)``, and never underflows however peaked the weights are. Returns positions
    ``(b, m)`` in draw order, ``-1`` where a row has fewer than ``m`` finite weights.
    """
    b, k = logw.shape
    keys = np.where(np.isfinite(logw), logw + noise, -np.inf)
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
    """What :func:`negsample.mine` calls. Implement it by subclassing :class:`BaseSampler`."""

    name: ClassVar[str]
    needs_vectors: ClassVar[bool]

    @property
    def depth(self) -> int:
        """Candidates the sampler considers per query (0: it searches nothing)."""
        ...

    def sample_batch(self, batch: SamplerBatch, n: int, stats: MiningStats) -> Negatives: ...


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
        if self.on_shortfall not in SHORTFALL_POLICIES:
            raise ValueError(
                f"on_shortfall must be one of {SHORTFALL_POLICIES}, got {self.on_shortfall!r}"
            )
        anchor = getattr(self, "positive_anchor", None)
        if anchor is not None and anchor not in POSITIVE_ANCHORS:
            raise ValueError(f"positive_anchor must be one of {POSITIVE_ANCHORS}, got {anchor!r}")

    # -- to override -------------------------------------------------------------------
    @property
    def depth(self) -> int:
        raise NotImplementedError

    @property
    def max_n(self) -> int | None:
        """The most negatives one row can get from the sampler's region (``None``: no limit).
        Draws come in draw order, so the first ``n`` of ``max_n`` draws are exactly the
        ``n`` draws (a judge can look at draws one after another)."""
        return self.depth or None

    def vectors_per_query(self) -> int:
        """Corpus vectors gathered per query (sizes the chunks in :func:`mine`)."""
        return 0

    def check_n(self, n: int) -> None:
        """Refuse an ``n`` the sampler can never fill (before any work is done)."""
        if self.depth and n > self.depth:
            raise ValueError(
                f"{type(self).__name__} considers {self.depth} candidates per query, fewer "
                f"than the n={n} negatives requested"
            )

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
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        stats.n_queries += batch.size
        batch = self._prepare(batch, n, stats)
        anchor = None
        policy = getattr(self, "positive_anchor", None)
        if policy is not None:
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
            np.take_along_axis(batch.valid, np.maximum(pos, 0), axis=1)[picked]
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

        ``positives`` holds every labelled positive per query (ragged); they are removed
        from the candidates. Samplers that use ``s(q, d+)`` take it from
        ``positive_scores`` ``(b, P)`` if given, else from ``queries`` + ``index``, else from
        the candidates when a positive was retrieved (a positive found nowhere is marked
        missing, never scored 0). Samplers that need vectors require ``index``.
        ``exclude``: more ids per query (ragged, may be empty) never to sample, e.g.
        documents whose text duplicates a positive's; counted as ``"excluded"``.
        """
        self.check_n(n)
        if self.needs_vectors and index is None:
            raise ValueError(
                f"{type(self).__name__} needs corpus vectors, which candidates alone do not "
                "give: pass index= (and queries=), or use mine()"
            )
        stats = MiningStats(seed=normalize_seed(seed))
        ids_a = to_numpy(ids, "ids")
        if ids_a.ndim != 2:
            raise ValueError(f"ids must be 2-D (n_queries, k), got shape {ids_a.shape}")
        n_q = ids_a.shape[0]
        pos = pad_positives(positives, n_q, index.ntotal if index is not None else None)
        exc = (
            None
            if exclude is None
            else pad_positives(
                exclude, n_q, index.ntotal if index is not None else None, "exclude", True
            )
        )
        q = None
        if queries is not None:
            from ..index.base import prepare_queries

            if index is None:
                raise ValueError("queries were given without an index to score them against")
            q = prepare_queries(queries, index.dim, index.metric)
            if q.shape[0] != n_q:
                raise ValueError(f"queries has {q.shape[0]} rows, ids has {n_q}")
        qi = (
            np.arange(n_q, dtype=np.int64)
            if query_index is None
            else np.asarray(query_index, np.int64)
        )
        batch = build_batch(
            ids_a,
            scores,
            pos,
            query_index=qi,
            seed=stats.seed or 0,
            depth=self.depth,
            stats=stats,
            positive_scores=positive_scores,
            queries=q,
            index=index,
            exclude=exc,
        )
        if filters is not None and not filters.is_noop:
            from ..filters import warn_emptied

            batch = replace(batch, valid=filters.apply(batch, stats))
            out = self.sample_batch(batch, n, stats)
            warn_emptied(stats)
            return out
        return self.sample_batch(batch, n, stats)


def resolve_anchor(batch: SamplerBatch, policy: str) -> tuple[SamplerBatch, Anchor]:
    """Pick the positive each row is sampled against; ``"each"`` expands the rows."""
    known = ~np.isnan(batch.positive_scores)
    n_known = known.sum(axis=1)
    if np.any(n_known == 0):
        r = int(np.argmax(n_known == 0))
        raise ValueError(
            f"query {int(batch.query_index[r])}: no positive has a known score s(q, d+); pass "
            "positive_scores, or queries and an index, so the sampler can anchor on a positive"
        )
    s = batch.positive_scores.astype(np.float64)
    rows = np.arange(batch.size)
    if policy == "each":
        r_idx, slots = np.nonzero(known)
        b2 = batch.take(r_idx, rng_sub=slots.astype(np.int64) + 1)
        return b2, Anchor(batch.positive_ids[r_idx, slots], slots, s[r_idx, slots], policy)
    if policy == "mean":
        mean = np.where(known, s, 0.0).sum(axis=1) / n_known
        return batch, Anchor(
            np.full(batch.size, -1, np.int64), np.full(batch.size, -1), mean, policy
        )
    if policy == "max":
        slots = np.argmax(np.where(known, s, -np.inf), axis=1)
    elif policy == "min":
        slots = np.argmin(np.where(known, s, np.inf), axis=1)
    elif policy == "random":
        u = batch.uniform(1, Stream.ANCHOR)[:, 0]
        pick = np.minimum((u * n_known).astype(np.int64), n_known - 1)  # pick-th known slot
        rank = np.cumsum(known, axis=1) - 1
        slots = np.argmax(known & (rank == pick[:, None]), axis=1)
    else:  # pragma: no cover - validated at construction
        raise ValueError(policy)
    return batch, Anchor(batch.positive_ids[rows, slots], slots, s[rows, slots], policy)


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
        ok = (source >= 0) & np.take_along_axis(avail, np.maximum(source, 0), axis=1)
        extra = _take(source, first_true(ok, n), -1)
    slot = np.arange(n)[None, :]
    src = slot - have[:, None]
    take = (src >= 0) & (np.take_along_axis(extra, np.maximum(src, 0), axis=1) >= 0)
    pos = np.where(take, np.take_along_axis(extra, np.maximum(src, 0), axis=1), pos)
    return pos, int(take.sum())


def build_batch(
    ids: Any,
    scores: Any,
    positives: IntArray,
    *,
    query_index: IntArray,
    seed: int,
    depth: int,
    stats: MiningStats,
    positive_scores: Any = None,
    queries: FloatArray | None = None,
    index: Index | None = None,
    exclude: IntArray | None = None,
) -> SamplerBatch:
    """Validate candidates, remove every labelled positive (counted as ``"positive"``) and
    every id of ``exclude`` (``(b, E)``, -1 padded; counted as ``"excluded"``), keep the
    first ``depth`` remaining candidates per row (all if ``depth`` is 0) and find
    ``s(q, d+)``. Excluded ids are never sampled but, unlike positives, never anchor."""
    ids = to_numpy(ids, "ids")
    sc = to_numpy(scores, "scores")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"candidate ids must be integers, got dtype {ids.dtype}")
    if sc.shape != ids.shape:
        raise ValueError(f"scores has shape {sc.shape} but ids has shape {ids.shape}")
    if sc.dtype.kind != "f":
        raise TypeError(f"candidate scores must be floats, got dtype {sc.dtype}")
    ids = ids.astype(np.int64, copy=False)
    sc = sc.astype(np.float32, copy=False)
    present = ids >= 0
    if np.any(ids < -1):
        r, c = np.argwhere(ids < -1)[0]
        raise ValueError(f"candidate ids row {r} holds {ids[r, c]}; use -1 for padding")
    if index is not None and np.any(ids >= index.ntotal):
        r, c = np.argwhere(ids >= index.ntotal)[0]
        raise ValueError(
            f"candidate ids row {r} holds {ids[r, c]}, out of range for a corpus of {index.ntotal}"
        )
    if np.any(present & ~np.isfinite(sc)):
        r, c = np.argwhere(present & ~np.isfinite(sc))[0]
        raise ValueError(f"candidate scores row {r}, column {c} is {sc[r, c]} (not finite)")
    srt = np.sort(np.where(present, ids, -1 - np.arange(ids.shape[1])[None, :]), axis=1)
    dup = srt[:, 1:] == srt[:, :-1]
    if dup.any():
        r, c = np.argwhere(dup)[0]
        raise ValueError(f"candidate ids row {r} holds id {srt[r, c]} twice")
    b = ids.shape[0]
    width = int(max(ids.max(initial=-1), positives.max(initial=-1))) + 2
    ckey = np.arange(b, dtype=np.int64)[:, None] * width + (ids + 1)
    pkey = np.arange(b, dtype=np.int64)[:, None] * width + (positives + 1)
    is_pos = present & _members(ids, positives)
    stats.candidates_seen += int(present.sum())
    stats.count_removed("positive", int(is_pos.sum()))
    removed = is_pos
    if exclude is not None:
        if exclude.shape[0] != b:
            raise ValueError(f"exclude has {exclude.shape[0]} rows, the candidates {b}")
        is_exc = present & ~is_pos & _members(ids, exclude)
        stats.count_removed("excluded", int(is_exc.sum()))
        removed = is_pos | is_exc

    # positive scores: given > computed from vectors > looked up among the candidates
    if positive_scores is not None:
        ps = to_numpy(positive_scores, "positive_scores").astype(np.float32)
        if ps.shape != positives.shape:
            raise ValueError(
                f"positive_scores has shape {ps.shape}, positives pad to {positives.shape}"
            )
        ps = np.where(positives >= 0, ps, np.nan).astype(np.float32)
    elif queries is not None and index is not None:
        ps = positive_scores_from_vectors(queries, positives, index)
    else:
        ps = np.full(positives.shape, np.nan, dtype=np.float32)
        ppos = np.isin(pkey, ckey[is_pos]) & (positives >= 0)
        if ppos.any():
            flat_c = ckey[is_pos]
            order = np.argsort(flat_c)
            where = np.searchsorted(flat_c[order], pkey[ppos])
            ps[ppos] = sc[is_pos][order][where]

    keep = present & ~removed
    order = np.argsort(~keep, axis=1, kind="stable")
    width_out = depth if depth > 0 else ids.shape[1]
    order = order[:, :width_out]
    c_ids = np.take_along_axis(np.where(keep, ids, -1), order, axis=1)
    c_sc = np.take_along_axis(np.where(keep, sc, np.nan), order, axis=1).astype(np.float32)
    if c_ids.shape[1] < width_out:
        padw = width_out - c_ids.shape[1]
        c_ids = np.concatenate([c_ids, np.full((b, padw), -1, np.int64)], axis=1)
        c_sc = np.concatenate([c_sc, np.full((b, padw), np.nan, np.float32)], axis=1)
    return SamplerBatch(
        query_index=np.asarray(query_index, dtype=np.int64),
        ids=c_ids,
        scores=c_sc,
        valid=c_ids >= 0,
        positive_ids=positives,
        positive_scores=ps,
        seed=seed,
        queries=queries,
        index=index,
    )


def _members(ids: IntArray, sets: IntArray) -> BoolArray:
    """``ids[r, c]`` is in row ``r`` of ``sets`` (``(b, P)``, -1 padded): one comparison per
    column when rows are short, else by sorted (row, id) keys; never a ``(b, K, P)`` tensor."""
    if sets.shape[1] <= _FEW_POSITIVES:
        out = np.zeros(ids.shape, dtype=bool)
        for j in range(sets.shape[1]):
            sj = sets[:, j : j + 1]
            out |= (ids == sj) & (sj >= 0)
        return out
    width = int(max(ids.max(initial=-1), sets.max(initial=-1))) + 2
    rows = np.arange(ids.shape[0], dtype=np.int64)[:, None] * width
    return np.isin(rows + ids + 1, (rows + sets + 1)[sets >= 0])


def positive_scores_from_vectors(
    queries: FloatArray, positives: IntArray, index: Index, block: int = 65536
) -> FloatArray:
    """Exact ``s(q, d+)`` for every labelled positive, NaN for padding; gathered in blocks so
    memory stays ``O(block x dim)`` however many positives a query has."""
    out = np.full(positives.shape, np.nan, dtype=np.float32)
    r, c = np.nonzero(positives >= 0)
    for s in range(0, r.size, block):
        rr, cc = r[s : s + block], c[s : s + block]
        v = index.vectors(positives[rr, cc])
        out[rr, cc] = np.einsum("ij,ij->i", queries[rr], v)
    return out
