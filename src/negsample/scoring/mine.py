""":func:`mine_denoised`: :func:`negsample.mine` then :func:`~negsample.scoring.denoise`,
widening the rows that run out, and :func:`draw_plan`, the one rule for how many draws a
row gets (used by :func:`mine_denoised` and the command line)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._types import MiningStats, Negatives
from ..errors import InputError, InputTypeError
from .base import Judge, Scorer
from .denoise import denoise
from .margins import Margins
from .results import Denoised

if TYPE_CHECKING:
    from ..filters import Filters
    from ..index.base import Index
    from ..samplers.base import BaseSampler

__all__ = ["DrawPlan", "draw_plan", "mine_denoised"]

IntArray = npt.NDArray[np.int64]
_UNLIMITED_DRAWS = 32  # draws per negative for a sampler without a region (RandomSampler)


@dataclass(frozen=True)
class DrawPlan:
    """How many draws each row gets when denoising, from :func:`draw_plan`.

    Attributes
    ----------
    first : draws mined per row at first, ``min(max_draws, max(n, ceil(oversample * n)))``.
    max_draws : the most draws a row may get when it is widened.
    sampler : the sampler to mine the draws with: the one given, or a copy with
        ``on_shortfall="pad"`` when it had ``"drop"`` (rows are dropped after denoising,
        never before: a row missing from the draws could not be widened).
    on_short : what :func:`~negsample.scoring.denoise` does with rows still short at the
        end: ``"drop"`` (the sampler's ``on_shortfall="drop"``) or ``"pad"``.
    """

    first: int
    max_draws: int
    sampler: Any
    on_short: str


def draw_plan(
    sampler: BaseSampler,
    n: int,
    *,
    oversample: float = 2.0,
    n_corpus: int,
    max_draws: int | None = None,
) -> DrawPlan:
    """The one rule for how many draws a row gets when it is denoised (used by
    :func:`mine_denoised` and ``negsample mine``).

    Parameters
    ----------
    sampler : the negsample sampler that draws.
    n : negatives wanted per row.
    oversample : draws mined per negative wanted at first (>= 1, finite).
    n_corpus : documents in the index (a row can never get more than ``n_corpus - 1``).
    max_draws : the most draws per row (default: the sampler's ``max_n``, the size of its
        region; ``32 * n`` for a sampler without one, such as RandomSampler). May not
        exceed the sampler's ``max_n``.

    Returns
    -------
    DrawPlan
        ``first = min(max_draws, max(n, ceil(oversample * n)))`` draws at first, at most
        ``max_draws = min(max_draws or max_n or 32 * n, n_corpus - 1)``; the sampler's
        ``on_shortfall="drop"`` becomes ``"pad"`` for the draws and ``on_short="drop"``
        after denoising.

    Examples
    --------
    >>> import negsample as ns
    >>> from negsample.scoring import draw_plan
    >>> p = draw_plan(ns.TopKSampler(k=50, on_shortfall="drop"), 7, oversample=3, n_corpus=1000)
    >>> p.first, p.max_draws, p.sampler.on_shortfall, p.on_short
    (21, 50, 'pad', 'drop')
    """
    from ..samplers.base import BaseSampler as _Base

    if not isinstance(sampler, _Base):
        raise InputTypeError(f"sampler must be a negsample sampler, got {type(sampler).__name__}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}")
    n = int(n)
    if (
        isinstance(oversample, bool)
        or not isinstance(oversample, int | float | np.integer | np.floating)
        or not math.isfinite(oversample)
        or oversample < 1.0
    ):
        raise InputError(f"oversample must be a finite number >= 1, got {oversample!r}")
    if isinstance(n_corpus, bool) or not isinstance(n_corpus, int | np.integer) or n_corpus < 1:
        raise InputError(f"n_corpus must be a positive integer, got {n_corpus!r}")
    if max_draws is not None and (
        isinstance(max_draws, bool) or not isinstance(max_draws, int | np.integer)
    ):
        raise InputError(f"max_draws must be an int or None, got {max_draws!r}")
    sampler.check_n(n)
    if max_draws is not None and sampler.max_n is not None and max_draws > sampler.max_n:
        raise InputError(
            f"max_draws={max_draws} exceeds what {type(sampler).__name__} can draw per row "
            f"({sampler.max_n})"
        )
    limit = sampler.max_n if sampler.max_n is not None else _UNLIMITED_DRAWS * n
    cap = int(min(limit if max_draws is None else max_draws, int(n_corpus) - 1))
    if cap < n:
        raise InputError(f"max_draws={cap} is smaller than n={n}")
    first = int(min(cap, max(n, math.ceil(oversample * n))))
    on_short = "drop" if sampler.on_shortfall == "drop" else "pad"
    draw_sampler = (
        dataclasses.replace(sampler, on_shortfall="pad") if on_short == "drop" else sampler
    )
    return DrawPlan(first=first, max_draws=cap, sampler=draw_sampler, on_short=on_short)


def mine_denoised(
    queries: Any,
    index: Index,
    positives: Any,
    sampler: BaseSampler | None = None,
    *,
    query_texts: Sequence[str],
    document_texts: Sequence[str],
    n: int = 7,
    seed: int = 0,
    scorer: Scorer | None = None,
    judge: Judge | None = None,
    margins: Margins | None = None,
    judge_keep: Sequence[str] = ("HN", "TN"),
    on_judge_failure: str = "skip",
    teacher_scores: bool | None = None,
    oversample: float = 2.0,
    max_draws: int | None = None,
    growth: float = 2.0,
    fn_action: str = "remove",
    drop_above: int = 8,
    filters: Filters | None = None,
    exclude: Any = None,
    chunk_size: int | None = None,
    chunk_rows: int = 4096,
    progress: bool = False,
) -> Denoised:
    """:func:`negsample.mine` then :func:`denoise`: mine ``ceil(oversample * n)`` draws per
    row (at most the sampler's ``max_n``), keep the first ``n`` that pass, and draw again,
    wider, for the rows that run out.

    Parameters
    ----------
    queries, index, positives, sampler, seed, filters, exclude, chunk_size : as for
        :func:`negsample.mine` (``seed`` must be an int: the draws are repeated).
    oversample : draws mined per negative wanted at first.
    max_draws : the most draws per row (default: the sampler's ``max_n``, the size of its
        region; ``32 * n`` for a sampler without one, such as RandomSampler).
    query_texts, document_texts, n, scorer, judge, margins, judge_keep, on_judge_failure,
    teacher_scores, growth, fn_action, drop_above, chunk_rows, progress : as for
        :func:`denoise`.

    The sampler's ``on_shortfall="drop"`` is applied after denoising (rows still short are
    dropped); the draws themselves are mined with ``"pad"``. A widening mines only the
    queries that need it (runs of them, with ``query_offset``: :func:`negsample.mine` gives
    a query the same draws whatever slice or chunk it is mined in), once per widening level
    whatever ``chunk_rows``; the new draws are checked to start with the old ones.

    Returns
    -------
    Denoised
    """
    from .._validate import as_matrix
    from ..mining import mine
    from ..samplers.base import BaseSampler as _Base
    from ..samplers.topk import TopKSampler

    sampler = TopKSampler() if sampler is None else sampler
    if not isinstance(sampler, _Base):
        raise InputTypeError(f"sampler must be a negsample sampler, got {type(sampler).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative int (the draws are repeated), got {seed!r}")
    plan = draw_plan(sampler, n, oversample=oversample, n_corpus=index.ntotal, max_draws=max_draws)
    n, cap, on_short, draw_sampler = int(n), plan.max_draws, plan.on_short, plan.sampler
    q_all = as_matrix(queries, "queries", dim=index.dim)
    n_q = q_all.shape[0]
    n_pos = positives.shape[0] if isinstance(positives, np.ndarray) else len(positives)
    if n_pos != n_q:
        raise InputError(f"positives has {n_pos} entries, queries {n_q} rows")

    def draw(m: int, qrows: IntArray | None) -> Negatives:
        if qrows is None:
            return mine(
                q_all,
                index,
                positives,
                draw_sampler,
                n=m,
                seed=seed,
                filters=filters,
                chunk_size=chunk_size,
                exclude=exclude,
            )
        # mine() gives a query the same draws whatever slice it is mined in (query_offset
        # keeps its global index): mine only the runs of queries that need widening
        parts = []
        for a, z in _runs(np.asarray(qrows, np.int64)):
            parts.append(
                mine(
                    q_all[a:z],
                    index,
                    positives[a:z],
                    draw_sampler,
                    n=m,
                    seed=seed,
                    filters=filters,
                    chunk_size=chunk_size,
                    exclude=None if exclude is None else exclude[a:z],
                    query_offset=a,
                )
            )
        return Negatives.concat(parts, m, MiningStats(seed=seed))

    m0 = plan.first
    t0 = time.perf_counter()
    first = draw(m0, None)
    t_mine = time.perf_counter() - t0
    out = denoise(
        first,
        query_texts=query_texts,
        document_texts=document_texts,
        positives=positives,
        n=n,
        scorer=scorer,
        judge=judge,
        margins=margins,
        judge_keep=judge_keep,
        on_judge_failure=on_judge_failure,
        teacher_scores=teacher_scores,
        redraw=lambda m, qs: draw(m, qs),
        max_draws=cap,
        growth=growth,
        on_short=on_short,
        fn_action=fn_action,
        drop_above=drop_above,
        chunk_rows=chunk_rows,
        progress=progress,
    )
    out.stats.add_time("mine", t_mine)
    return out


def _runs(rows: IntArray, gap: int = 64) -> list[tuple[int, int]]:
    """Sorted unique ``rows`` as half-open ``[a, z)`` runs, joining runs less than ``gap``
    rows apart (a few extra queries mined cost less than many small mine calls)."""
    rows = np.unique(np.asarray(rows, np.int64))
    if rows.size == 0:
        return []
    cut = np.flatnonzero(np.diff(rows) > gap) + 1
    starts = np.concatenate([[0], cut])
    stops = np.concatenate([cut, [rows.size]])
    return [(int(rows[a]), int(rows[b - 1]) + 1) for a, b in zip(starts, stops, strict=True)]
