"""From a dataset to negatives: the steps ``negsample mine`` runs, as one Python call.

:func:`mine_dataset` takes a :class:`~negsample.BeirDataset` and either its embeddings
(dense search through an index) or a TREC run (candidates from elsewhere), mines in
resumable chunks, and returns the negatives with ``s(q, d+)`` and the time of each phase.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._ragged import Ragged
from .._types import Candidates, Negatives
from ..candidates import positive_scores_for
from ..errors import InputError, InputTypeError
from ..filters import Filters
from ..index.base import Index, prepare_queries
from ..index.registry import build_index, load_index, parse_index_spec, saved_kind
from ..samplers.base import BaseSampler
from ..samplers.topk import TopKSampler
from .executor import run_chunks
from .settings import corpus_identity, index_fingerprint, run_settings, settings_hash
from .store import RunStore

if TYPE_CHECKING:
    from ..io.data import BeirDataset
    from ..io.encoding import DatasetEmbeddings

__all__ = ["MinedDataset", "build_index", "mine_dataset"]


@dataclass
class MinedDataset:
    """Negatives for a dataset split, ``s(q, d+)`` per query (aligned with
    ``dataset.positives``, NaN where unknown), and seconds per phase."""

    negatives: Negatives
    positive_scores: list[npt.NDArray[np.float32]]
    timings: dict[str, float] = field(default_factory=dict)


def mine_dataset(
    dataset: BeirDataset,
    sampler: BaseSampler | None = None,
    *,
    embeddings: DatasetEmbeddings | None = None,
    candidates: Candidates | None = None,
    n: int = 7,
    seed: int = 0,
    index: str | Index = "exact",
    metric: str = "ip",
    filters: Filters | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    chunk_size: int | None = None,
    max_chunks: int | None = None,
    settings: dict[str, Any] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    exclude_duplicate_texts: bool = True,
    nprobe: int | None = None,
    ef_search: int | None = None,
    exclude_other_positives: bool = False,
    max_negative_reuse: int | None = None,
    reuse_oversample: float = 2.0,
    near_duplicate_texts: bool = False,
) -> MinedDataset:
    """Mine ``n`` negatives for every query of ``dataset``.

    Parameters
    ----------
    embeddings : corpus and query vectors (:func:`~negsample.encode_dataset` or
        :func:`~negsample.load_embeddings`); the candidates come from a search of
        ``index`` over them.
    candidates : instead, candidates per query (:func:`~negsample.read_trec_run`); only
        samplers that need scores alone (``needs_vectors=False``) accept them.
    index : an index spec for :func:`build_index`, or a built :class:`~negsample.Index`;
        or a candidate source over the dataset's texts (:mod:`negsample.sources`):
        ``"bm25[:k1=...:b=...]"`` (BM25; ``embeddings`` optional: given, the sampler sees
        their scores ``s(q, d)`` of BM25's candidates, and samplers that need vectors
        work) or ``"hybrid[:DENSE][:k_rrf=60]"`` (dense and BM25 fused by reciprocal
        rank fusion; needs ``embeddings``). Candidates are then computed per chunk.
    work_dir : where chunk results are kept so an interrupted run resumes (see
        :func:`~negsample.mine_resumable`); a faiss index other than ``Flat`` is saved
        there too, so a resumed run searches the very same graph. ``None``: a temporary
        folder, removed at the end. Its lock (``<work_dir>.lock``) is held for the call:
        another process gets :class:`~negsample.RunLocked` at once.
    chunk_size : queries per saved chunk; ``None``: 4,096, or the index's ``search_block``
        when larger (:func:`~negsample.pipeline.resume.default_chunk_size`).
    settings : extra settings that identify the run (file names...), hashed into the
        work folder's manifest.
    log : receives one-line diagnostics (chunks resumed...).
    exclude_duplicate_texts : never sample a document whose text is identical to one of
        the query's positives under another id (:meth:`BeirDataset.duplicate_texts`);
        counted in ``stats.removed["excluded"]``.
    near_duplicate_texts : also exclude the documents whose *normalised* text equals one
        of the query's positives' (:meth:`BeirDataset.near_duplicate_texts`: NFKC,
        case-folded, whitespace and punctuation runs collapsed), counted in
        ``stats.removed["excluded"]`` with the identical ones. Off by default; the
        command line's ``--near-duplicate`` turns it on with
        ``Filters(near_duplicate=...)``, the embedding rule. Needs
        ``exclude_duplicate_texts`` (identical texts normalise alike).
    nprobe, ef_search : search settings of a faiss ``index`` spec: IVF lists probed per
        query, HNSW ``efSearch`` (raised to at least the search depth); ``None`` keeps
        :class:`~negsample.FaissIndex`'s defaults.
    exclude_other_positives : never sample a document that is a labelled positive of
        another query of the split (counted in ``stats.removed["other_positive"]``;
        ``stats.other_positives`` counts them among the negatives either way).
    max_negative_reuse : the most rows one document may be a negative of, over the split
        (``None``: no cap); applied when the chunks are put together, to spare draws
        (``reuse_oversample`` x ``n`` per row), so resuming gives the same bytes
        (docs/algorithms.md). Counted in ``stats.reuse``.
    reuse_oversample : draws mined per negative wanted for the cap.
    """
    sampler = TopKSampler() if sampler is None else sampler
    spec = parse_index_spec(index) if isinstance(index, str) else None
    source_spec = spec if spec is not None and spec.is_source else None
    if source_spec is None and (embeddings is None) == (candidates is None):
        raise InputError("pass either embeddings (dense search) or candidates (a run file)")
    if source_spec is not None and candidates is not None:
        raise InputError(f"index={index!r} computes the candidates: leave out candidates")
    if source_spec is not None and source_spec.needs_embeddings and embeddings is None:
        raise InputError(
            f"index={index!r} searches the embeddings too: pass embeddings "
            "(encode_dataset or load_embeddings)"
        )
    check_text_rules(exclude_duplicate_texts, near_duplicate_texts)
    if filters is not None and filters.needs_vectors and embeddings is None:
        raise InputError(
            "Filters(near_duplicate=...) compares candidates with the positives' "
            "embeddings, and a run file gives none: mine with embeddings, or leave "
            "near_duplicate unset"
        )
    opts = _search_options(index, nprobe, ef_search)
    timings: dict[str, float] = {}
    user = dict(settings or {})
    user.update(index=index if isinstance(index, str) else repr(index), metric=metric, **opts)
    tmp_dir = None
    if work_dir is None:
        import tempfile

        tmp_dir = tempfile.TemporaryDirectory(prefix="negsample-work-")
        work_dir = tmp_dir.name
    store = RunStore(work_dir)
    wd = store.path
    held = ExitStack()
    held.enter_context(store.lock())  # the saved index and the chunks: one process at a time
    try:
        idx: Index | None = None
        queries = None
        identity: dict[str, Any] | None = None
        source = None
        if source_spec is not None:
            source, idx, queries, identity = _source_for(
                dataset, source_spec, embeddings, metric, wd, user, opts, timings, log
            )
            candidates = source
        elif embeddings is not None:
            user["embeddings"] = embeddings.source
            if isinstance(index, str):  # the spec (in the settings) over these vectors
                identity = spec_index_identity(embeddings.corpus)
            t = time.perf_counter()
            idx = _index_for(embeddings, index, metric, wd, saved_index_key(user, identity), opts)
            timings["index"] = time.perf_counter() - t
            queries = embeddings.queries
            if identity is None:  # an Index given: its own fingerprint
                identity = index_fingerprint(idx)
        exclude = (
            duplicate_exclusion(dataset, log, normalized=near_duplicate_texts)
            if exclude_duplicate_texts
            else None
        )
        run = run_settings(
            queries,
            idx,
            dataset.positives,
            sampler,
            n=n,
            seed=seed,
            chunk_size=chunk_size,
            filters=filters,
            candidates=candidates,
            exclude=exclude,
            settings=user,
            index_identity=identity,
            n_corpus=dataset.n_corpus if idx is None else None,
            exclude_other_positives=exclude_other_positives,
            max_negative_reuse=max_negative_reuse,
            reuse_oversample=reuse_oversample,
        )
        negs = run_chunks(store, run, max_chunks=max_chunks, progress=progress, log=log)
        for k, v in negs.stats.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        t = time.perf_counter()
        pos = dataset.positives_ragged()
        got = None if source is None else source.positive_scores(pos)
        if got is not None:  # BM25 scores
            ps = got
        elif idx is not None and queries is not None:
            ps = positive_scores(queries, pos, idx)
        else:
            from ..io.runs import scores_of

            assert candidates is not None
            ps = scores_of(candidates, pos)
        timings["positive_scores"] = time.perf_counter() - t
        per_query = np.split(ps, pos.indptr[1:-1])
        return MinedDataset(negs, per_query, timings)
    finally:
        held.close()
        if tmp_dir is not None:
            tmp_dir.cleanup()


def _source_for(
    dataset: BeirDataset,
    spec: Any,
    embeddings: DatasetEmbeddings | None,
    metric: str,
    wd: Path,
    user: dict[str, Any],
    opts: dict[str, int],
    timings: dict[str, float],
    log: Callable[[str], None] | None,
) -> tuple[Any, Index | None, Any, dict[str, Any] | None]:
    """The candidate source of a ``bm25`` / ``hybrid`` spec over ``dataset``'s texts (and
    the index its kind builds over the embeddings, when given); with the index, the query
    vectors and the index identity the run uses (``None`` when the sampler sees BM25
    scores and the embeddings play no part)."""
    from ..sources import make_source

    dense = None
    identity = None
    if embeddings is not None:
        user["embeddings"] = embeddings.source
        identity = spec_index_identity(embeddings.corpus)
        dense_spec = spec.dense
        t = time.perf_counter()
        dense = _index_for(
            embeddings,
            dense_spec.text or str(dense_spec),
            metric,
            wd,
            saved_index_key(user, identity),
            opts,
        )
        timings["index"] = time.perf_counter() - t
    source = make_source(
        spec,
        documents=dataset.document_texts,
        queries=dataset.query_texts,
        dense=dense,
        query_vectors=None if embeddings is None else embeddings.queries,
        log=log,
    )
    if log is not None:
        log(f"candidates from {source!r}: the sampler sees {source.scores} scores")
    if source.scores != "dense":
        return source, None, None, None
    assert embeddings is not None
    return source, dense, embeddings.queries, identity


def spec_index_identity(corpus: Any) -> dict[str, Any]:
    """What identifies the index that a spec builds over ``corpus`` in a dataset run's
    settings (the spec, metric and options are there too): the corpus vectors'
    :func:`~negsample.pipeline.settings.corpus_identity`. The same whether one process
    or a cluster builds the index, so either can continue the other's run."""
    return {"corpus": corpus_identity(corpus)}


def saved_index_key(user: dict[str, Any], identity: dict[str, Any] | None) -> str:
    """The name key of the approximate index a run builds and keeps in its work folder
    (``index-<key>``): its settings and the corpus's identity, so that an index built
    over other vectors is never loaded."""
    return settings_hash({**user, "index_identity": identity})[:16]


def check_text_rules(exclude_duplicate_texts: bool, near_duplicate_texts: bool) -> None:
    """Refuse ``near_duplicate_texts`` without ``exclude_duplicate_texts``: an identical
    text is a near duplicate too, so keeping those while removing near copies means
    nothing."""
    for name, v in (
        ("exclude_duplicate_texts", exclude_duplicate_texts),
        ("near_duplicate_texts", near_duplicate_texts),
    ):
        if not isinstance(v, bool | np.bool_):
            raise InputTypeError(f"{name} must be True or False, got {v!r}")
    if near_duplicate_texts and not exclude_duplicate_texts:
        raise InputError(
            "near_duplicate_texts=True excludes identical texts too (they normalise alike): "
            "it cannot go with exclude_duplicate_texts=False"
        )


def duplicate_exclusion(
    dataset: BeirDataset, log: Callable[[str], None] | None, *, normalized: bool = False
) -> Any:
    """The documents never to sample per query because their text duplicates one of the
    query's positives (:meth:`BeirDataset.duplicate_texts`; with ``normalized``, its
    normalised text: :meth:`BeirDataset.near_duplicate_texts`), ``None`` when there are
    none; the counts go to ``log`` (with ``normalized``, how many pairs only the
    normalisation found)."""
    dups = dataset.near_duplicate_texts() if normalized else dataset.duplicate_texts()
    n_dup = sum(d.size for d in dups)
    if log is not None and normalized:
        n_exact = sum(d.size for d in dataset.duplicate_texts())
        log(
            f"near-duplicate texts: {n_dup - n_exact} (query, document) pairs whose "
            f"normalised text (not the text itself) equals one of the query's positives'"
        )
    if not n_dup:
        return None
    if log is not None:
        n_q = sum(1 for d in dups if d.size)
        log(
            f"excluding {n_dup} (query, document) pairs whose document text "
            f"{'(normalised) ' if normalized else ''}duplicates one of the query's "
            f"positives ({n_q} queries)"
        )
    return dups


def positive_scores(
    queries: Any, positives: Ragged, index: Index, step: int = 4096
) -> npt.NDArray[np.float32]:
    """``s(q, d+)`` of every positive of ``positives`` (ragged, one row per query of
    ``queries``), flat in their order, ``step`` queries at a time. Row by row: a worker
    that scores a slice of the queries gets the numbers a single process gets."""
    ps = np.empty(positives.nnz, np.float32)
    for a in range(0, positives.n_rows, step):
        b = min(a + step, positives.n_rows)
        q = prepare_queries(queries[a:b], index.dim, index.metric, check=False)
        ps[positives.indptr[a] : positives.indptr[b]] = positive_scores_for(
            q, positives.slice(a, b), index
        )
    return ps


def _search_options(
    index: str | Index, nprobe: int | None, ef_search: int | None
) -> dict[str, int]:
    """``nprobe`` / ``ef_search`` checked against the index spec they are meant for."""
    opts: dict[str, int] = {}
    applies = parse_index_spec(index).search_options if isinstance(index, str) else ()
    for name, value, kind in (("nprobe", nprobe, "IVF"), ("ef_search", ef_search, "HNSW")):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
        if name not in applies:
            where = index if isinstance(index, str) else type(index).__name__
            raise InputError(
                f"{name} applies to a faiss {kind} index spec (e.g. "
                f"{'IVF1024,Flat' if kind == 'IVF' else 'HNSW32'}), not to {where!r}"
            )
        opts[name] = int(value)
    return opts


def _index_for(
    emb: DatasetEmbeddings,
    spec: str | Index,
    metric: str,
    wd: Path,
    key: str,
    opts: dict[str, int] | None = None,
) -> Index:
    opts = opts or {}
    if not isinstance(spec, str):
        return spec
    if parse_index_spec(spec).exact:
        return build_index(emb.corpus, spec, metric=metric)
    # approximate indexes may be built differently each time (threads, training): keep
    # the one built for this run so a resumed run searches the same graph
    saved = wd / f"index-{key}"
    if (saved / "meta.json").is_file():
        kind = saved_kind(saved)
        extra = {"vectors": emb.corpus} if kind is not None and kind.load_takes_vectors else {}
        loaded = load_index(saved, **extra)
        for name, value in opts.items():
            setattr(loaded, name, value)
        return loaded
    idx = build_index(emb.corpus, spec, metric=metric, **opts)
    wd.mkdir(parents=True, exist_ok=True)
    idx.save(saved)
    return idx
