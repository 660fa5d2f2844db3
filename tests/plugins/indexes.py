"""An out-of-tree index backend, registered from outside the package (public names only).

``HalfIndex`` keeps the corpus in float16 and searches it exhaustively in numpy. It is
registered as the kind ``"half"`` by :func:`register` (the entry point's target):
``"half"``, ``"half:exact=False"`` (declared approximate, so a resumable run saves and
reloads it) work wherever an index spec does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

import negsample as ns

__all__ = ["HalfIndex", "register"]


class HalfIndex(ns.BaseIndex):
    """Exact search over float16-rounded corpus rows (ties broken by the smaller id)."""

    def __init__(self, vectors: Any, *, metric: str = "ip", declared_exact: bool = True) -> None:
        if metric != "ip":
            raise ValueError("HalfIndex supports metric='ip' only")
        self.metric = metric
        self._data = np.asarray(vectors, dtype=np.float16)
        self._exact = bool(declared_exact)

    @property
    def ntotal(self) -> int:
        return int(self._data.shape[0])

    @property
    def dim(self) -> int:
        return int(self._data.shape[1])

    @property
    def exact(self) -> bool:
        return self._exact

    def search(self, queries: Any, k: int) -> ns.SearchResult:
        q = np.asarray(queries, dtype=np.float16).astype(np.float32)
        s = q @ self._data.astype(np.float32).T
        kk = min(k, self.ntotal)
        order = np.lexsort((np.broadcast_to(np.arange(self.ntotal), s.shape), -s), axis=1)[:, :kk]
        scores = np.full((q.shape[0], k), -np.inf, np.float32)
        ids = np.full((q.shape[0], k), -1, np.int64)
        scores[:, :kk] = np.take_along_axis(s, order, axis=1)
        ids[:, :kk] = order
        return ns.SearchResult(scores=scores, ids=ids)

    def vectors(self, ids: Any) -> np.ndarray:
        idx = np.asarray(ids, dtype=np.int64)
        out = self._data[np.maximum(idx, 0)].astype(np.float32)
        out[idx < 0] = 0.0
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        np.save(p / "half.npy", self._data)
        meta = {"type": "HalfIndex", "metric": self.metric, "ntotal": self.ntotal, "dim": self.dim}
        (p / "meta.json").write_text(json.dumps({**meta, "exact": self._exact}))

    @classmethod
    def load(cls, path: str | os.PathLike[str], **options: Any) -> HalfIndex:
        meta = json.loads((Path(path) / "meta.json").read_text())
        vectors = np.load(Path(path) / "half.npy")
        return cls(vectors, metric=meta["metric"], declared_exact=meta["exact"])


def _build(vectors: Any, spec: ns.IndexSpec, *, metric: str, **options: Any) -> HalfIndex:
    exact = bool(options.pop("exact", True))
    options.pop("check", None)
    if options:
        raise ValueError(f"half: unknown options {sorted(options)}")
    return HalfIndex(vectors, metric=metric, declared_exact=exact)


def register() -> None:
    """The entry point: ``[project.entry-points."negsample.indexes"] half = "...:register"``."""
    ns.register_index(
        "half",
        build=_build,
        load=HalfIndex.load,
        cls=HalfIndex,
        exact=lambda spec: bool(spec.options.get("exact", True)),
        syntax="half[:exact=False]",
    )
