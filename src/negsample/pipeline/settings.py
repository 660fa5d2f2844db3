"""The settings of a resumable run, built in one place.

:func:`run_settings` is the one builder that :func:`~negsample.mine_resumable`,
:func:`~negsample.mine_dataset`, the Ray runner and (through ``mine_dataset``) the command
line use: the same inputs give the same settings and hash whichever path runs them, so a
run started on one machine can be continued on a cluster and back. The settings hold
what decides a chunk's rows: the sampler, ``n``, the seed, the filters, the chunk size,
the number of queries, content digests of the queries, positives, exclusions and
candidates, a fingerprint of the index (:func:`index_fingerprint`: its type, size,
metric, search settings and a digest of its content), and the caller's own settings
(data files, index spec...). :func:`identify_file` identifies an input file by its
content, for those settings (a cached digest, :mod:`negsample._digest`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._digest import RowDigest, StreamDigest, file_digest
from .._digest import array_digest as array_digest
from .._ragged import to_ragged
from .._rng import normalize_seed
from .._types import Candidates, Negatives
from ..crossquery import PositiveMask, ReuseCap, reuse_cap
from ..errors import InputError, InputTypeError
from ..filters import Filters
from ..index.base import Index
from ..samplers.base import BaseSampler
from .executor import ChunkJob, is_source

if TYPE_CHECKING:
    from ..sources import CandidateSource

__all__ = [
    "DEFAULT_CHUNK",
    "RunSettings",
    "array_digest",
    "corpus_identity",
    "default_chunk_size",
    "identify_file",
    "identify_files",
    "index_fingerprint",
    "run_settings",
    "settings_hash",
    "source_fingerprint",
    "texts_identity",
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


#: Attributes that change an index's results, recorded by :func:`index_fingerprint` for
#: an index without a ``fingerprint()`` method.
SEARCH_ATTRIBUTES = ("factory", "nprobe", "ef_search", "dtype", "device", "devices")
_VECTOR_BLOCK = 1 << 22  # floats gathered at a time to digest an index's vectors


def index_fingerprint(index: Any) -> dict[str, Any]:
    """What identifies an index's results, for a resumable run's settings.

    Its type, ``ntotal``, ``dim``, ``metric`` and ``exact``, and either what the index's
    own ``fingerprint()`` returns (a JSON-able mapping holding at least ``content``, a
    digest of what it searches, and its search settings: NumpyIndex, FaissIndex,
    TorchIndex and ShardedIndex have one, cheap for a memory-mapped corpus whose digest
    is cached), or, for an index without one, the attributes of
    :data:`SEARCH_ATTRIBUTES` it has and a digest of its vectors, read through
    ``index.vectors`` in bounded blocks. Two indexes over different corpora never have
    the same fingerprint.

    Parameters
    ----------
    index : Index
        Any index.

    Returns
    -------
    dict
        JSON-able.
    """
    cls = type(index)
    out: dict[str, Any] = {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "ntotal": int(index.ntotal),
        "dim": int(index.dim),
        "metric": str(index.metric),
        "exact": bool(index.exact),
    }
    native = getattr(index, "fingerprint", None)
    if callable(native):
        fp = dict(native())
        if "content" not in fp:
            raise InputError(f"{cls.__name__}.fingerprint() returned no 'content' digest")
        out.update(fp)
        return out
    out["search"] = {a: repr(getattr(index, a)) for a in SEARCH_ATTRIBUTES if hasattr(index, a)}
    n, dim = out["ntotal"], out["dim"]
    d = RowDigest(np.float32, (n, dim))
    step = max(1, _VECTOR_BLOCK // max(1, dim))
    for s in range(0, n, step):
        v = index.vectors(np.arange(s, min(s + step, n), dtype=np.int64))
        d.update(np.ascontiguousarray(v, dtype=np.float32))
    out["content"] = d.hexdigest()
    return out


def corpus_identity(vectors: Any) -> dict[str, Any]:
    """What identifies an index built from ``vectors`` by a spec (``"exact"``,
    ``"torch..."``, a faiss factory): their shape and a digest of their values (cached
    for a ``.npy`` memory-mapped whole). The spec, metric and options are the caller's
    settings; the same spec over the same vectors gives the same index (an approximate
    one is built once and saved in the work folder)."""
    a = np.asarray(vectors) if not hasattr(vectors, "shape") else vectors
    return {
        "rows": int(a.shape[0]),
        "dim": int(a.shape[1]) if len(a.shape) > 1 else 1,
        "content": array_digest(a),
    }


def texts_identity(texts: Sequence[str]) -> dict[str, Any]:
    """What identifies a sequence of texts (a corpus, the queries) in a run's settings:
    their number and a digest of their UTF-8 bytes, each text framed by its length (so
    ``["ab", "c"]`` and ``["a", "bc"]`` differ). Read once, by iteration, in bounded
    memory (any sequence: a list, an Arrow-backed column)."""
    d = StreamDigest("texts")
    n = 0
    buf = bytearray()
    for t in texts:
        if not isinstance(t, str):
            raise InputTypeError(f"text row {n} is a {type(t).__name__}, not a string")
        b = t.encode("utf-8", "surrogatepass")
        buf += len(b).to_bytes(8, "little")
        buf += b
        n += 1
        if len(buf) >= 1 << 20:
            d.update(bytes(buf))
            buf.clear()
    d.update(bytes(buf))
    return {"rows": n, "content": d.hexdigest()}


def source_fingerprint(source: Any) -> dict[str, Any]:
    """What identifies a candidate source's results (``bm25``, ``hybrid``) in a run's
    settings: its own settings (the BM25 parameters, ``k_rrf``, which scores the sampler
    sees, the bm25s and PyStemmer versions) and :func:`texts_identity` of the corpus and
    query texts. A resume with other texts or parameters is another run."""
    return {
        **dict(source.settings()),
        "documents": texts_identity(source.documents),
        "queries": texts_identity(source.queries),
    }


def identify_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """An input file as a run's settings record it: its name, size and a digest of its
    bytes (:func:`negsample._digest.file_digest`, cached by device, inode, size,
    modification and change time, so an unchanged file is not read again and a content
    change that keeps the size and modification time is still seen). The folder is left
    out: a moved input continues its run."""
    p = Path(path)
    return {"name": p.name, "size": p.stat().st_size, "content": file_digest(p)}


def identify_files(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """:func:`identify_file` of each path, in order (the command line's data, embeddings
    and run files)."""
    return [identify_file(p) for p in paths]


@dataclass(frozen=True)
class RunSettings:
    """A resumable run: its settings (written to the manifest), their hash (stamped on
    every chunk), the chunk size, the job every chunk computes, and the reuse cap applied
    when the chunks are put together (``None``: none)."""

    hash: str
    settings: dict[str, Any]
    chunk_size: int
    n_queries: int
    job: ChunkJob
    cap: ReuseCap | None = None

    def assemble(self, negatives: Negatives) -> Negatives:
        """What depends on the whole run, applied to the chunks put together in query
        order: ``stats.other_positives`` counted against every query's positives (a
        chunk counts only its own), and the reuse cap (:mod:`negsample.crossquery`) over
        the chunks' spare draws. A function of the chunks' rows only, so a resumed run
        gives the same bytes."""
        mask = self.job.set_positives
        if mask is not None:
            negatives.stats.other_positives = mask.count(negatives.ids)
        if self.cap is None:
            return negatives
        t = time.perf_counter()
        out = self.cap.apply(negatives, seed=self.job.seed, positives=mask)
        out.stats.add_time("reuse", time.perf_counter() - t)
        return out

    @property
    def chunks(self) -> list[tuple[int, int]]:
        """The ``(first, end)`` query ranges of the chunks, in order."""
        q, c = self.n_queries, self.chunk_size
        return [(a, min(a + c, q)) for a in range(0, q, c)]


def _n_queries(queries: Any, candidates: Any) -> int:
    if is_source(candidates):
        return int(candidates.n_queries)
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
    candidates: Candidates | CandidateSource | None = None,
    exclude: Any = None,
    settings: Mapping[str, Any] | None = None,
    n_corpus: int | None = None,
    index_identity: Mapping[str, Any] | None = None,
    exclude_other_positives: bool = False,
    max_negative_reuse: int | None = None,
    reuse_oversample: float = 2.0,
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
    candidates : Candidates, CandidateSource or None
        Candidates to sample from instead of searching: arrays (a TREC run; their
        digests enter the settings), or a :class:`~negsample.sources.CandidateSource`
        that computes each chunk's candidates from texts (``bm25``, ``hybrid``; its
        :func:`source_fingerprint` enters the settings).
    exclude : sequence or None
        Corpus rows never to sample, per query.
    settings : mapping or None
        The caller's own settings (data files, index spec...), hashed with the rest.
    n_corpus : int or None
        Corpus rows, to check the positives and exclusions against (default
        ``index.ntotal``).
    index_identity : mapping or None
        What identifies the index in the settings; default :func:`index_fingerprint` of
        ``index`` (``None`` without one). A caller that knows it more cheaply, or whose
        workers hold the index, passes it: :func:`~negsample.mine_dataset` and the Ray
        runner pass :func:`corpus_identity` of the corpus with the spec in ``settings``.
    exclude_other_positives : bool
        Every chunk removes the candidates that are a labelled positive of another query
        of the run (recorded in the settings when set).
    max_negative_reuse : int or None
        The reuse cap, applied when the chunks are put together
        (:meth:`RunSettings.assemble`): the chunks then hold ``reuse_oversample`` x ``n``
        draws per row (:func:`negsample.crossquery.reuse_cap`), and the settings record
        those draws, not the cap (a rerun with another cap reuses the chunks).
    reuse_oversample : float
        Draws per negative for the cap.

    Returns
    -------
    RunSettings
        Its ``job`` is what every chunk computes (:class:`~negsample.pipeline.ChunkJob`).
    """
    if chunk_size is None:
        chunk_size = default_chunk_size(index)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise InputTypeError(f"chunk_size must be an integer, got {chunk_size!r}")
    if chunk_size < 1:
        raise InputError(f"chunk_size must be >= 1, got {chunk_size}")
    if seed is None:
        raise InputError(
            "mine_resumable needs a fixed seed: seed=None draws a new one on every call, "
            "so a rerun could never resume"
        )
    seed = normalize_seed(seed)
    source: Any = candidates if is_source(candidates) else None
    given: Any = None if source is not None else candidates  # arrays (a run file)
    if source is not None:
        from ..sources import check_sampler

        check_sampler(sampler, spec=source.settings()["kind"], dense=index is not None)
    elif given is not None:
        if sampler.depth == 0:
            raise InputError(
                f"{type(sampler).__name__} searches no candidates, so it cannot use given "
                "candidates (a run file); use a sampler that ranks candidates, e.g. topk"
            )
        if getattr(sampler, "needs_vectors", False) and (queries is None or index is None):
            raise InputError(
                f"{type(sampler).__name__} needs corpus vectors (needs_vectors=True), and "
                "candidates from a run file give only scores; use a sampler that needs "
                "only scores (e.g. topk, simans), or mine with embeddings instead"
            )
    n_q = _n_queries(queries, candidates)
    if n_corpus is None and index is not None:
        n_corpus = int(index.ntotal)
    if n_corpus is None and source is not None:
        n_corpus = int(source.n_corpus)
    pos = to_ragged(positives, n_q, n_corpus)
    exc = (
        None if exclude is None else to_ragged(exclude, n_q, n_corpus, "exclude", allow_empty=True)
    )
    if exclude_other_positives and sampler.depth == 0:
        raise InputError(
            f"{type(sampler).__name__} searches no candidates: exclude_other_positives "
            "removes candidates of a search"
        )
    n_rows = n_corpus
    if n_rows is None:  # candidates without an index: the largest id seen
        seen = [pos.values] + ([] if given is None else [np.asarray(given.ids).ravel()])
        n_rows = int(max((int(v.max(initial=-1)) for v in seen), default=-1)) + 1
    mask = PositiveMask.of(pos, max(n_rows, 1))
    cap = None
    if max_negative_reuse is not None:
        cap, sampler = reuse_cap(
            sampler, int(n), max_negative_reuse, oversample=reuse_oversample, n_corpus=n_rows
        )
        n = cap.draws
    digests = {
        "positives": [array_digest(pos.indptr), array_digest(pos.values)],
        "exclude": None if exc is None else [array_digest(exc.indptr), array_digest(exc.values)],
        "queries": None if queries is None else array_digest(queries),
        "candidates": (
            source_fingerprint(source)
            if source is not None
            else None
            if given is None
            else [array_digest(given.ids), array_digest(given.scores)]
        ),
    }
    if index_identity is None and index is not None:
        index_identity = index_fingerprint(index)
    full = {
        "user": dict(settings or {}),
        "sampler": repr(sampler),
        "n": int(n),
        "seed": int(seed),
        "filters": repr(filters),
        "chunk_size": int(chunk_size),
        "n_queries": n_q,
        "inputs": digests,
        "index": None if index_identity is None else dict(index_identity),
    }
    if exclude_other_positives:  # (absent by default: earlier runs keep their hash)
        full["exclude_other_positives"] = True
    job = ChunkJob(
        queries, index, pos, sampler, int(n), int(seed), filters, candidates, exc,
        set_positives=mask, exclude_other_positives=bool(exclude_other_positives),
    )  # fmt: skip
    return RunSettings(settings_hash(full), full, int(chunk_size), n_q, job, cap)
