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

The pieces: :mod:`.margins` (the teacher-score rules), :mod:`.results` (what is returned),
:mod:`._rows` (the walk), :mod:`.mine` (:func:`mine_denoised` and its draw plan).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import MiningStats, Negatives
from ..errors import InputError, InputTypeError
from ._rows import Redraw, _Context, _ragged, _Rows
from .base import Judge, Scorer, ScoringStats
from .margins import Margins
from .results import Denoised, DenoiseStats, TeacherScores

# Margins, Denoised, DenoiseStats and TeacherScores are importable from here as before
__all__ = ["DenoiseStats", "Denoised", "Margins", "TeacherScores", "denoise"]

_ON_FAILURE = ("skip", "keep", "raise")
_ON_SHORT = ("pad", "drop")
FN_ACTIONS = ("remove", "relabel", "drop-query")


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
    fn_action: str = "remove",
    drop_above: int = 8,
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
    fn_action : what a candidate the judge labels FN becomes. ``"remove"`` (default):
        removed from the negatives (and listed in ``extra_positives``). ``"relabel"``:
        removed, and added to its query's positives (:attr:`Denoised.positives`, in row
        and draw order, each once; a negative kept in another row of the query that is
        now a positive is removed too, counted ``removed["judge_fn_elsewhere"]``).
        ``"drop-query"``: removed, and a query with more than ``drop_above`` distinct FN
        documents (over all its rows) is dropped, with all its rows (counted
        ``dropped_queries``; listed in :attr:`Denoised.dropped_queries`). A row that
        alone passes ``drop_above`` stops being walked (its query is dropped anyway).
    drop_above : the FN count a query may have under ``fn_action="drop-query"`` (default
        8, the RLHN threshold as the feature request cites it).
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
        raise InputTypeError(
            f"negatives must be a negsample Negatives, got {type(negatives).__name__}"
        )
    n = negatives.n if n is None else n
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}")
    n = int(n)
    if scorer is not None and not callable(getattr(scorer, "score", None)):
        raise InputTypeError(f"scorer must have a score(pairs) method, got {scorer!r}")
    if judge is not None and not callable(getattr(judge, "judge", None)):
        raise InputTypeError(f"judge must have a judge(items) method, got {judge!r}")
    if margins is not None and not isinstance(margins, Margins):
        raise InputTypeError(f"margins must be a Margins, got {type(margins).__name__}")
    if margins is not None and not margins.is_noop and scorer is None:
        raise InputError("margins are computed on teacher scores: pass a scorer")
    teacher = scorer is not None if teacher_scores is None else bool(teacher_scores)
    if teacher and scorer is None:
        raise InputError("teacher_scores=True needs a scorer")
    if scorer is None and judge is None:
        raise InputError("nothing to denoise with: pass a scorer (with margins) and/or a judge")
    if scorer is not None and not teacher and (margins is None or margins.is_noop):
        raise InputError("a scorer without margins or teacher_scores has nothing to do")
    keep_set = frozenset(judge_keep)
    if not keep_set <= {"HN", "TN"}:
        raise InputError(f"judge_keep may hold 'HN' and 'TN' only, got {sorted(keep_set)}")
    if on_judge_failure not in _ON_FAILURE:
        raise InputError(f"on_judge_failure must be one of {_ON_FAILURE}, got {on_judge_failure!r}")
    if fn_action not in FN_ACTIONS:
        raise InputError(f"fn_action must be one of {FN_ACTIONS}, got {fn_action!r}")
    if (
        isinstance(drop_above, bool)
        or not isinstance(drop_above, int | np.integer)
        or drop_above < 0
    ):
        raise InputError(f"drop_above must be an int >= 0, got {drop_above!r}")
    if fn_action != "remove" and judge is None:
        raise InputError(f"fn_action={fn_action!r} acts on the judge's FN labels: pass a judge")
    if on_short not in _ON_SHORT:
        raise InputError(f"on_short must be one of {_ON_SHORT}, got {on_short!r}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InputError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    if not growth > 1.0:
        raise InputError(f"growth must be > 1, got {growth}")
    if negatives.stats.dropped_rows:
        raise InputError(
            "these negatives were mined with on_shortfall='drop': rows missing at the wider "
            "draw would be missing from the output; mine with 'pad' or 'fill' (mine_denoised "
            "does) and pass on_short='drop' here"
        )
    cap = negatives.n if redraw is None else max_draws
    if cap is None:
        raise InputError("redraw needs max_draws (the most draws a row may get)")
    if cap < negatives.n:
        raise InputError(f"max_draws={cap} is smaller than the draws given ({negatives.n})")
    if n > cap:
        raise InputError(
            f"n={n} negatives wanted, but rows have {negatives.n} draws and can get at most "
            f"{cap}" + ("" if redraw is not None else " (pass redraw= to draw more)")
        )
    n_q = int(negatives.query_index.max()) + 1 if len(negatives) else 0
    pos = _ragged(positives, n_q)
    if len(query_texts) < n_q:
        raise InputError(f"query_texts has {len(query_texts)} entries, need {n_q}")
    if len(negatives) and int(negatives.ids.max()) >= len(document_texts):
        raise InputError(
            f"document_texts has {len(document_texts)} entries, the negatives name document "
            f"{int(negatives.ids.max())}"
        )
    for q in np.unique(negatives.query_index).tolist():
        if pos[q].size == 0 and (judge is not None or teacher or margins is not None):
            raise InputError(f"query {q} has no positive to judge or score against")
        if pos[q].size and int(pos[q].max()) >= len(document_texts):
            raise InputError(f"query {q}: positive {int(pos[q].max())} has no document text")

    stats = DenoiseStats(n=n, fn_action=fn_action)
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
        drop_above=int(drop_above) if fn_action == "drop-query" else None,
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

    # the false negatives of each query, over its rows (row order, then draw order)
    fn_ids: dict[int, list[int]] = {}
    fn_teacher: dict[int, list[float]] = {}
    for r in range(rows):
        q = int(qi[r])
        seen = fn_ids.setdefault(q, [])
        for d, t in zip(state.extra[r], state.extra_teacher[r], strict=True):
            if d not in seen:
                seen.append(d)
                fn_teacher.setdefault(q, []).append(t)
    keep_row = np.ones(rows, bool)
    dropped_q = np.empty(0, np.int64)
    if fn_action == "drop-query":
        dropped_q = np.asarray(
            sorted(q for q, ds in fn_ids.items() if len(ds) > drop_above), np.int64
        )
        gone = np.isin(qi, dropped_q)
        keep_row &= ~gone
        stats.dropped_queries = int(dropped_q.size)
        stats.dropped_query_rows = int(gone.sum())
    out_pos = list(pos)
    pos_teacher_extra: dict[int, list[float]] = {}
    if fn_action == "relabel":
        for q, ds in fn_ids.items():
            have = set(pos[q].tolist())
            new_ids = [d for d in ds if d not in have]
            if new_ids:
                out_pos[q] = np.concatenate([pos[q], np.asarray(new_ids, np.int64)])
                pos_teacher_extra[q] = [
                    t for d, t in zip(ds, fn_teacher[q], strict=True) if d not in have
                ]
                stats.relabelled += len(new_ids)
        # a negative kept in one row that another row of its query labelled FN is a
        # positive now: never written as a negative
        for r in range(rows):
            row_fn = fn_ids.get(int(qi[r]))
            if not row_fn:
                continue
            bad = np.isin(ids[r], row_fn) & (ids[r] >= 0)
            if bad.any():
                stats.count("removed", "judge_fn_elsewhere", int(bad.sum()))
                ok = np.flatnonzero((ids[r] >= 0) & ~bad)
                for arr, fill in ((ids, -1), (sc, np.nan), (tc, np.nan)):
                    row = arr[r][ok].copy()
                    arr[r, :] = fill
                    arr[r, : row.size] = row

    short_all: npt.NDArray[np.bool_] = np.asarray((ids < 0).any(axis=1))
    if on_short == "drop":
        stats.dropped_rows = int((short_all & keep_row).sum())
        keep_row &= ~short_all
    if not keep_row.all():
        keep = np.flatnonzero(keep_row)
        ids, sc, tc, anchors, checked = ids[keep], sc[keep], tc[keep], anchors[keep], checked[keep]
        qi, ai = qi[keep], ai[keep]
        extra = [extra[i] for i in keep.tolist()]
    short = np.asarray((ids < 0).any(axis=1))
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
        for q, ts in pos_teacher_extra.items():
            positive[q] = np.concatenate([positive[q], np.asarray(ts, np.float32)])
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
        positives=out_pos,
        dropped_queries=dropped_q,
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


def __getattr__(name: str) -> Any:
    # mine_denoised lives in .mine (it imports this module); kept importable from here
    if name == "mine_denoised":
        from .mine import mine_denoised

        return mine_denoised
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
