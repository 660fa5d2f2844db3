"""Resumable mining: :func:`mine` (or ``Sampler.sample`` on given candidates) over query
chunks whose results are saved in a work folder, so an interrupted run continues from its
last finished chunk and gives exactly what an uninterrupted run gives (every random draw
is a function of ``(seed, global query index)``).

The pieces, each in one place: the settings builder
(:func:`~negsample.pipeline.settings.run_settings`), the work folder with its manifest,
chunk files and lock (:class:`~negsample.pipeline.store.RunStore`), and the chunk loop
with its executor seam (:func:`~negsample.pipeline.executor.run_chunks`). This module
keeps the public entry point and names.

Safety rules: every chunk file carries the hash of the settings that made it (in its name
and inside it) and is never loaded under other settings; one run at a time holds the work
folder (:func:`work_lock`); temporary files left by a killed run are removed by the next.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._files import RunLocked
from .._types import Candidates, Negatives
from .._validate import check_int
from ..errors import InputError
from ..filters import Filters
from ..index.base import Index
from ..samplers.base import BaseSampler, check_n_fits, check_sampler
from ..samplers.topk import TopKSampler
from .executor import LocalExecutor, RunIncomplete, run_chunks
from .settings import DEFAULT_CHUNK, default_chunk_size, run_settings, settings_hash
from .store import RunStore, SettingsMismatch

__all__ = [
    "DEFAULT_CHUNK",
    "RunIncomplete",
    "RunLocked",
    "SettingsMismatch",
    "default_chunk_size",
    "mine_resumable",
    "remove_work_dir",
    "settings_hash",
    "work_lock",
]


def work_lock(work_dir: str | os.PathLike[str]) -> Any:
    """The lock of a work folder: ``with work_lock(wd): ...`` holds ``<wd>.lock`` (beside
    the folder, so it outlives the folder's removal); another process asking for it gets
    :class:`RunLocked` at once. Re-entrant within a thread (:meth:`RunStore.lock`)."""
    return RunStore(work_dir).lock()


def mine_resumable(
    queries: Any,
    index: Index | None,
    positives: Any,
    sampler: BaseSampler | None = None,
    *,
    work_dir: str | os.PathLike[str],
    n: int = 7,
    seed: int = 0,
    filters: Filters | None = None,
    candidates: Candidates | None = None,
    settings: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    max_chunks: int | None = None,
    progress: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    exclude: Any = None,
    exclude_other_positives: bool = False,
    max_negative_reuse: int | None = None,
    reuse_oversample: float = 2.0,
) -> Negatives:
    """Mine like :func:`mine`, saving each chunk of ``chunk_size`` queries in ``work_dir``.

    A rerun with the same inputs and settings loads the finished chunks and computes only
    the rest; the result equals an uninterrupted run's. The work folder holds
    ``manifest.json`` (the settings and their hash) and one ``chunk_*.npz`` per finished
    chunk, each written atomically.

    Parameters
    ----------
    queries : ``(n_queries, dim)`` query vectors (``None`` allowed with ``candidates``).
    index : the corpus index (``None`` allowed with ``candidates``).
    positives : one sequence of corpus rows per query.
    candidates : if given, the sampler draws from these (a TREC run...) through
        ``sampler.sample`` instead of searching; samplers with ``needs_vectors`` then need
        ``queries`` and ``index`` as well.
    settings : everything else that defines the run (data files, index spec...);
        hashed with ``n``, ``seed``, the sampler, filters, ``chunk_size``, content
        digests of ``queries``, ``positives``, ``exclude`` and ``candidates``, and the
        index's fingerprint (:func:`~negsample.pipeline.settings.index_fingerprint`: an
        index over another corpus is another run). A work folder whose manifest holds
        other settings is refused with :class:`SettingsMismatch`, which names what
        differs (delete it, or ``negsample mine --fresh``, to start over). Each chunk
        file carries the hash too (name and content): a chunk made with other settings
        is never loaded (removed and counted), so deleting the manifest cannot mix two
        runs.
    chunk_size : queries per saved chunk; ``None``: :func:`default_chunk_size` (4,096, or
        the index's ``search_block`` when larger: a chunk that holds part of a search block
        still searches the whole block, as :func:`mine` searches fixed, aligned blocks).
    max_chunks : compute at most this many new chunks, then raise :class:`RunIncomplete`.
    on_chunk : called as ``on_chunk(done, total)`` after each new chunk is saved (``done``
        counts the finished chunks, resumed ones included).
    log : called with one-line messages: chunks resumed, stale temporary files, chunks
        made with other settings or damaged (removed), a rebuilt manifest.
    exclude_other_positives, max_negative_reuse, reuse_oversample : as for :func:`mine`,
        over the whole run (every query of ``queries``), not chunk by chunk: each chunk
        removes the candidates that are another query's positive, and with a cap the
        chunks hold the spare draws and the cap is applied when they are put together
        (the same bytes for any ``chunk_size``, and after a resume).

    One process at a time works in ``work_dir``: its lock ``<work_dir>.lock`` is held
    for the call, and another process gets :class:`RunLocked` at once. Temporary files
    left in ``work_dir`` by a killed run are removed.

    Returns
    -------
    Negatives
        With the stats of every chunk merged (timings of chunks loaded from a previous
        run are those of that run).
    """
    sampler = TopKSampler() if sampler is None else sampler
    check_sampler(sampler)  # any Sampler; an n its region can never fill: before any work
    check_n_fits(sampler, check_int("n", n, 1))
    if max_chunks is not None and (
        isinstance(max_chunks, bool)
        or not isinstance(max_chunks, int | np.integer)
        or max_chunks < 1
    ):
        raise InputError(f"max_chunks must be None or an integer >= 1, got {max_chunks!r}")
    if candidates is None and (queries is None or index is None):
        raise InputError("pass queries and an index, or candidates")
    run = run_settings(
        queries,
        index,
        positives,
        sampler,
        n=n,
        seed=seed,
        chunk_size=chunk_size,
        filters=filters,
        candidates=candidates,
        exclude=exclude,
        settings=settings,
        exclude_other_positives=exclude_other_positives,
        max_negative_reuse=max_negative_reuse,
        reuse_oversample=reuse_oversample,
    )
    return run_chunks(
        RunStore(work_dir),
        run,
        LocalExecutor(),
        max_chunks=max_chunks,
        progress=progress,
        on_chunk=on_chunk,
        log=log,
    )


def remove_work_dir(work_dir: str | os.PathLike[str]) -> None:
    """Delete a run's work folder, under its lock: a folder that another live run holds
    is never deleted (:class:`RunLocked` is raised instead)."""
    RunStore(work_dir).remove()
