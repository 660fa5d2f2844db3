"""What runs inside a Ray worker: where its index comes from and the actor that holds it.

Nothing here imports Ray at module level: the actor class is a plain class, made remote
by :func:`remote_worker_class` on the driver, so it can be unit-tested without a cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .._ragged import Ragged
from .._types import Negatives, SearchResult
from .._validate import as_matrix, check_finite
from ..errors import InputError
from ..index.base import Index

__all__ = ["IndexWorker", "MineTask", "Rows", "WorkerSource", "build_spec_index", "corpus_block"]


@dataclass(frozen=True)
class Rows:
    """Rows ``start:stop`` of a ``.npy`` file, memory-mapped by whoever reads them (a
    worker reads its queries or its corpus shard straight from shared storage)."""

    path: str
    start: int = 0
    stop: int | None = None

    def read(self) -> np.ndarray:
        arr = np.load(self.path, mmap_mode="r")
        if arr.ndim != 2:
            raise InputError(f"{self.path}: expected a 2-D array (n, dim), got shape {arr.shape}")
        return arr[self.start : self.stop]


def resolve(data: Any) -> Any:
    """The array behind ``data``: a :class:`Rows`, a Ray object reference, or an array."""
    if isinstance(data, Rows):
        return data.read()
    if type(data).__name__ == "ObjectRef":
        import ray

        return ray.get(data)
    return data


@dataclass(frozen=True)
class WorkerSource:
    """How one worker gets its index.

    Either ``saved`` (a folder written by ``Index.save``, opened with
    :func:`~negsample.load_index`), or ``spec`` (``"exact"``, ``"torch[:device[:dtype]]"``
    or a faiss factory string) built over ``corpus`` (a :class:`Rows` of a ``.npy`` or an
    object reference to an array). ``offset`` is the global row of the corpus's first row
    (a corpus shard), used to name bad rows.
    """

    spec: str = "exact"
    metric: str = "ip"
    corpus: Any = None
    saved: str | None = None
    offset: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def open(self) -> Index:
        if self.saved is not None:
            from ..index.loading import load_index

            opts = dict(self.options)
            if self.corpus is not None:  # a saved faiss index's original vectors
                opts["vectors"] = as_matrix(resolve(self.corpus), "corpus", check=False)
            return load_index(self.saved, **opts)
        vectors = as_matrix(resolve(self.corpus), "corpus", check=False)
        check_finite(vectors, "corpus", row_offset=self.offset)
        return build_spec_index(vectors, self.spec, self.metric, self.options)

    def describe(self) -> dict[str, Any]:
        """JSON-able identity (for a run's settings hash): the spec, or the saved folder's
        files by content, the metric and options, and the corpus's shape and a digest of
        its values (of a ``.npy``'s rows: cached when they are the whole file; an object
        reference: read back to digest it). Paths and times are left out: the same
        content in another place (or touched) continues a run, other content never."""
        from .._digest import folder_digest
        from ..pipeline.settings import corpus_identity

        data = self.corpus
        if isinstance(data, Rows) and data.start == 0 and data.stop is None:
            data = np.load(data.path, mmap_mode="r")  # the whole file: its digest is cached
        corpus = None if data is None else corpus_identity(resolve(data))
        return {
            "spec": self.spec if self.saved is None else None,
            "saved": None if self.saved is None else folder_digest(self.saved),
            "metric": self.metric,
            "corpus": corpus,
            "options": {k: repr(v) for k, v in sorted(self.options.items())},
        }


def build_spec_index(vectors: Any, spec: str, metric: str, options: dict[str, Any]) -> Index:
    """:func:`~negsample.build_index` of ``spec`` with ``options`` (e.g. ``chunk_size``,
    ``search_block``); ``check=False`` for kinds that trust vectors checked already
    (:meth:`WorkerSource.open` has checked them)."""
    from ..index.registry import build_index, get_index_kind, parse_index_spec

    parsed = parse_index_spec(spec)
    opts = dict(options)
    if get_index_kind(parsed.kind).trusts_checked:
        opts.setdefault("check", False)
    return build_index(vectors, parsed, metric=metric, **opts)


def corpus_block(index: Any) -> int:
    """Corpus rows an index scores together in one matrix product (1 when it has no such
    blocks): corpus shards cut at multiples of it score every pair with the same operands
    as one index over the whole corpus, so bit for bit alike (the registry's
    :func:`~negsample.index.registry.corpus_block_of`)."""
    from ..index.registry import corpus_block_of

    return corpus_block_of(index)


@dataclass(frozen=True)
class MineTask:
    """What :meth:`IndexWorker.mine_chunk` needs besides the index (sent with each chunk)."""

    sampler: Any
    n: int
    seed: int
    filters: Any = None
    other_positives: Any = None  # a PositiveMask: exclude_other_positives (sent once)


class IndexWorker:
    """A Ray actor holding one index (whole, for query sharding, or one corpus shard).

    The index is opened on first use, so an actor that Ray restarts after its process
    died opens it again by itself before it serves the retried call.
    """

    def __init__(self, source: WorkerSource) -> None:
        self._source = source
        self._index: Index | None = None

    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = self._source.open()
        return self._index

    def info(self) -> dict[str, Any]:
        """Open the index (if not yet) and describe it and this process."""
        idx = self.index
        node = ""
        try:
            import ray

            node = ray.get_runtime_context().get_node_id()
        except Exception:  # pragma: no cover - outside Ray
            pass
        return {
            "ntotal": int(idx.ntotal),
            "dim": int(idx.dim),
            "metric": idx.metric,
            "exact": bool(idx.exact),
            "search_block": int(idx.search_block),
            "corpus_block": corpus_block(idx),
            "repr": repr(idx),
            "pid": os.getpid(),
            "node": node,
        }

    # -- query sharding -----------------------------------------------------------------
    def mine_chunk(
        self,
        start: int,
        queries: Any,
        positives: Ragged,
        exclude: Ragged | None,
        task: MineTask,
    ) -> Negatives:
        """:func:`~negsample.mine` on one chunk of queries whose first row is the global
        query ``start`` (what :func:`~negsample.mine_resumable` computes for that chunk)."""
        from ..mining import mine

        return mine(
            resolve(queries),
            self.index,
            positives,
            task.sampler,
            n=task.n,
            seed=task.seed,
            filters=task.filters,
            query_offset=int(start),
            exclude=exclude,
            exclude_other_positives=task.other_positives is not None,
            set_positives=task.other_positives,
        )

    def positive_scores(self, queries: Any, positives: Ragged) -> npt.NDArray[np.float32]:
        """``s(q, d+)`` of a chunk's positives, flat in their order."""
        from ..pipeline.dataset import positive_scores

        return positive_scores(resolve(queries), positives, self.index)

    # -- corpus sharding: the Index protocol, on this shard's rows ------------------------
    def search(self, queries: Any, k: int) -> SearchResult:
        return self.index.search(queries, k)

    def score(self, vectors: Any, ids: Any) -> npt.NDArray[np.float32]:
        return self.index.score(vectors, ids)

    def sq_norms(self, ids: Any) -> npt.NDArray[np.float32]:
        return self.index.sq_norms(ids)

    def vectors(self, ids: Any) -> npt.NDArray[np.float32]:
        return self.index.vectors(ids)
