"""BM25 over texts: bm25s' scores with an exact, deterministic top-``k``.

:class:`BM25Index` searches *texts*, not vectors, so it is not an :class:`~negsample.Index`:
``search(query_texts, k)`` returns :class:`~negsample.Candidates` (corpus rows and BM25
scores, best first), the same object a TREC run file gives. The dataset pipeline reaches it
through the ``bm25`` and ``hybrid`` index specs (:mod:`negsample.pipeline.sources`).

The scores are bm25s' own (its tokenizer, its sparse matrix of per-term scores, its
per-query sum, float32), so they are what ``bm25s.BM25().retrieve`` computes over the
same tokens. The top-``k`` is negsample's: bm25s selects with ``argpartition`` (any order
among equal scores), here equal scores are ordered by the smaller corpus row, at the cut
too, and a document whose score is not positive (it shares no scoring term with the
query) is never a candidate (rows are ``-1`` / NaN padded instead).
"""

from __future__ import annotations

import array
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._optional import require
from .._ragged import Ragged
from .._types import Candidates
from ..errors import InputError, InputTypeError

__all__ = ["BM25_METHODS", "STOPWORDS", "BM25Index", "BM25Params"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]

#: The BM25 variants offered (bm25s' names; Kamphuis et al., ECIR 2020). All have a
#: non-negative per-term score, so "shares a scoring term" is "score > 0".
BM25_METHODS = ("lucene", "robertson", "atire")
#: Stop-word lists bm25s ships, by the names it accepts.
STOPWORDS = (
    "en",
    "english",
    "en_plus",
    "english_plus",
    "de",
    "german",
    "nl",
    "dutch",
    "fr",
    "french",
    "es",
    "spanish",
    "pt",
    "portuguese",
    "it",
    "italian",
    "ru",
    "russian",
    "sv",
    "swedish",
    "no",
    "norwegian",
    "zh",
    "chinese",
    "tr",
    "turkish",
    "ko",
    "korean",
    "da",
    "danish",
)
_PURPOSE = "BM25 candidates (--index bm25 / hybrid)"


@dataclass(frozen=True, kw_only=True)
class BM25Params:
    """How a :class:`BM25Index` tokenizes and scores (checked when made).

    Parameters
    ----------
    k1 : float
        Term-frequency saturation, ``>= 0`` (bm25s' default 1.5; Pyserini's BEIR runs use 0.9).
    b : float
        Length normalisation in ``[0, 1]`` (bm25s' default 0.75; Pyserini 0.4).
    method : str
        The variant: ``"lucene"`` (default, bm25s' default: ``idf = ln(1 + (N - df + 0.5) /
        (df + 0.5))``, ``tf / (tf + k1 (1 - b + b |d| / avgdl))``), ``"robertson"`` (idf
        ``ln((N - df + 0.5) / (df + 0.5))`` clipped at 0) or ``"atire"`` (idf ``ln(N / df)``,
        ``tf (k1 + 1) / (tf + k1 (...))``).
    stemmer : str or None
        A PyStemmer algorithm (``"english"``, default) or ``None`` for no stemming.
    stopwords : str or None
        A bm25s stop-word list (``"en"``, default; see :data:`STOPWORDS`) or ``None``.
    """

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stemmer: str | None = "english"
    stopwords: str | None = "en"

    def __post_init__(self) -> None:
        for name, lo, hi in (("k1", 0.0, math.inf), ("b", 0.0, 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float | np.number):
                raise InputError(f"{name} must be a number, got {v!r}")
            if not (math.isfinite(float(v)) and lo <= float(v) <= hi):
                span = f">= {lo:g}" if hi == math.inf else f"in [{lo:g}, {hi:g}]"
                raise InputError(f"{name} must be a finite number {span}, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.method not in BM25_METHODS:
            raise InputError(
                f"method must be one of {', '.join(BM25_METHODS)}, got {self.method!r}"
            )
        if self.stemmer is not None and (
            not isinstance(self.stemmer, str) or not self.stemmer.isidentifier()
        ):
            raise InputError(
                f"stemmer must be a PyStemmer algorithm name (english, french...) or None, "
                f"got {self.stemmer!r}"
            )
        if self.stopwords is not None and self.stopwords not in STOPWORDS:
            raise InputError(
                f"stopwords must be None or one of bm25s' lists ({', '.join(STOPWORDS[::2])}), "
                f"got {self.stopwords!r}"
            )

    def as_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-able dict."""
        return asdict(self)


def _stemmer(name: str | None) -> Any:
    """PyStemmer's stemmer ``name`` (``None``: none); ValueError naming the algorithms."""
    if name is None:
        return None
    stemmer_mod = require("Stemmer", _PURPOSE + " with a stemmer")
    try:
        return stemmer_mod.Stemmer(name)
    except KeyError:
        raise InputError(
            f"stemmer {name!r} is not a PyStemmer algorithm; known: "
            f"{', '.join(stemmer_mod.algorithms())} (or none)"
        ) from None


def check_bm25_available(params: BM25Params) -> None:
    """Import bm25s (and PyStemmer when ``params`` stems) now, so that a missing
    dependency or an unknown stemmer is reported before any work.

    Raises
    ------
    ImportError
        naming ``pip install "negsample[bm25]"``.
    ValueError
        for a stemmer PyStemmer does not have.
    """
    require("bm25s", _PURPOSE)
    _stemmer(params.stemmer)


def _strings(texts: Sequence[str], what: str) -> Iterator[str]:
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputTypeError(f"{what} row {i} is a {type(t).__name__}, not a string")
        yield t


def _check_texts(texts: Any, what: str) -> None:
    if isinstance(texts, str | bytes):
        raise InputTypeError(f"{what} must be a sequence of strings, not one string")
    if not hasattr(texts, "__len__") or not hasattr(texts, "__getitem__"):
        raise InputTypeError(f"{what} must be a sequence of strings, got {type(texts).__name__}")


class _TokenRows(Sequence[list[int]]):
    """The corpus' token ids, one flat int32 array cut by offsets, seen by bm25s as a
    list of lists (one row built at a time: never the whole corpus as Python lists)."""

    def __init__(self, flat: npt.NDArray[np.int32], offsets: IntArray) -> None:
        self.flat, self.offsets = flat, offsets

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.flat[self.offsets[i] : self.offsets[i + 1]].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for i in range(len(self)):
            yield self.flat[self.offsets[i] : self.offsets[i + 1]].tolist()


class BM25Index:
    """Exact BM25 search over a corpus of texts, built with bm25s.

    Parameters
    ----------
    texts : sequence of str
        The corpus, one text per row (read once, by iteration: any sequence, a list or an
        Arrow-backed column).
    k1, b, method, stemmer, stopwords
        The :class:`BM25Params` (defaults: bm25s' own, with English stemming and stop words).

    Notes
    -----
    Tokens: lower-cased, split by bm25s' pattern ``(?u)\\b\\w\\w+\\b``, stop words dropped,
    stemmed. A query token that is not in the corpus' vocabulary is dropped; a repeated
    query token counts as often as it occurs (as in bm25s). A query left without tokens
    has no candidates. Memory: the corpus' token ids (4 bytes each) while building, then
    bm25s' sparse score matrix (8 bytes per distinct term of each document) and the
    vocabulary. A query's search scores every document (a float32 vector of the corpus'
    size) and selects in ``O(n_docs)``.

    References
    ----------
    X. H. Lu, *BM25S: Orders of magnitude faster lexical search via eager sparse scoring*,
    2024. <https://arxiv.org/abs/2407.03618>

    Examples
    --------
    >>> import negsample as ns
    >>> index = ns.BM25Index(["cats purr", "dogs bark", "a cat and a dog"], stemmer=None)
    >>> index.search(["cat"], k=3).ids.tolist()        # "cat" is only in row 2
    [[2]]
    """

    def __init__(
        self,
        texts: Sequence[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stemmer: str | None = "english",
        stopwords: str | None = "en",
    ) -> None:
        self.params = BM25Params(k1=k1, b=b, method=method, stemmer=stemmer, stopwords=stopwords)
        _check_texts(texts, "corpus texts")
        bm25s = require("bm25s", _PURPOSE)
        t0 = time.perf_counter()
        self._tokenizer = bm25s.tokenization.Tokenizer(
            stopwords=self.params.stopwords, stemmer=_stemmer(self.params.stemmer)
        )
        flat = array.array("i")
        lengths = array.array("q")
        stream = self._tokenizer.streaming_tokenize(
            _strings(texts, "corpus text"), update_vocab=True, allow_empty=False
        )
        for row in stream:
            flat.extend(row)
            lengths.append(len(row))
        n = len(lengths)
        if n == 0:
            raise InputError("the corpus has no texts")
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(np.frombuffer(lengths, np.int64), out=offsets[1:])
        vocab = dict(self._tokenizer.get_vocab_dict())
        self._n = n
        self.n_terms = len(vocab)
        self.n_tokens = int(offsets[-1])
        self._bm25: Any = None
        if self.n_terms:
            tokens = _TokenRows(np.frombuffer(flat, np.int32), offsets)
            self._bm25 = bm25s.BM25(
                k1=self.params.k1,
                b=self.params.b,
                method=self.params.method,
                dtype="float32",
                backend="numpy",
            )
            self._bm25.index(
                bm25s.tokenization.Tokenized(ids=tokens, vocab=vocab),
                create_empty_token=False,
                show_progress=False,
            )
        self.build_seconds = time.perf_counter() - t0

    @property
    def ntotal(self) -> int:
        """Corpus rows."""
        return self._n

    def __repr__(self) -> str:
        p = self.params
        return (
            f"BM25Index(n_docs={self._n}, n_terms={self.n_terms}, k1={p.k1}, b={p.b}, "
            f"method={p.method!r}, stemmer={p.stemmer!r}, stopwords={p.stopwords!r})"
        )

    # -- scoring ----------------------------------------------------------------------------
    def _token_ids(self, queries: Sequence[str]) -> list[list[int]]:
        _check_texts(queries, "queries")
        return list(
            self._tokenizer.streaming_tokenize(
                _strings(queries, "query text"), update_vocab=False, allow_empty=False
            )
        )

    def _scores(self, token_ids: list[int]) -> FloatArray | None:
        """bm25s' scores of every document for one query (``None``: no known token)."""
        if not token_ids or self._bm25 is None:
            return None
        return np.asarray(self._bm25.get_scores_from_ids(token_ids), dtype=np.float32)

    def search(self, queries: Sequence[str], k: int | npt.ArrayLike) -> Candidates:
        """The best ``k`` documents of each query, ties by the smaller row.

        Parameters
        ----------
        queries : sequence of str
            Query texts.
        k : int or array-like of int
            Candidates per query (one for all, or one per query), ``>= 0``.

        Returns
        -------
        Candidates
            ``ids`` int64 and ``scores`` float32 ``(n_queries, max k)``: best first, equal
            scores by the smaller corpus row; only documents with a positive score (``-1``
            / NaN after them).
        """
        return self.search_and_score(queries, k, None)[0]

    def score(self, queries: Sequence[str], ids: npt.ArrayLike) -> FloatArray:
        """BM25 scores of given documents.

        Parameters
        ----------
        queries : sequence of str
            ``b`` query texts.
        ids : array-like of int
            ``(b, m)`` corpus rows, ``-1`` for none.

        Returns
        -------
        numpy.ndarray
            float32 ``(b, m)``, the same numbers :meth:`search` gives (0 for a document
            sharing no term with the query), NaN at ``-1``.
        """
        a = np.asarray(ids)
        if a.ndim != 2 or (a.size and a.dtype.kind not in "iu"):
            raise InputError(f"ids must be a 2-D integer array (b, m), got shape {a.shape}")
        a = a.astype(np.int64)
        if np.any((a < -1) | (a >= self._n)):
            bad = int(a[(a < -1) | (a >= self._n)][0])
            raise InputError(f"ids holds {bad}, not a row of a corpus of {self._n} (or -1)")
        lengths = np.full(a.shape[0], a.shape[1], np.int64)
        rag = Ragged(np.r_[0, np.cumsum(lengths)].astype(np.int64), np.maximum(a, 0).ravel())
        out = self.search_and_score(queries, 0, rag)[1].reshape(a.shape)
        out[a < 0] = np.nan
        return out

    def search_and_score(
        self, queries: Sequence[str], k: int | npt.ArrayLike, ids: Ragged | None
    ) -> tuple[Candidates, FloatArray]:
        """:meth:`search` and the scores of ``ids`` (one row of corpus rows per query,
        flat in the order of ``ids.values``) from one scoring pass per query."""
        tokens = self._token_ids(queries)
        b = len(tokens)
        ks = np.broadcast_to(np.asarray(k, dtype=np.int64), (b,))
        if np.any(ks < 0):
            raise InputError(f"k must be >= 0, got {int(ks.min())}")
        if ids is not None and ids.n_rows != b:
            raise InputError(f"ids has {ids.n_rows} rows for {b} queries")
        width = int(min(int(ks.max(initial=0)), self._n))
        out_ids = np.full((b, width), -1, np.int64)
        out_sc = np.full((b, width), np.nan, np.float32)
        extra = np.zeros(0 if ids is None else ids.nnz, np.float32)
        for i, tok in enumerate(tokens):
            s = self._scores(tok)
            if ids is not None and s is not None:
                lo, hi = ids.indptr[i], ids.indptr[i + 1]
                extra[lo:hi] = s[ids.values[lo:hi]]
            if s is None or ks[i] == 0:
                continue
            top, top_s = topk_positive(s, int(ks[i]))
            out_ids[i, : top.size] = top
            out_sc[i, : top.size] = top_s
        return Candidates(out_ids, out_sc), extra


def topk_positive(scores: FloatArray, k: int) -> tuple[IntArray, FloatArray]:
    """The ``k`` largest positive entries of ``scores`` ``(n,)``, largest first, equal
    values by the smaller position (at the ``k``-th place too): exact, in ``O(n)``.

    Examples
    --------
    >>> topk_positive(np.array([0, 2, 1, 2, 0], np.float32), 2)[0].tolist()
    [1, 3]
    """
    hit = np.flatnonzero(scores > 0)
    if k <= 0:
        hit = hit[:0]
    elif hit.size > k:
        v = scores[hit]
        kth = np.partition(v, hit.size - k)[hit.size - k]  # the k-th largest value
        above = hit[v > kth]
        hit = np.concatenate([above, hit[v == kth][: k - above.size]])  # rows ascending
    order = np.lexsort((hit, -scores[hit]))
    hit = hit[order].astype(np.int64)
    return hit, scores[hit]
