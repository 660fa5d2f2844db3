"""Named result types shared by every part of the pipeline."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["Candidates", "MiningStats", "Negatives", "ReuseStats", "SearchResult"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


class SearchResult(NamedTuple):
    """What an :class:`~negsample.index.Index` returns, in the faiss ``(n, k)`` convention.

    ``scores`` is float32 ``(n, k)`` sorted best first (higher = more similar); ``ids`` is
    int64 ``(n, k)``, ``-1`` where fewer than ``k`` results exist.
    """

    scores: FloatArray
    ids: IntArray


class Candidates(NamedTuple):
    """Candidate negatives for a batch of queries, best first.

    ``ids`` int64 ``(b, K)`` corpus rows (``-1`` = no candidate), ``scores`` float32 ``(b, K)``
    with ``s(q, d)``. This is what an index search, a BM25 run or a TREC run file gives.
    """

    ids: IntArray
    scores: FloatArray


@dataclass
class MiningStats:
    """Counters collected while mining; every dropped or replaced item is counted here.

    Attributes
    ----------
    n_queries : queries given to the sampler.
    n_rows : rows of output (``positive_anchor="each"`` gives one row per positive,
        ``on_shortfall="drop"`` removes rows).
    candidates_seen : candidate slots returned by the search (``-1`` padding excluded).
    removed : candidates removed before sampling, by reason (``"positive"`` always;
        then each filter by name). A candidate is counted under the first reason that
        removes it.
    short_rows : rows for which the sampler found fewer than ``n`` negatives in its region.
    filled : slots filled from outside the sampler's region (``on_shortfall="fill"``).
    padded : slots left as ``-1`` (``on_shortfall="pad"``, or ``"fill"`` that ran dry).
    dropped_rows : rows removed by ``on_shortfall="drop"``.
    duplicate_positives : repeated ids in a query's positives (each counts once).
    deep_searches : queries searched a second time, deeper and alone, because their
        positives (and excluded ids) crowded the first pass (see ``mine``).
    skipped_anchors : positives that could not anchor a row of their own
        (``positive_anchor="each"``) because their score ``s(q, d+)`` is unknown.
    seed : the integer seed actually used (drawn at random when ``seed=None``).
    timings : seconds spent per phase (``"search"``, ``"sample"``...).
    emptied : queries left with no candidate at all by the filters, by the filter that
        removed their last candidates (a margin or cap set too tight; see
        :class:`~negsample.Filters`).
    other_positives : sampled negatives that are a labelled positive of another query of
        the set mined together (the queries of one ``mine()`` call, or of a whole
        resumable run); counted always, removed only with ``exclude_other_positives``
        (docs/filters.md).
    reuse : the cross-query reuse cap's counts (:class:`ReuseStats`), ``None`` when no
        cap was applied (``max_negative_reuse``; docs/algorithms.md).
    """

    n_queries: int = 0
    n_rows: int = 0
    candidates_seen: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    short_rows: int = 0
    filled: int = 0
    padded: int = 0
    dropped_rows: int = 0
    duplicate_positives: int = 0
    deep_searches: int = 0
    skipped_anchors: int = 0
    seed: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    emptied: dict[str, int] = field(default_factory=dict)
    other_positives: int = 0
    reuse: ReuseStats | None = None

    def __post_init__(self) -> None:
        if isinstance(self.reuse, Mapping):  # read back from JSON (a chunk file)
            self.reuse = ReuseStats(**self.reuse)

    def count_removed(self, reason: str, count: int) -> None:
        self.removed[reason] = self.removed.get(reason, 0) + int(count)

    def add_time(self, phase: str, seconds: float) -> None:
        self.timings[phase] = self.timings.get(phase, 0.0) + float(seconds)

    def merge(self, other: MiningStats) -> None:
        """Add ``other``'s counters into this one (used to combine chunks)."""
        for f in _COUNTERS:
            setattr(self, f, getattr(self, f) + getattr(other, f))
        for reason, count in other.removed.items():
            self.count_removed(reason, count)
        for phase, seconds in other.timings.items():
            self.add_time(phase, seconds)
        for name, count in other.emptied.items():
            self.emptied[name] = self.emptied.get(name, 0) + int(count)
        if other.reuse is not None:
            if self.reuse is None:
                self.reuse = dataclasses.replace(other.reuse)
            else:
                self.reuse.merge(other.reuse)
        if self.seed is None:
            self.seed = other.seed

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_COUNTERS = (
    "n_queries",
    "n_rows",
    "candidates_seen",
    "short_rows",
    "filled",
    "padded",
    "dropped_rows",
    "duplicate_positives",
    "deep_searches",
    "skipped_anchors",
    "other_positives",
)


@dataclass
class ReuseStats:
    """What the cross-query reuse cap did (``max_negative_reuse``; the rule is in
    docs/algorithms.md, "Negatives reused across queries").

    Attributes
    ----------
    max_reuse : the cap ``N``: rows one document may be a negative of.
    draws : draws mined per row (the cap's spares: a row that loses a draw takes its next).
    removed : (row, document) draws the cap refused (each one a draw its row would have
        kept without the cap, at the time it was refused).
    documents_capped : documents wanted by more than ``max_reuse`` rows (each kept by
        exactly ``max_reuse`` rows).
    rows_short : rows left with fewer than ``n`` negatives because of the cap (they had
        ``n`` valid draws); with ``on_shortfall="drop"``, the rows dropped because of it.
    slots_short : the negatives those rows miss (``pad``).
    max_before, max_after : the most rows one document is a negative of, in the first
        ``n`` draws (the output without the cap) and in the output.
    rounds : rounds of the pass (each round, every row that lost a draw takes its next).
    """

    max_reuse: int
    draws: int
    removed: int = 0
    documents_capped: int = 0
    rows_short: int = 0
    slots_short: int = 0
    max_before: int = 0
    max_after: int = 0
    rounds: int = 0

    def merge(self, other: ReuseStats) -> None:
        """Add ``other``'s counts (two capped parts put together)."""
        for f in ("removed", "documents_capped", "rows_short", "slots_short", "rounds"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.max_before = max(self.max_before, other.max_before)
        self.max_after = max(self.max_after, other.max_after)

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"reuse cap {self.max_reuse} (over {self.draws} draws per row): "
            f"{self.removed} draws refused, {self.documents_capped} documents capped, "
            f"{self.rows_short} rows short because of it ({self.slots_short} negatives "
            f"missing); most rows per document {self.max_before} before, {self.max_after} "
            f"after, {self.rounds} rounds"
        )


@dataclass(frozen=True)
class Negatives:
    """Sampled negatives, one row per (query, anchor).

    Attributes
    ----------
    ids : int64 ``(rows, n)`` corpus row indices, ``-1`` where a row is short.
    scores : float32 ``(rows, n)`` ``s(q, d-)``; NaN where the id is ``-1``.
    query_index : int64 ``(rows,)`` the query each row belongs to. Equal to
        ``arange(n_queries)`` unless rows were dropped or expanded per positive.
    anchor_ids : int64 ``(rows,)`` the positive a row was sampled against, ``-1`` when the
        sampler uses no single positive.
    stats : :class:`MiningStats`.
    """

    ids: IntArray
    scores: FloatArray
    query_index: IntArray
    anchor_ids: IntArray
    stats: MiningStats

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def concat(cls, parts: Sequence[Negatives], n: int, stats: MiningStats) -> Negatives:
        """Rows of ``parts`` one after the other (an empty result with ``n`` columns if none)."""
        if not parts:
            return cls(
                np.empty((0, n), np.int64),
                np.empty((0, n), np.float32),
                np.empty(0, np.int64),
                np.empty(0, np.int64),
                stats,
            )
        return cls(
            ids=np.concatenate([p.ids for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            query_index=np.concatenate([p.query_index for p in parts]),
            anchor_ids=np.concatenate([p.anchor_ids for p in parts]),
            stats=stats,
        )

    @property
    def n(self) -> int:
        return int(self.ids.shape[1])

    def per_query(self) -> Mapping[int, IntArray]:
        """Valid negative ids grouped by query index (``-1`` padding removed)."""
        out: dict[int, list[IntArray]] = {}
        for q, row in zip(self.query_index.tolist(), self.ids, strict=True):
            out.setdefault(q, []).append(row[row >= 0])
        return {q: np.concatenate(v) for q, v in out.items()}
