"""TopK: uniform sampling from a rank window of the candidates (the standard baseline)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._rng import Stream
from .._validate import check_int
from ..errors import InputError
from ..filters import rank_window
from .base import Anchor, BaseSampler, IntArray, SamplerBatch, first_true, gumbel_topk
from .registry import register

__all__ = ["TopKSampler"]


@register("topk")
@dataclass(frozen=True, kw_only=True)
class TopKSampler(BaseSampler):
    """Sample ``n`` negatives uniformly from ranks ``[range_min, range_max)`` of the top-``k``
    candidates (ranks counted after the positives are removed), or take the strict top.

    Parameters
    ----------
    k : candidates retrieved per query (the search depth).
    range_min, range_max : rank window; ``range_max=None`` means ``k``. ANCE and the ReSa2
        paper use ranks 0-200; FlagEmbedding 10-210; RAGatouille 10-110.
    strategy : ``"random"`` (uniform without replacement) or ``"top"`` (the best ``n``).
    on_shortfall : ``"pad"`` (-1), ``"fill"`` or ``"drop"`` (the row), when the window holds
        fewer than ``n`` valid candidates. ``"fill"`` takes candidates ranked below the
        window first (``range_max``, ``range_max + 1``, ...), then, only if those run out,
        the ranks above it nearest first (``range_min - 1``, ..., 0): the top ranks the
        window skips are the likeliest false negatives, so they come last.

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> ids = np.array([[5, 3, 9, 1, 7]]); scores = np.array([[.9, .8, .7, .6, .5]])
    >>> ns.TopKSampler(k=5, strategy="top").sample(ids, scores, [[3]], n=2).ids
    array([[5, 9]])
    """

    k: int = 200
    range_min: int = 0
    range_max: int | None = None
    strategy: str = "random"

    name = "topk"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("k", self.k, 1)
        check_int("range_min", self.range_min, 0)
        if self.range_max is not None:
            check_int("range_max", self.range_max, 1)
        if self.range_max is not None and not self.range_min < self.range_max <= self.k:
            raise InputError(
                f"need range_min < range_max <= k, got {self.range_min}, {self.range_max}, {self.k}"
            )
        if self.range_min >= self.k:
            raise InputError(f"range_min ({self.range_min}) must be smaller than k ({self.k})")
        if self.strategy not in ("random", "top"):
            raise InputError(f"strategy must be 'random' or 'top', got {self.strategy!r}")

    @property
    def depth(self) -> int:
        return self.k

    @property
    def region_size(self) -> int:
        """The rank window's width, ``range_max - range_min``."""
        return (self.range_max or self.k) - self.range_min

    def _region_phrase(self) -> str:
        return (
            f"TopKSampler's rank window [{self.range_min}, {self.range_max or self.k}) holds "
            f"{self.region_size} candidates"
        )

    def _select(self, batch: SamplerBatch, n: int, anchor: Anchor | None) -> IntArray:
        region = rank_window(batch.valid, self.range_min, self.range_max)
        if self.strategy == "top":
            return first_true(region, n)
        logw = np.where(region, 0.0, -np.inf)
        return gumbel_topk(logw, n, batch.gumbel_for(batch.ids, Stream.SAMPLE))

    def _fill_order(self, batch: SamplerBatch, anchor: Anchor | None) -> IntArray:
        """Below the window first (in rank order), then above it, nearest first."""
        width = batch.ids.shape[1]
        hi = min(self.range_max or self.k, width)
        order = np.r_[np.arange(hi, width), np.arange(min(self.range_min, width) - 1, -1, -1)]
        return np.broadcast_to(order.astype(np.int64), (batch.size, order.size))
