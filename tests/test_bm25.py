"""BM25Index against a brute-force BM25 in numpy, and reciprocal rank fusion by hand."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

import negsample as ns
from negsample.index.bm25 import BM25Params, topk_positive

pytest.importorskip("bm25s")

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def brute_bm25(
    docs: list[str], queries: list[str], *, k1: float, b: float, method: str
) -> np.ndarray:
    """float64 ``(n_queries, n_docs)`` BM25 from the formulas (Kamphuis et al. 2020), with
    bm25s' tokenisation without stemming or stop words: lower case, ``\\b\\w\\w+\\b``; a
    query token outside the corpus vocabulary is dropped, a repeated one counts again."""
    toks = [_TOKEN.findall(d.lower()) for d in docs]
    n = len(docs)
    lengths = np.array([len(t) for t in toks], np.float64)
    avgdl = lengths.mean()
    df = Counter(w for t in toks for w in set(t))
    tfs = [Counter(t) for t in toks]

    def idf(w: str) -> float:
        d = df[w]
        if method == "lucene":
            return math.log(1 + (n - d + 0.5) / (d + 0.5))
        if method == "robertson":
            return math.log(max(1.0, (n - d + 0.5) / (d + 0.5)))
        return math.log(n / d)  # atire

    out = np.zeros((len(queries), n))
    for qi, q in enumerate(queries):
        for w in _TOKEN.findall(q.lower()):
            if w not in df:
                continue
            for di in range(n):
                tf = tfs[di][w]
                if not tf:
                    continue
                norm = k1 * (1 - b + b * lengths[di] / avgdl)
                tfc = tf * (k1 + 1) / (tf + norm) if method == "atire" else tf / (tf + norm)
                out[qi, di] += idf(w) * tfc
    return out


COPIES = range(5, 80, 7)  # row i is a copy of row i - 3
PERMUTED = [
    i for i in range(6, 80, 11) if i not in COPIES and i - 1 not in COPIES
]  # reorders i - 1


def corpus(seed: int, n_docs: int = 80) -> tuple[list[str], list[str]]:
    """Random texts from a 30-word vocabulary, with exact copies and reorderings (ties),
    an empty text and one of one-letter words only (no token)."""
    rng = np.random.default_rng(seed)
    words = [f"w{c}{d}" for c in "abcdef" for d in "abcde"]
    docs = [" ".join(rng.choice(words, rng.integers(1, 15))) for _ in range(n_docs)]
    docs[3] = ""
    docs[4] = "a b c"
    for i in PERMUTED:
        docs[i] = " ".join(rng.permutation(docs[i - 1].split()))  # same words, other order
    for i in COPIES:
        docs[i] = docs[i - 3]  # an exact copy
    queries = [" ".join(rng.choice(words, rng.integers(1, 6))).upper() for _ in range(25)]
    queries += ["zzz unknown", "", "wab wab wab"]
    return docs, queries


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire"])
@pytest.mark.parametrize(
    "seed, k1, b", [(0, 1.5, 0.75), (1, 0.9, 0.4), (2, 1.2, 1.0), (3, 0.0, 0.0)]
)
def test_search_is_the_exact_top_k_of_brute_force_bm25(
    method: str, seed: int, k1: float, b: float
) -> None:
    """The scores are BM25's (float32 sums of bm25s, within 1e-5 of the float64 formulas);
    the candidates are exactly the best ``k`` of those scores, ties by the smaller row."""
    docs, queries = corpus(seed)
    index = ns.BM25Index(docs, k1=k1, b=b, method=method, stemmer=None, stopwords=None)
    ref = brute_bm25(docs, queries, k1=k1, b=b, method=method)
    every = index.score(queries, np.tile(np.arange(len(docs)), (len(queries), 1)))
    np.testing.assert_allclose(every, ref, rtol=1e-5, atol=1e-6)
    assert ((every > 0) == (ref > 1e-9)).all()  # the same documents match
    for i in COPIES:  # an exact copy, or the same words reordered: an exact tie
        np.testing.assert_array_equal(every[:, i], every[:, i - 3])
    for i in PERMUTED:
        np.testing.assert_array_equal(every[:, i], every[:, i - 1])
    for k in (1, 5, 17, 200):
        got = index.search(queries, k)
        assert got.ids.shape == (len(queries), min(k, len(docs)))
        for qi in range(len(queries)):
            full = np.lexsort((np.arange(len(docs)), -every[qi]))  # stable, descending
            want = full[every[qi, full] > 0][:k].tolist()
            row = got.ids[qi][got.ids[qi] >= 0].tolist()
            assert row == want, (qi, k)
            np.testing.assert_array_equal(got.scores[qi, : len(row)], every[qi, row])
            assert np.isnan(got.scores[qi, len(row) :]).all()
        assert (got.ids[:, :1] >= 0).sum() > 15  # most queries match something


def test_ties_are_broken_by_the_smaller_row_at_the_cut_too() -> None:
    docs = ["apple pie", "banana", "apple pie", "pie apple", "apple pie", "apple"]
    index = ns.BM25Index(docs, stemmer=None, stopwords=None)
    got = index.search(["apple pie"], 2)
    assert got.ids.tolist() == [[0, 2]]  # rows 0, 2, 3, 4 tie: the two smallest
    assert got.scores[0, 0] == got.scores[0, 1]
    assert index.search(["apple pie"], 10).ids.tolist() == [[0, 2, 3, 4, 5, -1]]


def test_topk_positive_is_a_stable_descending_sort() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = rng.integers(0, 4, rng.integers(1, 40)).astype(np.float32)
        k = int(rng.integers(0, 45))
        ids, sc = topk_positive(s, k)
        full = np.lexsort((np.arange(s.size), -s))
        want = full[s[full] > 0][:k]
        assert ids.tolist() == want.tolist()
        assert sc.tolist() == s[want].tolist()


def test_scores_are_bm25s_own() -> None:
    """With stemming and stop words, the scores are what bm25s' own pipeline gives."""
    import bm25s
    import Stemmer

    docs, queries = corpus(7)
    docs = [d + " the running runners ran" * (i % 3) for i, d in enumerate(docs)]
    stemmer = Stemmer.Stemmer("english")
    index = ns.BM25Index(docs)  # english stemming and stop words by default
    bare = bm25s.BM25()
    bare.index(bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, show_progress=False))
    q = [q + " running" for q in queries if q.strip() and "zzz" not in q]
    qt = bm25s.tokenize(q, stopwords="en", stemmer=stemmer, show_progress=False)
    inv = {v: k for k, v in qt.vocab.items()}
    ids = np.arange(len(docs))[None, :].repeat(len(q), 0)
    mine = index.score(q, ids)
    for i, row in enumerate(qt.ids):
        want = bare.get_scores([inv[t] for t in row])
        np.testing.assert_array_equal(mine[i], want)


def test_score_matches_search_and_marks_padding() -> None:
    docs, queries = corpus(4)
    index = ns.BM25Index(docs, stemmer=None)
    got = index.search(queries, 10)
    again = index.score(queries, got.ids)
    np.testing.assert_array_equal(again, got.scores)  # NaN at -1 on both sides
    s = index.score(["wab"], np.array([[3, 4, -1]]))
    assert s[0, 0] == 0 and s[0, 1] == 0 and np.isnan(s[0, 2])  # empty texts: no match
    with pytest.raises(ValueError, match="not a row of a corpus of 80"):
        index.score(["wab"], np.array([[80]]))


def test_queries_without_a_known_token_have_no_candidates() -> None:
    index = ns.BM25Index(["alpha beta", "beta gamma"], stemmer=None, stopwords=None)
    got = index.search(["delta", "", "the", "beta"], 5)
    assert (got.ids[:3] == -1).all() and np.isnan(got.scores[:3]).all()
    assert got.ids[3].tolist() == [0, 1]


def test_bad_texts_and_params_are_refused() -> None:
    with pytest.raises(TypeError, match="corpus text row 1 is a int"):
        ns.BM25Index(["a text", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not one string"):
        ns.BM25Index("one text")
    with pytest.raises(ValueError, match="no texts"):
        ns.BM25Index([])
    index = ns.BM25Index(["alpha beta"], stemmer=None)
    with pytest.raises(TypeError, match="not one string"):
        index.search("alpha", 1)
    with pytest.raises(ValueError, match="k must be >= 0"):
        index.search(["alpha"], -1)
    for bad, match in [
        ({"k1": -1}, "k1 must be a finite number >= 0"),
        ({"b": 1.5}, r"b must be a finite number in \[0, 1\]"),
        ({"k1": float("nan")}, "k1 must be a finite number"),
        ({"method": "bm25+"}, "method must be one of lucene, robertson, atire"),
        ({"stopwords": "xx"}, "stopwords must be None or one of"),
        ({"stemmer": "no such"}, "stemmer must be a PyStemmer algorithm"),
    ]:
        with pytest.raises(ValueError, match=match):
            BM25Params(**bad)
    with pytest.raises(ValueError, match="not a PyStemmer algorithm; known: arabic"):
        ns.BM25Index(["alpha"], stemmer="klingon")


def test_an_empty_vocabulary_searches_nothing() -> None:
    index = ns.BM25Index(["", "a b", ""], stemmer=None)
    assert index.n_terms == 0
    assert (index.search(["a b c"], 2).ids == -1).all()


class Column(Sequence[str]):
    """Texts served by ``len``, indexing and iteration only (no slicing), like an
    Arrow-backed column."""

    def __init__(self, texts: list[str]) -> None:
        self._t = texts

    def __len__(self) -> int:
        return len(self._t)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        if not isinstance(i, int):
            raise TypeError("a Column is read by integer index only")
        return self._t[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._t)


def test_any_sequence_of_texts_works() -> None:
    docs, queries = corpus(5)
    a = ns.BM25Index(docs, stemmer=None).search(queries, 7)
    b = ns.BM25Index(Column(docs), stemmer=None).search(Column(queries), 7)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("missing", ["bm25s", "Stemmer"])
def test_a_missing_dependency_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    import sys

    from negsample.index.bm25 import check_bm25_available

    for mod in [m for m in sys.modules if m.split(".")[0] == missing]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, missing, None)  # "import missing" now fails
    want = rf'{missing} is not installed.*pip install "negsample\[bm25\]"'
    with pytest.raises(ImportError, match=want):
        check_bm25_available(BM25Params())
    with pytest.raises(ImportError, match=want):
        ns.BM25Index(["alpha"])
    if missing == "Stemmer":  # without stemming, PyStemmer is not needed
        check_bm25_available(BM25Params(stemmer=None))
        assert ns.BM25Index(["alpha"], stemmer=None).ntotal == 1


# -- reciprocal rank fusion --------------------------------------------------------------
def brute_rrf(lists: list[list[int]], k_rrf: float) -> list[int]:
    score: dict[int, float] = {}
    for lst in lists:
        for r, d in enumerate([d for d in lst if d >= 0], start=1):
            score[d] = score.get(d, 0.0) + 1 / (k_rrf + r)
    # exact ties: compare the sums as fractions would; with two lists the sums are exact
    return sorted(score, key=lambda d: (-round(score[d], 12), d))


def test_rrf_by_hand() -> None:
    fused = ns.reciprocal_rank_fusion([[[3, 1, 2]], [[1, 4, -1]]], k_rrf=60)
    assert fused.ids.tolist() == [[1, 3, 4, 2]]
    np.testing.assert_allclose(fused.scores[0], [1 / 62 + 1 / 61, 1 / 61, 1 / 62, 1 / 63], 1e-6)
    # swapped ranks are an exact tie, broken by the smaller id; depth cuts
    fused = ns.reciprocal_rank_fusion([[[7, 5]], [[5, 7]]], k_rrf=0, depth=1)
    assert fused.ids.tolist() == [[5]]


def test_rrf_equals_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        b, n_lists = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        lists = []
        for _ in range(n_lists):
            width = int(rng.integers(0, 9))
            a = np.full((b, width), -1, np.int64)
            for r in range(b):
                m = int(rng.integers(0, width + 1))
                a[r, :m] = rng.choice(12, m, replace=False)
            lists.append(a)
        k = float(rng.choice([0, 1, 60]))
        depth = None if rng.random() < 0.5 else int(rng.integers(0, 10))
        got = ns.reciprocal_rank_fusion(lists, k_rrf=k, depth=depth)
        for r in range(b):
            want = brute_rrf([a[r].tolist() for a in lists], k)
            if depth is not None:
                want = want[:depth]
            assert got.ids[r][got.ids[r] >= 0].tolist() == want


def test_rrf_refuses_bad_lists() -> None:
    for lists, match in [
        ([[[1, 1]]], "holds id 1 twice"),
        ([[[-1, 2]]], "an id after -1 padding"),
        ([[[-2]]], "use -1 for padding"),
        ([[[1]], [[1], [2]]], "has 2 rows"),
        ([], "no ranked lists"),
    ]:
        with pytest.raises(ValueError, match=match):
            ns.reciprocal_rank_fusion(lists)
    with pytest.raises(ValueError, match="k_rrf must be a finite number >= 0"):
        ns.reciprocal_rank_fusion([[[1]]], k_rrf=-1)
