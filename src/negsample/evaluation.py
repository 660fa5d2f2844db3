"""Measuring negatives against labels: false-negative rate and hardness, and the
hidden-positive protocol (docs/algorithms.md, "Comparing samplers") that compares samplers on both."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ._ragged import to_ragged
from ._rng import normalize_seed, uniform
from ._types import Negatives
from ._validate import as_matrix, pad_positives
from .errors import InputError

if TYPE_CHECKING:
    from .filters import Filters
    from .index.base import Index
    from .samplers.base import BaseSampler

__all__ = [
    "HiddenSplit",
    "NegativeQuality",
    "ProtocolRow",
    "ProtocolSummary",
    "hidden_positive_protocol",
    "hide_positives",
    "negative_quality",
    "summarize",
    "summary_table",
]

# random stream of the shown-positive choice; far from the samplers' streams (_rng.Stream)
_SHOWN_STREAM = 1 << 16


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
        raise InputError(
            f"relevant has {len(relevant)} entries but the negatives name query "
            f"{int(negatives.query_index.max())}"
        )
    rel = to_ragged(list(relevant), len(relevant), None, "relevant", allow_empty=True)
    ids = negatives.ids
    valid = ids >= 0
    is_fn = valid & rel.take(negatives.query_index).contains(ids)
    n_valid = int(valid.sum())
    return NegativeQuality(
        fn_rate=float(is_fn.sum() / n_valid) if n_valid else float("nan"),
        hardness=float(np.nanmean(negatives.scores[valid])) if n_valid else float("nan"),
        n_negatives=n_valid,
        false_negatives=int(is_fn.sum()),
        short_rows=negatives.stats.short_rows,
        padded=negatives.stats.padded,
    )


# -- the hidden-positive protocol ---------------------------------------------------------


class HiddenSplit(NamedTuple):
    """Which positive the sampler is shown, per evaluated query.

    Attributes
    ----------
    query_rows : int64 ``(m,)`` rows of the original query set that have two or more
        distinct positives (the only ones evaluated), ascending.
    shown : int64 ``(m,)`` the one positive given to the sampler, per evaluated query.
    hidden : list of ``m`` int64 arrays, the other positives (sorted): a sampled negative
        that is one of them is a false negative.
    """

    query_rows: npt.NDArray[np.int64]
    shown: npt.NDArray[np.int64]
    hidden: list[npt.NDArray[np.int64]]


def hide_positives(positives: Any, seed: int, n_corpus: int | None = None) -> HiddenSplit:
    """Pick, for every query with at least two distinct positives, the one positive the
    sampler is shown; the others are hidden.

    The rule: sort the query's distinct positives by id and take the ``floor(u * count)``-th,
    with ``u`` uniform in (0, 1) from a counter-based stream of ``(seed, query row)``. So
    the choice does not depend on the order the positives are listed in, nor on which other
    queries are present, and differs between seeds.

    Parameters
    ----------
    positives : one sequence of corpus row ids per query (ragged), or an int ``(n, P)``
        array padded with ``-1``. Duplicate ids count once.
    seed : non-negative int.
    n_corpus : corpus size, to check the ids (optional).

    Returns
    -------
    HiddenSplit

    Examples
    --------
    >>> import negsample as ns
    >>> split = ns.hide_positives([[4, 7, 9], [2], [5, 1]], seed=0)
    >>> split.query_rows.tolist(), len(split.hidden[0]), len(split.hidden[1])
    ([0, 2], 2, 1)
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    n_q = positives.shape[0] if isinstance(positives, np.ndarray) else len(positives)
    pos = pad_positives(positives, n_q, n_corpus)
    # distinct ids per row, sorted, -1 padding last
    srt = np.sort(np.where(pos >= 0, pos, np.iinfo(np.int64).max), axis=1)
    dup = np.zeros(srt.shape, dtype=bool)
    dup[:, 1:] = srt[:, 1:] == srt[:, :-1]
    srt = np.where(dup, np.iinfo(np.int64).max, srt)
    srt = np.sort(srt, axis=1)
    count = (srt != np.iinfo(np.int64).max).sum(axis=1)
    rows = np.flatnonzero(count >= 2).astype(np.int64)
    u = uniform(int(seed), rows, 1, _SHOWN_STREAM)[:, 0]
    pick = np.minimum((u * count[rows]).astype(np.int64), count[rows] - 1)
    shown = srt[rows, pick]
    hidden = [
        np.delete(srt[r, : count[r]], p).astype(np.int64)
        for r, p in zip(rows.tolist(), pick.tolist(), strict=True)
    ]
    return HiddenSplit(rows, shown.astype(np.int64), hidden)


@dataclass(frozen=True)
class ProtocolRow:
    """One (sampler, seed) result of :func:`hidden_positive_protocol`.

    Attributes
    ----------
    label : the name the sampler was given (its ``repr`` when given as a list).
    sampler : the sampler's ``repr`` (parses back with ``negsample.sampler_from_string``).
    seed : the seed of the shown-positive choice and of the sampler.
    n : negatives requested per query.
    n_queries : queries evaluated (those with two or more distinct positives).
    n_negatives : valid (non-padding) negatives sampled.
    false_negatives : sampled negatives that are hidden positives.
    fn_rate : ``false_negatives / n_negatives``.
    hardness : mean ``s(q, d-)`` of the sampled negatives.
    short_rows, padded, filled, dropped_rows : shortfall counters from the mining stats.
    seconds : wall time of the ``mine()`` call.
    """

    label: str
    sampler: str
    seed: int
    n: int
    n_queries: int
    n_negatives: int
    false_negatives: int
    fn_rate: float
    hardness: float
    short_rows: int
    padded: int
    filled: int
    dropped_rows: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def hidden_positive_protocol(
    queries: Any,
    index: Index,
    positives: Any,
    samplers: Sequence[BaseSampler] | Mapping[str, BaseSampler],
    *,
    n: int = 7,
    seeds: Sequence[int] = (0, 1, 2),
    filters: Filters | None = None,
    chunk_size: int | None = None,
) -> list[ProtocolRow]:
    """Measure samplers' false negatives and hardness with the hidden-positive protocol.

    For every query with two or more labelled positives, one positive is shown to the
    sampler (chosen per seed by :func:`hide_positives`) and the others are hidden;
    :func:`negsample.mine` then samples ``n`` negatives per query, excluding only the shown
    positive, and a sampled negative that is a hidden positive counts as a false negative.
    Queries with a single positive are left out. FN rate alone rewards easy negatives, so
    every row also reports the hardness, mean ``s(q, d-)``: compare samplers as a
    frontier of the two.

    Parameters
    ----------
    queries : ``(n_queries, dim)`` float array.
    index : an :class:`~negsample.index.Index` over the corpus.
    positives : one sequence of corpus row ids per query (ragged), or an int ``(n, P)``
        array padded with ``-1``.
    samplers : the samplers to measure, as a list (labelled by their ``repr``) or a mapping
        ``{label: sampler}``.
    n : negatives per query.
    seeds : one run per seed, for each sampler.
    filters, chunk_size : passed to :func:`negsample.mine`.

    Returns
    -------
    list of ProtocolRow
        One row per (sampler, seed), samplers in the order given, then seeds. Aggregate
        over seeds with :func:`summarize`.

    Examples
    --------
    >>> import negsample as ns
    >>> data = ns.make_synthetic(3000, 100, 32, seed=0)
    >>> rows = ns.hidden_positive_protocol(
    ...     data.queries, ns.NumpyIndex(data.corpus), data.positives,
    ...     {"topk-50": ns.TopKSampler(k=50), "random": ns.RandomSampler()}, n=5, seeds=(0, 1))
    >>> [(r.label, r.seed) for r in rows]
    [('topk-50', 0), ('topk-50', 1), ('random', 0), ('random', 1)]
    >>> print(ns.summary_table(ns.summarize(rows)))  # doctest: +SKIP
    """
    from .mining import mine

    if isinstance(samplers, Mapping):
        labelled = [(str(k), v) for k, v in samplers.items()]
    else:
        labelled = [(repr(s), s) for s in samplers]
        dup = {lab for lab in (x for x, _ in labelled) if sum(y == lab for y, _ in labelled) > 1}
        if dup:
            raise InputError(f"the same sampler is listed twice: {sorted(dup)[0]}")
    if not labelled:
        raise InputError("no samplers given")
    seeds = [int(normalize_seed(s)) for s in seeds]
    if not seeds:
        raise InputError("no seeds given")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"seeds repeat: {seeds}")
    for _, sampler in labelled:  # refuse before any work is done
        sampler.check_n(n)
    q_all = as_matrix(queries, "queries", dim=index.dim)
    n_q = q_all.shape[0]
    pos = pad_positives(positives, n_q, index.ntotal)

    rows: list[ProtocolRow] = []
    splits = {seed: hide_positives(pos, seed, index.ntotal) for seed in seeds}
    if splits[seeds[0]].query_rows.size == 0:
        raise InputError("no query has two or more distinct positives: nothing can be hidden")
    q_sub = np.ascontiguousarray(q_all[splits[seeds[0]].query_rows])
    for label, sampler in labelled:
        for seed in seeds:
            split = splits[seed]
            t0 = time.perf_counter()
            negs = mine(
                q_sub,
                index,
                split.shown[:, None],
                sampler=sampler,
                n=n,
                seed=seed,
                filters=filters,
                chunk_size=chunk_size,
            )
            seconds = time.perf_counter() - t0
            qual = negative_quality(negs, split.hidden)
            st = negs.stats
            rows.append(
                ProtocolRow(
                    label=label,
                    sampler=repr(sampler),
                    seed=seed,
                    n=n,
                    n_queries=int(split.query_rows.size),
                    n_negatives=qual.n_negatives,
                    false_negatives=qual.false_negatives,
                    fn_rate=qual.fn_rate,
                    hardness=qual.hardness,
                    short_rows=st.short_rows,
                    padded=st.padded,
                    filled=st.filled,
                    dropped_rows=st.dropped_rows,
                    seconds=seconds,
                )
            )
    return rows


@dataclass(frozen=True)
class ProtocolSummary:
    """Mean and spread over seeds of one sampler's :class:`ProtocolRow`.

    ``*_std`` is the sample standard deviation over seeds (``ddof=1``; NaN with one seed).
    ``short_rows_mean``, ``filled_mean`` and ``padded_mean`` are means over seeds.
    """

    label: str
    sampler: str
    n_seeds: int
    n_queries: int
    fn_rate_mean: float
    fn_rate_std: float
    hardness_mean: float
    hardness_std: float
    false_negatives_mean: float
    n_negatives_mean: float
    short_rows_mean: float
    filled_mean: float
    padded_mean: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def summarize(rows: Sequence[ProtocolRow]) -> list[ProtocolSummary]:
    """Aggregate :func:`hidden_positive_protocol` rows over seeds, one summary per label,
    in the order the labels first appear."""
    groups: dict[str, list[ProtocolRow]] = {}
    for r in rows:
        groups.setdefault(r.label, []).append(r)
    out = []
    for label, g in groups.items():
        if len({r.sampler for r in g}) > 1:
            raise InputError(f"label {label!r} names two different samplers")

        def stat(name: str, g: list[ProtocolRow] = g) -> tuple[float, float]:
            v = np.array([getattr(r, name) for r in g], dtype=np.float64)
            return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan

        fn_m, fn_s = stat("fn_rate")
        h_m, h_s = stat("hardness")
        out.append(
            ProtocolSummary(
                label=label,
                sampler=g[0].sampler,
                n_seeds=len(g),
                n_queries=g[0].n_queries,
                fn_rate_mean=fn_m,
                fn_rate_std=fn_s,
                hardness_mean=h_m,
                hardness_std=h_s,
                false_negatives_mean=stat("false_negatives")[0],
                n_negatives_mean=stat("n_negatives")[0],
                short_rows_mean=stat("short_rows")[0],
                filled_mean=stat("filled")[0],
                padded_mean=stat("padded")[0],
            )
        )
    return out


def summary_table(summaries: Sequence[ProtocolSummary]) -> str:
    """A Markdown table of :func:`summarize` output (FN rate in percent, mean +- std)."""
    lines = [
        "| sampler | FN rate (%) | hardness mean s(q,d-) | false negatives / negatives "
        "| short rows | filled | padded |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.label} | {100 * s.fn_rate_mean:.2f} ± {100 * s.fn_rate_std:.2f} "
            f"| {s.hardness_mean:.4f} ± {s.hardness_std:.4f} "
            f"| {s.false_negatives_mean:.1f} / {s.n_negatives_mean:.0f} "
            f"| {s.short_rows_mean:.4g} | {s.filled_mean:.4g} | {s.padded_mean:.4g} |"
        )
    return "\n".join(lines)
