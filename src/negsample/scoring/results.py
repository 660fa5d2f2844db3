"""What the denoising step returns: :class:`Denoised`, its counters :class:`DenoiseStats`
and the teacher scores for distillation, :class:`TeacherScores`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import Negatives
from ..errors import InputError
from .base import ScoringStats

__all__ = ["DenoiseStats", "Denoised", "TeacherScores"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass
class DenoiseStats:
    """What the denoising step asked and removed.

    Attributes
    ----------
    n : negatives wanted per row.
    rows, queries : rows and distinct queries processed (before ``on_short="drop"``).
    candidates_checked : draws sent to the scorer or the judge (each once per row). Divided
        by ``queries`` (:attr:`pairs_per_query`) it is the cost of denoising per query.
    pairs_scored : (query, candidate) pairs given to the scorer.
    positive_pairs_scored : (query, positive) pairs given to the scorer.
    pairs_judged : (query, positive, candidate) items given to the judge.
    labels : the judge's labels, ``"FN"``, ``"TN"``, ``"HN"`` and ``"failed"`` (no label).
    removed : candidates rejected, by reason: ``"max_score"``, ``"min_score"``,
        ``"absolute_margin"``, ``"relative_margin"`` (teacher scores), ``"judge_fn"``,
        ``"judge_label"`` (a label outside ``judge_keep``), ``"judge_failed"``
        (``on_judge_failure="skip"``), ``"judge_fn_elsewhere"`` (``fn_action="relabel"``: a
        kept negative that another row of its query had labelled FN, now a positive).
    failed_kept : candidates kept although the judge gave no label
        (``on_judge_failure="keep"``).
    kept : negatives written (valid slots of the output).
    extra_positives : FN-labelled candidates returned as extra positives (per output row).
    fn_action : what was done with the false negatives: ``"remove"``, ``"relabel"`` or
        ``"drop-query"``.
    relabelled : documents added to their query's positives (``fn_action="relabel"``;
        each (query, document) once).
    dropped_queries, dropped_query_rows : queries dropped by ``fn_action="drop-query"``
        (more than ``drop_above`` distinct FNs) and their rows, absent from the output.
    short_rows : output rows with fewer than ``n`` negatives; ``padded``: their ``-1``
        slots; ``dropped_rows``: rows removed by ``on_short="drop"``.
    widened_rows, redraw_calls : rows drawn again with more draws, and the calls made.
    max_draws : the widest draw used for any row.
    scorer, judge : the scorer's and the judge's own counters during this call (requests,
        cache hits, retries, timeouts, malformed answers, failures).
    seconds : wall time per phase (``"score"``, ``"judge"``, ``"redraw"``).
    """

    n: int = 0
    rows: int = 0
    queries: int = 0
    candidates_checked: int = 0
    pairs_scored: int = 0
    positive_pairs_scored: int = 0
    pairs_judged: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    failed_kept: int = 0
    kept: int = 0
    extra_positives: int = 0
    fn_action: str = ""
    relabelled: int = 0
    dropped_queries: int = 0
    dropped_query_rows: int = 0
    short_rows: int = 0
    padded: int = 0
    dropped_rows: int = 0
    widened_rows: int = 0
    redraw_calls: int = 0
    max_draws: int = 0
    scorer: ScoringStats | None = None
    judge: ScoringStats | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def pairs_per_query(self) -> float:
        """Candidates checked per query (NaN with no query)."""
        return self.candidates_checked / self.queries if self.queries else float("nan")

    def count(self, table: str, key: str, k: int = 1) -> None:
        d = getattr(self, table)
        d[key] = d.get(key, 0) + int(k)

    def add_time(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + float(seconds)

    def merge(self, other: DenoiseStats) -> DenoiseStats:
        """Add ``other``'s counters (another part of the same run) into this one."""
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "n":
                self.n = self.n or b
            elif f.name == "fn_action":
                self.fn_action = self.fn_action or b
            elif f.name == "max_draws":
                self.max_draws = max(a, b)
            elif isinstance(a, dict):
                for k, v in b.items():
                    a[k] = a.get(k, 0) + v
            elif f.name in ("scorer", "judge"):
                if b is not None:
                    setattr(self, f.name, b.copy() if a is None else a.merge(b))
            else:
                setattr(self, f.name, a + b)
        return self

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.as_dict() if isinstance(v, ScoringStats) else v
        out["pairs_per_query"] = self.pairs_per_query
        return out


@dataclass(frozen=True)
class TeacherScores:
    """Teacher scores for distillation, aligned with what the writers take.

    Attributes
    ----------
    negative : float32 ``(rows, n)`` ``s_teacher(q, d-)`` aligned with ``negatives.ids``
        (NaN where the id is -1).
    positive : one float32 array per query (indexed by query index, like ``positives``),
        ``s_teacher(q, d+)`` for each of the query's positives in their order; NaN for a
        query that had no row.
    anchor : float64 ``(rows,)`` the ``s+`` the margins were computed against (NaN without
        margins).
    scorer : the scorer's name.
    """

    negative: FloatArray
    positive: list[FloatArray]
    anchor: npt.NDArray[np.float64]
    scorer: str


@dataclass(frozen=True)
class Denoised:
    """The result of :func:`denoise` / :func:`mine_denoised`.

    Attributes
    ----------
    negatives : the kept negatives, ``(rows, n)``, each row's survivors in draw order;
        ``scores`` are still the retriever's ``s(q, d-)`` (hardness stays comparable).
        ``stats`` is the mining stats with the output's row, short and padding counts
        and the denoising removals added under ``removed``.
    teacher : teacher scores (``None`` without a scorer or with ``teacher_scores=False``).
    extra_positives : per output row, the ids the judge labelled FN (draw order).
    checked_per_row : int64 ``(rows,)`` candidates checked for each output row.
    stats : :class:`DenoiseStats`.
    positives : per query index, the positives to train with: the labelled ones, then
        (``fn_action="relabel"``) the documents the judge labelled FN for the query, in row
        and draw order, each once. With ``"remove"`` and ``"drop-query"`` the labelled
        positives as given. :meth:`with_positives` puts them in a dataset for the writers.
    dropped_queries : int64, the query indices dropped by ``fn_action="drop-query"`` (none
        of their rows is in ``negatives``).
    """

    negatives: Negatives
    teacher: TeacherScores | None
    extra_positives: list[IntArray]
    checked_per_row: IntArray
    stats: DenoiseStats
    positives: list[IntArray] = field(default_factory=list)
    dropped_queries: IntArray = field(default_factory=lambda: np.empty(0, np.int64))

    def with_positives(self, dataset: Any) -> Any:
        """``dataset`` (a :class:`negsample.BeirDataset`) with :attr:`positives` as its
        positives, for :func:`negsample.write_negatives`: relabelled false negatives become
        positives of their query in every format (relevance ``dataset.min_relevance``).
        The dataset itself is not changed (a copy is returned)."""
        old = list(dataset.positives)
        if len(self.positives) != len(old):
            raise InputError(
                f"the dataset has {len(old)} queries, these results {len(self.positives)}"
            )
        relevance = []
        for q, (before, now) in enumerate(zip(old, self.positives, strict=True)):
            rel = np.asarray(dataset.relevance[q], np.int64)
            if now.size < before.size or not np.array_equal(now[: before.size], before):
                raise InputError(f"query {q}: these results were not made from this dataset")
            extra = np.full(now.size - before.size, int(dataset.min_relevance), np.int64)
            relevance.append(np.concatenate([rel, extra]) if extra.size else rel)
        return dataclasses.replace(dataset, positives=list(self.positives), relevance=relevance)

    def teacher_negatives(self) -> Negatives:
        """``negatives`` with the teacher's ``s(q, d-)`` as scores: pass it to
        :func:`negsample.write_negatives` with ``scores=True,
        positive_scores=teacher.positive`` to write distillation scores."""
        if self.teacher is None:
            raise InputError("no teacher scores: denoise with a scorer and teacher_scores=True")
        return dataclasses.replace(self.negatives, scores=self.teacher.negative)
