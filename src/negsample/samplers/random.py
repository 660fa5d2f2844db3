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


def draw_distinct(
    batch: SamplerBatch, n_corpus: int, n: int, banned: Ragged | None = None
) -> IntArray:
    """``n`` distinct corpus ids per row that are not ``banned`` (default: the positives),
    uniformly, ``-1`` where the corpus minus the banned ids holds fewer than ``n``.

    Each row reads its own endless stream of uniform draws and keeps the first ``n``
    distinct allowed ones, so the result depends only on (seed, query), not on the
    batch. Tiny corpora are sampled exactly by random keys over every id.
    """
    b = batch.size
    banned = batch.positives if banned is None else banned
    if n_corpus <= _EXACT_BELOW:
        keys = batch.uniform(n_corpus, Stream.CORPUS)
        all_ids = np.broadcast_to(np.arange(n_corpus, dtype=np.int64), (b, n_corpus))
        keys = np.where(banned.contains(np.ascontiguousarray(all_ids)), np.inf, keys)
        order = np.argsort(keys, axis=1)[:, :n]
        out = np.take_along_axis(all_ids, order, axis=1).copy()
        out[~np.isfinite(np.take_along_axis(keys, order, axis=1))] = -1
        if out.shape[1] < n:
            out = np.concatenate([out, np.full((b, n - out.shape[1]), -1, np.int64)], axis=1)
        return out
    n_banned = banned.lengths
    m = int(2 * (n + n_banned.max(initial=0)) + 16)
    have = np.full((b, n), -1, dtype=np.int64)
    todo = np.arange(b)
    start = 0
    # give up after 64 rounds: only a corpus barely larger than the banned ids gets there
    while todo.size and start < 64 * m:
        sub = None if batch.rng_sub is None else batch.rng_sub[todo]
        u = uniform(batch.seed, batch.query_index[todo], m, Stream.CORPUS, sub, start=start)
        draws = np.minimum((u * n_corpus).astype(np.int64), n_corpus - 1)
        cat = np.concatenate([have[todo], draws], axis=1)
        # a draw equal to an earlier one in its row is a duplicate (stable sort keeps order)
        o = np.argsort(cat, axis=1, kind="stable")
        srt = np.take_along_axis(cat, o, axis=1)
        dup_sorted = np.zeros(srt.shape, dtype=bool)
        dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
        dup = np.zeros_like(dup_sorted)
        np.put_along_axis(dup, o, dup_sorted, axis=1)
        keep = (cat >= 0) & ~dup & ~banned.take(todo).contains(cat)
        first = first_true(keep, n)
        picked = np.where(first >= 0, np.take_along_axis(cat, np.maximum(first, 0), axis=1), -1)
        have[todo] = picked
        todo = todo[(picked < 0).any(axis=1)]
        start += m
    return have
