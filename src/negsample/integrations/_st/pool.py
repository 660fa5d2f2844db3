"""The drop-in's candidates and negatives: sentence-transformers' candidate pool (the top
``range_max + max_positives + 1`` of the search, less the query's positives and its own
text, optionally rescored by a cross-encoder), sampled by negsample's samplers and
:class:`~negsample.Filters`; or, with ``sampler=``, :func:`negsample.mine` with the
sampler's own depth. Then the negatives of each (query, positive) pair."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ..._optional import require
from ..._types import MiningStats, Negatives
from ..._validate import pad_positives
from ...errors import InputError
from ...filters import Filters
from ...index.base import Index
from ...mining import mine
from ...samplers.base import Anchor, BaseSampler, IntArray, SamplerBatch
from ...samplers.topk import TopKSampler
from .inputs import Pairs, Settings

__all__ = [
    "CrossEncoderScores",
    "Plan",
    "build_index",
    "make_plan",
    "negatives",
    "pair_negatives",
    "pair_scores",
]

_ROWS = 65536  # pairs scored at a time


@dataclass(frozen=True, kw_only=True)
class _EligibleRankTopK(TopKSampler):
    """TopK over a pool of the first ``k`` candidates (positives removed) whose rank window
    ``[range_min, range_max)`` counts only the candidates that pass the filters, as
    sentence-transformers' ``mine_hard_negatives`` does (its filters set scores to -inf
    before its top-k, so a removed candidate does not use up a rank)."""

    name = "topk-st"

    def _select(self, batch: SamplerBatch, n: int, anchor: Anchor | None) -> IntArray:
        rank = np.cumsum(batch.valid, axis=1) - 1
        region = batch.valid & (rank >= self.range_min)
        if self.range_max is not None:
            region &= rank < self.range_max
        plain = TopKSampler(k=self.k, strategy=self.strategy, on_shortfall=self.on_shortfall)
        return plain._select(replace(batch, valid=region), n, anchor)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What to mine with.

    Attributes
    ----------
    sampler : BaseSampler
        :class:`_EligibleRankTopK` over the pool, or the user's sampler.
    filters : Filters or None
        The score filters (and, with a user's sampler, the rank window); ``None``: none.
    depth : int
        The pool: ``range_max + max_positives + 1`` search results.
    n : int
        Negatives to draw per query (``num_negatives``, at most the corpus less one).
    own : bool
        The user's sampler, mined by :func:`negsample.mine`.
    """

    sampler: BaseSampler
    filters: Filters | None
    depth: int
    n: int
    own: bool


def make_plan(
    s: Settings,
    *,
    range_max: int,
    max_positives: int,
    n_corpus: int,
    sampler: BaseSampler | None,
    cross_encoder: bool,
) -> Plan:
    """The sampler, filters and pool depth for these settings.

    Parameters
    ----------
    s : Settings
        The resolved arguments.
    range_max : int
        The window's end (given or derived).
    max_positives : int
        The most rows any query has.
    n_corpus : int
        Distinct documents.
    sampler : BaseSampler or None
        The user's sampler.
    cross_encoder : bool
        Whether a cross-encoder rescores.

    Returns
    -------
    Plan
        What to mine with.
    """
    filters = Filters(
        absolute_margin=s.absolute_margin,
        relative_margin=s.relative_margin,
        max_score=s.max_score,
        min_score=s.min_score,
    )
    # sentence-transformers (6.3) searches range_max + max_positives + 1 (the most rows any
    # query has, and the query's own text) and removes the positives and that text from it
    depth = range_max + max_positives + 1
    run: BaseSampler
    if sampler is None:
        run = _EligibleRankTopK(
            k=depth, range_min=s.range_min, range_max=range_max, strategy=s.sampling_strategy
        )
    else:
        run = sampler
        filters = replace(
            filters, range_min=s.range_min, range_max=range_max if s.range_max is not None else None
        )
        if s.include_positives or cross_encoder:
            raise InputError(
                "sampler= works without include_positives and cross_encoder (they reorder "
                "or keep candidates that a negsample sampler would remove)"
            )
    return Plan(
        sampler=run,
        filters=None if filters.is_noop else filters,
        depth=depth,
        n=min(s.num_negatives, n_corpus - 1),
        own=sampler is not None,
    )


def build_index(c_emb: npt.NDArray[np.float32], use_faiss: bool) -> Index:
    """A faiss Flat index (``use_faiss``) or the exact numpy index over the corpus.

    Parameters
    ----------
    c_emb : numpy.ndarray
        float32 ``(corpus, dim)``.
    use_faiss : bool
        :class:`~negsample.FaissIndex` (on the GPU when faiss-gpu sees one).

    Returns
    -------
    Index
        The index (inner product).
    """
    if use_faiss:
        from ...index.faiss_index import FaissIndex

        # the Flat index stores the vectors exactly: no second copy is kept beside it
        return FaissIndex(c_emb, "Flat", metric="ip", check=False, keep_vectors=False)
    from ...index.numpy_index import NumpyIndex

    return NumpyIndex(c_emb, metric="ip", check=False)


def pair_scores(
    q_emb: npt.NDArray[np.float32], c_emb: npt.NDArray[np.float32], pairs: Pairs
) -> npt.NDArray[np.float32]:
    """``s(q, d+)`` of each pair, gathered in blocks.

    Parameters
    ----------
    q_emb, c_emb : numpy.ndarray
        The embeddings.
    pairs : Pairs
        The pairs.

    Returns
    -------
    numpy.ndarray
        float32 ``(pairs,)``.
    """
    out = np.empty(pairs.pair_q.size, np.float32)
    for a in range(0, out.size, _ROWS):
        b = slice(a, a + _ROWS)
        out[b] = np.einsum("ij,ij->i", q_emb[pairs.pair_q[b]], c_emb[pairs.pair_p[b]])
    return out


def _pool(
    index: Index, q: npt.NDArray[np.float32], remove: IntArray, depth: int
) -> tuple[IntArray, npt.NDArray[np.float32]]:
    """sentence-transformers' candidate pool: the top ``depth`` of the search, less the ids
    of ``remove`` (``(b, R)``, -1 padded) found among them; compacted, best first, ``-1`` /
    NaN padded to ``depth`` columns."""
    k = int(min(depth, index.ntotal))
    res = index.search(q, k)
    ids, sc = np.asarray(res.ids, np.int64), np.asarray(res.scores, np.float32)
    width = int(max(ids.max(initial=-1), remove.max(initial=-1))) + 2
    row = np.arange(ids.shape[0], dtype=np.int64)[:, None] * width
    removed = np.isin(row + ids + 1, (row + remove + 1)[remove >= 0])
    keep = (ids >= 0) & ~removed
    order = np.argsort(~keep, axis=1, kind="stable")
    c_ids = np.take_along_axis(np.where(keep, ids, -1), order, axis=1)
    c_sc = np.take_along_axis(np.where(keep, sc, np.nan), order, axis=1).astype(np.float32)
    if c_ids.shape[1] < depth:
        pad = depth - c_ids.shape[1]
        c_ids = np.pad(c_ids, ((0, 0), (0, pad)), constant_values=-1)
        c_sc = np.pad(c_sc, ((0, 0), (0, pad)), constant_values=np.nan)
    return c_ids, c_sc


def _ragged_to_padded_f(rows: Sequence[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    width = max(1, max((r.size for r in rows), default=0))
    out = np.full((len(rows), width), np.nan, np.float32)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


def _mine_pools(
    q_emb: npt.NDArray[np.float32],
    index: Index,
    positives: list[IntArray],
    exclude: IntArray,
    plan: Plan,
    *,
    seed: int | None,
    chunk: int,
    include_positives: bool,
    rescore: Any,
    pos_scores: list[npt.NDArray[np.float32]],
    progress: bool,
) -> Negatives:
    """Mine from sentence-transformers' pool: per chunk of queries, search the top
    ``plan.depth``, remove the query's positives (unless ``include_positives``) and
    excluded ids found there, optionally rescore the pool (``rescore(query_rows, ids) ->
    scores``, a cross-encoder) and re-sort it, then ``sampler.sample`` with the filters. The
    random draws are keyed by the global query index, as in :func:`negsample.mine`, so
    ``chunk`` never changes the result."""
    from ..._rng import normalize_seed

    seed_i = normalize_seed(seed)
    stats = MiningStats(seed=seed_i)
    parts: list[Negatives] = []
    starts: Any = range(0, q_emb.shape[0], chunk)
    if progress:
        tqdm = require("tqdm.auto", "progress bars").tqdm
        starts = tqdm(starts, desc="Mining", unit="chunk")
    for start in starts:
        stop = min(start + chunk, q_emb.shape[0])
        rows = np.arange(start, stop)
        pos = pad_positives([positives[i] for i in rows], len(rows), None)
        exc = exclude[start:stop]
        remove = exc if include_positives else np.concatenate([pos, exc], axis=1)
        ids, sc = _pool(index, q_emb[start:stop], remove, plan.depth)
        ps = _ragged_to_padded_f([pos_scores[i] for i in rows])
        if rescore is not None:
            sc = rescore(rows, ids)
            order = np.argsort(np.where(ids >= 0, -sc, np.inf), axis=1, kind="stable")
            ids = np.take_along_axis(ids, order, axis=1)
            sc = np.take_along_axis(sc, order, axis=1)
        if include_positives:
            # the positives stay candidates: the sampler is told of none (an id that is no
            # corpus row) and given s+ (the least positive score, the filters' anchor)
            pos = np.full((len(rows), 1), index.ntotal, np.int64)
            ps = np.nanmin(ps, axis=1, keepdims=True)
        part = plan.sampler.sample(
            ids, sc, pos, n=plan.n, seed=seed_i, positive_scores=ps, filters=plan.filters,
            query_index=rows,
        )  # fmt: skip
        stats.merge(part.stats)
        parts.append(part)
    stats.seed = seed_i
    return Negatives.concat(parts, plan.n, stats)


class CrossEncoderScores:
    """Scores (query, document) pairs with ``cross_encoder.predict``, in a multi-process
    pool when asked; :meth:`close` stops the pool.

    Parameters
    ----------
    cross_encoder : Any
        A ``CrossEncoder`` (``predict``).
    queries, corpus : pyarrow.Array
        The distinct texts (taken for each call: no list of all of them).
    batch_size : int
        ``predict``'s batch size.
    use_multi_process : list[str] or bool
        ``cross_encoder.start_multi_process_pool`` (``True`` or a list of devices).
    verbose : bool
        Progress bars.
    """

    def __init__(
        self,
        cross_encoder: Any,
        queries: Any,
        corpus: Any,
        batch_size: int,
        use_multi_process: list[str] | bool,
        verbose: bool,
    ) -> None:
        self.ce, self.queries, self.corpus = cross_encoder, queries, corpus
        self.kwargs: dict[str, Any] = {"batch_size": batch_size, "show_progress_bar": verbose}
        self.pool = None
        if use_multi_process:
            devices = None if isinstance(use_multi_process, bool) else use_multi_process
            self.pool = cross_encoder.start_multi_process_pool(target_devices=devices)
            self.kwargs["pool"] = self.pool

    def pairs(self, q: IntArray, d: IntArray) -> npt.NDArray[np.float32]:
        """Scores of the pairs ``(queries[q[i]], corpus[d[i]])``.

        Parameters
        ----------
        q, d : numpy.ndarray
            int64 ``(pairs,)`` query and document rows.

        Returns
        -------
        numpy.ndarray
            float32 ``(pairs,)``.
        """
        if q.size == 0:
            return np.empty(0, np.float32)
        pa = require("pyarrow", "mine_hard_negatives")
        q_texts = self.queries.take(pa.array(q)).to_pylist()
        d_texts = self.corpus.take(pa.array(d)).to_pylist()
        texts = list(zip(q_texts, d_texts, strict=True))
        out = self.ce.predict(texts, **self.kwargs)
        if hasattr(out, "detach"):
            out = out.detach().float().cpu().numpy()
        arr = np.asarray(out, dtype=np.float32)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.shape != (q.size,):
            raise InputError(
                f"cross_encoder.predict returned shape {arr.shape} for {q.size} pairs; "
                "expected one score per pair"
            )
        return arr

    def __call__(self, rows: IntArray, ids: IntArray) -> npt.NDArray[np.float32]:
        """Scores ``(b, K)`` of the candidates ``ids`` of the queries ``rows``; NaN for -1.

        Parameters
        ----------
        rows : numpy.ndarray
            int64 ``(b,)`` query rows.
        ids : numpy.ndarray
            int64 ``(b, K)`` candidates, ``-1`` padded.

        Returns
        -------
        numpy.ndarray
            float32 ``(b, K)``.
        """
        r, c = np.nonzero(ids >= 0)
        out = np.full(ids.shape, np.nan, np.float32)
        out[r, c] = self.pairs(rows[r], ids[r, c])
        return out

    def close(self) -> None:
        """Stop the multi-process pool, if any."""
        if self.pool is not None:
            self.ce.stop_multi_process_pool(self.pool)
            self.pool = None


def negatives(
    plan: Plan,
    q_emb: npt.NDArray[np.float32],
    index: Index,
    pairs: Pairs,
    exclude: IntArray,
    pair_s: npt.NDArray[np.float32],
    *,
    cross_encoder: Any,
    include_positives: bool,
    seed: int | None,
    chunk: int,
    batch_size: int,
    use_multi_process: list[str] | bool,
    verbose: bool,
) -> tuple[Negatives, npt.NDArray[np.float32]]:
    """Mine: :func:`negsample.mine` with the user's sampler, else the pool sampled by
    ``plan.sampler`` (rescored by ``cross_encoder`` when given).

    Parameters
    ----------
    plan : Plan
        What to mine with.
    q_emb : numpy.ndarray
        float32 ``(queries, dim)``.
    index : Index
        The corpus index.
    pairs : Pairs
        The texts and pairs.
    exclude : numpy.ndarray
        int64 ``(queries, 1)`` the query's own text, ``-1`` for none.
    pair_s : numpy.ndarray
        float32 ``(pairs,)`` the bi-encoder's ``s(q, d+)``.
    cross_encoder : Any
        A ``CrossEncoder`` or ``None``.
    include_positives : bool
        Keep the positives among the candidates.
    seed : int or None
        The draws.
    chunk : int
        Queries mined at a time (never changes the result).
    batch_size : int
        The cross-encoder's batch size.
    use_multi_process : list[str] or bool
        The cross-encoder's process pool.
    verbose : bool
        Progress bars.

    Returns
    -------
    tuple[Negatives, numpy.ndarray]
        The negatives of each query (or of each (query, positive) row), and ``s(q, d+)``
        (the cross-encoder's when it rescored).
    """
    n_q = len(pairs.queries)
    if plan.n < 1:
        return Negatives.concat([], plan.n, MiningStats(n_queries=n_q)), pair_s
    if plan.own:
        negs = mine(
            q_emb, index, pairs.positives, plan.sampler, n=plan.n, seed=seed,
            filters=plan.filters, chunk_size=chunk, progress=verbose, exclude=exclude,
        )  # fmt: skip
        return negs, pair_s
    scorer = None
    if cross_encoder is not None:
        scorer = CrossEncoderScores(
            cross_encoder, pairs.queries, pairs.corpus, batch_size, use_multi_process, verbose
        )
    try:
        if scorer is not None:
            pair_s = scorer.pairs(pairs.pair_q, pairs.pair_p)
        first, n_pos = pairs.q_first, pairs.n_pos
        pos_scores = [pair_s[first[q] : first[q] + n_pos[q]] for q in range(n_q)]
        negs = _mine_pools(
            q_emb, index, pairs.positives, exclude, plan, seed=seed, chunk=chunk,
            include_positives=include_positives, rescore=scorer, pos_scores=pos_scores,
            progress=verbose,
        )  # fmt: skip
    finally:
        if scorer is not None:
            scorer.close()
    return negs, pair_s


def pair_negatives(
    negs: Negatives, pairs: Pairs, n: int
) -> tuple[IntArray, npt.NDArray[np.float64]]:
    """The negatives of each (query, positive) pair, ``(pairs, n)``, sorted by score (best
    first, ``-1`` last, as sentence-transformers orders them): the row sampled against that
    positive when the sampler made one per positive, else the query's first row.

    Parameters
    ----------
    negs : Negatives
        The mined negatives (rows sorted by query).
    pairs : Pairs
        The pairs.
    n : int
        ``num_negatives`` (the width of the result).

    Returns
    -------
    tuple[numpy.ndarray, numpy.ndarray]
        int64 ids (``-1`` for none) and float64 scores (NaN for none), ``(pairs, n)``.
    """
    ids, scores = negs.ids, negs.scores
    query_index, anchor_ids = negs.query_index, negs.anchor_ids
    pair_q, pair_p = pairs.pair_q, pairs.pair_p
    sc = np.where(ids >= 0, scores.astype(np.float64), np.nan)
    order = np.argsort(np.where(ids >= 0, -sc, np.inf), axis=1, kind="stable")
    ids = np.take_along_axis(ids, order, axis=1)
    sc = np.take_along_axis(sc, order, axis=1)
    if ids.shape[1] < n:
        pad = n - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        sc = np.pad(sc, ((0, 0), (0, pad)), constant_values=np.nan)
    # rows are sorted by query: the first row of each query, then rows anchored on a pair
    first = np.searchsorted(query_index, pair_q, side="left")
    has = (
        (first < query_index.size)
        & (query_index[np.minimum(first, query_index.size - 1)] == pair_q)
        if query_index.size
        else np.zeros(pair_q.size, bool)
    )
    row = np.where(has, first, -1)
    anchored = anchor_ids >= 0
    if anchored.any():
        width = np.int64(len(pairs.corpus) + 1)
        rkey = query_index[anchored] * width + anchor_ids[anchored]
        rrow = np.flatnonzero(anchored)
        o = np.argsort(rkey, kind="stable")
        rkey, rrow = rkey[o], rrow[o]
        pkey = pair_q * width + pair_p
        at = np.searchsorted(rkey, pkey)
        hit = (at < rkey.size) & (rkey[np.minimum(at, rkey.size - 1)] == pkey)
        row = np.where(hit, rrow[np.minimum(at, rkey.size - 1)], row)
    out_ids = np.full((pair_q.size, n), -1, np.int64)
    out_sc = np.full((pair_q.size, n), np.nan, np.float64)
    ok = row >= 0
    out_ids[ok] = ids[row[ok]]
    out_sc[ok] = sc[row[ok]]
    return out_ids, out_sc
