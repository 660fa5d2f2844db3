"""Resumable mining: :func:`mine` (or ``Sampler.sample`` on given candidates) over query
chunks whose results are saved in a work folder, so an interrupted run continues from its
last finished chunk and gives exactly what an uninterrupted run gives (every random draw
is a function of ``(seed, global query index)``).

Safety rules: every chunk file carries the hash of the settings that made it (in its name
and inside it) and is never loaded under other settings; one run at a time holds the work
folder (:func:`work_lock`); temporary files left by a killed run are removed by the next.
"""

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
from .._rng import normalize_seed
from .._types import Candidates, MiningStats, Negatives
from .._validate import check_int
from ..filters import Filters
from ..index.base import Index
from ..mining import mine
from ..samplers.base import BaseSampler, check_n_fits, check_sampler, sample_candidates
from ..samplers.topk import TopKSampler
from .lock import RunLocked, hold_lock

__all__ = [
    "RunIncomplete",
    "RunLocked",
    "SettingsMismatch",
    "mine_resumable",
    "remove_work_dir",
    "settings_hash",
    "work_lock",
]

_MANIFEST = "manifest.json"


class RunIncomplete(RuntimeError):
    """Raised when ``max_chunks`` stops a run before its end; rerun to continue."""

    def __init__(self, done: int, total: int, work_dir: Path) -> None:
        self.done, self.total, self.work_dir = done, total, work_dir
        super().__init__(
            f"stopped after {done} of {total} chunks; the finished chunks are in {work_dir}, "
            "run the same command again to continue"
        )


class SettingsMismatch(ValueError):
    """The work folder holds a run made with other settings."""


def work_lock(work_dir: str | os.PathLike[str]) -> Any:
    """The lock of a work folder: ``with work_lock(wd): ...`` holds ``<wd>.lock`` (beside
    the folder, so it outlives the folder's removal); another process asking for it gets
    :class:`RunLocked` at once. Re-entrant within a thread."""
    wd = Path(work_dir)
    wd.parent.mkdir(parents=True, exist_ok=True)
    return hold_lock(wd.with_name(wd.name + ".lock"))


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


def _chunk_path(wd: Path, h: str, a: int, b: int) -> Path:
    """The file of the finished chunk of queries ``a:b`` of the run ``h``."""
    return wd / f"chunk_{h[:16]}_{a:010d}_{b:010d}.npz"


def _save_chunk(path: Path, part: Negatives, h: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                ids=part.ids,
                scores=part.scores,
                query_index=part.query_index,
                anchor_ids=part.anchor_ids,
                stats=np.array(json.dumps(part.stats.as_dict())),
                settings_hash=np.array(h),
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_chunk(path: Path, h: str) -> Negatives | str:
    """The chunk, or why it is not used: ``"foreign"`` (made with other settings) or
    ``"damaged"`` (unreadable); neither is ever trusted."""
    try:
        with np.load(path) as z:
            if "settings_hash" not in z.files or str(z["settings_hash"]) != h:
                return "foreign"
            st = json.loads(str(z["stats"]))
            stats = MiningStats(**st)
            return Negatives(z["ids"], z["scores"], z["query_index"], z["anchor_ids"], stats)
    except Exception:
        return "damaged"


def _remove_stale(wd: Path) -> int:
    """Remove what a killed run left half-made in its work folder (names starting with a
    dot: chunk and manifest temporaries, index folders being written); the count."""
    n = 0
    for p in wd.iterdir():
        if p.name.startswith("."):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            n += 1
    return n


def _read_manifest(man: Path, log: Callable[[str], None] | None) -> dict[str, Any] | None:
    """The manifest, or ``None`` when it is missing or unreadable (then named in the log:
    it is rebuilt, which is safe since each chunk carries its own settings hash)."""
    if not man.is_file():
        return None
    try:
        old = json.loads(man.read_text(encoding="utf-8"))
        if not isinstance(old, dict) or not isinstance(old.get("hash"), str):
            raise ValueError("no settings hash in it")
        return old
    except (ValueError, UnicodeDecodeError) as exc:
        if log is not None:
            log(f"{man}: unreadable ({exc}); rebuilt (chunks are checked one by one)")
        return None


def prepare_run(
    queries: Any,
    ntotal: int | None,
    positives: Any,
    sampler: BaseSampler,
    *,
    n_queries: int,
    n: int,
    seed: int,
    filters: Filters | None,
    candidates: Candidates | None,
    settings: Mapping[str, Any] | None,
    chunk_size: int,
    exclude: Any,
) -> tuple[str, dict[str, Any], Ragged, Ragged | None]:
    """The settings of a run and their hash, with the positives and exclusions checked
    (ragged). Shared by :func:`mine_resumable` and the distributed runner
    (``negsample.distributed``): the same inputs give the same hash, so either can continue
    the other's run."""
    n_q, n_corpus = int(n_queries), ntotal
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
    return settings_hash(full), full, pos, exc


def open_work_dir(
    wd: Path, h: str, full: dict[str, Any], log: Callable[[str], None] | None
) -> None:
    """Make the work folder ready for the run ``h`` (hold :func:`work_lock` around the
    call): temporaries of a killed run removed, the manifest checked (a run with other
    settings is refused with :class:`SettingsMismatch`) or written, chunk files made with
    other settings removed."""
    wd.mkdir(parents=True, exist_ok=True)
    stale = _remove_stale(wd)
    if stale and log is not None:
        log(f"removed {stale} temporary files left in {wd} by an interrupted run")
    man = wd / _MANIFEST
    old = _read_manifest(man, log)
    if old is not None and old["hash"] != h:
        raise SettingsMismatch(
            f"{wd} holds a run with other settings (hash {old['hash'][:12]}, now {h[:12]}); "
            "rerun with --fresh (or delete that folder) to start over, or write to another "
            "output path"
        )
    if old is None:
        tmp = wd / f".{_MANIFEST}.tmp"
        tmp.write_text(json.dumps({"hash": h, "settings": full}, indent=1, default=str))
        os.replace(tmp, man)
    prefix = f"chunk_{h[:16]}_"
    foreign = [p for p in wd.glob("chunk_*.npz") if not p.name.startswith(prefix)]
    for p in foreign:
        p.unlink(missing_ok=True)
    if foreign and log is not None:
        log(f"removed {len(foreign)} chunk files made with other settings from {wd}")


#: Queries per saved chunk by default (see :func:`default_chunk_size`).
DEFAULT_CHUNK = 4096


def default_chunk_size(index: Index | None) -> int:
    """4,096 queries per saved chunk, rounded up to whole search blocks of ``index``
    (a GPU index searches 16,384 queries at a time: smaller chunks would each search a
    whole block, 4 times the work)."""
    block = int(getattr(index, "search_block", 1)) if index is not None else 1
    return -(-DEFAULT_CHUNK // block) * block


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
        ``queries``, ``positives`` and ``candidates``. A work folder whose manifest holds
        other settings is refused with :class:`SettingsMismatch` (delete it, or
        ``negsample mine --fresh``, to start over). Each chunk file carries the hash too
        (name and content): a chunk made with other settings is never loaded (removed
        and counted), so deleting the manifest cannot mix two runs.
    chunk_size : queries per saved chunk; ``None``: :func:`default_chunk_size` (4,096, or
        the index's ``search_block`` when larger: a chunk that holds part of a search block
        still searches the whole block, as :func:`mine` searches fixed, aligned blocks).
    max_chunks : compute at most this many new chunks, then raise :class:`RunIncomplete`.
    on_chunk : called as ``on_chunk(done, total)`` after each chunk is saved.
    log : called with one-line messages: chunks resumed, stale temporary files, chunks
        made with other settings or damaged (removed), a rebuilt manifest.

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
    if chunk_size is None:
        chunk_size = default_chunk_size(index)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise TypeError(f"chunk_size must be an integer, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if max_chunks is not None and (
        isinstance(max_chunks, bool)
        or not isinstance(max_chunks, int | np.integer)
        or max_chunks < 1
    ):
        raise ValueError(f"max_chunks must be None or an integer >= 1, got {max_chunks!r}")
    if seed is None:
        raise ValueError(
            "mine_resumable needs a fixed seed: seed=None draws a new one on every call, "
            "so a rerun could never resume"
        )
    seed = normalize_seed(seed)
    if candidates is None and (queries is None or index is None):
        raise ValueError("pass queries and an index, or candidates")
    if candidates is not None:
        n_q = int(np.asarray(candidates.ids).shape[0])
        if sampler.depth == 0:
            raise ValueError(
                f"{type(sampler).__name__} searches no candidates, so it cannot use given "
                "candidates (a run file); use a sampler that ranks candidates, e.g. topk"
            )
        if getattr(sampler, "needs_vectors", False) and (queries is None or index is None):
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
    h, full, pos, exc = prepare_run(
        queries,
        index.ntotal if index is not None else None,
        positives,
        sampler,
        n_queries=n_q,
        n=n,
        seed=seed,
        filters=filters,
        candidates=candidates,
        settings=settings,
        chunk_size=chunk_size,
        exclude=exclude,
    )
    wd = Path(work_dir)
    with work_lock(wd):
        return _run_chunks(
            wd, h, full, queries, index, pos, sampler, candidates, n_q, n, seed, filters,
            exc, chunk_size, max_chunks, progress, on_chunk, log,
        )  # fmt: skip


def _run_chunks(
    wd: Path,
    h: str,
    full: dict[str, Any],
    queries: Any,
    index: Index | None,
    pos: Ragged,
    sampler: BaseSampler,
    candidates: Candidates | None,
    n_q: int,
    n: int,
    seed: int,
    filters: Filters | None,
    exc: Ragged | None,
    chunk_size: int,
    max_chunks: int | None,
    progress: bool,
    on_chunk: Callable[[int, int], None] | None,
    log: Callable[[str], None] | None,
) -> Negatives:
    """The chunk loop of :func:`mine_resumable`, under the work folder's lock."""
    open_work_dir(wd, h, full, log)

    starts = list(range(0, n_q, chunk_size))
    total = len(starts)
    parts: list[Negatives] = []
    stats = MiningStats(seed=int(seed))
    new = 0
    resumed = 0
    rejected = {"foreign": 0, "damaged": 0}
    bar = None
    if progress:
        from .._optional import require

        bar = require("tqdm.auto", "progress bars").tqdm(total=n_q, unit="query", desc="mining")
    try:
        for i, a in enumerate(starts):
            b = min(a + chunk_size, n_q)
            path = _chunk_path(wd, h, a, b)
            got = _load_chunk(path, h) if path.is_file() else None
            if isinstance(got, Negatives):
                part = got
                resumed += 1
            else:
                if got is not None:
                    rejected[got] += 1
                    path.unlink(missing_ok=True)
                if max_chunks is not None and new >= max_chunks:
                    raise RunIncomplete(i, total, wd)
                part = _mine_chunk(
                    queries, index, pos, sampler, candidates, a, b, n, seed, filters, exc
                )
                _save_chunk(path, part, h)
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
        if log is not None and any(rejected.values()):
            log(
                f"recomputed {rejected['damaged']} damaged chunk files and "
                f"{rejected['foreign']} made with other settings"
            )
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
    return sample_candidates(
        sampler,
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
    """Delete a run's work folder, under its lock: a folder that another live run holds
    is never deleted (:class:`RunLocked` is raised instead)."""
    wd = Path(work_dir)
    if not wd.exists():
        return
    with work_lock(wd):
        shutil.rmtree(wd, ignore_errors=True)
