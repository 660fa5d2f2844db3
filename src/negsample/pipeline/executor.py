"""The chunk loop of a resumable run, and the executor seam it computes chunks through.

:func:`run_chunks` owns everything a resumable run does besides computing: it prepares
the work folder (:class:`~negsample.pipeline.store.RunStore`), loads the finished chunks,
asks an executor for the others, saves each result as it arrives, counts and logs, stops
after ``max_chunks``, and merges the parts in query order. An executor only computes: it
receives the :class:`ChunkJob` (what every chunk computes) and the ``(first, end)`` query
ranges still to do, and yields each result as it is ready, in any order.

:class:`LocalExecutor` computes the chunks one after the other in this process. The Ray
runner (``negsample.distributed``) implements the same seam with its workers; another
backend (a process pool, Dask, a batch queue) plugs in the same way (docs/extending.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .._ragged import Ragged
from .._types import Candidates, MiningStats, Negatives
from ..crossquery import PositiveMask, remove_other_positives
from ..errors import InputError
from ..filters import Filters
from ..index.base import Index
from ..mining import mine
from ..samplers.base import BaseSampler, sample_candidates
from .store import RunStore

if TYPE_CHECKING:
    from ..sources import CandidateSource
    from .settings import RunSettings

__all__ = [
    "ChunkExecutor",
    "ChunkJob",
    "LocalExecutor",
    "RunIncomplete",
    "is_source",
    "run_chunks",
]


class RunIncomplete(RuntimeError):
    """Raised when ``max_chunks`` stops a run before its end; rerun to continue."""

    def __init__(self, done: int, total: int, work_dir: Any) -> None:
        self.done, self.total, self.work_dir = done, total, work_dir
        super().__init__(
            f"stopped after {done} of {total} chunks; the finished chunks are in {work_dir}, "
            "run the same command again to continue"
        )


@dataclass(frozen=True)
class ChunkJob:
    """What every chunk of a run computes: :func:`~negsample.mine` on queries
    ``first:end`` with their global offset (or ``sampler.sample`` on the given
    ``candidates``: an array pair, or a :class:`~negsample.sources.CandidateSource` that
    computes the chunk's candidates from texts), so that each chunk's result is a
    function of the inputs, the seed and its query range only.

    Built by :func:`~negsample.pipeline.settings.run_settings` (the positives and
    exclusions checked and ragged). ``index`` is ``None`` for an executor whose workers
    hold the index themselves. ``set_positives`` marks every labelled positive of the
    run's queries; with ``exclude_other_positives`` a chunk removes those of other queries
    from its candidates (:mod:`negsample.crossquery`).
    """

    queries: Any
    index: Index | None
    positives: Ragged
    sampler: BaseSampler
    n: int
    seed: int
    filters: Filters | None = None
    candidates: Candidates | CandidateSource | None = None
    exclude: Ragged | None = None
    set_positives: PositiveMask | None = None
    exclude_other_positives: bool = False

    def compute(self, a: int, b: int) -> Negatives:
        """The result of queries ``a:b``: what every executor must return for them."""
        p = self.positives.slice(a, b)
        e = None if self.exclude is None else self.exclude.slice(a, b)
        others = self.set_positives if self.exclude_other_positives else None
        if self.candidates is None:
            if self.index is None:
                raise InputError("this job has no index here: its executor holds it")
            return mine(
                self.queries[a:b],
                self.index,
                p,
                self.sampler,
                n=self.n,
                seed=self.seed,
                filters=self.filters,
                query_offset=a,
                exclude=e,
                exclude_other_positives=others is not None,
                set_positives=others,
            )
        ps: list[Any] | None = None
        source = is_source(self.candidates)
        if not source:
            ids, scores = self.candidates.ids[a:b], self.candidates.scores[a:b]  # type: ignore[union-attr]
        else:  # a candidate source (BM25, hybrid): this chunk's candidates, computed now
            t = time.perf_counter()
            got = self.candidates.chunk(  # type: ignore[union-attr]
                a, b, depth=int(self.sampler.depth), positives=p, exclude=e
            )
            ids, scores = got.ids, got.scores
            if got.positive_scores is not None:  # one sequence per query
                ps = np.split(got.positive_scores, p.indptr[1:-1])
            searched = time.perf_counter() - t
        n_other = 0
        if others is not None:  # given candidates: removed, never searched deeper
            ids, scores, n_other = remove_other_positives(
                np.asarray(ids), np.asarray(scores), others, p, e
            )
        out = sample_candidates(
            self.sampler,
            ids,
            scores,
            p,
            n=self.n,
            seed=self.seed,
            positive_scores=ps,
            filters=self.filters,
            queries=None if self.queries is None else self.queries[a:b],
            index=self.index,
            query_index=np.arange(a, b, dtype=np.int64),
            exclude=e,
        )
        if source:
            out.stats.add_time("search", searched)
        if others is not None:
            out.stats.candidates_seen += n_other
            out.stats.count_removed("other_positive", n_other)
        return out


def is_source(candidates: Any) -> bool:
    """``candidates`` is a candidate source (it computes a chunk's candidates: ``chunk``),
    not given arrays."""
    return callable(getattr(candidates, "chunk", None))


@runtime_checkable
class ChunkExecutor(Protocol):
    """Computes chunks of a run for :func:`run_chunks`."""

    def run(
        self, job: ChunkJob, chunks: Sequence[tuple[int, int]]
    ) -> Iterator[tuple[int, Negatives]]:
        """Compute ``job.compute(*chunks[i])`` for every ``i`` (elsewhere, in parallel...)
        and yield ``(i, result)`` as each one is ready, in any order, each ``i`` once.

        Each result must equal ``job.compute(first, end)`` (mine with ``query_offset``:
        every random draw depends on the seed and the global query index only). The
        caller saves each result as it is yielded; when it stops early (an error,
        Ctrl-C) it closes the iterator, and the executor then cancels its work in flight
        (``GeneratorExit`` at the ``yield``, for a generator).
        """
        ...


class LocalExecutor:
    """The chunks one after the other, in this process (what
    :func:`~negsample.mine_resumable` and :func:`~negsample.mine_dataset` use)."""

    def __repr__(self) -> str:
        return "LocalExecutor()"

    def run(
        self, job: ChunkJob, chunks: Sequence[tuple[int, int]]
    ) -> Iterator[tuple[int, Negatives]]:
        for i, (a, b) in enumerate(chunks):
            yield i, job.compute(a, b)


def run_chunks(
    store: RunStore,
    run: RunSettings,
    executor: ChunkExecutor | None = None,
    *,
    max_chunks: int | None = None,
    progress: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> Negatives:
    """Run ``run`` (from :func:`~negsample.pipeline.settings.run_settings`) in ``store``:
    the finished chunks loaded, the others computed by ``executor`` and saved as they
    arrive, the parts merged in query order.

    Parameters
    ----------
    store : RunStore
        The work folder; its lock is held for the call (re-entrant).
    run : RunSettings
        The settings hash, the chunk ranges and the job.
    executor : ChunkExecutor or None
        Computes the missing chunks; ``None``: :class:`LocalExecutor`.
    max_chunks : int or None
        Compute at most this many new chunks, then raise :class:`RunIncomplete`.
    progress : bool
        One tqdm bar over the queries.
    on_chunk : callable or None
        Called as ``on_chunk(done, total)`` after each new chunk is saved (``done``
        counts the finished chunks, resumed ones included).
    log : callable or None
        Receives one-line messages: chunks resumed, temporaries, chunk files of other
        settings or damaged (removed and recomputed), a rebuilt manifest, a stop.

    Returns
    -------
    Negatives
        Every chunk's rows in query order, with the stats merged (timings of resumed
        chunks are those of the run that made them), then what depends on all the
        queries together (:meth:`~negsample.pipeline.settings.RunSettings.assemble`: the
        other queries' positives counted over the whole run, the reuse cap).
    """
    if max_chunks is not None and (
        isinstance(max_chunks, bool)
        or not isinstance(max_chunks, int | np.integer)
        or max_chunks < 1
    ):
        raise InputError(f"max_chunks must be None or an integer >= 1, got {max_chunks!r}")
    executor = LocalExecutor() if executor is None else executor
    h, chunks = run.hash, run.chunks
    total = len(chunks)
    with store.lock():
        store.prepare(h, run.settings, log)
        found = store.finished(h, chunks)
        parts = dict(found.parts)
        todo = [i for i in range(total) if i not in parts]
        stop_at = None
        if max_chunks is not None and len(todo) > max_chunks:
            todo, stop_at = todo[:max_chunks], todo[max_chunks]
        if parts and log is not None:
            log(f"resumed {len(parts)} of {total} chunks from {store.path}, computing {len(todo)}")
        bar = None
        if progress:
            from .._optional import require

            bar = require("tqdm.auto", "progress bars").tqdm(
                total=run.n_queries, unit="query", desc="mining"
            )
            bar.update(sum(chunks[i][1] - chunks[i][0] for i in parts))
        results = executor.run(run.job, [chunks[i] for i in todo])
        try:
            for j, part in results:
                if not 0 <= j < len(todo) or todo[j] in parts:
                    raise RuntimeError(
                        f"the executor {executor!r} yielded chunk {j} twice or unasked"
                    )
                i = todo[j]
                a, b = chunks[i]
                store.save_chunk(h, a, b, part)
                parts[i] = part
                if bar is not None:
                    bar.update(b - a)
                if on_chunk is not None:
                    on_chunk(len(parts), total)
        except BaseException as exc:
            if log is not None and not isinstance(exc, ValueError | TypeError):
                log(
                    f"stopped: {len(parts)} of {total} chunks are saved in {store.path}; "
                    "run again to continue"
                )
            raise
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # an executor's work still in flight is cancelled
            if bar is not None:
                bar.close()
            if log is not None and (found.foreign or found.damaged):
                log(
                    f"recomputed {found.damaged} damaged chunk files and {found.foreign} "
                    "made with other settings"
                )
    if stop_at is not None:
        raise RunIncomplete(stop_at, total, store.path)
    missing = [i for i in range(total) if i not in parts]
    if missing:
        raise RuntimeError(
            f"the executor {executor!r} returned no result for {len(missing)} chunks "
            f"(the first: queries {chunks[missing[0]][0]}:{chunks[missing[0]][1]})"
        )
    stats = MiningStats(seed=run.job.seed)
    ordered = [parts[i] for i in range(total)]
    for part in ordered:
        stats.merge(part.stats)
    stats.seed = run.job.seed
    return run.assemble(Negatives.concat(ordered, run.job.n, stats))
