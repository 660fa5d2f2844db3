"""The ``Index`` protocol and helpers shared by every index."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .._types import SearchResult
from .._validate import as_matrix, check_finite

__all__ = ["METRICS", "Index", "load_index", "prepare_queries"]

METRICS = ("ip", "cosine")


@runtime_checkable
class Index(Protocol):
    """What :func:`negsample.mine` and the samplers need from a vector index.

    Scores are similarities (higher = more similar): inner product, or cosine when the
    index normalises. ``search`` follows the faiss ``(n, k)`` convention: float32 scores
    sorted best first and int64 ids, ``-1`` (score ``-inf``) where fewer than ``k`` exist.
    """

    metric: str

    @property
    def ntotal(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def search(self, queries: Any, k: int) -> SearchResult: ...

    def vectors(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Corpus vectors for ``ids`` (any shape), float32 ``(*ids.shape, dim)``, in the
        space the index scores in (normalised for cosine); zeros where an id is ``-1``."""
        ...

    def save(self, path: str | os.PathLike[str]) -> None: ...


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def prepare_queries(queries: Any, dim: int, metric: str, check: bool = True) -> np.ndarray:
    """float32 C-contiguous query matrix, normalised for cosine."""
    q = as_matrix(queries, "queries", dim=dim, check=False, allow_1d=True)
    q = np.ascontiguousarray(q, dtype=np.float32)
    if check:
        check_finite(q, "queries")
    if metric == "cosine":
        q = normalize_rows(q)
    return q


def normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms == 0):
        row = int(np.argmax(norms.reshape(-1) == 0))
        raise ValueError(f"cannot use the cosine metric: vector {row} has norm 0")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def check_ids(ids: npt.ArrayLike, ntotal: int, name: str = "ids") -> npt.NDArray[np.int64]:
    a = np.asarray(ids)
    if a.size and a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    bad = (a < -1) | (a >= ntotal)
    if bad.any():
        pos = tuple(int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"{name}{list(pos)} = {a[pos]} is out of range for an index of {ntotal} rows"
        )
    return a


def write_dir_atomic(path: str | os.PathLike[str], write: Any) -> None:
    """Call ``write(tmpdir)`` then move the folder into place, so no half-written index
    is ever left at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    meta_file = Path(path) / "meta.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a saved negsample index (no meta.json)")
    meta: dict[str, Any] = json.loads(meta_file.read_text())
    return meta


def load_index(path: str | os.PathLike[str], **kwargs: Any) -> Index:
    """Load an index written by ``Index.save``, whatever its type."""
    meta = read_meta(path)
    kind = meta.get("type")
    if kind == "NumpyIndex":
        from .numpy_index import NumpyIndex

        return NumpyIndex.load(path, **kwargs)
    if kind == "FaissIndex":
        from .faiss_index import FaissIndex

        return FaissIndex.load(path, **kwargs)
    raise ValueError(f"{path}/meta.json names an unknown index type {kind!r}")
