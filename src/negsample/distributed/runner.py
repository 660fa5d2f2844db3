"""``mine_distributed``: mining on a Ray cluster, by query shards or corpus shards, in the
resumable chunks of :func:`~negsample.mine_resumable` (same manifest, same chunk files),
with the result of one :func:`~negsample.mine` call."""

from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from .._types import Negatives
from ..errors import InputError, InputTypeError
from ..filters import Filters
from ..index.registry import saved_kind
from ..pipeline.executor import ChunkExecutor, ChunkJob, LocalExecutor
from ..pipeline.executor import run_chunks as run_chunks_in
from ..pipeline.settings import DEFAULT_CHUNK, corpus_identity, run_settings, settings_hash
from ..pipeline.store import RunStore
from ..samplers.base import BaseSampler, check_n_fits, check_sampler
from ..samplers.topk import TopKSampler
from ._ray import connect, get, is_worker_lost, ray_module
from ._workers import MineTask, Rows, build_spec_index
from .index import ReplicatedIndex, ShardedIndex, as_data, exact_like

__all__ = ["RayExecutor", "aligned_chunk_size", "default_workers", "mine_distributed"]

#: Chunks queued per worker (one running, one waiting, so a worker never idles on the driver).
_IN_FLIGHT = 2


def aligned_chunk_size(chunk_size: int, search_block: int) -> int:
    """``chunk_size`` rounded up to a multiple of the index's ``search_block``: every chunk
    then starts on a search block, so each worker makes the very search calls one
    process would (:func:`~negsample.mine` searches in blocks aligned to the global query
    index)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return -(-chunk_size // search_block) * search_block


def default_workers(cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0) -> int:
    """As many workers as the cluster's free CPUs (and GPUs, when workers take GPUs) allow."""
    res = ray_module().available_resources()
    n = int(res.get("CPU", 1) // cpus_per_worker) if cpus_per_worker > 0 else 1 << 30
    if gpus_per_worker > 0:
        n = min(n, int(res.get("GPU", 0) // gpus_per_worker))
        if n < 1:
            raise InputError(
                f"workers take {gpus_per_worker} GPU each but the cluster has "
                f"{res.get('GPU', 0)} free GPUs"
            )
    return max(1, min(n, 1 << 16))


def _check_args(sampler: Any, n: Any, seed: Any, filters: Filters | None) -> BaseSampler:
    sampler = TopKSampler() if sampler is None else sampler
    check_sampler(sampler)  # any object with the Sampler protocol, as mine() takes
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}")
    check_n_fits(sampler, int(n))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InputTypeError(
            f"seed must be an int (a distributed run is resumable), got {type(seed).__name__}"
        )
    if filters is not None and not filters.is_noop and sampler.depth == 0:
        raise InputError(
            f"{type(sampler).__name__} searches no candidates, so score filters do not apply"
        )
    return sampler


def mine_distributed(
    queries: Any,
    index: str | os.PathLike[str] | ReplicatedIndex | ShardedIndex,
    positives: Any,
    sampler: BaseSampler | None = None,
    *,
    corpus: Any = None,
    metric: str = "ip",
    index_options: Mapping[str, Any] | None = None,
    n: int = 7,
    seed: int = 0,
    filters: Filters | None = None,
    exclude: Any = None,
    workers: int | None = None,
    corpus_shards: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    address: str | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    chunk_size: int | None = None,
    settings: Mapping[str, Any] | None = None,
    progress: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    max_restarts: int = 3,
    exclude_other_positives: bool = False,
    max_negative_reuse: int | None = None,
    reuse_oversample: float = 2.0,
) -> Negatives:
    """Mine ``n`` negatives per query on a Ray cluster: the result of one
    :func:`~negsample.mine` call with the same seed, bit for bit (exact indexes).

    Two ways to split the work:

    - **query sharding** (default): ``workers`` actors each hold the whole index
      (:class:`ReplicatedIndex`) and mine chunks of ``chunk_size`` queries with their
      global offset, handed out as workers free up;
    - **corpus sharding** (``corpus_shards=S``): ``S`` actors each hold a contiguous
      shard of the corpus (:class:`ShardedIndex`); :func:`~negsample.mine` runs here,
      its searches merged exactly across shards and the scores ReSa2 and TriSampler
      need asked of the shard that holds each id.

    Finished chunks are saved in ``work_dir`` like :func:`~negsample.mine_resumable`'s
    (same manifest and files): a run whose driver was killed or interrupted continues
    from them, in either mode. A worker whose process dies is restarted by Ray and its
    chunk computed again (same result); a worker lost for good leaves its chunks to the
    others. Ctrl-C cancels the cluster work and stops the workers; the finished chunks
    stay saved.

    Parameters
    ----------
    queries : ``(n_queries, dim)`` float array, or a ``.npy`` path (each worker reads its
        chunks' rows from it: storage every node sees).
    index : an index spec built by every worker over ``corpus`` (``"exact"``,
        ``"torch[:device[:dtype]]"``, a faiss factory such as ``"Flat"`` or ``"HNSW32"``),
        the folder of a saved index, or workers already started (a
        :class:`ReplicatedIndex` or a :class:`ShardedIndex`, left running).
    positives : one sequence of corpus row ids per query (ragged), or a ``-1``-padded array.
    sampler : any sampler; default ``TopKSampler()``.
    corpus : ``(n, dim)`` corpus vectors for a spec: a ``.npy`` path (memory-mapped by
        each worker) or an array (sent through Ray's object store).
    metric : ``"ip"`` or ``"cosine"``.
    index_options : keyword arguments for the index (``search_block``, ``chunk_size``...).
    n, seed, filters, exclude : as for :func:`~negsample.mine` (``seed`` an int).
    workers : query-sharding workers; default as many as the cluster's CPUs allow at
        ``cpus_per_worker`` each (and GPUs at ``gpus_per_worker``).
    corpus_shards : corpus-sharding workers (instead of ``workers``).
    cpus_per_worker, gpus_per_worker : Ray resources per worker; with GPUs, use a
        ``"torch"`` spec (:class:`~negsample.TorchIndex` on each worker's GPU).
    address : Ray cluster to use when this process is not connected yet: ``"auto"``,
        ``"HOST:PORT"``, ``"local"``; see :func:`connect`.
    work_dir : folder for the manifest and finished chunks; ``None``: a temporary folder
        removed at the end (nothing to resume).
    chunk_size : queries per chunk (default 4,096), rounded up to a multiple of the index's
        ``search_block``.
    settings : anything else that identifies the run, hashed into the manifest.
    progress : one tqdm bar on this process, advanced as chunks finish anywhere.
    on_chunk : called as ``on_chunk(done, total)`` after each chunk is saved.
    log : receives one-line messages (chunks resumed, workers lost, per-worker counts).
    max_restarts : times Ray restarts a worker whose process died.
    exclude_other_positives, max_negative_reuse, reuse_oversample : as for
        :func:`~negsample.mine_resumable`: the workers remove other queries' positives
        from their candidates (the positive mask sent once), the reuse cap runs here, on
        the driver, once all the chunks are in.

    Returns
    -------
    Negatives
        As :func:`~negsample.mine` returns; ``stats`` merges every chunk's counters and
        timings (summed over workers).

    Examples
    --------
    >>> from negsample.distributed import mine_distributed      # doctest: +SKIP
    >>> negs = mine_distributed(queries, "exact", positives, ns.ReSa2Sampler(),  # doctest: +SKIP
    ...                         corpus="corpus.npy", address="auto", workers=8, seed=0)
    """
    sampler = _check_args(sampler, n, seed, filters)
    if workers is not None and corpus_shards is not None:
        raise InputError("give workers (query sharding) or corpus_shards, not both")
    if isinstance(index, ReplicatedIndex | ShardedIndex):
        given = {
            "corpus": corpus,
            "index_options": index_options,
            "workers": workers,
            "corpus_shards": corpus_shards,
        }
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise InputError(
                f"{type(index).__name__} workers are already started: leave out {', '.join(extra)}"
            )
    started = connect(address)
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="negsample-work-")
        work_dir = tmp.name
    owned: ReplicatedIndex | ShardedIndex | None = None
    lock = ExitStack()
    try:
        # the saved index and the chunks: one process at a time in the work folder
        lock.enter_context(RunStore(work_dir).lock())
        if isinstance(index, ReplicatedIndex | ShardedIndex):
            held = index
        elif corpus_shards is not None:
            held = owned = ShardedIndex(
                index,
                corpus=corpus,
                shards=corpus_shards,
                metric=metric,
                index_options=index_options,
                cpus_per_shard=cpus_per_worker,
                gpus_per_shard=gpus_per_worker,
                max_restarts=max_restarts,
            )
        else:
            if isinstance(index, str) and not os.path.isdir(index) and not exact_like(index):
                index = _build_once(index, corpus, metric, index_options, Path(work_dir))
                index_options = None  # used by the build; the workers load the saved index
                kind = saved_kind(index)  # only a kind whose saved form lacks the vectors
                corpus = corpus if kind is not None and kind.load_takes_vectors else None
            held = owned = ReplicatedIndex(
                index,
                corpus=corpus,
                workers=workers or default_workers(cpus_per_worker, gpus_per_worker),
                metric=metric,
                index_options=index_options,
                cpus_per_worker=cpus_per_worker,
                gpus_per_worker=gpus_per_worker,
                max_restarts=max_restarts,
            )
        return run_chunks(
            held,
            queries,
            positives,
            sampler,
            n=int(n),
            seed=int(seed),
            filters=filters,
            exclude=exclude,
            work_dir=Path(work_dir),
            chunk_size=chunk_size,
            settings=dict(settings or {}),
            index_identity=held.identity,
            progress=progress,
            on_chunk=on_chunk,
            log=log,
            exclude_other_positives=exclude_other_positives,
            max_negative_reuse=max_negative_reuse,
            reuse_oversample=reuse_oversample,
        )
    finally:
        if owned is not None:
            owned.close()
        lock.close()
        if tmp is not None:
            tmp.cleanup()
        if started:
            ray_module().shutdown()


def _build_once(
    spec: str, corpus: Any, metric: str, options: Mapping[str, Any] | None, work_dir: Path
) -> str:
    """Build an approximate index (HNSW, IVF...) once, here, and save it in the work
    folder, so that every worker loads the very same index (built by each worker, the
    graphs would differ) and a resumed run searches it again. Its name holds the
    corpus's identity too: an index built over other vectors is never loaded."""
    if corpus is None:
        raise InputError(f"index spec {spec!r} is built from a corpus: pass corpus= (.npy/array)")
    data, _, _ = as_data(corpus, "corpus")
    # a .npy mapped whole (its digest is cached), or the array
    vectors = np.load(data.path, mmap_mode="r") if isinstance(data, Rows) else data
    key = settings_hash(
        {
            "spec": spec,
            "metric": metric,
            "options": repr(sorted(dict(options or {}).items())),
            "corpus": corpus_identity(vectors),
        }
    )
    saved = work_dir / f"index-{key[:16]}"
    if not (saved / "meta.json").is_file():
        work_dir.mkdir(parents=True, exist_ok=True)
        build_spec_index(vectors, spec, metric, dict(options or {})).save(saved)
    return str(saved)


def run_chunks(
    held: ReplicatedIndex | ShardedIndex,
    queries: Any,
    positives: Any,
    sampler: BaseSampler,
    *,
    n: int,
    seed: int,
    filters: Filters | None,
    exclude: Any,
    work_dir: Path,
    chunk_size: int | None,
    settings: Mapping[str, Any],
    index_identity: Mapping[str, Any],
    progress: bool,
    on_chunk: Callable[[int, int], None] | None,
    log: Callable[[str], None] | None,
    exclude_other_positives: bool = False,
    max_negative_reuse: int | None = None,
    reuse_oversample: float = 2.0,
) -> Negatives:
    """The resumable chunks of one run on workers already started: the run store and
    settings of :func:`~negsample.mine_resumable`, the chunks computed by the workers
    (:class:`RayExecutor`, query sharding) or by :func:`~negsample.mine` here over the
    shards (:class:`~negsample.pipeline.LocalExecutor`, corpus sharding).
    ``index_identity`` is what identifies the workers' index in the settings (the same
    in both modes). The reuse cap and the count of other queries' positives are applied
    here, on the driver, when the chunks are put together
    (:meth:`~negsample.pipeline.settings.RunSettings.assemble`)."""
    if n >= held.ntotal:
        raise InputError(
            f"n={n} negatives requested but the corpus has only {held.ntotal} rows "
            "(at least one is a positive)"
        )
    given = chunk_size is not None
    if chunk_size is None:
        chunk_size = DEFAULT_CHUNK
    size = aligned_chunk_size(chunk_size, held.search_block)
    if size != chunk_size and log is not None and given:
        log(f"chunk size {chunk_size} rounded up to {size} (a multiple of the search block)")
    qdata, _, dim = as_data(queries, "queries")
    if dim != held.dim:
        raise InputError(f"queries has dimension {dim}, but the index has dimension {held.dim}")
    q_all = qdata.read() if isinstance(qdata, Rows) else qdata
    executor: ChunkExecutor
    if isinstance(held, ShardedIndex):  # mine() here, its searches asked of the shards
        here: ShardedIndex | None = held
        executor = LocalExecutor()
    else:  # each worker mines whole chunks
        here, executor = None, RayExecutor(held, qdata, log=log)
    run = run_settings(
        q_all,
        here,
        positives,
        sampler,
        n=n,
        seed=seed,
        chunk_size=size,
        filters=filters,
        exclude=exclude,
        settings=settings,
        n_corpus=held.ntotal,
        index_identity=index_identity,
        exclude_other_positives=exclude_other_positives,
        max_negative_reuse=max_negative_reuse,
        reuse_oversample=reuse_oversample,
    )
    return run_chunks_in(
        RunStore(work_dir), run, executor, progress=progress, on_chunk=on_chunk, log=log
    )


def query_rows(qdata: Rows | np.ndarray, a: int, b: int) -> Any:
    """Queries ``a:b`` as sent to a worker: rows of a file it reads, or the array rows."""
    if isinstance(qdata, Rows):
        return Rows(qdata.path, a, b)
    return np.ascontiguousarray(qdata[a:b])


class RayExecutor:
    """Query sharding behind the executor seam (:class:`~negsample.pipeline.ChunkExecutor`):
    the chunks handed to the workers of a :class:`ReplicatedIndex` as they free up
    (``_IN_FLIGHT`` queued per worker), each computed by :meth:`IndexWorker.mine_chunk`
    (:func:`~negsample.mine` with the chunk's global offset). A worker lost for good
    leaves its chunks to the others; closing the iterator (an error, Ctrl-C) cancels the
    work in flight. Everything else (the work folder, chunk files, counting, progress) is
    the run store's and :func:`~negsample.pipeline.run_chunks`'.

    Parameters
    ----------
    pool : ReplicatedIndex
        The workers.
    queries : Rows or numpy.ndarray
        What the workers read their chunks' queries from (rows of a shared ``.npy``, or
        the array, sent with each chunk).
    log : callable or None
        Receives workers lost and how many chunks each worker mined.
    """

    def __init__(
        self,
        pool: ReplicatedIndex,
        queries: Rows | np.ndarray,
        *,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.pool, self.queries, self.log = pool, queries, log

    def __repr__(self) -> str:
        return f"RayExecutor(workers={self.pool.num_workers})"

    def run(
        self, job: ChunkJob, chunks: Sequence[tuple[int, int]]
    ) -> Iterator[tuple[int, Negatives]]:
        ray = ray_module()
        pool, log = self.pool, self.log
        others = job.set_positives if job.exclude_other_positives else None
        # in the object store once (the positive mask is a bit per corpus row)
        task = ray.put(MineTask(job.sampler, job.n, job.seed, job.filters, others))

        def submit(actor: Any, a: int, b: int) -> Any:
            e = None if job.exclude is None else job.exclude.slice(a, b)
            rows = query_rows(self.queries, a, b)
            return actor.mine_chunk.remote(a, rows, job.positives.slice(a, b), e, task)

        todo = deque(range(len(chunks)))
        alive = list(range(pool.num_workers))
        load = dict.fromkeys(alive, 0)
        done_by = dict.fromkeys(alive, 0)
        inflight: dict[Any, tuple[int, int]] = {}
        t0 = time.perf_counter()
        try:
            while todo or inflight:
                for w in alive:
                    while load[w] < _IN_FLIGHT and todo:
                        i = todo.popleft()
                        inflight[submit(pool.actors[w], *chunks[i])] = (i, w)
                        load[w] += 1
                # a bounded wait: back in Python at least every 0.2 s, so that Ctrl-C
                # (SIGINT) is raised promptly even while a long chunk runs
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.2)
                for ref in ready:
                    i, w = inflight.pop(ref)
                    load[w] -= 1
                    try:
                        part = get(ref)
                    except Exception as exc:
                        if not is_worker_lost(exc):
                            raise
                        todo.appendleft(i)
                        if w in alive:
                            alive.remove(w)
                            if log is not None:
                                log(
                                    f"worker {w} lost for good ({type(exc).__name__}); its "
                                    f"chunks go to the {len(alive)} others"
                                )
                        if not alive:
                            raise RuntimeError(
                                f"every worker was lost, with {len(todo)} of {len(chunks)} "
                                "chunks to do: run again to continue from the saved ones"
                            ) from exc
                        continue
                    done_by[w] += 1
                    yield i, part
        except BaseException:  # (GeneratorExit too: the caller stopped)
            for ref in inflight:
                try:
                    ray.cancel(ref)
                except Exception:  # best effort: the workers are killed next
                    pass
            raise
        if log is not None and chunks:
            per = ", ".join(f"worker {w}: {c}" for w, c in done_by.items())
            log(
                f"{len(chunks)} chunks on {pool.num_workers} workers in "
                f"{time.perf_counter() - t0:.1f}s ({per})"
            )
