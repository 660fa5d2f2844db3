"""Candidates for a batch of queries, ready for the filters and the sampler.

:func:`build_batch` validates what a search (or a run file) returned, removes every
labelled positive and every excluded id, and finds ``s(q, d+)``; the result is a
:class:`SamplerBatch`. :func:`resolve_anchor` picks the positive each row is sampled
against. The filters (``filters.py``) and the samplers (``samplers/``) both read this
module; it reads neither of them.

Positives and exclusions are :class:`~negsample._ragged.Ragged` rows (CSR), never padded to
the widest row, so a query with twenty thousand positives costs what its positives cost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ._ragged import Ragged, segment_argbest, segment_sum
from ._rng import Stream, gumbel, gumbel_at, uniform
from ._types import MiningStats
from ._validate import FLOAT32_MAX, as_float32, to_numpy
from .errors import InputError, InputTypeError
from .index.base import index_score, index_sq_norms

if TYPE_CHECKING:
    from .index.base import Index

__all__ = [
    "Anchor",
    "SamplerBatch",
    "build_batch",
    "positive_scores_for",
    "resolve_anchor",
    "take_positions",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
Float64Array = npt.NDArray[np.float64]

_PAIR_BLOCK = 16384  # (vector, id) pairs scored at a time
#: Working-set budget (MiB) of a batch's sampler temporaries when none is given
#: (``sample()`` on candidates you already have).
DEFAULT_BATCH_BUDGET_MB = 64.0


def take_positions(a: np.ndarray, positions: IntArray, fill: Any) -> np.ndarray:
    """``a[r, positions[r, j]]``, ``fill`` where a position is ``-1``.

    ``a`` may have no columns (a row with nothing to take from: every position is then
    ``-1``); the result has ``a``'s dtype promoted with ``fill``.
    """
    positions = np.asarray(positions)
    if a.shape[1] == 0:  # nothing to gather: np.take_along_axis would read column 0
        if np.any(positions >= 0):
            raise IndexError(f"position {int(positions.max())} into an array with no columns")
        return np.where(positions >= 0, np.zeros(positions.shape, a.dtype), fill)
    out = np.take_along_axis(a, np.maximum(positions, 0), axis=1)
    return np.where(positions >= 0, out, fill)


@dataclass(frozen=True)
class SamplerBatch:
    """Everything a sampler may use for a batch of ``b`` rows.

    Attributes
    ----------
    query_index : int64 ``(b,)`` global query index of each row (drives the random streams).
    ids, scores : ``(b, K)`` candidates with the positives removed, best first; ``-1``/NaN pad.
    valid : bool ``(b, K)`` candidates that passed every filter.
    positives : :class:`~negsample._ragged.Ragged` ``b`` rows, every labelled positive of
        each row (duplicates removed).
    positive_scores : float32 ``(positives.nnz,)`` ``s(q, d+)`` aligned with
        ``positives.values``; NaN where unknown (a positive that is not among the candidates
        when no vectors are available).
    seed : the integer seed.
    queries : float32 ``(b, dim)`` query vectors in the index's space, when known.
    index : the :class:`~negsample.index.Index`, for scores and norms, when known.
    rng_sub : int64 ``(b,)`` tells apart several rows of one query (``"each"``).
    exclude : :class:`~negsample._ragged.Ragged` more ids per row never to sample, or None.
    memory_budget_mb : MiB the sampler's temporaries for this batch may take (the share of
        :func:`~negsample.mine`'s ``memory_budget_mb`` of one chunk in flight); ``None``:
        :data:`DEFAULT_BATCH_BUDGET_MB`. A sampler whose temporaries grow with ``n`` or with
        the positives (RandomSampler's rejection rounds) works in pieces within it.
    """

    query_index: IntArray
    ids: IntArray
    scores: FloatArray
    valid: BoolArray
    positives: Ragged
    positive_scores: FloatArray
    seed: int
    queries: FloatArray | None = None
    index: Index | None = None
    rng_sub: IntArray | None = None
    exclude: Ragged | None = None
    memory_budget_mb: float | None = None

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])

    @property
    def budget_bytes(self) -> int:
        """``memory_budget_mb`` in bytes (:data:`DEFAULT_BATCH_BUDGET_MB` when unset)."""
        mb = DEFAULT_BATCH_BUDGET_MB if self.memory_budget_mb is None else self.memory_budget_mb
        return max(1, int(mb * 2**20))

    def take(self, rows: IntArray, rng_sub: IntArray | None = None) -> SamplerBatch:
        """The batch restricted (or expanded) to ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        return replace(
            self,
            query_index=self.query_index[rows],
            ids=self.ids[rows],
            scores=self.scores[rows],
            valid=self.valid[rows],
            positives=self.positives.take(rows),
            positive_scores=self.positives.take_values(self.positive_scores, rows),
            queries=None if self.queries is None else self.queries[rows],
            rng_sub=rng_sub
            if rng_sub is not None
            else (None if self.rng_sub is None else self.rng_sub[rows]),
            exclude=None if self.exclude is None else self.exclude.take(rows),
        )

    # -- random numbers: functions of (seed, query index, stream[, candidate id]) -----------
    def gumbel(self, n: int, stream: int) -> Float64Array:
        """Gumbel noise ``(b, n)`` keyed by column position."""
        return gumbel(self.seed, self.query_index, n, stream, self.rng_sub)

    def uniform(self, n: int, stream: int) -> Float64Array:
        """Uniform numbers ``(b, n)`` keyed by column position."""
        return uniform(self.seed, self.query_index, n, stream, self.rng_sub)

    def gumbel_for(self, ids: IntArray, stream: int) -> Float64Array:
        """Gumbel noise keyed by candidate id, ``ids.shape``: a candidate keeps its number
        wherever it sits in the row (near-tied candidates that swap ranks between two
        searches keep their draws)."""
        return gumbel_at(self.seed, self.query_index, ids, stream, self.rng_sub)

    # -- scores served by the index (nothing gathered) ----------------------------------
    def candidate_ids(self, positions: IntArray | None = None) -> IntArray:
        """Candidate ids, or those at ``positions`` ``(b, m)`` (``-1`` where a position is)."""
        return self.ids if positions is None else take_positions(self.ids, positions, -1)

    def candidate_scores(self, positions: IntArray) -> Float64Array:
        """``s(q, d-)`` of the candidates at ``positions`` (float64, NaN at ``-1``)."""
        return take_positions(self.scores, positions, np.nan).astype(np.float64)

    def scores_against(self, vectors: Any, positions: IntArray | None = None) -> Float64Array:
        """Inner products ``(b, m)`` of each row's vector ``vectors`` ``(b, dim)`` with the
        candidates (or those at ``positions``), from the index's ``score`` primitive;
        NaN where there is no candidate."""
        index = self._need_index("scores against corpus rows")
        return index_score(index, vectors, self.candidate_ids(positions)).astype(np.float64)

    def candidate_sq_norms(self, positions: IntArray | None = None) -> Float64Array:
        """``|d-|^2`` of the candidates (or those at ``positions``), NaN at ``-1``."""
        index = self._need_index("the corpus rows' norms")
        return index_sq_norms(index, self.candidate_ids(positions)).astype(np.float64)

    def candidate_vectors(self, positions: IntArray | None = None) -> FloatArray:
        """Corpus vectors of the candidates (or of ``positions`` into them), ``(b, m, dim)``.
        The built-in samplers never need this (they ask the index for scores); it is here
        for samplers that truly need vectors (set ``vectors_per_query`` then)."""
        index = self._need_index("candidate vectors")
        return index.vectors(self.candidate_ids(positions))

    def _need_index(self, what: str) -> Index:
        if self.index is None:
            raise InputError(
                f"this sampler needs {what}: pass index= (an Index over the corpus) to "
                "sample(), or use mine()"
            )
        return self.index


@dataclass(frozen=True)
class Anchor:
    """The positive each row is sampled against: its id (``-1`` for ``"mean"``), ``s(q, d+)``
    (float64) and the policy that chose it."""

    ids: IntArray
    scores: Float64Array
    policy: str

    def vectors(self, batch: SamplerBatch) -> FloatArray:
        """The positive's corpus vector per row, ``(b, dim)``; the mean of the known
        positives' vectors for ``"mean"`` (summed block by block, never all at once)."""
        index = batch._need_index("the positives' corpus vectors")
        if self.policy != "mean":
            return index.vectors(self.ids)
        pos = batch.positives
        known = ~np.isnan(batch.positive_scores)
        rows = pos.row_of[known]
        ids = pos.values[known]
        out = np.zeros((batch.size, index.dim), np.float64)
        for s in range(0, ids.size, _PAIR_BLOCK):
            r = rows[s : s + _PAIR_BLOCK]
            v = index.vectors(ids[s : s + _PAIR_BLOCK]).astype(np.float64)
            starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
            out[r[starts]] += np.add.reduceat(v, starts, axis=0)
        n_known = np.bincount(rows, minlength=batch.size)
        return (out / np.maximum(n_known, 1)[:, None]).astype(np.float32)

    def sq_norms(self, batch: SamplerBatch) -> Float64Array:
        """``|d+|^2`` per row (of the mean vector for ``"mean"``)."""
        index = batch._need_index("the positives' norms")
        if self.policy == "mean":
            v = self.vectors(batch).astype(np.float64)
            return np.einsum("bd,bd->b", v, v)
        return index_sq_norms(index, self.ids).astype(np.float64)


def resolve_anchor(batch: SamplerBatch, policy: str) -> tuple[SamplerBatch, Anchor]:
    """Pick the positive each row is sampled against; ``"each"`` expands the rows (one per
    positive whose score is known)."""
    pos = batch.positives
    ps = batch.positive_scores.astype(np.float64)
    known = ~np.isnan(ps)
    n_known = np.bincount(pos.row_of[known], minlength=batch.size)
    if np.any(n_known == 0):
        r = int(np.argmax(n_known == 0))
        raise InputError(
            f"query {int(batch.query_index[r])}: no positive has a known score s(q, d+); pass "
            "positive_scores, or queries and an index, so the sampler can anchor on a positive"
        )
    if policy == "each":
        flat = np.flatnonzero(known)
        rows = pos.row_of[flat]
        b2 = batch.take(rows, rng_sub=pos.slot_of[flat] + 1)
        return b2, Anchor(pos.values[flat], ps[flat], policy)
    if policy == "mean":
        mean = segment_sum(np.where(known, ps, 0.0), pos.indptr) / n_known
        return batch, Anchor(np.full(batch.size, -1, np.int64), mean, policy)
    if policy in ("max", "min"):
        flat = segment_argbest(ps, pos.indptr, known, largest=policy == "max")
    elif policy == "random":
        u = batch.uniform(1, Stream.ANCHOR)[:, 0]
        pick = np.minimum((u * n_known).astype(np.int64), n_known - 1)  # pick-th known
        rank = np.cumsum(known) - 1
        rank = rank - np.repeat(np.r_[0, np.cumsum(known)][pos.indptr[:-1]], pos.lengths)
        flat = np.flatnonzero(known & (rank == pick[pos.row_of]))
    else:  # pragma: no cover - validated at construction
        raise InputError(policy)
    return batch, Anchor(pos.values[flat], ps[flat], policy)


def positive_scores_for(queries: Any, positives: Ragged, index: Index) -> FloatArray:
    """Exact ``s(q, d+)`` for every labelled positive, float32 ``(positives.nnz,)``, from the
    index's ``score`` primitive in blocks of pairs (memory ``O(block x dim)`` however many
    positives a query has)."""
    q = np.asarray(queries, dtype=np.float32)
    out = np.empty(positives.nnz, np.float32)
    rows = positives.row_of
    for s in range(0, positives.nnz, _PAIR_BLOCK):
        r = rows[s : s + _PAIR_BLOCK]
        out[s : s + r.size] = index_score(index, q[r], positives.values[s : s + r.size, None])[:, 0]
    return out


def build_batch(
    ids: Any,
    scores: Any,
    positives: Ragged,
    *,
    query_index: IntArray,
    seed: int,
    depth: int,
    stats: MiningStats,
    positive_scores: Any = None,
    queries: FloatArray | None = None,
    index: Index | None = None,
    exclude: Ragged | None = None,
    trusted: bool = False,
    memory_budget_mb: float | None = None,
) -> SamplerBatch:
    """Validate candidates, remove every labelled positive (counted as ``"positive"``) and
    every id of ``exclude`` (counted as ``"excluded"``), keep the first ``depth`` remaining
    candidates per row (all if ``depth`` is 0) and find ``s(q, d+)``. Excluded ids are never
    sampled but, unlike positives, never anchor.

    ``positive_scores``: float ``(positives.nnz,)`` aligned with ``positives.values`` (NaN =
    unknown; infinities are refused); else computed from ``queries`` and ``index``; else
    looked up among the candidates (a positive the candidates do not hold stays unknown).
    ``trusted``: the candidates come from an index search (``mine()``): each row holds an
    id at most once, ``-1`` padding only at its end, so the duplicate check is skipped.
    ``memory_budget_mb``: :attr:`SamplerBatch.memory_budget_mb`.
    """
    ids = to_numpy(ids, "ids")
    sc = to_numpy(scores, "scores")
    if ids.ndim != 2:
        raise InputError(f"candidate ids must be 2-D (n_queries, k), got shape {ids.shape}")
    if ids.size and ids.dtype.kind not in "iu":
        raise InputTypeError(f"candidate ids must be integers, got dtype {ids.dtype}")
    if sc.shape != ids.shape:
        raise InputError(f"scores has shape {sc.shape} but ids has shape {ids.shape}")
    if sc.size and sc.dtype.kind != "f":
        raise InputTypeError(f"candidate scores must be floats, got dtype {sc.dtype}")
    ids = ids.astype(np.int64, copy=False)
    sc = as_float32(sc, "candidate scores")  # a float64 beyond float32's range: refused
    b = ids.shape[0]
    if positives.n_rows != b:
        raise InputError(f"positives has {positives.n_rows} rows, the candidates {b}")
    present = ids >= 0
    if np.any(ids < -1):
        r, c = np.argwhere(ids < -1)[0]
        raise InputError(f"candidate ids row {r} holds {ids[r, c]}; use -1 for padding")
    if index is not None and np.any(ids >= index.ntotal):
        r, c = np.argwhere(ids >= index.ntotal)[0]
        raise InputError(
            f"candidate ids row {r} holds {ids[r, c]}, out of range for a corpus of {index.ntotal}"
        )
    if np.any(present & ~np.isfinite(sc)):
        r, c = np.argwhere(present & ~np.isfinite(sc))[0]
        raise InputError(f"candidate scores row {r}, column {c} is {sc[r, c]} (not finite)")
    if not trusted:
        srt = np.sort(np.where(present, ids, -1 - np.arange(ids.shape[1])[None, :]), axis=1)
        dup = srt[:, 1:] == srt[:, :-1]
        if dup.any():
            r, c = np.argwhere(dup)[0]
            raise InputError(f"candidate ids row {r} holds id {srt[r, c]} twice")
    is_pos = present & positives.contains(ids)
    stats.candidates_seen += int(present.sum())
    stats.count_removed("positive", int(is_pos.sum()))
    removed = is_pos
    if exclude is not None:
        if exclude.n_rows != b:
            raise InputError(f"exclude has {exclude.n_rows} rows, the candidates {b}")
        is_exc = present & ~is_pos & exclude.contains(ids)
        stats.count_removed("excluded", int(is_exc.sum()))
        removed = is_pos | is_exc

    # positive scores: given > computed from vectors > looked up among the candidates
    if positive_scores is not None:
        ps = to_numpy(positive_scores, "positive_scores")
        if ps.shape != (positives.nnz,):
            raise InputError(
                f"positive_scores has shape {ps.shape}, want ({positives.nnz},): one score "
                "per positive"
            )
        if ps.dtype.kind == "f" and ps.dtype.itemsize > 4:
            with np.errstate(invalid="ignore"):
                over = np.isfinite(ps) & (np.abs(ps) > FLOAT32_MAX)
            if over.any():
                at = int(np.argmax(over))
                raise InputError(
                    f"positive_scores of query {int(query_index[positives.row_of[at]])} "
                    f"(positive {int(positives.values[at])}) is {ps[at]:.4g}, beyond float32's "
                    f"range (+/-{FLOAT32_MAX:.4g}): it would become infinite"
                )
        ps = ps.astype(np.float32)
        if np.any(np.isinf(ps)):
            at = int(np.argmax(np.isinf(ps)))
            raise InputError(
                f"positive_scores of query {int(query_index[positives.row_of[at]])} (positive "
                f"{int(positives.values[at])}) is {ps[at]}: scores must be finite (NaN = unknown)"
            )
    elif queries is not None and index is not None:
        ps = positive_scores_for(queries, positives, index)
    else:
        ps = _lookup_scores(ids, sc, positives, is_pos)

    keep = present & ~removed
    width_out = depth if depth > 0 else ids.shape[1]
    c_ids = np.where(keep, ids, -1)[:, :width_out]
    c_sc = np.where(keep, sc, np.nan)[:, :width_out].astype(np.float32)
    # compact the rows that lost a candidate before a kept one (the others already are)
    gaps = ~keep[:, :-1] & keep[:, 1:]
    moved = np.flatnonzero(gaps.any(axis=1))
    if moved.size:
        order = np.argsort(~keep[moved], axis=1, kind="stable")[:, :width_out]
        c_ids[moved] = np.take_along_axis(np.where(keep[moved], ids[moved], -1), order, axis=1)
        c_sc[moved] = np.take_along_axis(np.where(keep[moved], sc[moved], np.nan), order, axis=1)
    if c_ids.shape[1] < width_out:
        padw = width_out - c_ids.shape[1]
        c_ids = np.concatenate([c_ids, np.full((b, padw), -1, np.int64)], axis=1)
        c_sc = np.concatenate([c_sc, np.full((b, padw), np.nan, np.float32)], axis=1)
    return SamplerBatch(
        query_index=np.asarray(query_index, dtype=np.int64),
        ids=c_ids,
        scores=c_sc,
        valid=c_ids >= 0,
        positives=positives,
        positive_scores=ps,
        seed=seed,
        queries=queries,
        index=index,
        exclude=exclude,
        memory_budget_mb=memory_budget_mb,
    )


def _lookup_scores(
    ids: IntArray, sc: FloatArray, positives: Ragged, is_pos: BoolArray
) -> FloatArray:
    """``s(q, d+)`` of each positive found among its row's candidates, NaN otherwise."""
    out = np.full(positives.nnz, np.nan, np.float32)
    r, c = np.nonzero(is_pos)
    if r.size == 0:
        return out
    width = np.int64(max(int(ids.max(initial=-1)), int(positives.values.max(initial=-1))) + 2)
    ckey = r * width + ids[r, c] + 1
    order = np.argsort(ckey)
    pkey = positives.row_of * width + positives.values + 1
    at = np.minimum(np.searchsorted(ckey[order], pkey), r.size - 1)
    hit = ckey[order][at] == pkey
    out[hit] = sc[r, c][order][at[hit]]
    return out
