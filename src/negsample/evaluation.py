"""Measuring negatives against labels: false-negative rate and hardness."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._types import Negatives

__all__ = ["NegativeQuality", "negative_quality"]


@dataclass(frozen=True)
class NegativeQuality:
    """``fn_rate``: share of sampled negatives that are (hidden) positives; ``hardness``:
    mean ``s(q, d-)``; ``n_negatives``: valid negatives counted; ``short_rows``/``padded``
    from the mining stats. Compare samplers on both axes: FN rate alone rewards easy
    negatives."""

    fn_rate: float
    hardness: float
    n_negatives: int
    false_negatives: int
    short_rows: int
    padded: int


def negative_quality(negatives: Negatives, relevant: Sequence[Any]) -> NegativeQuality:
    """Score ``negatives`` against ``relevant`` (one sequence of corpus ids per query:
    the positives the sampler was not shown)."""
    if len(negatives) and int(negatives.query_index.max()) >= len(relevant):
        raise ValueError(
            f"relevant has {len(relevant)} entries but the negatives name query "
            f"{int(negatives.query_index.max())}"
        )
    rel = _pad(relevant)
    rows = rel[negatives.query_index]
    ids = negatives.ids
    valid = ids >= 0
    is_fn = valid & (ids[:, :, None] == rows[:, None, :]).any(axis=2)
    n_valid = int(valid.sum())
    return NegativeQuality(
        fn_rate=float(is_fn.sum() / n_valid) if n_valid else float("nan"),
        hardness=float(np.nanmean(negatives.scores[valid])) if n_valid else float("nan"),
        n_negatives=n_valid,
        false_negatives=int(is_fn.sum()),
        short_rows=negatives.stats.short_rows,
        padded=negatives.stats.padded,
    )


def _pad(relevant: Sequence[Any]) -> np.ndarray:
    width = max((len(r) for r in relevant), default=0)
    out = np.full((len(relevant), max(width, 1)), -2, dtype=np.int64)
    for i, r in enumerate(relevant):
        out[i, : len(r)] = np.asarray(r, dtype=np.int64)
    return out
