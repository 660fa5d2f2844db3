"""Resumable mining: :func:`mine` (or ``Sampler.sample`` on given candidates) over query
chunks whose results are saved in a work folder, so an interrupted run continues from its
last finished chunk and gives exactly what an uninterrupted run gives (every random draw
is a function of ``(seed, global query index)``)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._ragged import Ragged, to_ragged
from .._types import Candidates, MiningStats, Negatives
from ..filters import Filters
from ..index.base import Index
from ..mining import mine
from ..samplers.base import BaseSampler
from ..samplers.topk import TopKSampler

__all__ = ["RunIncomplete", "mine_resumable", "settings_hash"]

_MANIFEST = "manifest.json"


class RunIncomplete(RuntimeError):
    """Raised when ``max_chunks`` stops a run before its end; rerun to continue."""

    def __init__(self, done: int, total: int, work_dir: Path) -> None:
        self.done, self.total, self.work_dir = done, total, work_dir
        super().__init__(
            f"stopped after {done} of {total} chunks; the finished chunks are in {work_dir}, "
            "run the same command again to continue"
        )


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A stable hash of a JSON-able settings mapping."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def _array_digest(*arrays: Any) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        step = max(1, (64 << 20) // max(1, a.itemsize * int(np.prod(a.shape[1:], dtype=np.int64))))
        for s in range(0, a.shape[0], step):
            h.update(np.ascontiguousarray(a[s : s + step]).tobytes())
    return h.hexdigest()


def _save_chunk(path: Path, part: Negatives) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                ids=part.ids,
                scores=part.scores,
                query_index=part.query_index,
                anchor_ids=part.anchor_ids,
                stats=np.array(json.dumps(part.stats.as_dict())),
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_chunk(path: Path) -> Negatives | None:
    try:
        with np.load(path) as z:
            st = json.loads(str(z["stats"]))
            stats = MiningStats(**st)
            return Negatives(z["ids"], z["scores"], z["query_index"], z["anchor_ids"], stats)
    except Exception:  # a damaged chunk is recomputed, never trusted
        return None


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
    chunk_size: int = 4096,
    max_chunks: int | None = None,
    progress: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    exclude: Any = None,
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
    settings : everything else that defines the run (data, embeddings, index spec...);
        hashed with ``n``, ``seed``, the sampler, filters, ``chunk_size`` and digests of
        ``queries``, ``positives`` and ``candidates``. A work folder made with other
        settings is refused (delete it to start over).
    max_chunks : compute at most this many new chunks, then raise :class:`RunIncomplete`.
    on_chunk : called as ``on_chunk(done, total)`` after each chunk is saved.
    log : called with a one-line message when chunks are resumed (e.g. print to stderr).

    Returns
    -------
    Negatives
        With the stats of every chunk merged (timings of chunks loaded from a previous
        run are those of that run).
    """
    sampler = TopKSampler() if sampler is None else sampler
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if candidates is None and (queries is None or index is None):
        raise ValueError("pass queries and an index, or candidates")
    if candidates is not None:
        n_q = int(np.asarray(candidates.ids).shape[0])
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
    else:
        n_q = (
            int(np.asarray(queries).shape[0])
            if not hasattr(queries, "shape")
            else int(queries.shape[0])
        )
    n_corpus = index.ntotal if index is not None else None
    pos = to_ragged(positives, n_q, n_corpus)
    exc = (
        None if exclude is None else to_ragged(exclude, n_q, n_corpus, "exclude", allow_empty=True)
    )
    digests = {
        "positives": _array_digest(pos.indptr, pos.values),
        "exclude": _array_digest(exc.indptr, exc.values) if exc is not None else None,
        "queries": _array_digest(queries) if queries is not None else None,
        "candidates": (
            _array_digest(candidates.ids, candidates.scores) if candidates is not None else None
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
    h = settings_hash(full)
    wd = Path(work_dir)
    wd.mkdir(parents=True, exist_ok=True)
    man = wd / _MANIFEST
    if man.is_file():
        old = json.loads(man.read_text())
        if old.get("hash") != h:
            raise ValueError(
                f"{wd} holds a run with other settings (hash {str(old.get('hash'))[:12]}, now "
                f"{h[:12]}); delete that folder to start over, or use another output path"
            )
    else:
        tmp = wd / f".{_MANIFEST}.tmp"
        tmp.write_text(json.dumps({"hash": h, "settings": full}, indent=1, default=str))
        os.replace(tmp, man)

    starts = list(range(0, n_q, chunk_size))
    total = len(starts)
    parts: list[Negatives] = []
    stats = MiningStats(seed=int(seed))
    new = 0
    resumed = 0
    bar = None
    if progress:
        from .._optional import require

        bar = require("tqdm.auto", "progress bars").tqdm(total=n_q, unit="query", desc="mining")
    try:
        for i, a in enumerate(starts):
            b = min(a + chunk_size, n_q)
            path = wd / f"chunk_{a:010d}_{b:010d}.npz"
            part = _load_chunk(path) if path.is_file() else None
            if part is not None:
                resumed += 1
            else:
                if max_chunks is not None and new >= max_chunks:
                    raise RunIncomplete(i, total, wd)
                part = _mine_chunk(
                    queries, index, pos, sampler, candidates, a, b, n, seed, filters, exc
                )
                _save_chunk(path, part)
                new += 1
            stats.merge(part.stats)
            parts.append(part)
            if bar is not None:
                bar.update(b - a)
            if on_chunk is not None:
                on_chunk(i + 1, total)
    finally:
        if bar is not None:
            bar.close()
    if resumed and log is not None:
        log(f"resumed {resumed} of {total} chunks from {wd}, computed {new}")
    stats.seed = int(seed)
    return Negatives.concat(parts, n, stats)


def _mine_chunk(
    queries: Any,
    index: Index | None,
    pos: Ragged,
    sampler: BaseSampler,
    candidates: Candidates | None,
    a: int,
    b: int,
    n: int,
    seed: int,
    filters: Filters | None,
    exc: Ragged | None = None,
) -> Negatives:
    p = pos.slice(a, b)
    e = None if exc is None else exc.slice(a, b)
    if candidates is None:
        assert index is not None
        return mine(
            queries[a:b],
            index,
            p,
            sampler,
            n=n,
            seed=seed,
            filters=filters,
            query_offset=a,
            exclude=e,
        )
    return sampler.sample(
        candidates.ids[a:b],
        candidates.scores[a:b],
        p,
        n=n,
        seed=seed,
        filters=filters,
        queries=None if queries is None else queries[a:b],
        index=index,
        query_index=np.arange(a, b, dtype=np.int64),
        exclude=e,
    )


def remove_work_dir(work_dir: str | os.PathLike[str]) -> None:
    """Delete a finished run's work folder."""
    shutil.rmtree(work_dir, ignore_errors=True)
