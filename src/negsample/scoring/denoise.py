"""Denoising beyond geometry: a teacher's scores and a judge's labels applied to a sampler's
draws, composable with every sampler.

Every sampler emits a row's negatives in draw order, and its first ``n`` of ``m`` draws are
exactly the ``n`` draws it makes when asked for ``n`` (``BaseSampler.max_n``). So a row is
denoised by walking its draws in order and asking the scorer and the judge only about as
many as are still needed: the first ``n`` draws that pass are kept. When a row runs out of
draws it is widened (the sampler is asked again for more draws, up to what its region holds)
and, if it still runs short, it is counted as short. The result is the output the sampler
would give if it had never drawn the rejected candidates, and it depends only on each row's
draws and on the answers, never on how rows are chunked.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._types import MiningStats, Negatives
from ..filters import SCORE_RULES, ScoreRules, anchor_reduce
from .base import LABELS, Judge, JudgeItem, Scorer, ScoringStats

if TYPE_CHECKING:
    from ..filters import Filters
    from ..index.base import Index
    from ..samplers.base import BaseSampler

__all__ = [
    "DenoiseStats",
    "Denoised",
    "Margins",
    "TeacherScores",
    "denoise",
    "mine_denoised",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
Redraw = Callable[[int, IntArray], Negatives]

_ON_FAILURE = ("skip", "keep", "raise")
_ON_SHORT = ("pad", "drop")
_UNLIMITED_DRAWS = 32  # draws per negative for a sampler without a region (RandomSampler)


@dataclass(frozen=True, kw_only=True)
class Margins:
    """Filters on teacher scores, with sentence-transformers' names and conventions
    (``mine_hard_negatives(cross_encoder=...)``; NV-Retriever's TopK-MarginPos and
    TopK-PercPos, Moreira et al. 2024).

    A candidate is kept when every rule holds (strict inequalities; sentence-transformers
    keeps exact ties, which only matters for equal floats):

    - ``max_score``: ``s- < max_score``; ``min_score``: ``s- > min_score``;
    - ``absolute_margin=m``: ``s- < s+ - m``;
    - ``relative_margin=r``: ``s- < s+ - |s+| * r``, ``r`` in ``[0, 1]``, sign-safe (for
      ``s+ < 0`` the naive ``(1 - r) * s+`` would keep negatives scored above the
      positive). ``r = 0.05`` is NV-Retriever's ``p = 0.95``.

    These are the rules of :class:`negsample.Filters`, with the same names, limits and
    order, applied to teacher scores: both run on one engine,
    :class:`negsample.filters.ScoreRules`.

    ``s+`` is the teacher's score of the query's positives, taken by ``anchor``:
    ``"min"`` (default, as sentence-transformers and NV-Retriever), ``"max"`` or ``"mean"``.
    A candidate failing several rules is counted under the first, in the order above.

    Examples
    --------
    >>> from negsample.scoring import Margins
    >>> m = Margins(relative_margin=0.05)
    >>> m.keep([0.9, 0.96, -2.2, -2.0], [1.0, 1.0, -2.0, -2.0])[0].tolist()
    [True, False, True, False]
    """

    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None
    anchor: str = "min"

    def __post_init__(self) -> None:
        _ = self.rules  # validates: one set of limits with Filters (ScoreRules)

    @property
    def rules(self) -> ScoreRules:
        """These margins as the shared engine :class:`negsample.filters.ScoreRules`."""
        return ScoreRules(
            absolute_margin=self.absolute_margin,
            relative_margin=self.relative_margin,
            max_score=self.max_score,
            min_score=self.min_score,
            anchor=self.anchor,
        )

    @property
    def needs_positive(self) -> bool:
        return self.rules.needs_positive

    @property
    def is_noop(self) -> bool:
        return self.rules.is_noop

    def keep(self, negative: Any, positive: Any) -> tuple[npt.NDArray[np.bool_], IntArray]:
        """``(keep, reason)``: which candidates pass, and for the others the index of the
        first rule that removes them in ``("max_score", "min_score", "absolute_margin",
        "relative_margin")`` (-1 where kept). ``negative`` holds ``s-``, ``positive`` the
        matching ``s+`` (NaN allowed when no margin is set); both compared as float64."""
        s = np.asarray(negative, dtype=np.float64)
        sp = np.asarray(positive, dtype=np.float64)
        return self.rules.first_failing(s, sp)


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
        (``on_judge_failure="skip"``).
    failed_kept : candidates kept although the judge gave no label
        (``on_judge_failure="keep"``).
    kept : negatives written (valid slots of the output).
    extra_positives : FN-labelled candidates returned as extra positives.
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
    """

    negatives: Negatives
    teacher: TeacherScores | None
    extra_positives: list[IntArray]
    checked_per_row: IntArray
    stats: DenoiseStats

    def teacher_negatives(self) -> Negatives:
        """``negatives`` with the teacher's ``s(q, d-)`` as scores: pass it to
        :func:`negsample.write_negatives` with ``scores=True,
        positive_scores=teacher.positive`` to write distillation scores."""
        if self.teacher is None:
            raise ValueError("no teacher scores: denoise with a scorer and teacher_scores=True")
        return dataclasses.replace(self.negatives, scores=self.teacher.negative)


# -- the step --------------------------------------------------------------------------------


class _Context:
    """What every chunk shares: texts, positives, the scorer and judge, settings, the
    teacher scores of positives already computed."""

    def __init__(
        self,
        *,
        n: int,
        query_texts: Sequence[str],
        document_texts: Sequence[str],
        positives: list[IntArray],
        scorer: Scorer | None,
        judge: Judge | None,
        margins: Margins | None,
        judge_keep: frozenset[str],
        on_judge_failure: str,
        teacher_scores: bool,
        stats: DenoiseStats,
    ) -> None:
        self.n = n
        self.qt = query_texts
        self.dt = document_texts
        self.positives = positives
        self.scorer = scorer
        self.judge = judge
        self.margins = margins if margins is not None and not margins.is_noop else None
        self.judge_keep = judge_keep
        self.on_judge_failure = on_judge_failure
        self.teacher_scores = teacher_scores
        self.stats = stats
        self.pos_teacher: dict[int, FloatArray] = {}
        self.use_scorer = scorer is not None and (self.margins is not None or teacher_scores)
        self.need_pos = scorer is not None and (
            teacher_scores or (self.margins is not None and self.margins.needs_positive)
        )

    def positive_scores(self, queries: IntArray) -> None:
        """Teacher scores of every positive of ``queries`` not scored yet."""
        assert self.scorer is not None
        new = [int(q) for q in np.unique(queries) if int(q) not in self.pos_teacher]
        if not new:
            return
        pairs = [(self.qt[q], self.dt[int(p)]) for q in new for p in self.positives[q]]
        t0 = time.perf_counter()
        s = _scores(self.scorer, pairs)
        self.stats.add_time("score", time.perf_counter() - t0)
        self.stats.positive_pairs_scored += len(pairs)
        at = 0
        for q in new:
            k = self.positives[q].size
            self.pos_teacher[q] = s[at : at + k]
            at += k

    def anchors(self, queries: IntArray) -> npt.NDArray[np.float64]:
        """``s+`` of each of ``queries`` by the margins' anchor policy (the engine's)."""
        assert self.margins is not None
        vals = [self.pos_teacher[int(q)] for q in queries]
        indptr = np.concatenate([[0], np.cumsum([v.size for v in vals])]).astype(np.int64)
        flat = np.concatenate(vals) if vals else np.empty(0, np.float32)
        return anchor_reduce(flat, indptr, self.margins.anchor)


def _scores(scorer: Scorer, pairs: list[tuple[str, str]]) -> FloatArray:
    if not pairs:
        return np.empty(0, np.float32)
    s = np.asarray(scorer.score(pairs), dtype=np.float32).reshape(-1)
    if s.shape[0] != len(pairs):
        raise RuntimeError(f"the scorer returned {s.shape[0]} scores for {len(pairs)} pairs")
    if not np.all(np.isfinite(s)):
        i = int(np.argmax(~np.isfinite(s)))
        raise ValueError(
            f"the scorer returned {s[i]} for pair {i} (query {pairs[i][0][:60]!r}); scores "
            "must be finite"
        )
    return s


def _row_keys(neg: Negatives) -> list[tuple[int, int, int]]:
    """(query index, anchor id, occurrence) per row: how rows of two draws are matched."""
    seen: dict[tuple[int, int], int] = {}
    out = []
    for q, a in zip(neg.query_index.tolist(), neg.anchor_ids.tolist(), strict=True):
        k = (q, a)
        occ = seen.get(k, 0)
        seen[k] = occ + 1
        out.append((q, a, occ))
    return out


class _Rows:
    """The state of every row: its draws (ragged; replaced by wider ones when widened), how
    far they were walked, and what was kept so far."""

    def __init__(self, ctx: _Context, negatives: Negatives) -> None:
        n, b = ctx.n, len(negatives)
        self.ctx = ctx
        self.query_index = negatives.query_index
        self.anchor_ids = negatives.anchor_ids
        self.keys = _row_keys(negatives)
        self.draw_ids: list[IntArray] = list(negatives.ids)
        self.draw_sc: list[FloatArray] = list(negatives.scores)
        self.ptr = np.zeros(b, np.int64)
        self.ids = np.full((b, n), -1, np.int64)
        self.scores = np.full((b, n), np.nan, np.float32)
        self.teacher = np.full((b, n), np.nan, np.float32)
        self.count = np.zeros(b, np.int64)
        self.checked = np.zeros(b, np.int64)
        self.extra: list[list[int]] = [[] for _ in range(b)]
        self.anchors = np.full(b, np.nan, np.float64)
        self.prepared = np.zeros(b, bool)

    def _prepare(self, rows: IntArray) -> None:
        """Teacher scores of the rows' positives and their ``s+`` (once per row)."""
        ctx = self.ctx
        rows = rows[~self.prepared[rows]]
        if rows.size == 0 or not ctx.need_pos:
            self.prepared[rows] = True
            return
        ctx.positive_scores(self.query_index[rows])
        if ctx.margins is not None and ctx.margins.needs_positive:
            self.anchors[rows] = ctx.anchors(self.query_index[rows])
        self.prepared[rows] = True

    def judge_positive(self, r: int) -> str:
        a = int(self.anchor_ids[r])
        p = a if a >= 0 else int(self.ctx.positives[int(self.query_index[r])][0])
        return self.ctx.dt[p]

    def process(self, rows: IntArray) -> None:
        """Walk ``rows`` until each has ``n`` negatives or has run out of draws."""
        ctx, n, st = self.ctx, self.ctx.n, self.ctx.stats
        self._prepare(rows)
        while True:
            # the next draws of every row still short: exactly as many as it still needs
            cand_row: list[int] = []
            cand_pos: list[int] = []
            for r in rows.tolist():
                need = n - int(self.count[r])
                if need <= 0:
                    continue
                row = self.draw_ids[r]
                p = int(self.ptr[r])
                while need > 0 and p < row.size:
                    if row[p] >= 0:
                        cand_row.append(r)
                        cand_pos.append(p)
                        need -= 1
                    p += 1
                self.ptr[r] = p
            if not cand_row:
                return
            rr = np.asarray(cand_row, np.int64)
            pp = np.asarray(cand_pos, np.int64)
            dd = np.array([self.draw_ids[r][p] for r, p in zip(cand_row, cand_pos, strict=True)])
            dd = dd.astype(np.int64)
            np.add.at(self.checked, rr, 1)
            st.candidates_checked += rr.size
            ok = np.ones(rr.size, bool)
            teach = np.full(rr.size, np.nan, np.float32)
            qi = self.query_index
            if ctx.use_scorer:
                assert ctx.scorer is not None
                pairs = [(ctx.qt[int(qi[r])], ctx.dt[int(d)]) for r, d in zip(rr, dd, strict=True)]
                t0 = time.perf_counter()
                teach = _scores(ctx.scorer, pairs)
                st.add_time("score", time.perf_counter() - t0)
                st.pairs_scored += len(pairs)
                if ctx.margins is not None:
                    ok, reason = ctx.margins.keep(teach, self.anchors[rr])
                    for i, name in enumerate(SCORE_RULES):
                        k = int((reason == i).sum())
                        if k:
                            st.count("removed", name, k)
            if ctx.judge is not None and ok.any():
                self._judge(rr, dd, ok)
            # keep the survivors; candidates are listed row by row in draw order
            for i in np.flatnonzero(ok).tolist():
                r, p = int(rr[i]), int(pp[i])
                c = int(self.count[r])
                self.ids[r, c] = self.draw_ids[r][p]
                self.scores[r, c] = self.draw_sc[r][p]
                self.teacher[r, c] = teach[i]
                self.count[r] = c + 1

    def _judge(self, rr: IntArray, dd: IntArray, ok: npt.NDArray[np.bool_]) -> None:
        ctx, st = self.ctx, self.ctx.stats
        assert ctx.judge is not None
        idx = np.flatnonzero(ok)
        qi = self.query_index
        items = [
            JudgeItem(ctx.qt[int(qi[rr[i]])], self.judge_positive(int(rr[i])), ctx.dt[int(dd[i])])
            for i in idx
        ]
        t0 = time.perf_counter()
        labels = list(ctx.judge.judge(items))
        st.add_time("judge", time.perf_counter() - t0)
        if len(labels) != len(items):
            raise RuntimeError(f"the judge returned {len(labels)} labels for {len(items)} items")
        st.pairs_judged += len(items)
        for i, lab in zip(idx.tolist(), labels, strict=True):
            if lab is None or lab not in LABELS:
                st.count("labels", "failed")
                if ctx.on_judge_failure == "raise":
                    raise RuntimeError(
                        f"the judge gave no label for query {int(qi[rr[i]])}, document "
                        f"{int(dd[i])} (on_judge_failure='raise')"
                    )
                if ctx.on_judge_failure == "skip":
                    ok[i] = False
                    st.count("removed", "judge_failed")
                else:
                    st.failed_kept += 1
                continue
            st.count("labels", lab)
            if lab == "FN":
                ok[i] = False
                st.count("removed", "judge_fn")
                self.extra[int(rr[i])].append(int(dd[i]))
            elif lab not in ctx.judge_keep:
                ok[i] = False
                st.count("removed", "judge_label")

    def to_widen(self, cap: int) -> IntArray:
        """Rows still short whose draws may go on: every draw so far valid (a ``-1`` means
        the sampler's region ran dry) and fewer than ``cap`` of them."""
        out = [
            r
            for r in np.flatnonzero(self.count < self.ctx.n).tolist()
            if self.draw_ids[r].size < cap and bool(np.all(self.draw_ids[r] >= 0))
        ]
        return np.asarray(out, np.int64)

    def widen(self, rows: IntArray, redraw: Redraw, cap: int, growth: float) -> None:
        """Draw ``rows`` again, wider; the new draws must start with the old ones."""
        st = self.ctx.stats
        cur = max(self.draw_ids[int(r)].size for r in rows)
        m2 = min(cap, max(cur + 1, math.ceil(cur * growth)))
        qs = np.unique(self.query_index[rows]).astype(np.int64)
        t0 = time.perf_counter()
        more = redraw(m2, qs)
        st.add_time("redraw", time.perf_counter() - t0)
        st.redraw_calls += 1
        if more.n < m2:
            raise RuntimeError(f"redraw({m2}, ...) returned rows of {more.n} draws")
        where = {k: i for i, k in enumerate(_row_keys(more))}
        for r in rows.tolist():
            i = where.get(self.keys[r])
            if i is None:
                raise RuntimeError(
                    f"redraw returned no row for query {self.keys[r][0]} (anchor "
                    f"{self.keys[r][1]}): rows must be drawn with on_shortfall='pad' or 'fill', "
                    "not 'drop'"
                )
            old = self.draw_ids[r]
            if not np.array_equal(more.ids[i, : old.size], old):
                raise RuntimeError(
                    f"query {self.keys[r][0]}: a wider draw does not start with the first "
                    f"{old.size} draws; the draws are not reproducible (the same seed, sampler "
                    "and index are needed, and an index that answers a query the same whatever "
                    "the other queries searched with it; an approximate index built again may "
                    "differ)"
                )
            self.draw_ids[r] = more.ids[i]
            self.draw_sc[r] = more.scores[i]
        st.widened_rows += int(rows.size)
        st.max_draws = max(st.max_draws, m2)


def _ragged(positives: Any, n_queries: int) -> list[IntArray]:
    if isinstance(positives, np.ndarray) and positives.ndim == 2:
        rows = [r[r >= 0] for r in positives]
    else:
        rows = [np.asarray(p, dtype=np.int64).reshape(-1) for p in positives]
    if len(rows) < n_queries:
        raise ValueError(
            f"positives has {len(rows)} entries, the negatives name query {n_queries - 1}"
        )
    return [np.asarray(r, dtype=np.int64) for r in rows]


def denoise(
    negatives: Negatives,
    *,
    query_texts: Sequence[str],
    document_texts: Sequence[str],
    positives: Any,
    n: int | None = None,
    scorer: Scorer | None = None,
    judge: Judge | None = None,
    margins: Margins | None = None,
    judge_keep: Sequence[str] = ("HN", "TN"),
    on_judge_failure: str = "skip",
    teacher_scores: bool | None = None,
    redraw: Redraw | None = None,
    max_draws: int | None = None,
    growth: float = 2.0,
    on_short: str = "pad",
    chunk_rows: int = 4096,
    progress: bool = False,
) -> Denoised:
    """Keep, per row, the first ``n`` draws that pass a teacher's margins and a judge.

    Each row's draws are walked in draw order; a draw is scored (``scorer``), tested against
    ``margins`` and judged (``judge``), and the first ``n`` that pass are kept. Only as many
    draws as a row still needs are checked at a time, so a row whose draws all pass costs
    exactly ``n`` checks. A row that runs out of draws is widened through ``redraw`` (when
    given), else it is short.

    Parameters
    ----------
    negatives : draws from :func:`negsample.mine` (or ``mine_dataset(...).negatives``),
        ideally with more draws per row than ``n`` (ask ``mine`` for ``n' > n``: its first
        ``n`` are the ``n`` it would give). Mined with ``on_shortfall="pad"`` or ``"fill"``.
    query_texts : text per query index (``BeirDataset.query_texts``).
    document_texts : text per corpus row (``BeirDataset.document_texts``).
    positives : every labelled positive per query index (ragged, or ``-1``-padded).
    n : negatives to keep per row (default: all the draws, ``negatives.n``).
    scorer : a :class:`~negsample.scoring.Scorer` giving teacher scores (cross-encoder,
        teacher bi-encoder); used for ``margins`` and ``teacher_scores``.
    judge : a :class:`~negsample.scoring.Judge`; a candidate labelled ``FN`` is removed and
        returned in ``extra_positives``. It sees the query, the row's anchor positive (the
        query's first positive when the row has none) and the candidate. Asked only about
        candidates that passed the margins.
    margins : :class:`Margins` on the teacher scores (needs ``scorer``).
    judge_keep : labels kept as negatives (``("HN",)`` keeps only hard negatives).
    on_judge_failure : a candidate the judge gave no label: ``"skip"`` it (default, counted
        as ``removed["judge_failed"]``), ``"keep"`` it (counted as ``failed_kept``), or
        ``"raise"``.
    teacher_scores : return the teacher's ``s(q, d-)`` of every kept negative and
        ``s(q, d+)`` of every positive of every query (default: True when a scorer is given).
    redraw : ``redraw(m, query_indices) -> Negatives`` with ``m`` draws per row for (at
        least) those queries, from the same sampler, seed and index; its rows are matched by
        (query, anchor) and must start with the draws already seen (checked).
        :func:`mine_denoised` builds it for you.
    max_draws : the widest redraw (default: ``negatives.n``, i.e. no widening, when
        ``redraw`` is None; else required).
    growth : each widening multiplies the draws by this factor.
    on_short : rows still short at the end: ``"pad"`` with -1 (counted) or ``"drop"``.
    chunk_rows : rows processed together (the output does not depend on it).
    progress : a tqdm progress bar over chunks.

    Returns
    -------
    Denoised
        negatives ``(rows, n)``, teacher scores, extra positives, candidates checked per row
        and :class:`DenoiseStats`.

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> from negsample.scoring import denoise
    >>> class EvenIsFN:  # a stand-in judge: even documents "answer the query"
    ...     name = "even"; stats = None
    ...     def judge(self, items):
    ...         return ["FN" if int(d[1:]) % 2 == 0 else "HN" for _, _, d in items]
    >>> negs = ns.Negatives(np.array([[4, 7, 2, 9, 5]]), np.zeros((1, 5), np.float32),
    ...                     np.array([0]), np.array([-1]), ns.MiningStats())
    >>> out = denoise(negs, n=2, query_texts=["q0"], document_texts=[f"d{i}" for i in range(10)],
    ...               positives=[[0]], judge=EvenIsFN())
    >>> out.negatives.ids.tolist(), out.extra_positives[0].tolist(), out.stats.candidates_checked
    ([[7, 9]], [4, 2], 4)
    """
    t_start = time.perf_counter()
    if not isinstance(negatives, Negatives):
        raise TypeError(f"negatives must be a negsample Negatives, got {type(negatives).__name__}")
    n = negatives.n if n is None else n
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    n = int(n)
    if scorer is not None and not callable(getattr(scorer, "score", None)):
        raise TypeError(f"scorer must have a score(pairs) method, got {scorer!r}")
    if judge is not None and not callable(getattr(judge, "judge", None)):
        raise TypeError(f"judge must have a judge(items) method, got {judge!r}")
    if margins is not None and not isinstance(margins, Margins):
        raise TypeError(f"margins must be a Margins, got {type(margins).__name__}")
    if margins is not None and not margins.is_noop and scorer is None:
        raise ValueError("margins are computed on teacher scores: pass a scorer")
    teacher = scorer is not None if teacher_scores is None else bool(teacher_scores)
    if teacher and scorer is None:
        raise ValueError("teacher_scores=True needs a scorer")
    if scorer is None and judge is None:
        raise ValueError("nothing to denoise with: pass a scorer (with margins) and/or a judge")
    if scorer is not None and not teacher and (margins is None or margins.is_noop):
        raise ValueError("a scorer without margins or teacher_scores has nothing to do")
    keep_set = frozenset(judge_keep)
    if not keep_set <= {"HN", "TN"}:
        raise ValueError(f"judge_keep may hold 'HN' and 'TN' only, got {sorted(keep_set)}")
    if on_judge_failure not in _ON_FAILURE:
        raise ValueError(f"on_judge_failure must be one of {_ON_FAILURE}, got {on_judge_failure!r}")
    if on_short not in _ON_SHORT:
        raise ValueError(f"on_short must be one of {_ON_SHORT}, got {on_short!r}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    if not growth > 1.0:
        raise ValueError(f"growth must be > 1, got {growth}")
    if negatives.stats.dropped_rows:
        raise ValueError(
            "these negatives were mined with on_shortfall='drop': rows missing at the wider "
            "draw would be missing from the output; mine with 'pad' or 'fill' (mine_denoised "
            "does) and pass on_short='drop' here"
        )
    cap = negatives.n if redraw is None else max_draws
    if cap is None:
        raise ValueError("redraw needs max_draws (the most draws a row may get)")
    if cap < negatives.n:
        raise ValueError(f"max_draws={cap} is smaller than the draws given ({negatives.n})")
    if n > cap:
        raise ValueError(
            f"n={n} negatives wanted, but rows have {negatives.n} draws and can get at most "
            f"{cap}" + ("" if redraw is not None else " (pass redraw= to draw more)")
        )
    n_q = int(negatives.query_index.max()) + 1 if len(negatives) else 0
    pos = _ragged(positives, n_q)
    if len(query_texts) < n_q:
        raise ValueError(f"query_texts has {len(query_texts)} entries, need {n_q}")
    if len(negatives) and int(negatives.ids.max()) >= len(document_texts):
        raise ValueError(
            f"document_texts has {len(document_texts)} entries, the negatives name document "
            f"{int(negatives.ids.max())}"
        )
    for q in np.unique(negatives.query_index).tolist():
        if pos[q].size == 0 and (judge is not None or teacher or margins is not None):
            raise ValueError(f"query {q} has no positive to judge or score against")
        if pos[q].size and int(pos[q].max()) >= len(document_texts):
            raise ValueError(f"query {q}: positive {int(pos[q].max())} has no document text")

    stats = DenoiseStats(n=n)
    ctx = _Context(
        n=n,
        query_texts=query_texts,
        document_texts=document_texts,
        positives=pos,
        scorer=scorer,
        judge=judge,
        margins=margins,
        judge_keep=keep_set,
        on_judge_failure=on_judge_failure,
        teacher_scores=teacher,
        stats=stats,
    )
    s_before = scorer.stats.copy() if scorer is not None and _has_stats(scorer) else None
    j_before = judge.stats.copy() if judge is not None and _has_stats(judge) else None
    state = _Rows(ctx, negatives)
    rows = len(negatives)
    stats.max_draws = negatives.n
    bar = None
    if progress:
        from .._optional import require

        bar = require("tqdm.auto", "progress bars").tqdm(total=rows, unit="row", desc="denoise")
    try:
        todo = np.arange(rows, dtype=np.int64)
        first = True
        while todo.size:
            for a in range(0, todo.size, chunk_rows):
                state.process(todo[a : a + chunk_rows])
                if bar is not None and first:
                    bar.update(min(chunk_rows, todo.size - a))
            first = False
            if redraw is None:
                break
            todo = state.to_widen(cap)
            if todo.size:
                state.widen(todo, redraw, cap, growth)
    finally:
        if bar is not None:
            bar.close()
        if s_before is not None and scorer is not None:
            stats.scorer = scorer.stats.since(s_before)
        if j_before is not None and judge is not None:
            stats.judge = judge.stats.since(j_before)

    ids, sc, tc = state.ids, state.scores, state.teacher
    anchors, checked = state.anchors, state.checked
    extra = [np.asarray(e, np.int64) for e in state.extra]
    qi, ai = negatives.query_index, negatives.anchor_ids
    stats.rows = rows
    stats.queries = int(np.unique(qi).size)
    short: npt.NDArray[np.bool_] = np.asarray((ids < 0).any(axis=1))
    if on_short == "drop" and short.any():
        keep = np.flatnonzero(~short)
        stats.dropped_rows = int(short.sum())
        ids, sc, tc, anchors, checked = ids[keep], sc[keep], tc[keep], anchors[keep], checked[keep]
        qi, ai = qi[keep], ai[keep]
        extra = [extra[i] for i in keep.tolist()]
        short = short[keep]
    stats.short_rows = int(short.sum())
    stats.padded = int((ids < 0).sum())
    stats.kept = int((ids >= 0).sum())
    stats.extra_positives = sum(e.size for e in extra)
    stats.add_time("total", time.perf_counter() - t_start)

    mstats = _output_stats(negatives.stats, stats, len(ids))
    out_negs = Negatives(ids=ids, scores=sc, query_index=qi, anchor_ids=ai, stats=mstats)
    t_scores = None
    if teacher:
        assert scorer is not None
        nan = np.full(0, np.nan, np.float32)
        positive = [
            ctx.pos_teacher.get(q, np.full(pos[q].size, np.nan, np.float32) if pos[q].size else nan)
            for q in range(len(pos))
        ]
        tc = np.where(ids >= 0, tc, np.nan).astype(np.float32)
        t_scores = TeacherScores(
            negative=tc, positive=positive, anchor=anchors, scorer=str(scorer.name)
        )
    return Denoised(
        negatives=out_negs,
        teacher=t_scores,
        extra_positives=extra,
        checked_per_row=checked,
        stats=stats,
    )


def _has_stats(x: Any) -> bool:
    return isinstance(getattr(x, "stats", None), ScoringStats)


def _output_stats(mined: MiningStats, st: DenoiseStats, rows: int) -> MiningStats:
    """The mining stats, with the output's rows, shortfalls and the denoising removals."""
    out = dataclasses.replace(mined, removed=dict(mined.removed), timings=dict(mined.timings))
    out.n_rows = rows
    out.short_rows = st.short_rows
    out.padded = st.padded
    out.dropped_rows = mined.dropped_rows + st.dropped_rows
    for reason, k in st.removed.items():
        out.count_removed(f"denoise:{reason}", k)
    for phase, s in st.seconds.items():
        if phase != "total":
            out.add_time(f"denoise:{phase}", s)
    return out


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
    teacher_scores, growth, chunk_rows, progress : as for :func:`denoise`.

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
        raise TypeError(f"sampler must be a negsample sampler, got {type(sampler).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int (the draws are repeated), got {seed!r}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not oversample >= 1.0:
        raise ValueError(f"oversample must be >= 1, got {oversample}")
    sampler.check_n(n)
    limit = sampler.max_n if sampler.max_n is not None else _UNLIMITED_DRAWS * n
    cap = int(min(limit if max_draws is None else max_draws, index.ntotal - 1))
    if cap < n:
        raise ValueError(f"max_draws={cap} is smaller than n={n}")
    if max_draws is not None and sampler.max_n is not None and max_draws > sampler.max_n:
        raise ValueError(
            f"max_draws={max_draws} exceeds what {type(sampler).__name__} can draw per row "
            f"({sampler.max_n})"
        )
    on_short = "drop" if sampler.on_shortfall == "drop" else "pad"
    draw_sampler = (
        dataclasses.replace(sampler, on_shortfall="pad") if on_short == "drop" else sampler
    )
    q_all = as_matrix(queries, "queries", dim=index.dim)
    n_q = q_all.shape[0]
    n_pos = positives.shape[0] if isinstance(positives, np.ndarray) else len(positives)
    if n_pos != n_q:
        raise ValueError(f"positives has {n_pos} entries, queries {n_q} rows")

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

    m0 = int(min(cap, max(n, math.ceil(oversample * n))))
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
