"""``mine()``: index search, filters and a sampler, over query chunks, in bounded memory."""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ._ragged import Ragged, as_ragged
from ._rng import normalize_seed
from ._types import MiningStats, Negatives
from ._validate import as_matrix, check_int, check_number
from .candidates import build_batch, positive_scores_for
from .crossquery import PositiveMask, remove_other_positives, reuse_cap
from .errors import InputError, InputTypeError
from .filters import Filters, warn_emptied
from .index.base import DEFAULT_SEARCH_BLOCK, Index, index_score, prepare_queries
from .samplers.base import BaseSampler, Sampler, check_n_fits, check_output, check_sampler
from .samplers.topk import TopKSampler

__all__ = ["auto_chunk_size", "mine", "search_depths"]

_DEFAULT_BUDGET_MB = 256
#: Largest sampling chunk chosen automatically: a sampler's temporaries for 512 queries stay
#: in the CPU caches (ReSa2 samples ~40% faster per query at 512 than at 4,096).
_MAX_AUTO_CHUNK = 512
_MAX_INDEX = (1 << 63) - 1

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def _sampling_threads() -> int:
    """Threads that sample chunks side by side (numpy and faiss release the GIL): the CPUs
    this process may use, at most 4; ``NEGSAMPLE_SAMPLING_THREADS`` overrides it. Each
    chunk has its own random streams and counters, so the output does not depend on it."""
    env = os.environ.get("NEGSAMPLE_SAMPLING_THREADS")
    if env:
        return max(1, int(env))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return int(min(4, cpus or 1))


def auto_chunk_size(
    sampler: Sampler, search_k: int, dim: int, budget_mb: float, *, n: int = 0
) -> int:
    """Queries per sampling chunk so that one chunk's working set stays within
    ``budget_mb``: candidate ids, scores and the sampler's float64 temporaries (about 64
    bytes per candidate slot), the ``n`` output slots and their temporaries (about 64
    bytes each), the query vectors, and any corpus vectors a custom sampler gathers
    (``vectors_per_query``); at least 16, at most 512 (faster: the temporaries stay in
    cache)."""
    gathered = getattr(sampler, "vectors_per_query", None)
    per_query = 64 * max(search_k, 1) + 64 * max(int(n), 0)
    per_query += 4 * dim * ((gathered() if gathered else 0) + 2)
    return int(np.clip(budget_mb * 2**20 // per_query, 16, _MAX_AUTO_CHUNK))


def search_depths(depth: int, n_removed: np.ndarray, ntotal: int) -> np.ndarray:
    """How many candidates a query needs so that ``depth`` remain once its positives (and
    excluded ids) are removed, whatever their ranks: ``depth + P`` with ``P`` rounded up to
    a power of two (few distinct depths). A function of the query alone."""
    if depth == 0:
        return np.zeros(len(n_removed), dtype=np.int64)
    p = np.maximum(np.asarray(n_removed, dtype=np.int64), 1)
    pow2 = np.left_shift(1, np.ceil(np.log2(p)).astype(np.int64))
    return np.minimum(depth + pow2, ntotal).astype(np.int64)


#: First-pass search depth is ``depth + min(P, DEEP_AFTER)`` (``P`` rounded to a power of
#: two); a query whose positives crowd its top ranks so that fewer than ``depth``
#: candidates remain is searched again, alone, at ``depth + P``.
DEEP_AFTER = 64
#: Rows per search call when a query is searched again deeper (exact indexes).
DEEP_BLOCK = 32
#: With ``exclude_other_positives``, the first pass also makes room for this many ids of
#: other queries' positives (rounded with the removed ids to a power of two), so that few
#: queries need a second, deeper search.
MASK_SLACK = 64


#: One search block's results: first-pass ids and scores, and the deep rows apart.
_BlockResult = tuple[IntArray, FloatArray, dict[int, tuple[IntArray, FloatArray]]]


class _BlockSearch:
    """Search results for any range of queries, computed in fixed blocks of
    ``index.search_block`` queries aligned to the GLOBAL query index (``query_offset + i``).

    For an exact index every block is searched as one call of exactly ``search_block`` rows
    (a partial block is padded with copies of one of its rows), each query in its own row
    position, at the largest first-pass depth the block needs; each query then keeps its
    own depth (exact top-k lists are prefixes of one another). A query's search scores then
    depend on nothing but the query itself, never on the sampling chunk, the other queries
    or the slice mined, so the output is byte-identical however the work is split (BLAS
    rounds a row differently for different matrix shapes). Approximate indexes (HNSW, IVF)
    are searched per block in groups of equal depth, unpadded.

    Depth in two passes: every query first searches ``depth + min(P, DEEP_AFTER)`` (``P``
    its removed ids rounded up to a power of two); the rare query left with fewer than
    ``depth`` candidates once they are removed is searched again at ``depth + P``, alone
    (an exact index: in a call of :data:`DEEP_BLOCK` rows, the query in row 0). Whether a
    query goes deep depends on its own results only, so this too is independent of how the
    queries are split, and one query with 20,000 positives never makes a whole block
    search 20,000 deep.

    With a ``mask`` (other queries' positives, removed too: ``exclude_other_positives``)
    the first pass searches :data:`MASK_SLACK` deeper, every query's first pass is checked,
    and a query left short searches again, alone, at ``depth + P'`` with ``P'`` its removed
    ids plus the masked ids found, until ``depth`` remain (or the corpus is exhausted):
    still a function of the query's own results.
    """

    def __init__(
        self,
        index: Index,
        queries: Any,
        depth: int,
        removed: Ragged,
        offset: int,
        mask: PositiveMask | None = None,
    ) -> None:
        self.index = index
        self.queries = queries
        self.depth = depth
        self.removed = removed
        self.offset = offset
        self.mask = mask
        self.block = check_int(
            "index.search_block", getattr(index, "search_block", DEFAULT_SEARCH_BLOCK), 1
        )
        self.exact = bool(getattr(index, "exact", False))
        n_rm = removed.lengths
        self.full = search_depths(depth, n_rm, index.ntotal)
        # with a mask, room for the masked ids a query's first pass usually holds
        slack = 0 if mask is None else MASK_SLACK
        self.first = search_depths(depth, np.minimum(n_rm, DEEP_AFTER) + slack, index.ntotal)
        # per block: its queries' first-pass candidates, and the deep rows apart (so one
        # query searched 20,000 deep never widens the arrays of its whole block); a block
        # searched ahead (prefetch) is a Future until it is needed
        self._cache: dict[int, _BlockResult | Future[_BlockResult]] = {}
        self._ahead: ThreadPoolExecutor | None = None

    def cached(self, start: int, stop: int) -> bool:
        """Whether the results for local queries ``start:stop`` need no new search in this
        thread (searched, or being searched ahead)."""
        g0, g1 = self.offset + start, self.offset + stop
        return all(b in self._cache for b in range(g0 // self.block, (g1 - 1) // self.block + 1))

    def _blocks(self, start: int, stop: int) -> range:
        """The global blocks of local queries ``start:stop``, searched (older ones dropped)."""
        g0, g1 = self.offset + start, self.offset + stop
        blocks = range(g0 // self.block, (g1 - 1) // self.block + 1)
        for b in [b for b in self._cache if b < blocks.start]:
            del self._cache[b]
        for b in blocks:
            got = self._cache.get(b)
            if got is None:
                self._cache[b] = self._search(b)
            elif isinstance(got, Future):
                self._cache[b] = got.result()
        return blocks

    def _get(self, b: int) -> _BlockResult:
        got = self._cache[b]
        assert not isinstance(got, Future)  # resolved by _blocks
        return got

    def prefetch(self, stop: int) -> None:
        """Start searching, in a background thread, the block after the one holding local
        query ``stop - 1`` (for an index whose search leaves the CPUs free: the sampling
        of this block then overlaps the search of the next). The results are the same
        whenever a block is searched."""
        b = (self.offset + stop - 1) // self.block + 1
        if b * self.block - self.offset >= self.first.shape[0] or b in self._cache:
            return
        if self._ahead is None:
            self._ahead = ThreadPoolExecutor(1, thread_name_prefix="negsample-search")
        self._cache[b] = self._ahead.submit(self._search, b)

    def close(self) -> None:
        """Stop the search-ahead thread (waiting for a search in flight)."""
        if self._ahead is not None:
            for got in self._cache.values():
                if isinstance(got, Future):
                    got.cancel()
            self._ahead.shutdown(wait=True)
            self._ahead = None

    def deep(self, start: int, stop: int) -> list[int]:
        """Local queries in ``start:stop`` that were searched again deeper (sample each on its
        own: its candidate row is much wider than the others')."""
        out = []
        for b in self._blocks(start, stop):
            base = max(b * self.block, self.offset) - self.offset
            out += [base + r for r in self._get(b)[2] if start <= base + r < stop]
        return sorted(out)

    def rows(self, start: int, stop: int) -> tuple[IntArray, FloatArray]:
        """Candidates ``(stop - start, width)`` for local queries ``start:stop``, each row
        cut at its own depth (``-1`` / NaN beyond it)."""
        parts = []
        width = 0
        for b in self._blocks(start, stop):
            b_ids, b_sc, b_deep = self._get(b)
            base = max(b * self.block, self.offset) - self.offset
            lo, hi = max(base, start) - base, min(base + b_ids.shape[0], stop) - base
            deep = {r - lo: v for r, v in b_deep.items() if lo <= r < hi}
            width = max([width, b_ids.shape[1]] + [v[0].shape[0] for v in deep.values()])
            parts.append((b_ids[lo:hi], b_sc[lo:hi], deep))
        ids = np.full((stop - start, width), -1, np.int64)
        sc = np.full((stop - start, width), np.nan, np.float32)
        at = 0
        for p_ids, p_sc, deep in parts:
            ids[at : at + p_ids.shape[0], : p_ids.shape[1]] = p_ids
            sc[at : at + p_ids.shape[0], : p_ids.shape[1]] = p_sc
            for r, (d_ids, d_sc) in deep.items():
                ids[at + r, : d_ids.shape[0]] = d_ids
                sc[at + r, : d_sc.shape[0]] = d_sc
            at += p_ids.shape[0]
        return ids, sc

    def _search(self, b: int) -> _BlockResult:
        """Results of the local queries in global block ``b`` (deep rows apart)."""
        n_q = self.first.shape[0]
        lo = max(b * self.block - self.offset, 0)
        hi = min((b + 1) * self.block - self.offset, n_q)
        ks = self.first[lo:hi]
        index = self.index
        q = prepare_queries(self.queries[lo:hi], index.dim, index.metric, check=False)
        at = lo + self.offset - b * self.block  # row of the first local query in the block
        ids, sc = self._run(q, ks, self.block, at)
        sc[ids < 0] = np.nan
        # the rare query whose removed ids crowd its first pass: once more, deeper, alone
        deep_rows: dict[int, tuple[IntArray, FloatArray]] = {}
        full = self.full[lo:hi]
        mask, rm = self.mask, self.removed.slice(lo, hi)
        maybe = np.flatnonzero(full > ks) if mask is None else np.arange(hi - lo)
        if maybe.size:
            cand = ids[maybe]
            left, masked = self._left(cand, rm.take(maybe))
            deep = maybe[left < self.depth]
            for r in deep if self.exact else ([deep] if deep.size else []):
                r = np.atleast_1d(r)
                k = full[r]
                if mask is not None:  # the masked ids found count as removed ids too
                    k = self._depth_for(rm.take(r), masked[np.searchsorted(maybe, r)])
                d_ids, d_sc = self._run(q[r], k, DEEP_BLOCK, 0)
                while mask is not None:  # deeper until depth remain (or the corpus ends)
                    left_r, masked_r = self._left(d_ids, rm.take(r))
                    more = np.where(left_r < self.depth, self._depth_for(rm.take(r), masked_r), k)
                    if not np.any(more > k):
                        break
                    k = np.maximum(k, more)
                    d_ids, d_sc = self._run(q[r], k, DEEP_BLOCK, 0)
                d_sc[d_ids < 0] = np.nan
                for j, row in enumerate(r.tolist()):
                    kk = int(k[j])
                    deep_rows[row] = (d_ids[j, :kk].copy(), d_sc[j, :kk].copy())
        return ids, sc, deep_rows

    def _left(self, cand: IntArray, rm: Ragged) -> tuple[IntArray, IntArray]:
        """Candidates left per row once the removed ids (and the masked ones) are out, and
        how many masked ids (not removed ids) each row holds."""
        gone = rm.contains(cand)
        masked = np.zeros(cand.shape[0], np.int64)
        if self.mask is not None:
            other = self.mask.contains(cand) & ~gone
            masked = other.sum(axis=1)
            gone |= other
        return ((cand >= 0) & ~gone).sum(axis=1), masked

    def _depth_for(self, rm: Ragged, masked: IntArray) -> IntArray:
        return search_depths(self.depth, rm.lengths + masked, self.index.ntotal)

    def _run(self, q: FloatArray, ks: IntArray, block: int, at: int) -> tuple[IntArray, FloatArray]:
        """Search queries ``q`` each at its depth ``ks``; an exact index in one call of
        ``block`` rows with the queries from row ``at`` on, rows cut to their depth."""
        width = int(ks.max(initial=0))
        ids = np.full((q.shape[0], width), -1, np.int64)
        sc = np.full((q.shape[0], width), np.nan, np.float32)
        if width == 0:
            return ids, sc
        if self.exact:
            call = np.empty((block, q.shape[1]), np.float32)
            call[:] = q[0]
            call[at : at + q.shape[0]] = q
            res = self.index.search(call, width)
            ids[:] = res.ids[at : at + q.shape[0]]
            sc[:] = res.scores[at : at + q.shape[0]]
            beyond = np.arange(width)[None, :] >= ks[:, None]
            ids[beyond] = -1
            sc[beyond] = np.nan
        else:
            for k in np.unique(ks[ks > 0]):
                r = np.flatnonzero(ks == k)
                res = self.index.search(q[r], int(k))
                ids[r, :k] = res.ids
                sc[r, :k] = res.scores
        return ids, sc


def _segments(start: int, stop: int, alone: list[int]) -> list[tuple[int, int]]:
    """``start:stop`` cut so that each row of ``alone`` is a segment of its own."""
    out, at = [], start
    for r in alone:
        if r > at:
            out.append((at, r))
        out.append((r, r + 1))
        at = r + 1
    if at < stop:
        out.append((at, stop))
    return out


def _rescore(part: Negatives, q: FloatArray, start: int, index: Index) -> Negatives:
    """``s(q, d-)`` of the sampled negatives from the index's ``score`` primitive: one dot
    product per pair, the same number whatever the chunking (and exact scores for an
    approximate index whose search returns approximate ones)."""
    scores = index_score(index, q[part.query_index - start], part.ids)
    return replace(part, scores=scores.astype(np.float32))


def mine(
    queries: Any,
    index: Index,
    positives: Any,
    sampler: Sampler | None = None,
    *,
    n: int = 7,
    seed: int | np.random.Generator | None = 0,
    filters: Filters | None = None,
    chunk_size: int | None = None,
    memory_budget_mb: float = _DEFAULT_BUDGET_MB,
    progress: bool = False,
    query_offset: int = 0,
    exclude: Any = None,
    exclude_other_positives: bool = False,
    set_positives: Any = None,
    max_negative_reuse: int | None = None,
    reuse_oversample: float = 2.0,
) -> Negatives:
    """Mine ``n`` hard negatives per query.

    Queries are searched in fixed blocks of ``index.search_block`` queries aligned to their
    global index, and sampled in chunks sized to ``memory_budget_mb`` (several chunks side by
    side in threads, up to 4 or the CPUs available; ``NEGSAMPLE_SAMPLING_THREADS`` sets it):
    remove every labelled positive, apply ``filters``, sample. Peak memory is the index plus one chunk's working
    set (``O(chunk x k)``), never a query-by-corpus matrix; positives stay ragged. Every
    random draw is a function of ``(seed, query index, candidate id)``, and with an exact
    index (``index.exact``: NumpyIndex, faiss Flat) a query's candidates do not depend on
    the block, so the output is byte-identical whatever ``chunk_size``,
    ``memory_budget_mb`` or slice (``query_offset``) it is mined in.

    Parameters
    ----------
    queries : ``(n_queries, dim)`` float array (numpy, memory-mapped ``.npy``, torch tensor).
    index : an :class:`~negsample.index.Index` over the corpus.
    positives : one sequence of corpus row ids per query (ragged, at least one each), an int
        ``(n_queries, P)`` array padded with ``-1``, or a :class:`~negsample._ragged.Ragged`.
        A repeated id counts once (``stats.duplicate_positives``).
    sampler : any object satisfying the :class:`~negsample.Sampler` protocol (``depth``
        and ``sample_batch``; a :class:`~negsample.BaseSampler` subclass is the convenient
        way); default ``TopKSampler(k=200)``. An ``n`` its region can never fill
        (``region_size``) is refused before any work.
    n : negatives per query.
    seed : int in ``[0, 2**64)`` (reproducible), ``numpy.random.Generator``, or ``None``
        (fresh entropy; the seed drawn is kept in ``stats.seed``).
    filters : :class:`~negsample.Filters` applied before the sampler.
    chunk_size : queries per sampling chunk; by default sized to ``memory_budget_mb``.
    memory_budget_mb : working-set budget of the sampling chunks in flight (> 0).
    progress : show a tqdm progress bar on stderr (needs tqdm).
    query_offset : global index of ``queries[0]``: rows are numbered
        ``query_offset + arange(n_queries)`` (in ``query_index``, in the random streams and
        in the search blocks), so mining a slice of a larger query set gives the same
        negatives as mining the whole set.
    exclude : more corpus ids per query never to sample (ragged, may be empty), e.g. the
        documents whose text duplicates a positive's. Removed like positives and counted
        as ``stats.removed["excluded"]``, but never used as a positive anchor.
    exclude_other_positives : also remove every candidate that is a labelled positive of
        another query of the set (counted as ``stats.removed["other_positive"]``); a
        query whose top ranks they crowd is searched deeper, so ``depth`` candidates remain.
        Not for a sampler that searches nothing (RandomSampler). Whether or not they are
        removed, ``stats.other_positives`` counts the sampled negatives that are one.
    set_positives : the labelled positives of the whole set when this call mines a slice
        of it (a :class:`~negsample.crossquery.PositiveMask`, or ids per query); default
        this call's ``positives``.
    max_negative_reuse : the most rows one document may be a negative of, over the whole
        call (``None``: no cap). Each row is mined with spare draws and the cap applied to
        all rows together (docs/algorithms.md, "Negatives reused across queries"):
        independent of chunking, threads and ``query_offset``; counted in ``stats.reuse``.
    reuse_oversample : draws mined per negative wanted for the cap
        (:func:`negsample.scoring.draw_plan`).

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
    check_sampler(sampler)
    n = check_int("n", n, 1)
    if n >= index.ntotal:
        raise InputError(
            f"n={n} negatives requested but the corpus has only {index.ntotal} rows "
            "(at least one is a positive)"
        )
    check_n_fits(sampler, n)
    trusted = isinstance(sampler, BaseSampler)  # checks its own selection
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, 1)
    check_number("memory_budget_mb", memory_budget_mb, positive=True)
    if not isinstance(progress, bool | np.bool_):
        raise InputError(f"progress must be True or False, got {progress!r}")
    if isinstance(query_offset, bool) or not isinstance(query_offset, int | np.integer):
        raise InputTypeError(f"query_offset must be an int, got {type(query_offset).__name__}")
    query_offset = check_int("query_offset", query_offset, 0)
    if filters is not None and not filters.is_noop and sampler.depth == 0:
        raise InputError(
            f"{type(sampler).__name__} searches no candidates, so score filters do not apply"
        )
    q_all = as_matrix(queries, "queries", dim=index.dim)
    n_q = q_all.shape[0]
    if query_offset > _MAX_INDEX - n_q:
        raise InputError(
            f"query_offset={query_offset} with {n_q} queries runs past the largest query "
            f"index (2**63 - 1)"
        )
    pos, n_dup = as_ragged(positives, n_q, index.ntotal)
    exc = None
    if exclude is not None:
        exc = as_ragged(exclude, n_q, index.ntotal, "exclude", allow_empty=True)[0]
    seed_i = normalize_seed(seed)
    others = PositiveMask.of(pos if set_positives is None else set_positives, index.ntotal)
    if exclude_other_positives and sampler.depth == 0:
        raise InputError(
            f"{type(sampler).__name__} searches no candidates: exclude_other_positives "
            "removes candidates of a search (count them with stats.other_positives instead)"
        )
    if max_negative_reuse is not None:  # spare draws, then the cap over the whole call
        cap, draw_sampler = reuse_cap(
            sampler, n, max_negative_reuse, oversample=reuse_oversample, n_corpus=index.ntotal
        )
        draws = mine(
            q_all, index, pos, draw_sampler, n=cap.draws, seed=seed_i, filters=filters,
            chunk_size=chunk_size, memory_budget_mb=memory_budget_mb, progress=progress,
            query_offset=query_offset, exclude=exc, set_positives=others,
            exclude_other_positives=exclude_other_positives,
        )  # fmt: skip
        t_pass = time.perf_counter()
        out = cap.apply(draws, seed=seed_i, positives=others)
        out.stats.duplicate_positives = n_dup
        out.stats.add_time("reuse", time.perf_counter() - t_pass)
        return out
    stats = MiningStats(seed=seed_i, duplicate_positives=n_dup)
    removed = pos if exc is None else pos.union(exc)
    searcher = _BlockSearch(
        index, q_all, sampler.depth, removed, query_offset,
        mask=others if exclude_other_positives else None,
    )  # fmt: skip
    search_k = int(searcher.first.max(initial=0))
    threads = _sampling_threads()
    # the budget covers every chunk in flight (one per thread + one), and within a chunk
    # the sampler's temporaries (SamplerBatch.memory_budget_mb)
    chunk_budget_mb = float(memory_budget_mb) / (threads + 1)
    if chunk_size is None:
        chunk_size = auto_chunk_size(sampler, search_k, index.dim, chunk_budget_mb, n=n)

    bar = None
    if progress:
        from ._optional import require

        bar = require("tqdm.auto", "progress bars").tqdm(total=n_q, unit="query", desc="mining")

    def sample_chunk(
        start: int, stop: int, ids: IntArray, sc: FloatArray
    ) -> tuple[Negatives, MiningStats]:
        """Everything after the search for queries ``start:stop``, with its own stats (so
        that chunks can run in parallel threads; merged in order afterwards)."""
        t0 = time.perf_counter()
        st = MiningStats(seed=seed_i)
        q = prepare_queries(q_all[start:stop], index.dim, index.metric, check=False)
        p: Ragged = pos.slice(start, stop)
        ps = positive_scores_for(q, p, index)
        t1 = time.perf_counter()
        e = None if exc is None else exc.slice(start, stop)
        n_other = 0
        if exclude_other_positives:  # removed like excluded ids (compacted away)
            ids, sc, n_other = remove_other_positives(ids, sc, others, p, e)
        batch = build_batch(
            ids,
            sc,
            p,
            query_index=np.arange(start, stop, dtype=np.int64) + query_offset,
            seed=seed_i,
            depth=sampler.depth,
            stats=st,
            positive_scores=ps,
            queries=q,
            index=index,
            exclude=e,
            trusted=True,
            memory_budget_mb=chunk_budget_mb,
        )
        if filters is not None and not filters.is_noop:
            batch = replace(batch, valid=filters.apply(batch, st))
        out = sampler.sample_batch(batch, n, st)
        if not trusted:
            check_output(sampler, out, batch, n, index.ntotal)
        part = _rescore(out, q, start + query_offset, index)
        if exclude_other_positives:
            st.candidates_seen += n_other
            st.count_removed("other_positive", n_other)
        st.other_positives += others.count(part.ids)
        st.add_time("positives", t1 - t0)
        st.add_time("sample", time.perf_counter() - t1)
        return part, st

    threads = _sampling_threads()
    pool = (
        ThreadPoolExecutor(threads, thread_name_prefix="negsample-sample") if threads > 1 else None
    )
    pending: deque[tuple[int, Future[tuple[Negatives, MiningStats]]]] = deque()
    parts: list[Negatives] = []

    def collect(size: int, done: tuple[Negatives, MiningStats]) -> None:
        parts.append(done[0])
        stats.merge(done[1])
        if bar is not None:
            bar.update(size)

    # a GPU index leaves the CPUs free while it searches: search the next block ahead
    ahead = not bool(getattr(index, "searches_on_host", True))
    try:
        for chunk_start in range(0, n_q, chunk_size):
            chunk_stop = min(chunk_start + chunk_size, n_q)
            if not searcher.cached(chunk_start, chunk_stop):
                # a search uses every core: let the chunks in flight finish first, so the
                # search and the sampling never compete for the CPUs
                while pending:
                    size, fut = pending.popleft()
                    collect(size, fut.result())
            t0 = time.perf_counter()
            deep = searcher.deep(chunk_start, chunk_stop)  # searches (in this thread)
            if ahead:
                searcher.prefetch(chunk_stop)
            stats.add_time("search", time.perf_counter() - t0)
            stats.deep_searches += len(deep)
            for start, stop in _segments(chunk_start, chunk_stop, deep):
                ids, sc = searcher.rows(start, stop)
                if pool is None:
                    collect(stop - start, sample_chunk(start, stop, ids, sc))
                    continue
                pending.append((stop - start, pool.submit(sample_chunk, start, stop, ids, sc)))
                while len(pending) > threads:
                    size, fut = pending.popleft()
                    collect(size, fut.result())
        while pending:
            size, fut = pending.popleft()
            collect(size, fut.result())
    finally:
        searcher.close()
        if pool is not None:
            for _, fut in pending:
                fut.cancel()
            pool.shutdown(wait=True)
        if bar is not None:
            bar.close()
    warn_emptied(stats)
    return Negatives.concat(parts, n, stats)
