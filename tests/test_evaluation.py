"""negative_quality and the hidden-positive protocol (docs/algorithms.md, "Comparing samplers")."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chisquare

import negsample as ns
from tests.conftest import shared_dataset


@pytest.fixture(scope="module")
def data() -> ns.SyntheticRetrieval:
    return ns.make_synthetic(3000, 120, 32, max_positives=3, seed=7)


# -- hide_positives -----------------------------------------------------------------------


def test_hide_positives_splits_queries_with_two_or_more() -> None:
    split = ns.hide_positives([[4, 7, 9], [2], [5, 1], [3, 3]], seed=0)
    assert split.query_rows.tolist() == [0, 2]  # [3, 3] is one distinct positive
    for r, shown, hidden in zip(split.query_rows, split.shown, split.hidden, strict=True):
        given = {0: {4, 7, 9}, 2: {1, 5}}[int(r)]
        assert int(shown) in given and set(hidden.tolist()) == given - {int(shown)}


def test_hide_positives_is_seeded_and_order_free() -> None:
    rng = np.random.default_rng(0)
    pos = [rng.choice(1000, size=rng.integers(2, 6), replace=False).tolist() for _ in range(300)]
    a = ns.hide_positives(pos, seed=4)
    again = ns.hide_positives([list(reversed(p)) for p in pos], seed=4)
    np.testing.assert_array_equal(a.shown, again.shown)
    other = ns.hide_positives(pos, seed=5)
    assert 0 < np.mean(a.shown != other.shown) < 1
    # the shown positive is uniform among a query's positives (chi-square over the rank)
    tri = [[10 * i, 10 * i + 1, 10 * i + 2] for i in range(3000)]
    s = ns.hide_positives(tri, seed=1)
    rank = s.shown - 10 * np.arange(3000)
    assert chisquare(np.bincount(rank, minlength=3)).pvalue > 1e-3


def test_hide_positives_refuses_bad_seed() -> None:
    with pytest.raises(ValueError, match="seed"):
        ns.hide_positives([[1, 2]], seed=-1)


# -- the protocol -------------------------------------------------------------------------


def test_protocol_rows_and_oracle(data: ns.SyntheticRetrieval) -> None:
    """Strict top-n is deterministic: recompute its false negatives by brute force."""
    index = ns.NumpyIndex(data.corpus)
    n = 5
    samplers = {"top": ns.TopKSampler(k=50, strategy="top"), "random": ns.RandomSampler()}
    rows = ns.hidden_positive_protocol(
        data.queries, index, data.positives, samplers, n=n, seeds=(0, 1)
    )
    assert [(r.label, r.seed) for r in rows] == [
        ("top", 0),
        ("top", 1),
        ("random", 0),
        ("random", 1),
    ]
    multi = [i for i, p in enumerate(data.positives) if len(set(p.tolist())) >= 2]
    scores = data.queries @ data.corpus.T
    for r in rows[:2]:
        split = ns.hide_positives(data.positives, r.seed)
        assert split.query_rows.tolist() == multi and r.n_queries == len(multi)
        fn = 0
        hard = []
        for q, shown, hidden in zip(split.query_rows, split.shown, split.hidden, strict=True):
            s = scores[q].copy()
            s[shown] = -np.inf  # only the shown positive is excluded
            top = np.argsort(-s, kind="stable")[:n]
            fn += int(np.isin(top, hidden).sum())
            hard.extend(s[top].tolist())
        assert r.false_negatives == fn and r.n_negatives == n * len(multi)
        assert r.fn_rate == pytest.approx(fn / (n * len(multi)))
        assert r.hardness == pytest.approx(float(np.mean(hard)), rel=1e-5)
        assert r.sampler == repr(samplers["top"]) and r.short_rows == 0 and r.padded == 0
    # the planted positives sit next to the query: strict top-n finds hidden ones,
    # uniform corpus sampling almost never does, and is far easier
    assert rows[0].false_negatives > 0
    assert max(r.fn_rate for r in rows[2:]) < rows[0].fn_rate
    assert max(r.hardness for r in rows[2:]) < rows[0].hardness - 0.2


def test_protocol_runs_resa2_and_summarizes(data: ns.SyntheticRetrieval) -> None:
    index = ns.NumpyIndex(data.corpus)
    samplers = [ns.ReSa2Sampler(k1=300, k1_prime=150, k2=30), ns.TopKSampler(k=30)]
    rows = ns.hidden_positive_protocol(data.queries, index, data.positives, samplers, n=7)
    assert len(rows) == 6 and {r.seed for r in rows} == {0, 1, 2}
    summ = ns.summarize(rows)
    assert [s.label for s in summ] == [repr(s) for s in samplers]
    for s in summ:
        fn = np.array([r.fn_rate for r in rows if r.label == s.label])
        assert s.n_seeds == 3
        assert s.fn_rate_mean == pytest.approx(fn.mean())
        assert s.fn_rate_std == pytest.approx(fn.std(ddof=1))
        own = [r for r in rows if r.label == s.label]
        assert s.hardness_mean == pytest.approx(np.mean([r.hardness for r in own]))
        assert s.filled_mean == np.mean([r.filled for r in own])
        assert s.short_rows_mean == np.mean([r.short_rows for r in own])
    table = ns.summary_table(summ)
    assert table.count("\n") == 3 and "| filled |" in table and "ReSa2Sampler(k1=300" in table
    one = ns.summarize(rows[:1])
    assert one[0].n_seeds == 1 and math.isnan(one[0].fn_rate_std)


def test_protocol_reports_shortfalls() -> None:
    # 10 documents and a max_score=0 filter: rows with fewer than 7 candidates scoring
    # below 0 (the shown positive excluded, hidden ones included) are short and padded
    rng = np.random.default_rng(1)
    corpus = rng.standard_normal((10, 4)).astype(np.float32)
    positives = [[0, 1, 2, 3], [4, 5]]
    rows = ns.hidden_positive_protocol(
        corpus[:2],
        ns.NumpyIndex(corpus),
        positives,
        {"short": ns.ReSa2Sampler(k1=9, k1_prime=9, k2=7, on_shortfall="pad")},
        n=7,
        seeds=(0,),
        filters=ns.Filters(max_score=0.0),
    )
    r = rows[0]
    shown = ns.hide_positives(positives, 0).shown
    s = corpus[:2] @ corpus.T
    avail = [int(((s[q] < 0) & (np.arange(10) != shown[q])).sum()) for q in range(2)]
    assert r.n_queries == 2
    assert r.n_negatives == sum(min(a, 7) for a in avail)
    assert r.short_rows == sum(a < 7 for a in avail) > 0
    assert r.padded == 14 - r.n_negatives


def test_protocol_refuses_before_work(data: ns.SyntheticRetrieval) -> None:
    index = ns.NumpyIndex(data.corpus)
    with pytest.raises(ValueError, match="k2=5"):
        ns.hidden_positive_protocol(
            data.queries, index, data.positives, [ns.ReSa2Sampler(k2=5)], n=7
        )
    with pytest.raises(ValueError, match="two or more"):
        ns.hidden_positive_protocol(
            data.queries[:3], index, [[0], [1], [2]], [ns.TopKSampler()], n=7
        )
    with pytest.raises(ValueError, match="twice"):
        ns.hidden_positive_protocol(
            data.queries, index, data.positives, [ns.TopKSampler(), ns.TopKSampler()]
        )
    with pytest.raises(ValueError, match="seeds repeat"):
        ns.hidden_positive_protocol(
            data.queries, index, data.positives, [ns.TopKSampler()], seeds=(1, 1)
        )


def test_negative_quality_counts_padding_out() -> None:
    negs = ns.Negatives(
        ids=np.array([[3, 4, -1], [5, 6, 7]]),
        scores=np.array([[0.5, 0.3, np.nan], [0.2, 0.1, 0.0]], np.float32),
        query_index=np.array([0, 1]),
        anchor_ids=np.array([-1, -1]),
        stats=ns.MiningStats(),
    )
    q = ns.negative_quality(negs, [[4], [9, 7]])
    assert (q.false_negatives, q.n_negatives) == (2, 5)
    assert q.fn_rate == pytest.approx(0.4) and q.hardness == pytest.approx(1.1 / 5)


# -- real data ----------------------------------------------------------------------------


def _nfcorpus(path: Path) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    emb = path / "embeddings" / "all-MiniLM-L6-v2"
    doc_row = {d: i for i, d in enumerate((emb / "corpus_ids.txt").read_text().split())}
    q_row = {q: i for i, q in enumerate((emb / "query_ids.txt").read_text().split())}
    pos: dict[int, list[int]] = {}
    for line in (path / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        q, d, score = line.split("\t")
        if int(score) > 0 and q in q_row and d in doc_row:
            pos.setdefault(q_row[q], []).append(doc_row[d])
    rows = sorted(pos)
    queries = np.load(emb / "queries.npy")[rows]
    return queries, np.load(emb / "corpus.npy"), [pos[r] for r in rows]


@pytest.mark.realdata
def test_protocol_on_nfcorpus_topk_finds_hidden_positives() -> None:
    queries, corpus, positives = _nfcorpus(shared_dataset("nfcorpus"))
    queries, positives = queries[:300], positives[:300]
    rows = ns.hidden_positive_protocol(
        queries,
        ns.NumpyIndex(corpus),
        positives,
        {"top10": ns.TopKSampler(k=10), "random": ns.RandomSampler()},
        n=7,
        seeds=(0,),
    )
    top, rnd = rows
    assert top.n_queries > 200 and top.fn_rate > 0.05  # NFCorpus labels many neighbours
    assert rnd.fn_rate < top.fn_rate and rnd.hardness < top.hardness
