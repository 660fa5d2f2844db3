"""The settings of a resumable run, built in one place.

:func:`run_settings` is the one builder that :func:`~negsample.mine_resumable`,
:func:`~negsample.mine_dataset`, the Ray runner and (through ``mine_dataset``) the command
line use: the same inputs give the same settings and hash whichever path runs them, so a
run started on one machine can be continued on a cluster and back. The settings hold
what decides a chunk's rows: the sampler, ``n``, the seed, the filters, the chunk size,
the number of queries, digests of the queries, positives, exclusions and candidates, and
the caller's own settings (data files, index spec...).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._ragged import to_ragged
from .._rng import normalize_seed
from .._types import Candidates
from ..filters import Filters
from ..index.base import Index
from ..samplers.base import BaseSampler
from .executor import ChunkJob

__all__ = [
    "DEFAULT_CHUNK",
    "RunSettings",
    "array_digest",
    "default_chunk_size",
    "run_settings",
    "settings_hash",
]

#: Queries per saved chunk by default (see :func:`default_chunk_size`).
DEFAULT_CHUNK = 4096


def default_chunk_size(index: Any) -> int:
    """4,096 queries per saved chunk, rounded up to whole search blocks of ``index``
    (a GPU index searches 16,384 queries at a time: smaller chunks would each search a
    whole block, 4 times the work)."""
    block = int(getattr(index, "search_block", 1)) if index is not None else 1
    return -(-DEFAULT_CHUNK // block) * block


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A stable hash of a JSON-able settings mapping."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def array_digest(*arrays: Any) -> str:
    """A digest of arrays' dtypes, shapes and contents, read in bounded blocks."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        step = max(1, (64 << 20) // max(1, a.itemsize * int(np.prod(a.shape[1:], dtype=np.int64))))
        for s in range(0, a.shape[0], step):
            h.update(np.ascontiguousarray(a[s : s + step]).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class RunSettings:
    """A resumable run: its settings (written to the manifest), their hash (stamped on
    every chunk), the chunk size, and the job every chunk computes."""

    hash: str
    settings: dict[str, Any]
    chunk_size: int
    n_queries: int
    job: ChunkJob

    @property
    def chunks(self) -> list[tuple[int, int]]:
        """The ``(first, end)`` query ranges of the chunks, in order."""
        q, c = self.n_queries, self.chunk_size
        return [(a, min(a + c, q)) for a in range(0, q, c)]


def _n_queries(queries: Any, candidates: Candidates | None) -> int:
    if candidates is not None:
        return int(np.asarray(candidates.ids).shape[0])
    return int(queries.shape[0]) if hasattr(queries, "shape") else int(np.asarray(queries).shape[0])


def run_settings(
    queries: Any,
    index: Index | None,
    positives: Any,
    sampler: BaseSampler,
    *,
    n: int,
    seed: int,
    chunk_size: int | None = None,
    filters: Filters | None = None,
    candidates: Candidates | None = None,
    exclude: Any = None,
    settings: Mapping[str, Any] | None = None,
    n_corpus: int | None = None,
) -> RunSettings:
    """The settings of a resumable run and their hash, with its inputs checked.

    Parameters
    ----------
    queries : array-like or None
        ``(n_queries, dim)`` query vectors (``None`` allowed with ``candidates``).
    index : Index or None
        The corpus index the chunks search (``None`` when the executor's workers hold
        it, or with ``candidates`` for samplers that need scores only).
    positives : sequence
        One sequence of corpus rows per query (ragged), or a ``-1``-padded array.
    sampler : BaseSampler
        The sampler every chunk runs.
    n, seed : int
        Negatives per row and the seed (fixed: a run that draws a new seed could never
        resume).
    chunk_size : int or None
        Queries per saved chunk; ``None``: :func:`default_chunk_size` of ``index``.
    filters : Filters or None
        Score filters.
    candidates : Candidates or None
        Candidates to sample from instead of searching (a TREC run).
    exclude : sequence or None
        Corpus rows never to sample, per query.
    settings : mapping or None
        The caller's own settings (data files, index spec...), hashed with the rest.
    n_corpus : int or None
        Corpus rows, to check the positives and exclusions against (default
        ``index.ntotal``).

    Returns
    -------
    RunSettings
        Its ``job`` is what every chunk computes (:class:`~negsample.pipeline.ChunkJob`).
    """
    if chunk_size is None:
        chunk_size = default_chunk_size(index)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise TypeError(f"chunk_size must be an integer, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if seed is None:
        raise ValueError(
            "mine_resumable needs a fixed seed: seed=None draws a new one on every call, "
            "so a rerun could never resume"
        )
    seed = normalize_seed(seed)
    if candidates is not None:
        if sampler.depth == 0:
            raise ValueError(
                f"{type(sampler).__name__} searches no candidates, so it cannot use given "
                "candidates (a run file); use a sampler that ranks candidates, e.g. topk"
            )
        if sampler.needs_vectors and (queries is None or index is None):
            raise ValueError(
                f"{type(sampler).__name__} needs corpus vectors (needs_vectors=True), and "
                "candidates from a run file give only scores; use a sampler that needs "
                "only scores (e.g. topk, simans), or mine with embeddings instead"
            )
    n_q = _n_queries(queries, candidates)
    if n_corpus is None and index is not None:
        n_corpus = int(index.ntotal)
    pos = to_ragged(positives, n_q, n_corpus)
    exc = (
        None if exclude is None else to_ragged(exclude, n_q, n_corpus, "exclude", allow_empty=True)
    )
    digests = {
        "positives": array_digest(pos.indptr, pos.values),
        "exclude": array_digest(exc.indptr, exc.values) if exc is not None else None,
        "queries": array_digest(queries) if queries is not None else None,
        "candidates": (
            array_digest(candidates.ids, candidates.scores) if candidates is not None else None
        ),
    }
    full = {
        "user": dict(settings or {}),
        "sampler": repr(sampler),
        "n": int(n),
        "seed": int(seed),
        "filters": repr(filters),
        "chunk_size": int(chunk_size),
        "n_queries": n_q,
        "inputs": digests,
    }
    job = ChunkJob(queries, index, pos, sampler, int(n), int(seed), filters, candidates, exc)
    return RunSettings(settings_hash(full), full, int(chunk_size), n_q, job)
