"""The ``Index`` protocol and helpers shared by every index."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .._files import write_dir_atomic as write_dir_atomic  # (re-exported)
from .._types import SearchResult
from .._validate import as_matrix
from ..errors import InputError, InputTypeError

__all__ = [
    "DEFAULT_SEARCH_BLOCK",
    "METRICS",
    "BaseIndex",
    "Index",
    "index_score",
    "index_sq_norms",
    "prepare_queries",
]

METRICS = ("ip", "cosine")


@runtime_checkable
class Index(Protocol):
    """What :func:`negsample.mine` and the samplers need from a vector index.

    Scores are similarities (higher = more similar): inner product, or cosine when the
    index normalises. ``search`` follows the faiss ``(n, k)`` convention: float32 scores
    sorted best first and int64 ids, ``-1`` (score ``-inf``) where fewer than ``k`` exist.

    Samplers never gather candidate vectors: every quantity they need is a dot product or
    a norm, which the index serves natively through :meth:`score` and :meth:`sq_norms`.
    Subclass :class:`BaseIndex` to get both (and the defaults of ``exact`` and
    ``search_block``) from ``vectors`` alone. An optional ``searches_on_host`` property
    (default True) tells :func:`~negsample.mine` that a search leaves the CPUs free (a GPU
    index), so that it samples one block of queries while the next is searched.
    """

    metric: str

    @property
    def ntotal(self) -> int: ...

    @property
    def dim(self) -> int: ...

    @property
    def exact(self) -> bool:
        """True when ``search`` is exhaustive: the exact top-``k`` by score, ties broken by
        the smaller id, and a query's scores depend only on the query and its row in the
        search call (so :func:`~negsample.mine` can make them independent of chunking)."""
        ...

    @property
    def search_block(self) -> int:
        """Queries per ``search`` call in :func:`~negsample.mine`: queries are searched in
        fixed blocks aligned to their global index, whatever the sampling chunk."""
        ...

    def search(self, queries: Any, k: int) -> SearchResult: ...

    def score(self, vectors: Any, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Inner products ``(b, m)`` float32 of ``vectors`` ``(b, dim)`` (already in the
        index's space: normalised for cosine) with the corpus rows ``ids`` ``(b, m)``; NaN
        where an id is ``-1``. Each entry depends only on its vector and its row (no
        batch-dependent rounding)."""
        ...

    def sq_norms(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``|d|^2`` of the corpus rows ``ids`` (any shape) in the index's space, float32;
        NaN where an id is ``-1``."""
        ...

    def vectors(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Corpus vectors for ``ids`` (any shape), float32 ``(*ids.shape, dim)``, in the
        space the index scores in (normalised for cosine); zeros where an id is ``-1``."""
        ...

    def save(self, path: str | os.PathLike[str]) -> None: ...


#: Queries per search call unless an index says otherwise (faiss and BLAS reach their
#: full speed per query from about 500 queries per call).
DEFAULT_SEARCH_BLOCK = 1024
_SCORE_BLOCK = 1 << 22  # floats gathered at a time by the default ``score``


class BaseIndex:
    """Defaults for the :class:`Index` protocol built on ``vectors(ids)``: ``score`` and
    ``sq_norms`` gather in bounded blocks (subclasses override them with native versions),
    ``exact`` is False, ``search_block`` is :data:`DEFAULT_SEARCH_BLOCK` and
    ``searches_on_host`` is True."""

    metric: str
    _sq_norms_cache: npt.NDArray[np.float32] | None = None

    @property
    def ntotal(self) -> int:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def exact(self) -> bool:
        return False

    @property
    def search_block(self) -> int:
        return int(getattr(self, "_search_block", DEFAULT_SEARCH_BLOCK))

    @property
    def searches_on_host(self) -> bool:
        """Whether a search runs on this machine's CPUs (True) or on an accelerator that
        leaves them free (a GPU index): :func:`~negsample.mine` then samples one block
        while the next is searched."""
        return True

    def vectors(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        raise NotImplementedError

    def score(self, vectors: Any, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        v, idx = check_score_args(vectors, ids, self.ntotal, self.dim)
        out = np.empty(idx.shape, np.float32)
        rows = max(1, _SCORE_BLOCK // max(1, idx.shape[1] * self.dim))
        for s in range(0, idx.shape[0], rows):
            g = self.vectors(idx[s : s + rows])
            out[s : s + rows] = np.einsum("bd,bmd->bm", v[s : s + rows], g)
        out[idx < 0] = np.nan
        return out

    def sq_norms(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        idx = check_ids(ids, self.ntotal)
        if self._sq_norms_cache is None:
            self._sq_norms_cache = self._compute_sq_norms()
        out = self._sq_norms_cache[np.maximum(idx, 0)]
        out[idx < 0] = np.nan
        return out

    def _compute_sq_norms(self) -> npt.NDArray[np.float32]:
        """``|d|^2`` of every corpus row (cached by :meth:`sq_norms`)."""
        out = np.empty(self.ntotal, np.float32)
        step = max(1, _SCORE_BLOCK // self.dim)
        for s in range(0, self.ntotal, step):
            v = self.vectors(np.arange(s, min(s + step, self.ntotal)))
            out[s : s + v.shape[0]] = np.einsum("bd,bd->b", v, v)
        return out


def index_score(index: Any, vectors: Any, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """``index.score(vectors, ids)``, or the same from ``index.vectors`` for an index written
    before the protocol had ``score`` (gathered in bounded blocks)."""
    if hasattr(index, "score"):
        return np.asarray(index.score(vectors, ids), dtype=np.float32)
    return BaseIndex.score(index, vectors, ids)


def index_sq_norms(index: Any, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """``index.sq_norms(ids)``, or ``|d|^2`` from ``index.vectors`` (see :func:`index_score`)."""
    if hasattr(index, "sq_norms"):
        return np.asarray(index.sq_norms(ids), dtype=np.float32)
    idx = check_ids(ids, index.ntotal)
    v = index.vectors(idx)
    out = np.einsum("...d,...d->...", v, v).astype(np.float32)
    out[idx < 0] = np.nan
    return out


def check_score_args(
    vectors: Any, ids: npt.ArrayLike, ntotal: int, dim: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """float32 C-contiguous ``(b, dim)`` vectors and int64 ``(b, m)`` ids, checked."""
    idx = check_ids(ids, ntotal)
    if idx.ndim != 2:
        raise InputError(f"ids must be 2-D (b, m), got shape {idx.shape}")
    v = np.ascontiguousarray(np.asarray(vectors), dtype=np.float32)
    if v.ndim != 2 or v.shape != (idx.shape[0], dim):
        raise InputError(
            f"vectors must have shape {(idx.shape[0], dim)} to score ids of shape {idx.shape}, "
            f"got {v.shape}"
        )
    return v, idx


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise InputError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    return int(k)


def prepare_queries(queries: Any, dim: int, metric: str, check: bool = True) -> np.ndarray:
    """float32 C-contiguous query matrix, normalised for cosine."""
    # checked before the cast: a float64 beyond float32's range is named, not made inf
    q = as_matrix(queries, "queries", dim=dim, check=check, allow_1d=True)
    q = np.ascontiguousarray(q, dtype=np.float32)
    if metric == "cosine":
        q = normalize_rows(q)
    return q


def normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms == 0):
        row = int(np.argmax(norms.reshape(-1) == 0))
        raise InputError(f"cannot use the cosine metric: vector {row} has norm 0")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def check_ids(ids: npt.ArrayLike, ntotal: int, name: str = "ids") -> npt.NDArray[np.int64]:
    a = np.asarray(ids)
    if a.size and a.dtype.kind not in "iu":
        raise InputTypeError(f"{name} must be integers, got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    bad = (a < -1) | (a >= ntotal)
    if bad.any():
        pos = tuple(int(v) for v in np.argwhere(bad)[0])
        raise InputError(
            f"{name}{list(pos)} = {a[pos]} is out of range for an index of {ntotal} rows"
        )
    return a


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    meta_file = Path(path) / "meta.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a saved negsample index (no meta.json)")
    meta: dict[str, Any] = json.loads(meta_file.read_text())
    return meta
