"""Random: uniform negatives from the whole corpus (the easy baseline)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .._ragged import Ragged
from .._rng import Stream, uniform
from .._types import MiningStats
from ..index.base import index_score
from .base import Anchor, BaseSampler, IntArray, SamplerBatch, first_true
from .registry import register

__all__ = ["RandomSampler"]

_EXACT_BELOW = 4096  # corpora this small are sampled exactly, without rejection


@register("random")
@dataclass(frozen=True, kw_only=True)
class RandomSampler(BaseSampler):
    """``n`` negatives drawn uniformly without replacement from the corpus minus the
    query's positives and its ``exclude`` ids. Searches nothing; scores come from the
    index's ``score`` primitive when the queries are known (NaN otherwise). Every positive
    and every excluded id is removed from the population and counted
    (``stats.removed["positive"]``, ``["excluded"]``).

    Random negatives are almost never false negatives and almost never hard: the floor of
    the hardness / false-negative frontier.

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> corpus = np.random.default_rng(0).standard_normal((100, 8)).astype("float32")
    >>> negs = ns.mine(corpus[:3], ns.NumpyIndex(corpus), [[0], [1], [2]],
    ...                sampler=ns.RandomSampler(), n=4, seed=0)
    >>> negs.ids.shape
    (3, 4)
    """

    name = "random"

    @property
    def depth(self) -> int:
        return 0

    @property
    def region_size(self) -> None:
        """No limit: the region is the corpus (``mine()`` refuses ``n >= ntotal``)."""
        return None

    def _prepare(self, batch: SamplerBatch, n: int, stats: MiningStats) -> SamplerBatch:
        index = batch._need_index("the corpus size")
        banned = _banned(batch)
        ids = draw_distinct(batch, index.ntotal, n, banned)
        if batch.queries is not None:
            sc = index_score(index, batch.queries, ids)
        else:
            sc = np.full(ids.shape, np.nan, np.float32)
        stats.candidates_seen += int((ids >= 0).sum())
        stats.count_removed("positive", batch.positives.nnz)
        if batch.exclude is not None:
            stats.count_removed("excluded", banned.nnz - batch.positives.nnz)
        return replace(batch, ids=ids, scores=sc, valid=ids >= 0)

    def _select(self, batch: SamplerBatch, n: int, anchor: Anchor | None) -> IntArray:
        return first_true(batch.valid, n)


def _banned(batch: SamplerBatch) -> Ragged:
    """Per row, the ids never to draw: the positives and the excluded ids (each once)."""
    return batch.positives if batch.exclude is None else batch.positives.union(batch.exclude)


#: Bytes of temporaries per (row, column) of a rejection round (uniforms, draws, the
#: concatenation, its sort order and sorted copy, duplicate and membership masks).
_BYTES_PER_DRAW = 96
#: Rounds of ``2 * (n + banned) + 16`` columns a row reads before it gives up (only a
#: corpus barely larger than its banned ids gets there).
_MAX_ROUNDS = 64


def draw_distinct(
    batch: SamplerBatch, n_corpus: int, n: int, banned: Ragged | None = None
) -> IntArray:
    """``n`` distinct corpus ids per row that are not ``banned`` (default: the positives),
    uniformly, ``-1`` where the corpus minus the banned ids holds fewer than ``n``.

    Each row reads its own endless stream of uniform draws and keeps the first ``n``
    distinct allowed ones among its first ``64 * (2 * (n + banned) + 16)`` draws, so the
    result depends only on (seed, query), not on the batch. Tiny corpora are sampled
    exactly by random keys over every id. Rows and draws are taken in pieces that keep the
    temporaries within ``batch.memory_budget_mb`` (:attr:`SamplerBatch.budget_bytes`),
    whatever ``n`` and however many ids a row bans; the pieces never change the result.
    """
    b = batch.size
    banned = batch.positives if banned is None else banned
    cap = max(1, batch.budget_bytes // _BYTES_PER_DRAW)  # (row, column) cells at a time
    out = np.full((b, n), -1, dtype=np.int64)
    if n_corpus <= _EXACT_BELOW:
        step = max(1, cap // max(n_corpus, 1))
        for s in range(0, b, step):
            e = min(s + step, b)
            out[s:e] = _exact_rows(batch, s, e, n_corpus, n, banned.slice(s, e))
        return out
    n_banned = banned.lengths
    limit = _MAX_ROUNDS * (2 * (n + n_banned) + 16)  # columns each row may read
    step = max(1, cap // (3 * n + 16))  # rows per piece: room for a round of 2n + 16 draws
    for s in range(0, b, step):
        e = min(s + step, b)
        rows = np.arange(s, e)
        width = int(max(16, min(cap // rows.size - n, int(limit[rows].max()) // _MAX_ROUNDS)))
        todo = rows
        start = 0
        while todo.size:
            sub = None if batch.rng_sub is None else batch.rng_sub[todo]
            u = uniform(batch.seed, batch.query_index[todo], width, Stream.CORPUS, sub, start=start)
            draws = np.minimum((u * n_corpus).astype(np.int64), n_corpus - 1)
            del u
            cols = start + np.arange(width)
            draws[cols[None, :] >= limit[todo][:, None]] = -1  # past the row's last draw
            cat = np.concatenate([out[todo], draws], axis=1)
            del draws
            # a draw equal to an earlier one in its row is a duplicate (stable sort keeps order)
            o = np.argsort(cat, axis=1, kind="stable")
            srt = np.take_along_axis(cat, o, axis=1)
            dup_sorted = np.zeros(srt.shape, dtype=bool)
            dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
            del srt
            dup = np.zeros_like(dup_sorted)
            np.put_along_axis(dup, o, dup_sorted, axis=1)
            del o, dup_sorted
            keep = (cat >= 0) & ~dup & ~banned.take(todo).contains(cat)
            first = first_true(keep, n)
            picked = np.where(first >= 0, np.take_along_axis(cat, np.maximum(first, 0), axis=1), -1)
            out[todo] = picked
            start += width
            todo = todo[(picked < 0).any(axis=1) & (start < limit[todo])]
    return out


def _exact_rows(
    batch: SamplerBatch, s: int, e: int, n_corpus: int, n: int, banned: Ragged
) -> IntArray:
    """Rows ``s:e`` of a tiny corpus, sampled exactly: random keys over every id."""
    sub = None if batch.rng_sub is None else batch.rng_sub[s:e]
    keys = uniform(batch.seed, batch.query_index[s:e], n_corpus, Stream.CORPUS, sub)
    all_ids = np.broadcast_to(np.arange(n_corpus, dtype=np.int64), (e - s, n_corpus))
    keys = np.where(banned.contains(np.ascontiguousarray(all_ids)), np.inf, keys)
    order = np.argsort(keys, axis=1)[:, :n]
    out = np.take_along_axis(all_ids, order, axis=1).copy()
    out[~np.isfinite(np.take_along_axis(keys, order, axis=1))] = -1
    if out.shape[1] < n:
        out = np.concatenate([out, np.full((e - s, n - out.shape[1]), -1, np.int64)], axis=1)
    return out
