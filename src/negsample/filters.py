"""Score filters applied to candidates before any sampler, each counted in the stats.

Every filter is a mask over the candidate matrix; a candidate removed by several filters
is counted once, under the first one in this order: ``rank_window``, ``max_score``,
``min_score``, ``absolute_margin``, ``relative_margin``. (Labelled positives are removed
before any of these and counted as ``"positive"``.)

The names and meanings are sentence-transformers' (``mine_hard_negatives``):
``absolute_margin=m`` keeps ``s(q,d-) < s+ - m``; ``relative_margin=r`` keeps
``s(q,d-) < s+ - |s+| * r`` (NV-Retriever's TopK-PercPos with ``p = 1 - r``: 0.05 is its
95%). A query that the filters leave without any candidate is counted in
``stats.emptied`` and reported once per call on the ``negsample`` logger.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ._ragged import segment_sum

if TYPE_CHECKING:
    from ._types import MiningStats
    from .candidates import SamplerBatch

__all__ = ["Filters", "anchor_scores", "rank_window", "warn_emptied"]

_FILTER_ANCHORS = ("min", "max", "mean")
_log = logging.getLogger(__name__)


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

    Names and meanings follow sentence-transformers' ``mine_hard_negatives``.

    Parameters
    ----------
    range_min, range_max : keep candidates whose rank (after positives are removed) is in
        ``[range_min, range_max)``.
    absolute_margin : keep ``s(q,d-) < s+ - absolute_margin`` (NV-Retriever's MarginPos).
        0 keeps only negatives scored below the positive.
    relative_margin : keep ``s(q,d-) < s+ - |s+| * relative_margin``, in ``[0, 1]``.
        0.05 is NV-Retriever's TopK-PercPos 95% (``p = 1 - relative_margin``), the setting
        sentence-transformers recommends. Sign-safe: for ``s+ < 0`` the naive
        ``(1 - r) * s+`` would let through negatives scored *above* the positive.
    max_score, min_score : keep ``min_score < s(q,d-) < max_score`` (strict).
    anchor : how ``s+`` is taken when a query has several positives: ``"min"`` (default,
        as NV-Retriever and sentence-transformers), ``"max"`` or ``"mean"``.
    margin : deprecated alias of ``absolute_margin`` (warns).

    Notes
    -----
    A query whose every candidate is removed gets no negative at all: such queries are
    counted in ``stats.emptied`` (by the filter that removed their last candidates) and
    :func:`negsample.mine` logs one warning with the count on the ``negsample`` logger.

    Examples
    --------
    >>> import negsample as ns
    >>> ns.Filters(relative_margin=0.05)
    Filters(range_min=0, range_max=None, absolute_margin=None, relative_margin=0.05, max_score=None, min_score=None, anchor='min')
    """

    range_min: int = 0
    range_max: int | None = None
    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None
    anchor: str = "min"
    margin: float | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.margin is not None:
            if self.absolute_margin is not None:
                raise ValueError("give absolute_margin or its deprecated alias margin, not both")
            warnings.warn(
                "Filters(margin=...) is deprecated; use absolute_margin (same meaning)",
                DeprecationWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "absolute_margin", self.margin)
            object.__setattr__(self, "margin", None)
        if self.range_min < 0:
            raise ValueError(f"range_min must be >= 0, got {self.range_min}")
        if self.range_max is not None and self.range_max <= self.range_min:
            raise ValueError(
                f"range_max ({self.range_max}) must be greater than range_min ({self.range_min})"
            )
        for name in ("absolute_margin", "max_score", "min_score", "relative_margin"):
            v = getattr(self, name)
            if v is not None and not np.isfinite(v):
                raise ValueError(f"{name} must be finite, got {v}")
        if self.relative_margin is not None and not 0.0 <= self.relative_margin <= 1.0:
            raise ValueError(
                f"relative_margin must be in [0, 1] (sentence-transformers' convention: 0.05 "
                f"discards negatives scored above s+ - 0.05 |s+|), got {self.relative_margin}"
            )
        if self.relative_margin is not None and self.relative_margin >= 0.5:
            _log.warning(
                "relative_margin=%s discards only negatives scored above s+ - %s |s+| "
                "(sentence-transformers' convention); NV-Retriever's TopK-PercPos p=%s is "
                "relative_margin=%s",
                self.relative_margin,
                self.relative_margin,
                self.relative_margin,
                round(1.0 - self.relative_margin, 6),
            )
        if self.anchor not in _FILTER_ANCHORS:
            raise ValueError(f"anchor must be one of {_FILTER_ANCHORS}, got {self.anchor!r}")

    @property
    def needs_positive_scores(self) -> bool:
        return self.absolute_margin is not None or self.relative_margin is not None

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
        """The new ``valid`` mask for ``batch``; removals are added to ``stats.removed``,
        rows left without any candidate to ``stats.emptied``."""
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
            if self.absolute_margin is not None:
                steps.append(("absolute_margin", s < s_pos - self.absolute_margin))
            if self.relative_margin is not None:
                steps.append(("relative_margin", s < s_pos - np.abs(s_pos) * self.relative_margin))
        for name, keep in steps:
            removed = valid & ~keep
            stats.count_removed(name, int(removed.sum()))
            before = valid.any(axis=1)
            valid = valid & keep
            emptied = int((before & ~valid.any(axis=1)).sum())
            if emptied:
                stats.emptied[name] = stats.emptied.get(name, 0) + emptied
        return valid


def warn_emptied(stats: MiningStats) -> None:
    """Log one warning on the ``negsample`` logger if filters left queries without any
    candidate (``stats.emptied``), naming the filters and the counts."""
    if not stats.emptied:
        return
    total = sum(stats.emptied.values())
    by = ", ".join(f"{name} {count}" for name, count in stats.emptied.items())
    _log.warning(
        "the filters removed every candidate of %d of %d queries (last removed by: %s); "
        "they get no negative: check the filter values (relative_margin=0.05 is "
        "NV-Retriever's 95%%, sentence-transformers' convention)",
        total,
        stats.n_queries,
        by,
    )
