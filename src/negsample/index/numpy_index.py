"""Exact brute-force index in numpy: the fallback and the oracle for the FAISS index."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import SearchResult
from .._validate import as_matrix
from ..errors import InputError
from .base import (
    DEFAULT_SEARCH_BLOCK,
    BaseIndex,
    check_ids,
    check_k,
    check_metric,
    check_score_args,
    prepare_queries,
    read_meta,
    write_dir_atomic,
)

__all__ = ["NumpyIndex", "topk_merge"]


def topk_merge(
    scores: npt.NDArray[np.float32], ids: npt.NDArray[np.int64], k: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Keep the ``k`` best of each row, sorted by score descending then id ascending
    (``-1`` ids last, with score ``-inf``).

    The id tie-break, applied at the cut too (of equal scores straddling the ``k``-th place
    the smaller ids are kept), makes the result independent of how the corpus was split
    into blocks or shards: the order of :meth:`NumpyIndex.search`.
    """
    keys = np.where(ids >= 0, _pack(scores, ids), _EMPTY)
    kk = min(int(k), keys.shape[1])
    if keys.shape[1] > kk:
        keys = np.partition(keys, keys.shape[1] - kk, axis=1)[:, keys.shape[1] - kk :]
    return _unpack(np.sort(keys, axis=1)[:, ::-1])


class NumpyIndex(BaseIndex):
    """Exact inner-product (or cosine) search over a numpy or memory-mapped array.

    The corpus is never copied: it is read in blocks of ``chunk_size`` rows, so memory is
    bounded by ``query_block x chunk_size`` scores whatever the corpus size. float16
    corpora are converted block by block.

    Parameters
    ----------
    vectors : array (n, dim), float16/32/64, or a memory-mapped ``.npy``.
    metric : ``"ip"`` (inner product) or ``"cosine"``.
    chunk_size : corpus rows scored at a time.
    query_block : queries scored at a time within one search call.
    search_block : queries per search call in :func:`~negsample.mine` (fixed blocks aligned
        to the global query index, so results do not depend on the sampling chunk).
    check : scan the corpus for NaN / infinite values once at construction.

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> corpus = np.eye(4, dtype=np.float32)
    >>> ns.NumpyIndex(corpus).search(corpus[:1], k=2).ids
    array([[0, 1]])
    """

    def __init__(
        self,
        vectors: Any,
        *,
        metric: str = "ip",
        chunk_size: int = 16384,
        query_block: int = 1024,
        search_block: int = DEFAULT_SEARCH_BLOCK,
        check: bool = True,
    ) -> None:
        self.metric = check_metric(metric)
        self._vectors = as_matrix(vectors, "corpus", check=check)
        for name, v in (
            ("chunk_size", chunk_size),
            ("query_block", query_block),
            ("search_block", search_block),
        ):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        self.chunk_size = int(chunk_size)
        self.query_block = int(query_block)
        self._search_block = int(search_block)
        self._inv_norms: npt.NDArray[np.float32] | None = None
        if metric == "cosine":
            norms = np.empty(self.ntotal, dtype=np.float32)
            for s in range(0, self.ntotal, self.chunk_size):
                block = np.asarray(self._vectors[s : s + self.chunk_size], dtype=np.float32)
                norms[s : s + block.shape[0]] = np.linalg.norm(block, axis=1)
            if np.any(norms == 0):
                raise InputError(f"corpus row {int(np.argmax(norms == 0))} has norm 0 (cosine)")
            self._inv_norms = (1.0 / norms).astype(np.float32)

    def __repr__(self) -> str:
        return f"NumpyIndex(ntotal={self.ntotal}, dim={self.dim}, metric={self.metric!r})"

    @property
    def ntotal(self) -> int:
        return int(self._vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    @property
    def exact(self) -> bool:
        return True

    def _block(self, start: int) -> npt.NDArray[np.float32]:
        block = np.asarray(self._vectors[start : start + self.chunk_size], dtype=np.float32)
        if self._inv_norms is not None:
            block = block * self._inv_norms[start : start + block.shape[0], None]
        return block

    def search(self, queries: Any, k: int) -> SearchResult:
        """Exact top-``k`` by score, ``(n, k)`` float32 scores and int64 ids.

        Ties are broken by id (smaller first), so the result does not depend on
        ``chunk_size`` or ``query_block``. Each corpus block is read (and converted from
        float16) once per call; per query block only the entries that can still enter the
        running top-``k`` are gathered, so the cost is the matrix product.
        """
        k = check_k(k)
        q = prepare_queries(queries, self.dim, self.metric)
        n = q.shape[0]
        kk = min(k, self.ntotal)
        best = np.full((n, kk), _EMPTY, dtype=np.int64)  # packed (score, id) keys
        for cs in range(0, self.ntotal, self.chunk_size):
            block = self._block(cs)
            for qs in range(0, n, self.query_block):
                rows = slice(qs, qs + self.query_block)
                best[rows] = _merge_block(best[rows], q[rows] @ block.T, cs)
        out_s = np.full((n, k), -np.inf, dtype=np.float32)
        out_i = np.full((n, k), -1, dtype=np.int64)
        srt = np.sort(best, axis=1)[:, ::-1]
        out_s[:, :kk], out_i[:, :kk] = _unpack(srt)
        return SearchResult(scores=out_s, ids=out_i)

    def vectors(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        ids = check_ids(ids, self.ntotal)
        flat = ids.reshape(-1)
        out = np.asarray(self._vectors[np.maximum(flat, 0)], dtype=np.float32)
        if self._inv_norms is not None:
            out = out * self._inv_norms[np.maximum(flat, 0), None]
        out[flat < 0] = 0.0
        return out.reshape(*ids.shape, self.dim)

    def score(self, vectors: Any, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``s(v_i, d_ids[i, j])`` ``(b, m)``: rows gathered into one reused buffer, block by
        block, and dotted with their vector (one dot product per pair, never a matrix
        product whose rounding would depend on the batch)."""
        v, idx = check_score_args(vectors, ids, self.ntotal, self.dim)
        b, m = idx.shape
        out = np.empty((b, m), np.float32)
        # at most 2**20 floats gathered at a time (4 MiB): whole rows, or a row's ids in
        # pieces when one row alone holds more (RandomSampler with n=20,000)
        cols = max(1, min(m, (1 << 20) // self.dim))
        rows = max(1, (1 << 20) // max(1, cols * self.dim))
        buf = np.empty((min(rows, b) * cols, self.dim), np.float32)
        for s in range(0, b, rows):
            for c in range(0, m, cols):
                part = idx[s : s + rows, c : c + cols]
                flat = np.maximum(part.reshape(-1), 0)
                g = buf[: flat.size]
                if self._vectors.dtype == np.float32:
                    np.take(self._vectors, flat, axis=0, out=g)
                else:
                    g[...] = self._vectors[flat]
                if self._inv_norms is not None:
                    g *= self._inv_norms[flat, None]
                out[s : s + rows, c : c + cols] = np.einsum(
                    "bd,bmd->bm", v[s : s + rows], g.reshape(*part.shape, self.dim)
                )
        out[idx < 0] = np.nan
        return out

    def _compute_sq_norms(self) -> npt.NDArray[np.float32]:
        out = np.empty(self.ntotal, np.float32)
        for s in range(0, self.ntotal, self.chunk_size):
            block = self._block(s)
            out[s : s + block.shape[0]] = np.einsum("bd,bd->b", block, block)
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``path/vectors.npy`` and ``path/meta.json`` (atomically)."""

        def write(tmp: Path) -> None:
            arr = np.lib.format.open_memmap(
                tmp / "vectors.npy", mode="w+", dtype=self._vectors.dtype, shape=self._vectors.shape
            )
            for s in range(0, self.ntotal, self.chunk_size):
                arr[s : s + self.chunk_size] = self._vectors[s : s + self.chunk_size]
            arr.flush()
            del arr
            meta = {
                "type": "NumpyIndex",
                "metric": self.metric,
                "dim": self.dim,
                "ntotal": self.ntotal,
                "search_block": self.search_block,
            }
            (tmp / "meta.json").write_text(json.dumps(meta))

        write_dir_atomic(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = True, **kwargs: Any) -> NumpyIndex:
        meta = read_meta(path)
        vectors = np.load(Path(path) / "vectors.npy", mmap_mode="r" if mmap else None)
        kwargs.setdefault("check", False)
        kwargs.setdefault("search_block", meta.get("search_block", DEFAULT_SEARCH_BLOCK))
        return cls(vectors, metric=meta["metric"], **kwargs)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this index's results in a resumable run's settings: a digest
        of the stored vectors (cached for a memory-mapped ``.npy``; see
        :func:`~negsample.pipeline.settings.index_fingerprint`)."""
        from .._digest import array_digest

        return {"content": array_digest(self._vectors)}


# -- packed keys: one int64 per (score, id), ordered by score, then by id (smaller first) --
_EMPTY = np.iinfo(np.int64).min
_LOW = np.int64(0xFFFFFFFF)


def _pack(scores: npt.NDArray[np.float32], ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """One int64 per entry, larger = better: higher score first, then smaller id. The high
    half holds the float32 bits made monotone in the score, the low half ``2**32 - 2 - id``
    (corpora up to ``2**32 - 2`` rows). ``-0.0`` is folded into ``0.0``."""
    bits = (np.asarray(scores, np.float32) + np.float32(0.0)).view(np.int32).astype(np.int64)
    bits = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # negative floats: reverse the order
    return (bits << 32) | (_LOW - 1 - ids)


def _unpack(
    keys: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    empty = keys == _EMPTY
    bits = keys >> 32
    bits = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits).astype(np.int32)
    scores = bits.view(np.float32).copy()
    ids = _LOW - 1 - (keys & _LOW)
    scores[empty] = -np.inf
    ids[empty] = -1
    return scores, ids


def _merge_block(
    best: npt.NDArray[np.int64], s: npt.NDArray[np.float32], offset: int
) -> npt.NDArray[np.int64]:
    """Merge the scores ``s`` ``(b, m)`` of corpus rows ``offset + arange(m)`` into the
    running top-``kk`` keys ``best`` ``(b, kk)`` (unsorted). Exact, ties included: only
    entries scoring at least the row's current ``kk``-th best are gathered."""
    b, kk = best.shape
    m = s.shape[1]
    low = best.min(axis=1)
    thr = np.where(low == _EMPTY, -np.inf, _unpack(low)[0]).astype(np.float32)
    mask = s >= thr[:, None]
    cnt = np.count_nonzero(mask, axis=1)
    wide = np.flatnonzero(cnt > 2 * kk)
    if wide.size and m > kk:  # raise the threshold to the block's own kk-th best
        sub = s[wide]
        t2 = np.partition(sub, m - kk, axis=1)[:, m - kk]
        mask[wide] = sub >= np.maximum(t2, thr[wide])[:, None]
        cnt[wide] = np.count_nonzero(mask[wide], axis=1)
    width = int(cnt.max(initial=0))
    if width == 0:
        return best
    r, c = np.nonzero(mask)
    col = np.arange(r.size) - (np.cumsum(cnt) - cnt)[r]
    cand = np.full((b, width), _EMPTY, dtype=np.int64)
    cand[r, col] = _pack(s[r, c], c.astype(np.int64) + offset)
    merged = np.concatenate([best, cand], axis=1)
    return np.partition(merged, merged.shape[1] - kk, axis=1)[:, merged.shape[1] - kk :]


# -- the registry entry: "exact" (or "numpy"; "exact:chunk_size=4096" sets an option) ------
def _parse_exact(args: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, Any]]:
    from .registry import _default_parse

    rest, options = _default_parse(args)
    if rest:
        raise InputError(f"takes only KEY=VALUE options (chunk_size=...), got {':'.join(rest)!r}")
    return rest, options


def _build_exact(vectors: Any, spec: Any, *, metric: str, **options: Any) -> NumpyIndex:
    return NumpyIndex(vectors, metric=metric, **options)


def _exact_block(spec: Any, options: Any, dim: int) -> int:
    opts = {k: v for k, v in {**spec.options, **options}.items() if k != "check"}
    return NumpyIndex(np.ones((1, dim), np.float32), check=False, **opts).chunk_size


def _register() -> None:
    from .registry import register_index

    register_index(
        "exact",
        aliases=("numpy",),
        build=_build_exact,
        load=NumpyIndex.load,
        cls=NumpyIndex,
        exact=True,
        parse=_parse_exact,
        corpus_block=lambda index: int(index.chunk_size),
        expected_block=_exact_block,
        trusts_checked=True,
        syntax="exact",
    )


_register()
