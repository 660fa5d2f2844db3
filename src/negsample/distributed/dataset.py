"""``mine_dataset_distributed``: :func:`~negsample.mine_dataset` on a Ray cluster."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._ragged import Ragged
from ..errors import InputError, InputTypeError
from ..filters import Filters
from ..pipeline.dataset import (
    MinedDataset,
    _index_for,
    _search_options,
    check_text_rules,
    duplicate_exclusion,
    positive_scores,
    saved_index_key,
    spec_index_identity,
)
from ..pipeline.store import RunStore
from ..samplers.base import BaseSampler
from ._ray import connect, get, ray_module
from .index import ReplicatedIndex, ShardedIndex, as_data, exact_like
from .runner import _check_args, default_workers, query_rows, run_chunks

if TYPE_CHECKING:
    from ..io.data import BeirDataset
    from ..io.encoding import DatasetEmbeddings

__all__ = ["mine_dataset_distributed"]


def mine_dataset_distributed(
    dataset: BeirDataset,
    sampler: BaseSampler | None = None,
    *,
    embeddings: DatasetEmbeddings,
    n: int = 7,
    seed: int = 0,
    index: str = "exact",
    metric: str = "ip",
    filters: Filters | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    chunk_size: int | None = None,
    settings: Mapping[str, Any] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    exclude_duplicate_texts: bool = True,
    address: str | None = None,
    workers: int | None = None,
    corpus_shards: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    index_options: Mapping[str, Any] | None = None,
    max_restarts: int = 3,
    on_chunk: Callable[[int, int], None] | None = None,
    nprobe: int | None = None,
    ef_search: int | None = None,
    exclude_other_positives: bool = False,
    max_negative_reuse: int | None = None,
    reuse_oversample: float = 2.0,
    near_duplicate_texts: bool = False,
) -> MinedDataset:
    """:func:`~negsample.mine_dataset` with the search on a Ray cluster: the same
    negatives, ``s(q, d+)`` and work folder (a run may be continued on one machine or on
    the cluster, whichever started it).

    The dense-search path only (``embeddings``; a TREC run has nothing to distribute).
    Parameters as in :func:`~negsample.mine_dataset` (``nprobe``, ``ef_search`` and
    ``near_duplicate_texts`` too) and
    :func:`~negsample.distributed.mine_distributed`: ``workers`` for query sharding
    (default), ``corpus_shards`` for corpus sharding; ``exclude_other_positives``,
    ``max_negative_reuse`` and ``reuse_oversample`` as in ``mine_dataset`` (the cap runs
    on the driver once every chunk is in). File-backed embeddings
    (``load_embeddings`` memory-maps ``corpus.npy``) are read by every worker from their
    file, so the folder must be on storage every node sees; other arrays go through Ray's
    object store. An approximate index (``"HNSW32"``...) is built once here and saved in
    the work folder, and every query-sharding worker loads that one.
    """
    sampler = _check_args(sampler, n, seed, filters)
    check_text_rules(exclude_duplicate_texts, near_duplicate_texts)
    if workers is not None and corpus_shards is not None:
        raise InputError("give workers (query sharding) or corpus_shards, not both")
    if not isinstance(index, str):
        raise InputTypeError(f"index must be an index spec string, got {type(index).__name__}")
    opts = _search_options(index, nprobe, ef_search)
    timings: dict[str, float] = {}
    user = dict(settings or {})
    user.update(index=index, metric=metric, **opts)
    user["embeddings"] = embeddings.source
    identity = spec_index_identity(embeddings.corpus)  # (those of mine_dataset)
    started = connect(address)
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="negsample-work-")
        work_dir = tmp.name
    wd = Path(work_dir)
    held: ReplicatedIndex | ShardedIndex | None = None
    lock = ExitStack()
    try:
        lock.enter_context(RunStore(wd).lock())  # the saved index and the chunks: one process
        t = time.perf_counter()
        if corpus_shards is not None:
            held = ShardedIndex(
                index,
                corpus=embeddings.corpus,
                shards=corpus_shards,
                metric=metric,
                index_options={**dict(index_options or {}), **opts} or None,
                cpus_per_shard=cpus_per_worker,
                gpus_per_shard=gpus_per_worker,
                max_restarts=max_restarts,
            )
        else:
            spec, options = index, index_options
            if not exact_like(index):  # the one index mine_dataset builds and keeps
                key = saved_index_key(user, identity)
                _index_for(embeddings, index, metric, wd, key, opts)
                spec, options = str(wd / f"index-{key}"), None
            held = ReplicatedIndex(
                spec,
                corpus=embeddings.corpus,
                workers=workers or default_workers(cpus_per_worker, gpus_per_worker),
                metric=metric,
                index_options=options,
                cpus_per_worker=cpus_per_worker,
                gpus_per_worker=gpus_per_worker,
                max_restarts=max_restarts,
            )
        timings["index"] = time.perf_counter() - t
        if log is not None:
            log(f"{held!r} ready in {timings['index']:.1f}s")
        exclude = (
            duplicate_exclusion(dataset, log, normalized=near_duplicate_texts)
            if exclude_duplicate_texts
            else None
        )
        negs = run_chunks(
            held,
            embeddings.queries,
            dataset.positives,
            sampler,
            n=int(n),
            seed=int(seed),
            filters=filters,
            exclude=exclude,
            work_dir=wd,
            chunk_size=chunk_size,
            settings=user,
            index_identity=identity,
            progress=progress,
            on_chunk=on_chunk,
            log=log,
            exclude_other_positives=exclude_other_positives,
            max_negative_reuse=max_negative_reuse,
            reuse_oversample=reuse_oversample,
        )
        for k, v in negs.stats.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        t = time.perf_counter()
        pos = dataset.positives_ragged()
        if isinstance(held, ShardedIndex):
            ps = positive_scores(embeddings.queries, pos, held)
        else:
            ps = _pool_positive_scores(held, embeddings.queries, pos)
        timings["positive_scores"] = time.perf_counter() - t
        per_query = np.split(ps, pos.indptr[1:-1])
        return MinedDataset(negs, per_query, timings)
    finally:
        if held is not None:
            held.close()
        lock.close()
        if tmp is not None:
            tmp.cleanup()
        if started:
            ray_module().shutdown()


def _pool_positive_scores(
    pool: ReplicatedIndex, queries: Any, pos: Ragged, step: int = 4096
) -> npt.NDArray[np.float32]:
    """``s(q, d+)`` of every positive (flat, in order), chunks of queries spread over the
    workers."""
    qdata, n_q, _ = as_data(queries, "queries")
    refs = [
        pool.actors[j % pool.num_workers].positive_scores.remote(
            query_rows(qdata, a, min(a + step, n_q)), pos.slice(a, min(a + step, n_q))
        )
        for j, a in enumerate(range(0, n_q, step))
    ]
    parts = get(refs)
    return np.concatenate(parts) if parts else np.empty(0, np.float32)
