"""The exact top-``k`` kernels of :class:`~negsample.TorchIndex`, over blocks of float32 scores.

Every path returns, for each query row, the ``k`` best entries by (score, then smaller id) as
packed int64 keys (:func:`pack`): an exact function of the scores, so the paths differ in
speed only.

- ``"grouped"`` (the default, :func:`grouped_topk`): each score block's row is cut into groups
  of ``g`` columns and each group's maximum taken (one pass over the scores); only the best
  groups are gathered. Until a threshold exists, a block gives the ``k`` groups with the
  largest maxima (every entry of the block's top-``k`` lies in them) and their best ``2 k``
  entries; afterwards a block gives only ``c`` groups and their ``2 c`` best entries, ``c``
  sized from the expected count of entries above the running ``k``-th best. Where those
  groups would hold half the block or more, the entries are taken from the whole block.
  Each block records on the device whether a row may have missed an entry; flagged blocks
  (rare) are scored again after the last block and merged whole. No host synchronisation
  inside the block loop: one per call.
- ``"lazy"`` and ``"every-block"``: the former paths (threshold and ``nonzero``, with a host
  synchronisation per block), kept for side-by-side benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["GROUP", "PATHS", "grouped_topk", "pack", "unpack_scores"]

EMPTY = int(np.iinfo(np.int64).min)  # the key of a missing entry (id -1, score -inf)
LOW = 0xFFFFFFFF
#: The search paths of :class:`~negsample.TorchIndex`; the first is the default.
PATHS = ("grouped", "lazy", "every-block")
#: The path searches take (a module setting, for benchmarks/bench_torch.py and the tests).
PATH = "grouped"
#: Columns per group of the grouped top-k (chosen by benchmarks/bench_torch.py --topk).
GROUP = 32
#: Groups taken from a block once a threshold exists: ``lam + SLACK_SD * sqrt(lam) + SLACK``,
#: ``lam`` the expected count of its entries above the threshold (a Poisson tail: on a
#: corpus in random order a row passes more with a probability of about 1e-9 at most).
SLACK_SD = 6.0
SLACK = 6.0


def pack(torch: Any, scores: Any, ids: Any) -> Any:
    """The torch twin of ``numpy_index._pack``: one int64 per (score, id), larger = higher
    score, then smaller id (``-0.0`` folded into ``0.0``)."""
    bits = (scores + 0.0).view(torch.int32)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # negative floats: reverse their order
    return (bits.to(torch.int64) << 32) | (LOW - 1 - ids)


def unpack_scores(torch: Any, keys: Any) -> Any:
    """float32 scores of packed keys (the inverse of :func:`pack`'s high half)."""
    bits = keys >> 32
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return bits.to(torch.int32).view(torch.float32)


# -- the grouped top-k --------------------------------------------------------------------------
def _padded(torch: Any, s: Any, width: int) -> Any:
    """``s`` ``(rows, m)`` widened to ``width`` columns of ``-inf`` (a partial last group)."""
    if s.shape[1] == width:
        return s
    out = torch.full((s.shape[0], width), -math.inf, dtype=s.dtype, device=s.device)
    out[:, : s.shape[1]] = s
    return out


def _gather_groups(torch: Any, sp: Any, gidx: Any, g: int) -> Any:
    """The ``g`` columns of groups ``gidx`` ``(rows, c)`` of ``sp`` ``(rows, groups * g)``,
    ``(rows, c * g)``: whole groups copied as rows of a ``(rows * groups, g)`` view."""
    rows, width = sp.shape
    flat = gidx + torch.arange(0, rows * (width // g), width // g, device=sp.device)[:, None]
    return sp.view(-1, g).index_select(0, flat.view(-1)).view(rows, -1)


def block_candidates(torch: Any, s: Any, kk: int, g: int, offset: int) -> Any:
    """Keys ``(rows, w)`` holding every entry of the block's exact top-``kk``, for the block
    ``s`` ``(rows, m)`` of corpus ids ``offset + arange(m)``.

    The ``kk`` groups of ``g`` columns with the largest maxima are kept, ordered by (maximum,
    then smaller group index): the order of their best entries by (score, then smaller id),
    so ``kk`` groups ranked above an entry's group hold ``kk`` entries ranked above it and the
    block's top-``kk`` lies in the groups kept, ties included. The whole block when it has no
    more than ``kk`` groups.
    """
    rows, m = s.shape
    n_groups = -(-m // g)
    if kk >= n_groups:
        ids = torch.arange(offset, offset + m, device=s.device, dtype=torch.int64)
        return pack(torch, s, ids.expand(rows, m))
    sp = _padded(torch, s, n_groups * g)
    gmax = sp.view(rows, n_groups, g).amax(dim=2)
    gids = torch.arange(n_groups, device=s.device, dtype=torch.int64)
    top = torch.topk(pack(torch, gmax, gids.expand(rows, n_groups)), kk, dim=1, sorted=False)
    cols = (top.indices * g)[:, :, None] + torch.arange(g, device=s.device)
    cols = cols.view(rows, kk * g)
    keys = pack(torch, _gather_groups(torch, sp, top.indices, g), cols + offset)
    return torch.where(cols < m, keys, EMPTY) if m % g else keys


def _route(kk: int, c: int, m: int, g: int) -> tuple[bool, bool]:
    """``(exact, whole)`` for a block of ``m`` rows giving ``c`` groups of ``g``."""
    exact = c >= min(kk, -(-m // g))
    return exact, 2 * (kk if exact else c) * g > m


def _kept(torch: Any, s: Any, kk: int, c: int, g: int, offset: int, thr: Any) -> tuple[Any, Any]:
    """Keys ``(rows, w)`` of the entries a block gives, and ``missed``: ``(rows,)`` bool, True
    where the row may have left out an entry of its top-``kk`` (``None``: it cannot).

    With ``c = min(kk, groups)`` (the exact route) the ``kk`` groups of :func:`block_candidates`
    are taken, then their best ``2 kk`` entries by value: exact unless fewer than ``kk`` of
    them lie above the last one kept (then an entry left out may tie the ``kk``-th best:
    missed, unless below the threshold ``thr`` ``(rows,)``). With fewer groups, the ``c``
    groups of largest maxima, then their ``2 c`` best entries: missed where the last group or
    entry kept reaches the threshold (one left out may too). Groups holding half the block
    or more cost more than they save: the best entries are then taken from the whole block.
    """
    rows, m = s.shape
    n_groups = -(-m // g)
    exact, whole = _route(kk, c, m, g)
    missed = None
    if whole:
        vals = s
    else:
        sp = _padded(torch, s, n_groups * g)
        gmax = sp.view(rows, n_groups, g).amax(dim=2)
        if exact:
            gids = torch.arange(n_groups, device=s.device, dtype=torch.int64)
            gkeys = pack(torch, gmax, gids.expand(rows, n_groups))
            gidx = torch.topk(gkeys, kk, dim=1, sorted=False).indices
        else:
            top = torch.topk(gmax, c, dim=1, sorted=False)
            gidx = top.indices
            missed = top.values.amin(dim=1) >= thr
        vals = _gather_groups(torch, sp, gidx, g)
    keep = 2 * kk if exact else 2 * c
    if keep < vals.shape[1]:
        top = torch.topk(vals, keep, dim=1, sorted=False)
        low = top.values.amin(dim=1)  # every entry above it is kept
        cut = low >= thr
        if exact:  # unless kk entries kept are above it, an entry left out may tie the kk-th
            cut &= (top.values > low[:, None]).sum(dim=1) < kk
        missed = cut if missed is None else missed | cut
        vals, pos = top.values, top.indices
    else:
        pos = torch.arange(vals.shape[1], device=s.device).expand(rows, -1)
    cols = pos if whole else gidx.gather(1, pos // g) * g + pos % g
    keys = pack(torch, vals, cols + offset)
    if m % g and not whole:  # padding columns of the partial last group
        keys = torch.where(cols < m, keys, EMPTY)
    return keys, missed


def _merge(torch: Any, parts: Sequence[Any], kk: int) -> Any:
    merged = torch.cat(list(parts), dim=1) if len(parts) > 1 else parts[0]
    if merged.shape[1] <= kk:
        return merged
    return torch.topk(merged, kk, dim=1, sorted=False).values


def _merge_unique(torch: Any, best: Any, keys: Any, kk: int) -> Any:
    """Merge ``keys`` into ``best``, keeping one key per id (the larger): a block scored
    again can hand back entries already merged."""
    merged = torch.sort(torch.cat([best, keys], dim=1), dim=1, descending=True).values
    low, order = torch.sort(merged & LOW, dim=1, stable=True)  # by id, larger key first
    dup = torch.zeros_like(merged, dtype=torch.bool)
    dup.scatter_(1, order[:, 1:], low[:, 1:] == low[:, :-1])
    return _merge(torch, [torch.where(dup, EMPTY, merged)], kk)


def groups_to_take(kk: int, m: int, rows_seen: int, g: int) -> int:
    """Groups taken from a block of ``m`` rows once the threshold reflects ``rows_seen``
    corpus rows; ``min(kk, groups)`` (the exact block route) without a threshold."""
    cap = min(kk, -(-m // g))
    if rows_seen == 0:
        return cap
    lam = kk * m / rows_seen
    return min(cap, math.ceil(lam + SLACK_SD * math.sqrt(lam) + SLACK))


def grouped_topk(
    torch: Any,
    score: Callable[[int], Any],
    spans: Sequence[tuple[int, int]],
    kk: int,
    g: int,
) -> tuple[Any, dict[str, int]]:
    """Packed keys ``(rows, kk)`` (unsorted) of the exact top-``kk`` of every row over the
    corpus blocks ``spans`` (``(first id, rows)`` each), whose float32 scores ``score(i)``
    returns (the same values each time it is asked). Also the counts: ``blocks``,
    ``pruned`` (blocks past the exact route: ``c < kk`` groups), ``grouped`` (blocks whose
    entries were gathered by groups, not taken from the whole block), ``rescored`` (blocks
    merged whole after the loop because a row may have missed an entry).

    ``kk`` must not exceed the total rows of ``spans``.
    """
    best: Any = None
    thr: Any = None  # (rows,) float32: each row's kk-th best score at the last merge
    rows_thr = 0  # corpus rows scanned when thr was set (0: no threshold yet)
    seen = width = pruned = grouped = 0
    pending: list[Any] = []
    flags: list[tuple[int, Any]] = []
    for i, (offset, m) in enumerate(spans):
        s = score(i)
        if thr is None:
            thr = torch.full((s.shape[0],), -math.inf, device=s.device)
        c = groups_to_take(kk, m, rows_thr, g)
        exact, whole = _route(kk, c, m, g)
        pruned += not exact
        grouped += not whole
        seen += m
        keys, missed = _kept(torch, s, kk, c, g, offset, thr)
        if missed is not None:
            flags.append((i, missed.any()))
        pending.append(keys)
        width += int(keys.shape[1])
        if width >= kk or rows_thr == 0:
            best = _merge(torch, pending if best is None else [best, *pending], kk)
            pending, width = [], 0
            if seen >= kk:  # every row holds kk real entries
                thr = unpack_scores(torch, best.amin(dim=1))
                rows_thr = seen
    if pending:
        best = _merge(torch, pending if best is None else [best, *pending], kk)
    rescore: list[int] = []
    if flags:  # one synchronisation per call
        missed = torch.stack([f for _, f in flags]).cpu().numpy()
        rescore = [i for (i, _), bad in zip(flags, missed, strict=True) if bad]
    for i in rescore:
        best = _merge_unique(torch, best, block_candidates(torch, score(i), kk, g, spans[i][0]), kk)
    stats = {"blocks": len(spans), "pruned": pruned, "grouped": grouped, "rescored": len(rescore)}
    return best, stats


# -- the former paths (threshold and nonzero), for side-by-side benchmarks ----------------------
class LazyTopK:
    """The exact running top-``kk`` (packed keys) of one block of queries over corpus
    blocks, merged lazily: once every row holds ``kk`` keys, a block contributes only its
    entries scoring at least the row's ``kk``-th best at the last merge (a stale, lower
    threshold lets more through, never fewer: exact), kept aside until they number ``kk``
    columns, then merged in one ``topk``; a block where some row passes more than ``2 kk``
    contributes its own top-``kk`` instead. Which path runs changes the speed only: the
    result is the top-``kk`` of the scores by (score, then smaller id)."""

    def __init__(self, torch: Any, kk: int) -> None:
        self.torch = torch
        self.kk = kk
        self.best: Any = None
        self.thr: Any = None  # (rows, 1) float32 threshold, None until every row is full
        self.pending: list[Any] = []
        self.width = 0

    def add(self, s: Any, offset: int) -> None:
        torch, kk = self.torch, self.kk
        if self.best is None:
            self.best = block_topk(torch, s, kk, offset)
            self._set_threshold()
            return
        if self.thr is not None and s.shape[1] > kk:
            rows, cols = torch.nonzero(s >= self.thr, as_tuple=True)  # row-major order
            cnt = torch.bincount(rows, minlength=s.shape[0])
            width = int(cnt.max())
            if width == 0:
                return
            if width <= 2 * kk:
                starts = torch.cumsum(cnt, 0) - cnt
                pos = torch.arange(rows.shape[0], device=s.device) - starts[rows]
                cand = torch.full((s.shape[0], width), EMPTY, dtype=torch.int64, device=s.device)
                cand[rows, pos] = pack(torch, s[rows, cols], cols + offset)
                self._keep(cand)
                return
        self._keep(block_topk(torch, s, kk, offset))

    def _keep(self, keys: Any) -> None:
        self.pending.append(keys)
        self.width += int(keys.shape[1])
        if self.width >= self.kk or self.thr is None:
            self._merge()

    def _merge(self) -> None:
        if self.pending:
            merged = self.torch.cat([self.best, *self.pending], dim=1)
            k = min(self.kk, int(merged.shape[1]))  # blocks narrower than kk: not full yet
            self.best = self.torch.topk(merged, k, dim=1, sorted=False).values
            self.pending, self.width = [], 0
            self._set_threshold()

    def _set_threshold(self) -> None:
        if self.best.shape[1] < self.kk:
            self.thr = None
            return
        low = self.best.min(dim=1).values
        full = bool((low != EMPTY).all())
        self.thr = unpack_scores(self.torch, low)[:, None] if full else None

    def result(self) -> Any:
        self._merge()
        assert self.best is not None  # at least one block was added
        return self.best


def merge_block(torch: Any, best: Any, s: Any, kk: int, offset: int) -> Any:
    """Merge the scores ``s`` ``(rows, m)`` of corpus ids ``offset + arange(m)`` into the
    running top-``kk`` packed keys ``best`` (``None`` before the first block). Exact.

    Once every row holds ``kk`` keys, only the entries scoring at least the row's current
    ``kk``-th best can enter: they are gathered (few, after the first blocks) and merged by
    packed key. A block where some row has more than ``2 kk`` of them takes the top-``k``
    path instead. Which path runs changes the speed only: both select the same keys, a
    function of the scores alone.
    """
    if best is not None and s.shape[1] > kk:
        low = best.min(dim=1).values
        if bool((low != EMPTY).all()):
            thr = unpack_scores(torch, low)[:, None]
            rows, cols = torch.nonzero(s >= thr, as_tuple=True)  # row-major order
            cnt = torch.bincount(rows, minlength=s.shape[0])
            width = int(cnt.max())
            if width <= 2 * kk:
                if width == 0:
                    return best
                starts = torch.cumsum(cnt, 0) - cnt
                pos = torch.arange(rows.shape[0], device=s.device) - starts[rows]
                cand = torch.full((s.shape[0], width), EMPTY, dtype=torch.int64, device=s.device)
                cand[rows, pos] = pack(torch, s[rows, cols], cols + offset)
                merged = torch.cat([best, cand], dim=1)
                return torch.topk(merged, kk, dim=1, sorted=False).values
    keys = block_topk(torch, s, kk, offset)
    if best is None:
        return keys
    merged = torch.cat([best, keys], dim=1)
    return torch.topk(merged, min(kk, int(merged.shape[1])), dim=1, sorted=False).values


def block_topk(torch: Any, s: Any, kk: int, offset: int) -> Any:
    """Packed keys ``(rows, min(kk, m))`` of the exact top of ``s`` ``(rows, m)`` float32
    (corpus ids ``offset + arange(m)``), ties at the cut broken by the smaller id.

    ``torch.topk`` picks among equal values arbitrarily, so a row whose cut value occurs
    more often than the slots left for it is selected again from packed keys (exact, and
    rare on real data): the answer is a function of the scores alone.
    """
    m = s.shape[1]
    kb = min(kk, m)
    vals, cols = torch.topk(s, kb, dim=1, sorted=False)
    thr = vals.min(dim=1, keepdim=True).values
    tied = (s >= thr).sum(dim=1, dtype=torch.int32) > kb
    if bool(tied.any()):
        rows = torch.nonzero(tied)[:, 0]
        ids = torch.arange(m, device=s.device, dtype=torch.int64) + offset
        keys = pack(torch, s[rows], ids.expand(rows.shape[0], m))
        top = torch.topk(keys, kb, dim=1, sorted=False).values
        out = pack(torch, vals, cols + offset)
        out[rows] = top
        return out
    return pack(torch, vals, cols + offset)
