"""Indexes held by Ray workers: :class:`ReplicatedIndex` (every worker holds the whole
index; query sharding) and :class:`ShardedIndex` (each worker holds a contiguous shard of
the corpus; an :class:`~negsample.Index` whose search merges the shards' top-``k``
exactly)."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import SearchResult
from .._validate import as_matrix
from ..errors import InputError, InputTypeError
from ..index.base import BaseIndex, check_ids, check_k, check_metric, check_score_args, read_meta
from ..index.numpy_index import topk_merge
from ..index.registry import expected_block_of, parse_index_spec, saved_kind
from ._ray import get, is_worker_lost, kill, ray_module, remote_worker_class
from ._workers import Rows, WorkerSource

__all__ = ["ReplicatedIndex", "ShardedIndex", "shard_bounds"]

_DEFAULT_RESTARTS = 3


def shard_bounds(ntotal: int, shards: int, block: int = 1) -> list[int]:
    """Boundaries ``[0, b1, ..., ntotal]`` of ``shards`` contiguous row ranges, each cut
    at a multiple of ``block`` and as even as the blocks allow.

    >>> shard_bounds(10_000, 3, block=1024)
    [0, 4096, 7168, 10000]
    """
    for name, v in (("ntotal", ntotal), ("shards", shards), ("block", block)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v!r}")
    n_blocks = -(-ntotal // block)
    if shards > n_blocks:
        raise InputError(
            f"cannot cut {ntotal} corpus rows into {shards} shards at multiples of {block} "
            f"rows (the index's corpus block): at most {n_blocks} shards; use fewer shards "
            "or a smaller block (index_options, e.g. chunk_size= for 'exact')"
        )
    per, extra = divmod(n_blocks, shards)
    counts = [per + (1 if i < extra else 0) for i in range(shards)]
    return [min(int(c) * block, ntotal) for c in np.concatenate([[0], np.cumsum(counts)])]


def _original_npy(a: Any) -> str | None:
    """The ``.npy`` file an array was memory-mapped from whole by ``np.load`` (so a
    worker can map it itself), else ``None``."""
    if not isinstance(a, np.memmap) or not isinstance(a.base, mmap.mmap):
        return None
    name = getattr(a, "filename", None)
    if not name or not str(name).endswith(".npy") or not os.path.isfile(name):
        return None
    try:
        head = np.load(name, mmap_mode="r")
    except (ValueError, OSError):
        return None
    if head.shape != a.shape or head.dtype != a.dtype or not a.flags.c_contiguous:
        return None
    return str(name)


def as_data(x: Any, name: str) -> tuple[Rows | np.ndarray, int, int]:
    """A ``.npy`` path (or an array memory-mapped whole from one) as :class:`Rows` that
    workers read themselves, or an in-memory array; with its shape."""
    if isinstance(x, str | os.PathLike):
        p = Path(x)
        if not p.is_file():
            raise FileNotFoundError(f"{name}: {p} not found")
        try:
            arr = np.load(p, mmap_mode="r")
        except ValueError as exc:
            raise InputError(f"{name}: {p} is not a readable .npy file: {exc}") from exc
        arr = as_matrix(arr, name, check=False)
        return Rows(str(p.resolve())), int(arr.shape[0]), int(arr.shape[1])
    path = _original_npy(x)
    arr = as_matrix(x, name, check=False)
    if path is not None:
        return Rows(str(Path(path).resolve())), int(arr.shape[0]), int(arr.shape[1])
    return arr, int(arr.shape[0]), int(arr.shape[1])


def exact_like(spec: str) -> bool:
    """Specs that every worker builds into the same index (nothing trained or random):
    :attr:`IndexSpec.exact <negsample.index.registry.IndexSpec.exact>`."""
    return parse_index_spec(spec).exact


def _is_saved(index: Any) -> bool:
    return isinstance(index, str | os.PathLike) and (Path(index) / "meta.json").is_file()


def _template(
    index: str | os.PathLike[str], corpus: Any, metric: str, options: Mapping[str, Any] | None
) -> tuple[WorkerSource, Rows | np.ndarray | None, int, int]:
    """The worker source (without its corpus rows), the corpus data, ``ntotal`` and ``dim``."""
    opts = dict(options or {})
    if _is_saved(index):
        meta = read_meta(index)
        src = WorkerSource(saved=str(Path(index).resolve()), metric=meta["metric"], options=opts)
        if corpus is None:
            return src, None, int(meta["ntotal"]), int(meta["dim"])
        kind = saved_kind(index)
        if kind is None or not kind.load_takes_vectors:
            raise InputError(
                f"{index} is a saved {meta.get('type')}: leave out corpus= (it holds its vectors)"
            )
        data, ntotal, dim = as_data(corpus, "corpus")  # served exactly, not reconstructed
        if (ntotal, dim) != (int(meta["ntotal"]), int(meta["dim"])):
            raise InputError(
                f"corpus has shape {(ntotal, dim)}, the saved index {index} "
                f"{(meta['ntotal'], meta['dim'])}"
            )
        return src, data, ntotal, dim
    if not isinstance(index, str):
        raise InputTypeError(
            "index must be an index spec ('exact', 'torch', a faiss factory such as 'Flat') or "
            f"the folder of a saved index, got {type(index).__name__}"
        )
    if isinstance(index, str) and (os.sep in index or index.endswith(("/", "\\"))):
        raise FileNotFoundError(f"{index}: not a saved negsample index (no meta.json)")
    if corpus is None:
        raise InputError(f"index spec {index!r} is built from a corpus: pass corpus= (.npy/array)")
    data, ntotal, dim = as_data(corpus, "corpus")
    return WorkerSource(spec=index, metric=check_metric(metric), options=opts), data, ntotal, dim


def _identity(src: WorkerSource, data: Rows | np.ndarray | None) -> dict[str, Any]:
    """What identifies the index the workers hold (hashed into a run's settings): the spec
    or saved folder's content, metric and options, and a digest of the corpus's values
    (a ``.npy`` file's is cached; :meth:`WorkerSource.describe`)."""
    return replace(src, corpus=data).describe()


def _expected_block(src: WorkerSource, dim: int, num_gpus: float) -> int:
    """The corpus block of the index a shard worker will build, known before building."""
    block = expected_block_of(src.spec, src.options, dim)
    if block is not None:
        return int(block)
    # only a built index knows (torch: the device's block rows): ask one like the shards
    ray = ray_module()

    def probe_block() -> int:
        from ._workers import build_spec_index, corpus_block

        idx = build_spec_index(np.ones((1, dim), np.float32), src.spec, src.metric, src.options)
        return corpus_block(idx)

    task = ray.remote(probe_block).options(num_gpus=num_gpus, num_cpus=0)
    return int(get(task.remote()))


def _submit(method: str, *args: Any) -> Callable[[Any], Any]:
    """A call of ``actor.method.remote(*args)`` to make on whichever actor holds the shard."""
    return lambda actor: getattr(actor, method).remote(*args)


def _check_positive(name: str, v: Any, *, integer: bool = False) -> None:
    kinds: Any = int | np.integer if integer else int | float | np.integer | np.floating
    if isinstance(v, bool) or not isinstance(v, kinds) or v < (1 if integer else 0):
        raise InputError(f"{name} must be a {'positive integer' if integer else 'number >= 0'}")


class _Workers:
    """Actors that each hold one index, with the ``info()`` they reported."""

    def __init__(
        self,
        sources: Sequence[WorkerSource],
        *,
        num_cpus: float,
        num_gpus: float,
        max_restarts: int,
        start_timeout: float,
    ) -> None:
        _check_positive("cpus per worker", num_cpus)
        _check_positive("gpus per worker", num_gpus)
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise InputError(f"max_restarts must be an integer >= 0, got {max_restarts!r}")
        self._sources = list(sources)
        self._options = {
            "num_cpus": num_cpus,
            "num_gpus": num_gpus,
            "max_restarts": max_restarts,
            "max_task_retries": max_restarts,
        }
        self.actors: list[Any] = []
        try:
            self.actors = [self._start(s) for s in self._sources]
            self.infos: list[dict[str, Any]] = get(
                [a.info.remote() for a in self.actors], timeout=start_timeout
            )
        except ray_module().exceptions.GetTimeoutError:
            self.close()
            raise TimeoutError(
                f"{len(self._sources)} workers of {num_cpus} CPUs and {num_gpus} GPUs each did "
                f"not start within {start_timeout:.0f}s (free in the cluster: "
                f"{ray_module().available_resources()}); ask for fewer or smaller workers"
            ) from None
        except BaseException:
            self.close()
            raise

    def _start(self, source: WorkerSource) -> Any:
        return remote_worker_class().options(**self._options).remote(source)

    def restart(self, i: int) -> None:
        """Replace worker ``i`` (lost for good: restarts used up, or its node gone)."""
        kill([self.actors[i]])
        self.actors[i] = self._start(self._sources[i])
        self.infos[i] = get(self.actors[i].info.remote())

    def pids(self) -> list[int]:
        """Process id of each worker now (a restarted worker has a new one)."""
        self.infos = get([a.info.remote() for a in self.actors])
        return [int(i["pid"]) for i in self.infos]

    def close(self) -> None:
        kill(self.actors)
        self.actors = []


def _same(infos: Sequence[Mapping[str, Any]], key: str, what: str) -> Any:
    values = {i[key] for i in infos}
    if len(values) != 1:
        raise InputError(f"the {what} differ in {key}: {sorted(values, key=str)}")
    return next(iter(values))


class ReplicatedIndex:
    """``workers`` Ray actors that each hold the whole index: the workers of query
    sharding (:func:`~negsample.distributed.mine_distributed` gives each a share of the
    query chunks).

    Each worker opens the index once: a saved index folder on storage every node sees
    (:func:`~negsample.load_index`), or ``index`` (an exact spec: ``"exact"``, ``"Flat"``,
    ``"torch..."``) built over ``corpus``, a ``.npy`` path (memory-mapped by each worker)
    or an array (sent once through Ray's object store). An approximate index is refused as
    a spec (each worker would build a different one): save it once and pass the folder. A worker whose process dies is restarted by Ray (up to
    ``max_restarts`` times) and opens the index again.

    Parameters
    ----------
    index : a saved index folder (any type), or an exact spec: ``"exact"``,
        ``"torch[:device[:dtype]]"``, ``"Flat"``.
    corpus : ``(n, dim)`` vectors (path or array) for a spec.
    workers : number of actors.
    metric : ``"ip"`` or ``"cosine"`` (a saved index keeps its own).
    index_options : keyword arguments for the index (``search_block``, ``chunk_size``,
        ``dtype``...).
    cpus_per_worker, gpus_per_worker : Ray resources per actor (``gpus_per_worker > 0``
        puts each worker on its own GPU: use a ``"torch"`` spec there).
    max_restarts : times Ray restarts a worker whose process died (its call is retried).
    start_timeout : seconds to wait for every worker to start and open its index (a
        ``TimeoutError`` names the cluster's free resources).
    """

    def __init__(
        self,
        index: str | os.PathLike[str] = "exact",
        *,
        corpus: Any = None,
        workers: int = 2,
        metric: str = "ip",
        index_options: Mapping[str, Any] | None = None,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        max_restarts: int = _DEFAULT_RESTARTS,
        start_timeout: float = 600.0,
    ) -> None:
        _check_positive("workers", workers, integer=True)
        if isinstance(index, str) and not _is_saved(index) and not exact_like(index):
            raise InputError(
                f"index {index!r} built by each worker would be a different index on each "
                "(graphs and clusterings depend on the build): build it once, save it "
                "(Index.save) and pass the folder; mine_distributed does this for you"
            )
        ray = ray_module()
        src, data, ntotal, dim = _template(index, corpus, metric, index_options)
        self._ref = None
        if isinstance(data, np.ndarray):
            self._ref = ray.put(np.ascontiguousarray(data))
            src = replace(src, corpus=self._ref)
        elif data is not None:
            src = replace(src, corpus=data)
        self.source = src
        self.identity = _identity(src, data)
        self._workers = _Workers(
            [src] * int(workers),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker,
            max_restarts=max_restarts,
            start_timeout=start_timeout,
        )
        infos = self._workers.infos
        try:
            self.ntotal = int(_same(infos, "ntotal", "workers' indexes"))
            self.dim = int(_same(infos, "dim", "workers' indexes"))
            self.metric = str(_same(infos, "metric", "workers' indexes"))
            self.search_block = int(_same(infos, "search_block", "workers' indexes"))
            self.exact = all(bool(i["exact"]) for i in infos)
            if self.ntotal != ntotal or self.dim != dim:
                raise InputError(
                    f"the workers' index has {self.ntotal} x {self.dim} rows, the source "
                    f"{ntotal} x {dim}"
                )
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return (
            f"ReplicatedIndex(workers={self.num_workers}, ntotal={self.ntotal}, dim={self.dim}, "
            f"index={self._workers.infos[0]['repr'] if self._workers.infos else None})"
        )

    @property
    def num_workers(self) -> int:
        return len(self._workers.actors)

    @property
    def actors(self) -> list[Any]:
        """The Ray actor handles (one per worker)."""
        return list(self._workers.actors)

    def restart(self, i: int) -> None:
        """Replace worker ``i`` by a fresh actor (used when one is lost for good)."""
        self._workers.restart(i)

    def pids(self) -> list[int]:
        """Each worker's process id now."""
        return self._workers.pids()

    def close(self) -> None:
        """Stop the workers."""
        self._workers.close()

    def __enter__(self) -> ReplicatedIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ShardedIndex(BaseIndex):
    """An :class:`~negsample.Index` whose corpus is cut into ``shards`` contiguous row
    ranges, each held by one Ray actor: for corpora larger than one machine.

    ``search`` sends the queries to every shard and merges the shards' top-``k`` exactly
    (score descending, then the smaller id, the order of :class:`~negsample.NumpyIndex`);
    ``score``, ``sq_norms`` and ``vectors`` route each id to the shard that holds it. Shard
    boundaries fall on multiples of the index's corpus block (``chunk_size`` for
    ``"exact"``, faiss's 1,024-row BLAS blocks, TorchIndex's ``block_rows``), so every
    score is computed from the same operands as by one index over the whole corpus: with
    an exact index (``"exact"``, faiss ``"Flat"``, ``"torch"``) the results are those of
    that one index, bit for bit (ties in score are ordered by id, as NumpyIndex does).
    Shards of an approximate index (``"HNSW32"``) are separate graphs: results differ
    from one graph over the whole corpus.

    Parameters
    ----------
    index : a spec (``"exact"``, ``"torch[:device[:dtype]]"``, a faiss factory) built by
        each shard over its rows of ``corpus``, or the folder of a saved
        :class:`~negsample.NumpyIndex` (its ``vectors.npy`` is sharded).
    corpus : ``(n, dim)`` vectors: a ``.npy`` path (each shard memory-maps its rows, so
        the file must be on storage every node sees) or an array (each shard's rows go
        through Ray's object store).
    shards : number of shards (actors).
    metric, index_options : as for :class:`ReplicatedIndex`.
    cpus_per_shard, gpus_per_shard : Ray resources per shard actor.
    corpus_block : cut shards at multiples of this many rows instead of the index's own
        corpus block (checked against it).
    max_restarts, start_timeout : as for :class:`ReplicatedIndex`.

    Examples
    --------
    >>> import numpy as np, negsample as ns                       # doctest: +SKIP
    >>> from negsample.distributed import ShardedIndex, connect   # doctest: +SKIP
    >>> connect("auto")                                           # doctest: +SKIP
    >>> with ShardedIndex("exact", corpus="corpus.npy", shards=4) as index:  # doctest: +SKIP
    ...     negs = ns.mine(queries, index, positives, ns.ReSa2Sampler(), seed=0)
    """

    def __init__(
        self,
        index: str | os.PathLike[str] = "exact",
        *,
        corpus: Any = None,
        shards: int = 2,
        metric: str = "ip",
        index_options: Mapping[str, Any] | None = None,
        cpus_per_shard: float = 1.0,
        gpus_per_shard: float = 0.0,
        max_restarts: int = _DEFAULT_RESTARTS,
        corpus_block: int | None = None,
        start_timeout: float = 600.0,
    ) -> None:
        _check_positive("shards", shards, integer=True)
        ray = ray_module()
        if _is_saved(index):
            meta = read_meta(index)
            if meta.get("type") != "NumpyIndex":
                raise InputError(
                    f"{index} holds a {meta.get('type')}: corpus sharding builds each shard "
                    "from the vectors; pass the corpus (.npy) and an index spec instead"
                )
            if corpus is not None:
                raise InputError(f"{index} is a saved index: leave out corpus=")
            opts = {"search_block": meta.get("search_block"), **dict(index_options or {})}
            opts = {k: v for k, v in opts.items() if v is not None}
            index, corpus, metric = "exact", Path(index) / "vectors.npy", meta["metric"]
            index_options = opts
        src, data, ntotal, dim = _template(index, corpus, metric, index_options)
        if corpus_block is None:
            block = _expected_block(src, dim, gpus_per_shard)
        else:
            _check_positive("corpus_block", corpus_block, integer=True)
            block = int(corpus_block)
        self.bounds = shard_bounds(ntotal, int(shards), block)
        self._refs: list[Any] = []
        sources = []
        for lo, hi in zip(self.bounds[:-1], self.bounds[1:], strict=True):
            if isinstance(data, Rows):
                part: Any = Rows(data.path, lo, hi)
            else:
                assert isinstance(data, np.ndarray)
                part = ray.put(np.ascontiguousarray(data[lo:hi]))
                self._refs.append(part)
            sources.append(replace(src, corpus=part, offset=lo))
        self.source = src
        self.identity = _identity(src, data)
        self._workers = _Workers(
            sources,
            num_cpus=cpus_per_shard,
            num_gpus=gpus_per_shard,
            max_restarts=max_restarts,
            start_timeout=start_timeout,
        )
        try:
            self._check_shards(ntotal, dim)
        except BaseException:
            self.close()
            raise

    def _check_shards(self, ntotal: int, dim: int) -> None:
        infos = self._workers.infos
        for i, (info, lo, hi) in enumerate(
            zip(infos, self.bounds[:-1], self.bounds[1:], strict=True)
        ):
            if info["ntotal"] != hi - lo or info["dim"] != dim:
                raise InputError(
                    f"shard {i} holds {info['ntotal']} x {info['dim']} rows, expected "
                    f"{hi - lo} x {dim}"
                )
            if lo % int(info["corpus_block"]):
                raise InputError(
                    f"shard {i} starts at row {lo}, not a multiple of its index's corpus block "
                    f"({info['corpus_block']} rows): its scores would not match one index "
                    "over the whole corpus; leave corpus_block unset or make it a multiple"
                )
        self.metric = str(_same(infos, "metric", "shards"))
        self._search_block = int(_same(infos, "search_block", "shards"))
        self._exact = all(bool(i["exact"]) for i in infos)
        self._ntotal, self._dim = int(ntotal), int(dim)
        self._lo = np.asarray(self.bounds[:-1], np.int64)

    def __repr__(self) -> str:
        return (
            f"ShardedIndex(shards={self.num_shards}, ntotal={self._ntotal}, dim={self._dim}, "
            f"metric={self.metric!r}, bounds={self.bounds})"
        )

    # -- the Index protocol ----------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return self._ntotal

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def exact(self) -> bool:
        """True when every shard's index is exact."""
        return self._exact

    @property
    def search_block(self) -> int:
        return self._search_block

    @property
    def num_shards(self) -> int:
        return len(self.bounds) - 1

    def search(self, queries: Any, k: int) -> SearchResult:
        """Top-``k`` over all shards: each shard's top-``k`` (its ids made global), merged
        by score descending, then smaller id. Queries go to the shards as given (each
        shard prepares them exactly as a single index would)."""
        k = check_k(k)
        q = as_matrix(queries, "queries", dim=self.dim, check=False, allow_1d=True)
        q = np.ascontiguousarray(q, dtype=np.float32)
        ref = ray_module().put(q)
        res = self._call([(i, lambda a: a.search.remote(ref, k)) for i in range(self.num_shards)])
        scores = np.concatenate([r.scores for r in res], axis=1).astype(np.float32, copy=False)
        ids = np.concatenate(
            [np.where(r.ids >= 0, r.ids + lo, -1) for r, lo in zip(res, self._lo, strict=True)],
            axis=1,
        ).astype(np.int64, copy=False)
        s, i = topk_merge(scores, ids, k)
        return SearchResult(np.ascontiguousarray(s[:, :k]), np.ascontiguousarray(i[:, :k]))

    def _route(self, flat: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Shard of each id (``-1`` for ``-1``)."""
        shard = np.searchsorted(self._lo, flat, side="right") - 1
        return np.where(flat >= 0, shard, -1)

    def score(self, vectors: Any, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``s(v_i, d_ids[i, j])`` ``(b, m)``, each id scored by the shard that holds it
        (rows of ``vectors`` sent only to the shards they need)."""
        v, idx = check_score_args(vectors, ids, self.ntotal, self.dim)
        out = np.full(idx.shape, np.nan, np.float32)
        shard = self._route(idx.reshape(-1)).reshape(idx.shape)
        jobs, masks = [], []
        for s in range(self.num_shards):
            mask = shard == s
            rows = np.flatnonzero(mask.any(axis=1))
            if rows.size == 0:
                continue
            local = np.where(mask[rows], idx[rows] - self._lo[s], -1)
            jobs.append((s, _submit("score", np.ascontiguousarray(v[rows]), local)))
            masks.append((rows, mask[rows]))
        res = self._call(jobs)
        for r, (rows, m) in zip(res, masks, strict=True):
            block = out[rows]
            block[m] = np.asarray(r, np.float32)[m]
            out[rows] = block
        return out

    def _gather(self, ids: npt.ArrayLike, method: str, fill: float, width: int) -> np.ndarray:
        idx = check_ids(ids, self.ntotal)
        flat = idx.reshape(-1)
        shard = self._route(flat)
        out = np.full((flat.size, width) if width else flat.size, fill, np.float32)
        parts = [(s, np.flatnonzero(shard == s)) for s in range(self.num_shards)]
        parts = [(s, pos) for s, pos in parts if pos.size]
        res = self._call([(s, _submit(method, flat[pos] - self._lo[s])) for s, pos in parts])
        for r, (_s, pos) in zip(res, parts, strict=True):
            out[pos] = r
        return out.reshape(*idx.shape, width) if width else out.reshape(idx.shape)

    def sq_norms(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``|d|^2`` of ``ids`` (any shape) from the shards that hold them; NaN for ``-1``."""
        return self._gather(ids, "sq_norms", np.nan, 0)

    def vectors(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Vectors of ``ids`` (any shape) from their shards; zeros for ``-1``."""
        return self._gather(ids, "vectors", 0.0, self.dim)

    def save(self, path: str | os.PathLike[str]) -> None:
        raise NotImplementedError(
            "a ShardedIndex lives in a Ray cluster and is not saved: keep its corpus (.npy) "
            "and spec, or save a NumpyIndex of the corpus and shard that"
        )

    # -- workers ---------------------------------------------------------------------------
    def _call(self, jobs: Sequence[tuple[int, Callable[[Any], Any]]]) -> list[Any]:
        """``submit(actor)`` for every ``(shard, submit)`` at once, then the results in
        order. Ray restarts a shard whose process died and retries the call; a shard lost
        for good (restarts used up, node gone) is started afresh once and asked again."""
        refs = [submit(self._workers.actors[i]) for i, submit in jobs]
        out: list[Any] = []
        for (i, submit), ref in zip(jobs, refs, strict=True):
            try:
                out.append(get(ref))
            except Exception as exc:
                if not is_worker_lost(exc):
                    raise
                self._workers.restart(i)
                out.append(get(submit(self._workers.actors[i])))
        return out

    def pids(self) -> list[int]:
        """Each shard worker's process id now."""
        return self._workers.pids()

    @property
    def actors(self) -> list[Any]:
        """The Ray actor handles, one per shard."""
        return list(self._workers.actors)

    def close(self) -> None:
        """Stop the shard workers."""
        self._workers.close()

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this index's results in a resumable run's settings: the
        shards' source (spec or saved folder, options, a digest of the corpus)."""
        return {"content": self.identity}

    def __enter__(self) -> ShardedIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
