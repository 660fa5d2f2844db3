"""The row machinery of the denoising step: each row's draws walked in draw order, the
candidates still needed sent to the scorer and the judge, the survivors kept, rows widened
by drawing again. Private: :func:`negsample.scoring.denoise` is the entry point."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import Negatives
from ..errors import InputError
from ..filters import SCORE_RULES, anchor_reduce
from .base import LABELS, Judge, JudgeItem, Scorer
from .margins import Margins
from .results import DenoiseStats

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
Redraw = Callable[[int, IntArray], Negatives]


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
        drop_above: int | None = None,
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
        # fn_action="drop-query": a row that alone found more FNs than this stops early
        # (its query is dropped whatever the other rows find)
        self.drop_above = drop_above
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
        raise InputError(
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
        self.extra_teacher: list[list[float]] = [[] for _ in range(b)]
        self.stopped = np.zeros(b, bool)  # rows past drop_above FNs: walked no further
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
                if need <= 0 or self.stopped[r]:
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
                self._judge(rr, dd, ok, teach)
            # keep the survivors; candidates are listed row by row in draw order
            for i in np.flatnonzero(ok).tolist():
                r, p = int(rr[i]), int(pp[i])
                c = int(self.count[r])
                self.ids[r, c] = self.draw_ids[r][p]
                self.scores[r, c] = self.draw_sc[r][p]
                self.teacher[r, c] = teach[i]
                self.count[r] = c + 1

    def _judge(
        self, rr: IntArray, dd: IntArray, ok: npt.NDArray[np.bool_], teach: FloatArray
    ) -> None:
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
                r = int(rr[i])
                self.extra[r].append(int(dd[i]))
                self.extra_teacher[r].append(float(teach[i]))
                if ctx.drop_above is not None and len(self.extra[r]) > ctx.drop_above:
                    self.stopped[r] = True
            elif lab not in ctx.judge_keep:
                ok[i] = False
                st.count("removed", "judge_label")

    def to_widen(self, cap: int) -> IntArray:
        """Rows still short whose draws may go on: every draw so far valid (a ``-1`` means
        the sampler's region ran dry) and fewer than ``cap`` of them."""
        out = [
            r
            for r in np.flatnonzero((self.count < self.ctx.n) & ~self.stopped).tolist()
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
        raise InputError(
            f"positives has {len(rows)} entries, the negatives name query {n_queries - 1}"
        )
    return [np.asarray(r, dtype=np.int64) for r in rows]
