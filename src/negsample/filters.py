"""Score filters applied to candidates before any sampler, each counted in the stats.

Every filter is a mask over the candidate matrix; a candidate removed by several filters
is counted once, under the first one in this order: ``rank_window``, ``max_score``,
``min_score``, ``margin``, ``relative_margin``. (Labelled positives are removed before
any of these and counted as ``"positive"``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ._ragged import segment_sum

if TYPE_CHECKING:
    from ._types import MiningStats
    from .candidates import SamplerBatch

__all__ = ["Filters", "anchor_scores", "rank_window"]

_FILTER_ANCHORS = ("min", "max", "mean")


def rank_window(valid: npt.NDArray[np.bool_], lo: int, hi: int | None) -> npt.NDArray[np.bool_]:
    """``valid`` restricted to the columns ``[lo, hi)``.

    Candidate rows are compacted once the positives are removed, so a column is the rank
    after positive removal. Score filters do not shift the window: a candidate removed by
    a margin leaves its rank empty rather than pulling a lower-ranked one in.
    """
    cols = np.arange(valid.shape[1])[None, :]
    keep = valid & (cols >= lo)
    if hi is not None:
        keep &= cols < hi
    return keep


def anchor_scores(batch: SamplerBatch, policy: str) -> npt.NDArray[np.float64]:
    """One ``s+`` per row from the known positive scores (NaN = unknown) by ``policy``."""
    pos = batch.positives
    ps = batch.positive_scores.astype(np.float64)
    known = ~np.isnan(ps)
    n_known = np.bincount(pos.row_of[known], minlength=batch.size)
    if np.any(n_known == 0):
        q = int(batch.query_index[int(np.argmax(n_known == 0))])
        raise ValueError(
            f"query {q}: no positive score is known, so score filters cannot be applied; "
            "pass positive_scores or an index to compute them"
        )
    if policy == "mean":
        return segment_sum(np.where(known, ps, 0.0), pos.indptr) / n_known
    if policy in ("min", "max"):
        fill = np.inf if policy == "min" else -np.inf
        vals = np.where(known, ps, fill)
        ufunc = np.minimum if policy == "min" else np.maximum
        out = np.full(batch.size, fill)
        nonempty = np.flatnonzero(pos.lengths > 0)
        out[nonempty] = ufunc.reduceat(vals, pos.indptr[nonempty])
        return out
    raise ValueError(f"anchor must be one of {_FILTER_ANCHORS}, got {policy!r}")


@dataclass(frozen=True, kw_only=True)
class Filters:
    """Candidate filters, composable with every sampler.

    Parameters
    ----------
    range_min, range_max : keep candidates whose rank (after positives are removed) is in
        ``[range_min, range_max)``.
    margin : absolute margin, keep ``s(q,d-) < s+ - margin``.
    relative_margin : NV-Retriever's TopK-PercPos ``p``, keep
        ``s(q,d-) < s+ - |s+| * (1 - p)``. Sign-safe: for ``s+ < 0`` the naive ``p * s+``
        would let through negatives scored *above* the positive. 0.95 is the usual value.
    max_score, min_score : keep ``min_score < s(q,d-) < max_score`` (strict).
    anchor : how ``s+`` is taken when a query has several positives: ``"min"`` (default,
        as NV-Retriever), ``"max"`` or ``"mean"``.

    Examples
    --------
    >>> import negsample as ns
    >>> ns.Filters(relative_margin=0.95)
    Filters(range_min=0, range_max=None, margin=None, relative_margin=0.95, max_score=None, min_score=None, anchor='min')
    """

    range_min: int = 0
    range_max: int | None = None
    margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None
    anchor: str = "min"

    def __post_init__(self) -> None:
        if self.range_min < 0:
            raise ValueError(f"range_min must be >= 0, got {self.range_min}")
        if self.range_max is not None and self.range_max <= self.range_min:
            raise ValueError(
                f"range_max ({self.range_max}) must be greater than range_min ({self.range_min})"
            )
        if self.relative_margin is not None and not 0.0 < self.relative_margin <= 1.0:
            raise ValueError(f"relative_margin must be in (0, 1], got {self.relative_margin}")
        for name in ("margin", "max_score", "min_score", "relative_margin"):
            v = getattr(self, name)
            if v is not None and not np.isfinite(v):
                raise ValueError(f"{name} must be finite, got {v}")
        if self.anchor not in _FILTER_ANCHORS:
            raise ValueError(f"anchor must be one of {_FILTER_ANCHORS}, got {self.anchor!r}")

    @property
    def needs_positive_scores(self) -> bool:
        return self.margin is not None or self.relative_margin is not None

    @property
    def is_noop(self) -> bool:
        return (
            self.range_min == 0
            and self.range_max is None
            and self.max_score is None
            and self.min_score is None
            and not self.needs_positive_scores
        )

    def apply(self, batch: SamplerBatch, stats: MiningStats) -> npt.NDArray[np.bool_]:
        """The new ``valid`` mask for ``batch``; removals are added to ``stats.removed``."""
        valid = batch.valid
        s = batch.scores
        steps: list[tuple[str, npt.NDArray[np.bool_]]] = []
        if self.range_min > 0 or self.range_max is not None:
            steps.append(("rank_window", rank_window(valid, self.range_min, self.range_max)))
        if self.max_score is not None:
            steps.append(("max_score", s < self.max_score))
        if self.min_score is not None:
            steps.append(("min_score", s > self.min_score))
        if self.needs_positive_scores:
            s_pos = anchor_scores(batch, self.anchor)[:, None]
            if self.margin is not None:
                steps.append(("margin", s < s_pos - self.margin))
            if self.relative_margin is not None:
                steps.append(
                    ("relative_margin", s < s_pos - np.abs(s_pos) * (1.0 - self.relative_margin))
                )
        for name, keep in steps:
            removed = valid & ~keep
            stats.count_removed(name, int(removed.sum()))
            valid = valid & keep
        return valid
