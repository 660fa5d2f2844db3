"""``mine()``: index search, filters and a sampler, over query chunks, in bounded memory."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from ._rng import normalize_seed
from ._types import MiningStats, Negatives
from ._validate import as_matrix, pad_positives
from .filters import Filters, warn_emptied
from .index.base import Index, prepare_queries
from .samplers.base import BaseSampler, build_batch, positive_scores_from_vectors
from .samplers.topk import TopKSampler

__all__ = ["auto_chunk_size", "mine"]

_DEFAULT_BUDGET_MB = 256


def auto_chunk_size(
    sampler: BaseSampler, search_k: int, dim: int, n_pos: int, budget_mb: float
) -> int:
    """Queries per chunk so that one chunk's working set stays within ``budget_mb``:
    candidate ids and scores (~ 40 bytes per slot with the temporaries), the corpus
    vectors the sampler gathers, and the positives' vectors."""
    per_query = 40 * max(search_k, 1) + 4 * dim * (sampler.vectors_per_query() + n_pos + 2)
    return int(np.clip(budget_mb * 2**20 // per_query, 16, 8192))


def search_depths(depth: int, n_positives: np.ndarray, ntotal: int) -> np.ndarray:
    """How many candidates to retrieve for each query so that ``depth`` remain once its
    positives are removed: ``depth + P`` with the positive count ``P`` rounded up to a
    power of two. It is a function of the query alone (never of the chunk it is in, so
    approximate indexes such as HNSW, whose results depend on ``k``, give the same answer
    however the queries are chunked), and a query with many positives does not make every
    other query search deeper. The rounding groups queries into few distinct ``k``."""
    if depth == 0:
        return np.zeros(len(n_positives), dtype=np.int64)
    p = np.maximum(np.asarray(n_positives, dtype=np.int64), 1)
    pow2 = np.left_shift(1, np.ceil(np.log2(p)).astype(np.int64))
    return np.minimum(depth + pow2, ntotal).astype(np.int64)


def _search_grouped(index: Index, q: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Search each group of queries with its own ``k``; rows padded with -1 / NaN to the
    largest ``k`` (the padding is dropped when candidates are compacted)."""
    width = int(ks.max(initial=0))
    ids = np.full((q.shape[0], width), -1, np.int64)
    sc = np.full((q.shape[0], width), np.nan, np.float32)
    for k in np.unique(ks[ks > 0]):
        rows = np.flatnonzero(ks == k)
        res = index.search(q[rows], int(k))
        ids[rows, :k] = res.ids
        sc[rows, :k] = res.scores
    return ids, sc


def _rescore(part: Negatives, q: np.ndarray, start: int, index: Index) -> Negatives:
    """Recompute ``s(q, d-)`` of the sampled negatives row by row.

    BLAS rounds a matrix product differently for different batch shapes (in the last bit),
    so the scores a search returns can depend on how queries were grouped. A row-wise dot
    product does not: the output scores are the same whatever the chunking, and cost only
    ``n`` vectors per query.
    """
    ids = part.ids
    v = index.vectors(ids)
    scores = np.einsum("bd,bnd->bn", q[part.query_index - start], v).astype(np.float32)
    scores[ids < 0] = np.nan
    return replace(part, scores=scores)


def mine(
    queries: Any,
    index: Index,
    positives: Any,
    sampler: BaseSampler | None = None,
    *,
    n: int = 7,
    seed: int | np.random.Generator | None = 0,
    filters: Filters | None = None,
    chunk_size: int | None = None,
    memory_budget_mb: float = _DEFAULT_BUDGET_MB,
    progress: bool = False,
    query_offset: int = 0,
    exclude: Any = None,
) -> Negatives:
    """Mine ``n`` hard negatives per query.

    Queries are processed in chunks: search the index for the sampler's candidates, remove
    every labelled positive, apply ``filters``, sample. Peak memory is the index plus one
    chunk's working set (``O(chunk x k x dim)``), never a query-by-corpus matrix. Every
    random draw is a function of ``(seed, query index)``, so the output does not depend on
    ``chunk_size``.

    Parameters
    ----------
    queries : ``(n_queries, dim)`` float array (numpy, memory-mapped ``.npy``, torch tensor).
    index : an :class:`~negsample.index.Index` over the corpus.
    positives : one sequence of corpus row ids per query (ragged, at least one each), or an
        int ``(n_queries, P)`` array padded with ``-1``.
    sampler : any :class:`~negsample.samplers.Sampler`; default ``TopKSampler(k=200)``.
    n : negatives per query.
    seed : int (reproducible), ``numpy.random.Generator``, or ``None`` (fresh entropy; the
        seed drawn is kept in ``stats.seed``).
    filters : :class:`~negsample.Filters` applied before the sampler.
    chunk_size : queries per chunk; by default sized to ``memory_budget_mb``.
    progress : show a tqdm progress bar on stderr (needs tqdm).
    exclude : more corpus ids per query never to sample (ragged, may be empty), e.g. the
        documents whose text duplicates a positive's. Removed like positives and counted
        as ``stats.removed["excluded"]``, but never used as a positive anchor.
    query_offset : global index of ``queries[0]``: rows are numbered
        ``query_offset + arange(n_queries)`` (in ``query_index`` and in the random
        streams), so mining a slice of a larger query set gives the same negatives as
        mining the whole set.

    Returns
    -------
    Negatives
        ``ids`` ``(rows, n)`` int64 (``-1`` where short), ``scores`` float32,
        ``query_index``, ``anchor_ids`` and ``stats``.

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> rng = np.random.default_rng(0)
    >>> corpus = rng.standard_normal((500, 16)).astype("float32")
    >>> negs = ns.mine(corpus[:4], ns.NumpyIndex(corpus), [[0], [1], [2], [3]],
    ...                sampler=ns.TopKSampler(k=50), n=5, seed=0)
    >>> negs.ids.shape, bool((negs.ids[:, :, None] != np.arange(4)[:, None, None]).all())
    ((4, 5), True)
    """
    sampler = TopKSampler() if sampler is None else sampler
    if not isinstance(sampler, BaseSampler):
        raise TypeError(f"sampler must be a negsample sampler, got {type(sampler).__name__}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if n >= index.ntotal:
        raise ValueError(
            f"n={n} negatives requested but the corpus has only {index.ntotal} rows "
            "(at least one is a positive)"
        )
    sampler.check_n(n)
    if isinstance(query_offset, bool) or not isinstance(query_offset, int | np.integer):
        raise TypeError(f"query_offset must be an int, got {type(query_offset).__name__}")
    if query_offset < 0:
        raise ValueError(f"query_offset must be >= 0, got {query_offset}")
    if filters is not None and not filters.is_noop and sampler.depth == 0:
        raise ValueError(
            f"{type(sampler).__name__} searches no candidates, so score filters do not apply"
        )
    q_all = as_matrix(queries, "queries", dim=index.dim)
    n_q = q_all.shape[0]
    pos = pad_positives(positives, n_q, index.ntotal)
    exc = None if exclude is None else pad_positives(exclude, n_q, index.ntotal, "exclude", True)
    seed_i = normalize_seed(seed)
    stats = MiningStats(seed=seed_i)
    n_pos = (pos >= 0).sum(axis=1)
    n_pos_max = int(n_pos.max(initial=0))
    n_removed = n_pos if exc is None else n_pos + (exc >= 0).sum(axis=1)
    k_per_query = search_depths(sampler.depth, n_removed, index.ntotal)
    search_k = int(k_per_query.max(initial=0))
    if chunk_size is None:
        chunk_size = auto_chunk_size(sampler, search_k, index.dim, n_pos_max, memory_budget_mb)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    bar = None
    if progress:
        from ._optional import require

        bar = require("tqdm.auto", "progress bars").tqdm(total=n_q, unit="query", desc="mining")
    parts: list[Negatives] = []
    try:
        for start in range(0, n_q, chunk_size):
            stop = min(start + chunk_size, n_q)
            q = prepare_queries(q_all[start:stop], index.dim, index.metric, check=False)
            p = pos[start:stop]
            p = p[:, : max(1, int((p >= 0).sum(axis=1).max()))]
            qi = np.arange(start, stop, dtype=np.int64) + int(query_offset)
            t0 = time.perf_counter()
            ids, sc = _search_grouped(index, q, k_per_query[start:stop])
            t1 = time.perf_counter()
            ps = positive_scores_from_vectors(q, p, index)
            t2 = time.perf_counter()
            batch = build_batch(
                ids,
                sc,
                p,
                query_index=qi,
                seed=seed_i,
                depth=sampler.depth,
                stats=stats,
                positive_scores=ps,
                queries=q,
                index=index,
                exclude=None if exc is None else exc[start:stop],
            )
            if filters is not None and not filters.is_noop:
                batch = replace(batch, valid=filters.apply(batch, stats))
            part = sampler.sample_batch(batch, n, stats)
            part = _rescore(part, q, start + int(query_offset), index)
            t3 = time.perf_counter()
            stats.add_time("search", t1 - t0)
            stats.add_time("positives", t2 - t1)
            stats.add_time("sample", t3 - t2)
            parts.append(part)
            if bar is not None:
                bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()
    warn_emptied(stats)
    return Negatives.concat(parts, n, stats)
