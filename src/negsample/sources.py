"""Candidate sources over a dataset's texts: BM25 and a dense + BM25 hybrid.

A *candidate source* gives, for any range of a dataset's queries, the candidates
(:class:`SourceCandidates`: ids and the scores the sampler sees, best first) that a
dense search would give: it sits where the index search sits in the pipeline

    Index search | candidate source  ->  candidates  ->  filters  ->  Sampler  ->  Negatives

and feeds ``samplers.base.sample_candidates`` like the candidates of a TREC run file, but
computed per chunk of queries (bounded memory, resumable: a finished chunk is never
searched again). Two kinds are registered in the index registry, so that the one spec
parser (``parse_index_spec``) reads them and ``mine_dataset(index=...)`` / ``negsample
mine --index`` reach them:

- ``bm25[:k1=1.5][:b=0.75][:method=lucene][:stemmer=english|none][:stopwords=en|none]
  [:scores=auto|bm25|dense]`` (:class:`BM25Source`): the best BM25 documents
  (:class:`~negsample.index.bm25.BM25Index`); the sampler sees the BM25 scores, or, with
  ``scores=dense`` (the default ``auto`` when embeddings are given), the dense
  ``s(q, d)`` of those candidates from the embeddings' exact index.
- ``hybrid[:DENSE][:k_rrf=60][:BM25 options]`` (:class:`HybridSource`): the dense
  index ``DENSE`` (default ``exact``; any vector spec: ``torch:cuda``, ``HNSW32``...)
  and BM25 fused by reciprocal rank fusion; the sampler sees the dense ``s(q, d)``.

The rules (docs/algorithms.md, "Candidates from texts") in one place:

- Depth. A source returns, per query, enough candidates that the sampler's ``depth``
  remain once the query's positives and excluded ids are removed.
- BM25 is exact: every document is scored, the top ``depth + R`` (``R`` the query's
  positives and exclusions) taken with ties by the smaller row, only documents with a
  positive score. A query's candidates depend on nothing but its text and the corpus.
- Hybrid: each list (dense, BM25) is the query's best ``depth`` candidates once its
  positives and excluded ids are removed, ranked 1...``depth``; ``rrf(d) = sum 1 /
  (k_rrf + rank)``; the fused list is the best ``depth`` by ``rrf``, ties by the smaller
  id. The removed ids that either list passed over follow, so that they are counted
  (``stats.removed``) like a dense search's. The dense list comes from the same fixed,
  globally aligned search blocks as :func:`~negsample.mine` (so it does not depend on
  the chunk either).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ._ragged import Ragged
from .errors import InputError
from .fusion import DEFAULT_K_RRF, check_k_rrf, reciprocal_rank_fusion
from .index.base import Index, index_score, prepare_queries
from .index.bm25 import BM25Index, BM25Params, check_bm25_available
from .index.registry import IndexSpec, parse_index_spec, register_index

__all__ = [
    "SCORES",
    "BM25Source",
    "CandidateSource",
    "HybridSource",
    "SourceCandidates",
    "bm25_params_of",
    "check_sampler",
    "make_source",
    "parse_bm25",
    "parse_hybrid",
    "score_only_samplers",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
Log = Callable[[str], None]

#: What the ``scores=`` option of ``bm25`` may say.
SCORES = ("auto", "bm25", "dense")
_BM25_KEYS = ("k1", "b", "method", "stemmer", "stopwords")
_POSITIVE_STEP = 1024  # queries scored at a time for the positives' BM25 scores


class SourceCandidates(NamedTuple):
    """Candidates for a range of queries, ready for ``sample_candidates``.

    Attributes
    ----------
    ids : int64 ``(b, K)`` corpus rows, ``-1`` padded.
    scores : float32 ``(b, K)``, the scores the sampler sees, NaN at ``-1``.
    positive_scores : float32 ``(positives.nnz,)`` ``s(q, d+)`` in the same units, flat in
        the order of the positives given; ``None`` when the dense index scores them.
    """

    ids: IntArray
    scores: FloatArray
    positive_scores: FloatArray | None


@runtime_checkable
class CandidateSource(Protocol):
    """What a chunk of a resumable run asks of a candidate source.

    ``scores`` says which scores the sampler sees (``"bm25"`` or ``"dense"``: with
    ``"dense"`` the run also gives the sampler the query vectors and the dense index).
    ``settings()`` is a JSON-able mapping of what changes its results besides the texts;
    ``documents`` and ``queries`` are the texts (the run's settings digest them).
    """

    n_queries: int
    n_corpus: int
    scores: str
    documents: Sequence[str]
    queries: Sequence[str]

    def settings(self) -> dict[str, Any]: ...

    def chunk(
        self, first: int, end: int, *, depth: int, positives: Ragged, exclude: Ragged | None
    ) -> SourceCandidates: ...

    def positive_scores(self, positives: Ragged) -> FloatArray | None: ...


def _texts(texts: Sequence[str], a: int, b: int) -> list[str]:
    """Texts ``a:b`` by indexing only (an Arrow-backed column need not slice)."""
    return [texts[i] for i in range(a, b)]


def _removed(positives: Ragged, exclude: Ragged | None) -> Ragged:
    return positives if exclude is None else positives.union(exclude)


def _dense_scores(index: Index, queries: Any, ids: IntArray) -> FloatArray:
    """``s(q, d)`` of ``ids`` from the index's ``score`` primitive (NaN at ``-1``)."""
    out = index_score(index, queries, ids).astype(np.float32)
    out[ids < 0] = np.nan
    return out


class _LazyBM25:
    """The BM25 index over a corpus, built once, on first use (a resumed run whose chunks
    are all done never builds it); logs its build."""

    def __init__(self, documents: Sequence[str], params: BM25Params, log: Log | None) -> None:
        self.documents, self.params, self.log = documents, params, log
        self._index: BM25Index | None = None
        self._lock = threading.Lock()

    def get(self) -> BM25Index:
        with self._lock:
            if self._index is None:
                idx = BM25Index(self.documents, **self.params.as_dict())
                if self.log is not None:
                    self.log(
                        f"BM25 index over {idx.ntotal} documents built in "
                        f"{idx.build_seconds:.1f}s ({idx.n_terms} terms, {idx.n_tokens} tokens)"
                    )
                self._index = idx
            return self._index


def _versions(params: BM25Params) -> dict[str, str]:
    """The library versions that decide BM25's tokens and scores."""
    import bm25s

    out = {"bm25s": str(getattr(bm25s, "__version__", "?"))}
    if params.stemmer is not None:
        import Stemmer

        out["PyStemmer"] = str(getattr(Stemmer, "__version__", "?"))
    return out


class BM25Source:
    """BM25 candidates for a dataset's queries (spec ``bm25``).

    Parameters
    ----------
    documents, queries : sequence of str
        The corpus texts (one per corpus row) and the query texts (one per query row).
    params : BM25Params
        Tokenization and scoring.
    dense : Index or None
        An index over the corpus embeddings: with ``scores="dense"`` the candidates keep
        BM25's order but carry ``s(q, d)`` from ``dense.score``.
    query_vectors : array-like or None
        The queries' embeddings (with ``dense``).
    scores : str
        ``"auto"`` (dense when ``dense`` is given, else BM25), ``"bm25"`` or ``"dense"``.
    log : callable or None
        Receives one line when the BM25 index is built.
    """

    def __init__(
        self,
        documents: Sequence[str],
        queries: Sequence[str],
        params: BM25Params | None = None,
        *,
        dense: Index | None = None,
        query_vectors: Any = None,
        scores: str = "auto",
        log: Log | None = None,
    ) -> None:
        if scores not in SCORES:
            raise InputError(f"scores must be one of {', '.join(SCORES)}, got {scores!r}")
        if scores == "auto":
            scores = "dense" if dense is not None else "bm25"
        if scores == "dense" and (dense is None or query_vectors is None):
            raise InputError(
                "bm25:scores=dense scores BM25's candidates with the embeddings: give the "
                "embeddings (--embeddings or --model)"
            )
        self.params = BM25Params() if params is None else params
        self.documents, self.queries = documents, queries
        self.n_corpus, self.n_queries = len(documents), len(queries)
        self.scores = scores
        self.dense = dense if scores == "dense" else None
        self.query_vectors = query_vectors if scores == "dense" else None
        if self.dense is not None and self.dense.ntotal != self.n_corpus:
            raise InputError(
                f"the dense index holds {self.dense.ntotal} rows, the corpus {self.n_corpus}"
            )
        self._bm25 = _LazyBM25(documents, self.params, log)

    def __repr__(self) -> str:
        return f"BM25Source({self.params!r}, scores={self.scores!r})"

    @property
    def index(self) -> BM25Index:
        """The BM25 index (built on first use)."""
        return self._bm25.get()

    def settings(self) -> dict[str, Any]:
        return {
            "kind": "bm25",
            "bm25": self.params.as_dict(),
            "scores": self.scores,
            "versions": _versions(self.params),
        }

    def chunk(
        self, first: int, end: int, *, depth: int, positives: Ragged, exclude: Ragged | None
    ) -> SourceCandidates:
        """The candidates of queries ``first:end`` (``positives`` / ``exclude`` their rows)."""
        texts = _texts(self.queries, first, end)
        ks = np.minimum(depth + _removed(positives, exclude).lengths, self.n_corpus)
        if self.scores == "bm25":
            cands, ps = self.index.search_and_score(texts, ks, positives)
            return SourceCandidates(cands.ids, cands.scores, ps)
        assert self.dense is not None and self.query_vectors is not None
        cands = self.index.search(texts, ks)
        q = prepare_queries(self.query_vectors[first:end], self.dense.dim, self.dense.metric)
        return SourceCandidates(cands.ids, _dense_scores(self.dense, q, cands.ids), None)

    def positive_scores(self, positives: Ragged) -> FloatArray | None:
        """BM25 ``s(q, d+)`` of every positive (flat, ``positives`` one row per query);
        ``None`` with dense scores (the dense index gives them)."""
        if self.scores != "bm25":
            return None
        out = np.empty(positives.nnz, np.float32)
        for a in range(0, positives.n_rows, _POSITIVE_STEP):
            b = min(a + _POSITIVE_STEP, positives.n_rows)
            part = positives.slice(a, b)
            got = self.index.search_and_score(_texts(self.queries, a, b), 0, part)[1]
            out[positives.indptr[a] : positives.indptr[b]] = got
        return out


def _allowed_prefix(
    ids: IntArray, removed: Ragged, depth: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Each row's first ``depth`` ids that ``removed`` does not hold (``-1`` padded), and
    the ``(row, id)`` pairs of the removed ids ranked before the last of them."""
    present = ids >= 0
    drop = present & removed.contains(ids)
    allowed = present & ~drop
    rank = np.cumsum(allowed, axis=1)  # allowed ids up to and including each column
    keep = allowed & (rank <= depth)
    out = np.full((ids.shape[0], depth), -1, np.int64)
    r, c = np.nonzero(keep)
    out[r, rank[r, c] - 1] = ids[r, c]
    passed = drop & (rank < depth)  # a removed id before the depth-th allowed one
    pr, pc = np.nonzero(passed)
    return out, pr.astype(np.int64), ids[pr, pc]


class HybridSource:
    """Dense and BM25 candidates fused by reciprocal rank fusion (spec ``hybrid``).

    Parameters
    ----------
    documents, queries : sequence of str
        Corpus and query texts.
    dense : Index
        The index over the corpus embeddings (searched, and scoring every candidate).
    query_vectors : array-like
        ``(n_queries, dim)`` query embeddings.
    params : BM25Params
        The BM25 side.
    k_rrf : float
        The fusion constant (default 60).
    log : callable or None
        Receives one line when the BM25 index is built.
    """

    scores = "dense"

    def __init__(
        self,
        documents: Sequence[str],
        queries: Sequence[str],
        *,
        dense: Index,
        query_vectors: Any,
        params: BM25Params | None = None,
        k_rrf: float = DEFAULT_K_RRF,
        log: Log | None = None,
    ) -> None:
        k_rrf = check_k_rrf(k_rrf)
        self.params = BM25Params() if params is None else params
        self.documents, self.queries = documents, queries
        self.n_corpus, self.n_queries = len(documents), len(queries)
        if dense.ntotal != self.n_corpus:
            raise InputError(
                f"the dense index holds {dense.ntotal} rows, the corpus {self.n_corpus}"
            )
        if len(query_vectors) != self.n_queries:
            raise InputError(f"{len(query_vectors)} query vectors for {self.n_queries} query texts")
        self.dense, self.query_vectors, self.k_rrf = dense, query_vectors, float(k_rrf)
        self._bm25 = _LazyBM25(documents, self.params, log)

    def __repr__(self) -> str:
        return f"HybridSource(k_rrf={self.k_rrf}, {self.params!r})"

    @property
    def index(self) -> BM25Index:
        """The BM25 index (built on first use)."""
        return self._bm25.get()

    def settings(self) -> dict[str, Any]:
        return {
            "kind": "hybrid",
            "k_rrf": self.k_rrf,
            "bm25": self.params.as_dict(),
            "scores": self.scores,
            "versions": _versions(self.params),
        }

    def chunk(
        self, first: int, end: int, *, depth: int, positives: Ragged, exclude: Ragged | None
    ) -> SourceCandidates:
        """The fused candidates of queries ``first:end`` (see the module docstring)."""
        from .mining import _BlockSearch, _segments

        removed = _removed(positives, exclude)
        q = prepare_queries(self.query_vectors[first:end], self.dense.dim, self.dense.metric)
        n = end - first
        dense_list = np.full((n, depth), -1, np.int64)
        passed_r, passed_i = [], []
        # mine()'s own block search over the raw vectors: the same dense candidates
        searcher = _BlockSearch(
            self.dense, np.asarray(self.query_vectors[first:end]), depth, removed, first
        )
        try:
            for a, b in _segments(0, n, searcher.deep(0, n)):
                ids, _ = searcher.rows(a, b)
                lst, pr, pi = _allowed_prefix(ids, removed.slice(a, b), depth)
                dense_list[a:b] = lst
                passed_r.append(pr + a)
                passed_i.append(pi)
        finally:
            searcher.close()
        ks = np.minimum(depth + removed.lengths, self.n_corpus)
        bm = self.index.search(_texts(self.queries, first, end), ks)
        bm_list, pr, pi = _allowed_prefix(bm.ids, removed, depth)
        passed_r.append(pr)
        passed_i.append(pi)
        fused = reciprocal_rank_fusion([dense_list, bm_list], k_rrf=self.k_rrf, depth=depth)
        ids = np.concatenate([fused.ids, _pairs_to_rows(passed_r, passed_i, n)], axis=1)
        return SourceCandidates(ids, _dense_scores(self.dense, q, ids), None)

    def positive_scores(self, positives: Ragged) -> FloatArray | None:
        """``None``: the dense index gives ``s(q, d+)``."""
        return None


def _pairs_to_rows(rows: list[IntArray], ids: list[IntArray], n: int) -> IntArray:
    """``(row, id)`` pairs as ``(n, w)`` rows of distinct ids (ascending), ``-1`` padded."""
    r = np.concatenate(rows) if rows else np.empty(0, np.int64)
    v = np.concatenate(ids) if ids else np.empty(0, np.int64)
    if r.size:
        base = int(v.max()) + 1
        key = np.unique(r * base + v)
        r, v = key // base, key % base
    counts = np.bincount(r, minlength=n)
    out = np.full((n, int(counts.max(initial=0))), -1, np.int64)
    col = np.arange(r.size) - np.r_[0, np.cumsum(counts)[:-1]][r]
    out[r, col] = v
    return out


def score_only_samplers() -> list[str]:
    """The registered samplers that rank candidates (``depth > 0``) and need only their
    scores (``needs_vectors=False``): those that work on BM25 scores or a run file."""
    from .samplers.registry import available_samplers, get_sampler

    out = []
    for name in available_samplers():
        try:
            s = get_sampler(name)
        except Exception:  # a plugin sampler without defaults: not listed
            continue
        if int(getattr(s, "depth", 0)) > 0 and not getattr(s, "needs_vectors", False):
            out.append(name)
    return out


def check_sampler(sampler: Any, *, spec: str, dense: bool) -> None:
    """Refuse a sampler a candidate source cannot serve: one that ranks no candidates
    (RandomSampler), or one that needs vectors (TriSampler, ReSa2) when the source gives
    BM25 scores only (``dense`` False: no embeddings).

    Raises
    ------
    ValueError
        in one line, naming the samplers that work.
    """
    name = type(sampler).__name__
    works = ", ".join(score_only_samplers())
    if int(getattr(sampler, "depth", 0)) == 0:
        raise InputError(
            f"{name} searches no candidates, so --index {spec} would give it nothing: use a "
            f"sampler that ranks candidates ({works}), or a vector --index"
        )
    if getattr(sampler, "needs_vectors", False) and not dense:
        raise InputError(
            f"{name} needs corpus vectors (s(d+, d-)), and --index {spec} without embeddings "
            f"gives BM25 scores only: give --embeddings or --model (mine_dataset("
            f"embeddings=...)), then BM25's candidates carry the embeddings' scores, or use "
            f"a sampler that needs only scores: {works}"
        )


# -- the registered kinds -----------------------------------------------------------------
def _literal(text: str) -> Any:
    import ast

    if text.lower() in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _key_values(args: Sequence[str], keys: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """``KEY=VALUE`` arguments whose key is one of ``keys`` as options; the rest apart."""
    options: dict[str, Any] = {}
    rest: list[str] = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key in keys:
            if key in options:
                raise InputError(f"{key} given twice")
            options[key] = _literal(value)
        else:
            rest.append(a)
    return options, rest


def _bm25_params(options: dict[str, Any]) -> BM25Params:
    return BM25Params(**{k: v for k, v in options.items() if k in _BM25_KEYS})


def bm25_params_of(spec: str | IndexSpec) -> BM25Params:
    """The BM25 parameters of a ``bm25`` or ``hybrid`` spec."""
    return _bm25_params(dict(parse_index_spec(spec).options))


def parse_bm25(args: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The arguments of a ``bm25`` spec: ``KEY=VALUE`` options only (checked)."""
    options, rest = _key_values(args, (*_BM25_KEYS, "scores"))
    if rest:
        raise InputError(
            f"unknown argument {rest[0]!r}; bm25 takes k1=, b=, method=, stemmer=, "
            "stopwords= and scores="
        )
    _bm25_params(options)
    if options.get("scores", "auto") not in SCORES:
        raise InputError(f"scores must be one of {', '.join(SCORES)}, got {options['scores']!r}")
    return (), options


def parse_hybrid(args: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The arguments of a ``hybrid`` spec: ``k_rrf=`` and the BM25 options; the others
    (joined by ``:``) are the dense index's spec (default ``exact``)."""
    options, rest = _key_values(args, (*_BM25_KEYS, "k_rrf"))
    _bm25_params(options)
    k_rrf = check_k_rrf(options.get("k_rrf", DEFAULT_K_RRF))
    dense = ":".join(rest) if rest else "exact"
    parsed = parse_index_spec(dense)
    if parsed.is_source:
        raise InputError(
            f"the dense part {dense!r} must be a vector index (exact, torch, HNSW32...)"
        )
    return (), {**options, "k_rrf": float(k_rrf), "dense": parsed.text or dense}


def make_source(
    spec: str | IndexSpec,
    *,
    documents: Sequence[str],
    queries: Sequence[str],
    dense: Index | None = None,
    query_vectors: Any = None,
    log: Log | None = None,
) -> CandidateSource:
    """The candidate source a ``bm25`` or ``hybrid`` spec names, over these texts (and,
    for ``hybrid`` or dense scores, the index over the embeddings and the query vectors).

    Raises
    ------
    ValueError
        for a spec that names no source, or embeddings missing where they are needed.
    ImportError
        naming ``pip install "negsample[bm25]"`` when bm25s (or PyStemmer) is missing.
    """
    parsed = parse_index_spec(spec)
    from .index.registry import get_index_kind

    kind = get_index_kind(parsed.kind)
    if kind.source is None:
        raise InputError(f"index spec {str(parsed)!r} is a vector index, not a candidate source")
    made: CandidateSource = kind.source(
        parsed,
        documents=documents,
        queries=queries,
        dense=dense,
        query_vectors=query_vectors,
        log=log,
    )
    return made


def _make_bm25(
    spec: IndexSpec, *, documents: Any, queries: Any, dense: Any, query_vectors: Any, log: Any
) -> BM25Source:
    params = _bm25_params(dict(spec.options))
    check_bm25_available(params)
    return BM25Source(
        documents,
        queries,
        params,
        dense=dense,
        query_vectors=query_vectors,
        scores=spec.options.get("scores", "auto"),
        log=log,
    )


def _make_hybrid(
    spec: IndexSpec, *, documents: Any, queries: Any, dense: Any, query_vectors: Any, log: Any
) -> HybridSource:
    if dense is None or query_vectors is None:
        raise InputError(
            f"index spec {str(spec)!r} fuses a dense search with BM25: it needs the embeddings "
            "(--embeddings or --model; mine_dataset(embeddings=...))"
        )
    params = _bm25_params(dict(spec.options))
    check_bm25_available(params)
    return HybridSource(
        documents,
        queries,
        dense=dense,
        query_vectors=query_vectors,
        params=params,
        k_rrf=spec.options.get("k_rrf", DEFAULT_K_RRF),
        log=log,
    )


def _dense_of(spec: IndexSpec) -> str:
    return str(spec.options.get("dense", "exact"))


register_index(
    "bm25",
    source=_make_bm25,
    parse=parse_bm25,
    exact=True,
    needs_embeddings=False,
    dense_spec=lambda spec: "exact",
    syntax="bm25[:KEY=VALUE...] (k1, b, method, stemmer, stopwords, scores)",
)
register_index(
    "hybrid",
    source=_make_hybrid,
    parse=parse_hybrid,
    exact=lambda spec: parse_index_spec(_dense_of(spec)).exact,
    search_options=lambda spec: parse_index_spec(_dense_of(spec)).search_options,
    needs_embeddings=True,
    dense_spec=_dense_of,
    syntax="hybrid[:DENSE][:k_rrf=60][:BM25 KEY=VALUE...]",
)
