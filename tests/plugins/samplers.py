"""Out-of-tree samplers (test material for the extension contract, issue 18 item 2).

:class:`UniformWindow` does not subclass :class:`negsample.BaseSampler`: it satisfies the
:class:`negsample.Sampler` protocol by itself, and uses public names only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import negsample as ns
from negsample.samplers import BaseSampler, Stream, gumbel_topk, take_positions


@dataclass(frozen=True)
class UniformWindow:
    """``n`` uniformly from ranks ``[lo, hi)`` of the candidates (positives removed)."""

    lo: int = 0
    hi: int = 20

    @property
    def depth(self) -> int:
        return self.hi

    @property
    def region_size(self) -> int:
        return self.hi - self.lo

    def sample_batch(self, batch: ns.SamplerBatch, n: int, stats: ns.MiningStats) -> ns.Negatives:
        ranks = np.arange(batch.ids.shape[1])
        region = batch.valid & (ranks >= self.lo) & (ranks < self.hi)
        logw = np.where(region, 0.0, -np.inf)
        pos = gumbel_topk(logw, n, batch.gumbel_for(batch.ids, Stream.USER))
        stats.n_queries += batch.size
        stats.n_rows += batch.size
        stats.short_rows += int((pos < 0).any(axis=1).sum())
        stats.padded += int((pos < 0).sum())
        return ns.Negatives(
            ids=take_positions(batch.ids, pos, -1).astype(np.int64),
            scores=take_positions(batch.scores, pos, np.nan).astype(np.float32),
            query_index=batch.query_index,
            anchor_ids=np.full(batch.size, -1, np.int64),
            stats=stats,
        )


@dataclass(frozen=True)
class SamplesPositives(UniformWindow):
    """A broken sampler: it returns the first positive of each row as a negative."""

    def sample_batch(self, batch: ns.SamplerBatch, n: int, stats: ns.MiningStats) -> ns.Negatives:
        out = super().sample_batch(batch, n, stats)
        ids = out.ids.copy()
        ids[:, 0] = batch.positives.values[batch.positives.indptr[:-1]]
        return ns.Negatives(ids, out.scores, out.query_index, out.anchor_ids, stats)


@dataclass(frozen=True, kw_only=True)
class HalfWindow(BaseSampler):
    """A BaseSampler subclass whose region (half of the top-``k``) is smaller than its
    depth, declared through ``region_size``."""

    k: int = 90
    name = "half_window_test"

    @property
    def depth(self) -> int:
        return self.k

    @property
    def region_size(self) -> int:
        return self.k // 2

    def _select(self, batch: ns.SamplerBatch, n: int, anchor: object) -> np.ndarray:
        region = batch.valid & (np.arange(batch.ids.shape[1]) < self.k // 2)
        logw = np.where(region, 0.0, -np.inf)
        return gumbel_topk(logw, n, batch.gumbel_for(batch.ids, Stream.SAMPLE))
