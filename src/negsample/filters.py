"""Score filters applied to candidates before any sampler, each counted in the stats, and
the one rule engine they share with the teacher-score margins of ``negsample.scoring``.

Every filter is a mask over the candidate matrix; a candidate removed by several filters
is counted once, under the first one in this order: ``rank_window``, ``max_score``,
``min_score``, ``absolute_margin``, ``relative_margin``, ``near_duplicate``. (Labelled
positives are removed before any of these and counted as ``"positive"``.)

The names and meanings are sentence-transformers' (``mine_hard_negatives``):
``absolute_margin=m`` keeps ``s(q,d-) < s+ - m``; ``relative_margin=r`` keeps
``s(q,d-) < s+ - |s+| * r`` (NV-Retriever's TopK-PercPos with ``p = 1 - r``: 0.05 is its
95%). A query that the filters leave without any candidate is counted in
``stats.emptied`` and reported once per call on the ``negsample`` logger.

The four score rules (their order, strict inequalities, the sign-safe relative margin, the
``s+`` anchor policies, the limits of their values and the counting by first failing rule)
live in :class:`ScoreRules`: :class:`Filters` applies them to the retriever's scores (with
the rank window on top), :class:`negsample.scoring.Margins` to a teacher's.

``near_duplicate=t`` (:func:`near_duplicate_mask`) removes a candidate whose cosine with any
labelled positive of its query is ``>= t``: a near copy of the positive in embedding space.
It asks the index for the vectors of each row's candidates and positives (or, for an index
that computes on a GPU, for ``s(d+, d-)`` through ``index.score``) and for ``|d|^2``
(``index.sq_norms``).
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ._ragged import segment_sum
from .errors import InputError
from .index.base import index_score, index_sq_norms

if TYPE_CHECKING:
    from ._types import MiningStats
    from .candidates import SamplerBatch

__all__ = [
    "ANCHORS",
    "SCORE_RULES",
    "Filters",
    "ScoreRules",
    "anchor_reduce",
    "anchor_scores",
    "near_duplicate_mask",
    "rank_window",
    "warn_emptied",
]

SCORE_RULES: tuple[str, ...] = ("max_score", "min_score", "absolute_margin", "relative_margin")
"""The score rules in the order they are applied (a candidate failing several is counted
under the first)."""
ANCHORS: tuple[str, ...] = ("min", "max", "mean")
"""How ``s+`` is taken over a query's positives."""
_log = logging.getLogger(__name__)
#: Scores ``s(d+, d-)`` computed at a time by :func:`near_duplicate_mask` (about, at most).
_PAIR_SCORES = 1 << 20


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


def near_duplicate_mask(
    batch: SamplerBatch, threshold: float, valid: npt.NDArray[np.bool_] | None = None
) -> npt.NDArray[np.bool_]:
    """Which candidates are *not* near duplicates of a labelled positive of their row:
    ``keep[r, j]`` is False when, for some positive ``d+`` of row ``r``,

        cos(d+, d-) = s(d+, d-) / sqrt(|d+|^2 |d-|^2) >= threshold

    with ``s`` the inner product of the index's vectors and ``|d|^2`` the index's
    ``sq_norms``, the cosine in float64 from the index's float32 values. Cosine, not inner
    product: the rule means the same for normalised and unnormalised vectors. A zero
    vector has no direction and is never a near duplicate. Only candidates in ``valid``
    (default ``batch.valid``) are compared; the others are kept (they are removed
    already).

    Every positive of a row is compared, however many. How ``s(d+, d-)`` is computed
    depends on where the index computes, never on the batch:

    - an index that computes on this machine (``index.searches_on_host``, the default:
      numpy, faiss on CPU, corpus shards): per row, the vectors of its valid candidates
      and of its positives are read once (``index.vectors``, ``K + P`` rows, never the
      corpus) and their ``P x K`` dot products taken one per pair (``numpy.einsum``: no
      BLAS threads competing with the sampling threads, no batch-dependent rounding), in
      blocks of positives (a row with thousands of positives costs time, not memory).
      Reading ``K + P`` vectors instead of ``P x K`` is what makes a query with 40
      positives affordable;
    - an index that computes elsewhere (a GPU): ``index.score`` of each positive's vector
      against the row's candidate ids, in blocks of (row, positive) pairs (only the
      scores come back).

    Either way each cosine is a function of its row alone (its positives, its valid
    candidates, the index), so the result does not depend on how the queries are chunked
    or which worker mines them.

    Raises
    ------
    ValueError
        when the batch has no index (candidates from a run file without embeddings).
    """
    if batch.index is None:
        raise InputError(
            "near_duplicate compares candidates with the positives' embeddings, and these "
            "candidates come without an index (a run file without embeddings): pass "
            "index= (an Index over the corpus), or leave near_duplicate unset"
        )
    index = batch.index
    valid = batch.valid if valid is None else valid
    keep = np.ones(valid.shape, bool)
    pos = batch.positives
    rows = np.flatnonzero(np.asarray(valid.any(axis=1), bool) & (pos.lengths > 0))
    if rows.size == 0:
        return keep
    t = float(threshold)
    if bool(getattr(index, "searches_on_host", True)):
        for r in rows.tolist():
            cols = np.flatnonzero(valid[r])
            c_ids = batch.ids[r, cols]
            c_vec = index.vectors(c_ids)
            c_sq = index_sq_norms(index, c_ids).astype(np.float64)
            p_all = pos.row(r)
            near = np.zeros(cols.size, bool)
            step = max(1, _PAIR_SCORES // cols.size)
            for s in range(0, p_all.size, step):
                p_ids = p_all[s : s + step]
                ip = np.einsum("pd,kd->pk", index.vectors(p_ids), c_vec).astype(np.float64)
                p_sq = index_sq_norms(index, p_ids).astype(np.float64)
                near |= _near(ip, p_sq[:, None], c_sq[None, :], t).any(axis=0)
            keep[r, cols] = ~near
        return keep
    cand = np.where(valid, batch.ids, -1)
    # columns past the last valid candidate of every row hold nothing to score
    width = int(valid.shape[1] - np.argmax(valid[rows, ::-1], axis=1).min())
    cand = cand[:, :width]
    cand_sq = index_sq_norms(index, cand).astype(np.float64)
    pairs = np.flatnonzero(np.isin(pos.row_of, rows))  # (row, positive) pairs, row order
    step = max(1, _PAIR_SCORES // width)
    for s in range(0, pairs.size, step):
        at = pairs[s : s + step]
        r_of = pos.row_of[at]
        p_ids = pos.values[at]
        ip = index_score(index, index.vectors(p_ids), cand[r_of]).astype(np.float64)
        p_sq = index_sq_norms(index, p_ids).astype(np.float64)
        near = _near(ip, p_sq[:, None], cand_sq[r_of], t)
        first = np.flatnonzero(np.r_[True, r_of[1:] != r_of[:-1]])  # one reduction a row
        keep[r_of[first], :width] &= ~np.logical_or.reduceat(near, first, axis=0)
    return keep


def _near(ip: np.ndarray, p_sq: np.ndarray, c_sq: np.ndarray, t: float) -> npt.NDArray[np.bool_]:
    """``cos >= t`` from inner products and squared norms (broadcast); False where a
    norm is 0 or unknown (NaN: no candidate)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = ip / np.sqrt(p_sq * c_sq)
    return np.asarray((cos >= t) & (p_sq > 0) & (c_sq > 0), bool)


def anchor_reduce(
    values: npt.ArrayLike,
    indptr: npt.ArrayLike,
    policy: str,
    known: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.float64]:
    """One ``s+`` per segment of ``values`` (``values[indptr[i]:indptr[i+1]]``) by
    ``policy`` (:data:`ANCHORS`), over the ``known`` entries only (all by default).

    A segment without a known entry gets ``inf`` (``"min"``), ``-inf`` (``"max"``) or NaN
    (``"mean"``): callers refuse such rows before using them.
    """
    v = np.asarray(values, dtype=np.float64)
    ptr = np.asarray(indptr, dtype=np.int64)
    ok = np.ones(v.shape, bool) if known is None else np.asarray(known, bool)
    if policy == "mean":
        n_known = segment_sum(ok.astype(np.int64), ptr)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(segment_sum(np.where(ok, v, 0.0), ptr) / n_known, np.float64)
    if policy in ("min", "max"):
        fill = np.inf if policy == "min" else -np.inf
        vals = np.where(ok, v, fill)
        ufunc = np.minimum if policy == "min" else np.maximum
        out = np.full(ptr.shape[0] - 1, fill)
        nonempty = np.flatnonzero(np.diff(ptr) > 0)
        if nonempty.size:
            out[nonempty] = ufunc.reduceat(vals, ptr[nonempty])
        return out
    raise InputError(f"anchor must be one of {ANCHORS}, got {policy!r}")


def anchor_scores(batch: SamplerBatch, policy: str) -> npt.NDArray[np.float64]:
    """One ``s+`` per row from the known positive scores (NaN = unknown) by ``policy``."""
    pos = batch.positives
    ps = batch.positive_scores.astype(np.float64)
    known = ~np.isnan(ps)
    n_known = np.bincount(pos.row_of[known], minlength=batch.size)
    if np.any(n_known == 0):
        q = int(batch.query_index[int(np.argmax(n_known == 0))])
        raise InputError(
            f"query {q}: no positive score is known, so score filters cannot be applied; "
            "pass positive_scores or an index to compute them"
        )
    return anchor_reduce(ps, pos.indptr, policy, known)


def _check_real(name: str, v: Any) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise InputError(f"{name} must be a real number or None, got {v!r}")
    if not math.isfinite(float(v)):
        raise InputError(f"{name} must be finite, got {v!r}")


@dataclass(frozen=True, kw_only=True)
class ScoreRules:
    """The four score rules, one engine for :class:`Filters` (retriever scores) and
    :class:`negsample.scoring.Margins` (teacher scores).

    A candidate with score ``s-`` is kept when every rule that is set holds; inequalities
    are strict, and a candidate failing several rules is counted under the first in
    :data:`SCORE_RULES` order:

    - ``max_score=c``: ``s- < c``; ``min_score=c``: ``s- > c``;
    - ``absolute_margin=m``: ``s- < s+ - m`` (NV-Retriever's TopK-MarginPos);
    - ``relative_margin=r``: ``s- < s+ - |s+| * r``, sign-safe (the naive ``(1 - r) * s+``
      lets through negatives scored above a positive with ``s+ < 0``); ``r = 0.05`` is
      NV-Retriever's TopK-PercPos ``p = 0.95``.

    ``s+`` is taken over the query's positives by ``anchor`` (:data:`ANCHORS`, default
    ``"min"``, as sentence-transformers and NV-Retriever do); see :func:`anchor_reduce`.

    Limits (the same for both users): every value is a finite real number (not a bool) or
    None; ``relative_margin`` lies in ``[0, 1]``. ``r = 1`` is the last value that is still
    a share of ``|s+|`` (TopK-PercPos with ``p = 0``: keep ``s- < 0`` for ``s+ > 0``);
    above it the rule is no longer a percentage of the positive, below 0 it would keep
    negatives scored above the positive.

    Scores are compared in the dtype they are given in (``Filters`` compares the
    retriever's float32 scores, ``Margins`` float64 teacher scores).

    Examples
    --------
    >>> from negsample.filters import ScoreRules
    >>> rules = ScoreRules(relative_margin=0.05, max_score=0.99)
    >>> keep, reason = rules.first_failing([0.9, 0.96, -2.2, -2.0], [1.0, 1.0, -2.0, -2.0])
    >>> keep.tolist(), reason.tolist()
    ([True, False, True, False], [-1, 3, -1, 3])
    """

    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None
    anchor: str = "min"

    def __post_init__(self) -> None:
        for name in ("absolute_margin", "relative_margin", "max_score", "min_score"):
            _check_real(name, getattr(self, name))
        if self.relative_margin is not None and not 0.0 <= self.relative_margin <= 1.0:
            raise InputError(
                f"relative_margin must be in [0, 1] (sentence-transformers' convention: 0.05 "
                f"discards negatives scored above s+ - 0.05 |s+|), got {self.relative_margin}"
            )
        if not isinstance(self.anchor, str) or self.anchor not in ANCHORS:
            raise InputError(f"anchor must be one of {ANCHORS}, got {self.anchor!r}")

    @property
    def needs_positive(self) -> bool:
        """Whether a margin is set (the rules then need ``s+``)."""
        return self.absolute_margin is not None or self.relative_margin is not None

    @property
    def is_noop(self) -> bool:
        return not self.needs_positive and self.max_score is None and self.min_score is None

    def masks(self, negative: Any, positive: Any = None) -> list[tuple[str, npt.NDArray[np.bool_]]]:
        """``(rule, keep)`` for every rule that is set, in :data:`SCORE_RULES` order.

        ``negative`` holds ``s-`` (compared in its own dtype); ``positive`` the matching
        ``s+``, broadcastable against it (needed only when a margin is set).
        """
        s = negative if isinstance(negative, np.ndarray) else np.asarray(negative, np.float64)
        out: list[tuple[str, npt.NDArray[np.bool_]]] = []
        if self.max_score is not None:
            out.append(("max_score", s < self.max_score))
        if self.min_score is not None:
            out.append(("min_score", s > self.min_score))
        if self.needs_positive:
            if positive is None:
                raise InputError("absolute_margin and relative_margin need the s+ scores")
            sp = positive if isinstance(positive, np.ndarray) else np.asarray(positive, np.float64)
            if self.absolute_margin is not None:
                out.append(("absolute_margin", s < sp - self.absolute_margin))
            if self.relative_margin is not None:
                out.append(("relative_margin", s < sp - np.abs(sp) * self.relative_margin))
        return out

    def first_failing(
        self, negative: Any, positive: Any = None
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
        """``(keep, reason)``: which candidates pass every rule, and for the others the
        index in :data:`SCORE_RULES` of the first rule that removes them (-1 where kept)."""
        shape = np.shape(negative)
        reason = np.full(shape, -1, np.int64)
        for name, ok in self.masks(negative, positive):
            reason[(reason < 0) & ~np.broadcast_to(ok, shape)] = SCORE_RULES.index(name)
        return reason < 0, reason


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
    near_duplicate : a cosine in ``(0, 1]``: remove a candidate whose cosine with *any*
        labelled positive of its query is ``>= near_duplicate`` (a near copy of the
        positive: the same passage chunked twice, boilerplate); counted as
        ``"near_duplicate"``. Needs the corpus vectors through an index
        (:func:`near_duplicate_mask`); 0.95 is a usual value. ``None`` (default): off.
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
    near_duplicate: float | None = field(default=None, repr=False)
    margin: float | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.margin is not None:
            if self.absolute_margin is not None:
                raise InputError("give absolute_margin or its deprecated alias margin, not both")
            warnings.warn(
                "Filters(margin=...) is deprecated; use absolute_margin (same meaning)",
                DeprecationWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "absolute_margin", self.margin)
            object.__setattr__(self, "margin", None)
        if self.range_min < 0:
            raise InputError(f"range_min must be >= 0, got {self.range_min}")
        if self.range_max is not None and self.range_max <= self.range_min:
            raise InputError(
                f"range_max ({self.range_max}) must be greater than range_min ({self.range_min})"
            )
        _ = self.rules  # validates the score rules: one set of limits (ScoreRules)
        _check_real("near_duplicate", self.near_duplicate)
        if self.near_duplicate is not None and not 0.0 < self.near_duplicate <= 1.0:
            raise InputError(
                "near_duplicate is a cosine in (0, 1] (0.95 removes candidates whose cosine "
                f"with a positive is >= 0.95), got {self.near_duplicate}"
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

    def __repr__(self) -> str:
        # near_duplicate only when set: the repr (and so the settings hash of a resumable
        # run) of filters without it is what it was before the field existed
        names = [f for f in self.__dataclass_fields__ if f not in ("near_duplicate", "margin")]
        if self.near_duplicate is not None:
            names.append("near_duplicate")
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in names)
        return f"{type(self).__name__}({inner})"

    @property
    def rules(self) -> ScoreRules:
        """The score rules of these filters (the engine :class:`ScoreRules`)."""
        return ScoreRules(
            absolute_margin=self.absolute_margin,
            relative_margin=self.relative_margin,
            max_score=self.max_score,
            min_score=self.min_score,
            anchor=self.anchor,
        )

    @property
    def needs_positive_scores(self) -> bool:
        return self.rules.needs_positive

    @property
    def needs_vectors(self) -> bool:
        """Whether a filter compares corpus vectors (``near_duplicate``): the candidates
        then need an index."""
        return self.near_duplicate is not None

    @property
    def is_noop(self) -> bool:
        return (
            self.range_min == 0
            and self.range_max is None
            and self.rules.is_noop
            and self.near_duplicate is None
        )

    def apply(self, batch: SamplerBatch, stats: MiningStats) -> npt.NDArray[np.bool_]:
        """The new ``valid`` mask for ``batch``; removals are added to ``stats.removed``,
        rows left without any candidate to ``stats.emptied``."""
        if self.near_duplicate is not None and batch.index is None:
            near_duplicate_mask(batch, self.near_duplicate)  # raises: it needs the vectors
        valid = batch.valid
        s = batch.scores
        steps: list[tuple[str, npt.NDArray[np.bool_] | None]] = []
        if self.range_min > 0 or self.range_max is not None:
            steps.append(("rank_window", rank_window(valid, self.range_min, self.range_max)))
        rules = self.rules
        s_pos = anchor_scores(batch, self.anchor)[:, None] if rules.needs_positive else None
        steps.extend(rules.masks(s, s_pos))
        if self.near_duplicate is not None:
            steps.append(("near_duplicate", None))  # scored on what the others keep
        for name, mask in steps:
            if mask is None:
                assert self.near_duplicate is not None
                mask = near_duplicate_mask(batch, self.near_duplicate, valid)
            keep = mask
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
