"""Hand-computed cases and distribution tests for TopK and Random."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

import negsample as ns

IDS = np.array([[20, 21, 22, 23, 24, 25, 26, 27]])
SCORES = np.linspace(0.9, 0.2, 8, dtype=np.float32)[None, :]


def test_topk_strict_top_skips_positives() -> None:
    negs = ns.TopKSampler(k=8, strategy="top").sample(IDS, SCORES, [[21, 24]], n=3)
    assert negs.ids.tolist() == [[20, 22, 23]]
    np.testing.assert_allclose(negs.scores[0], SCORES[0, [0, 2, 3]])
    assert negs.stats.removed["positive"] == 2


def test_topk_window_counts_ranks_after_positives() -> None:
    # without positives 21 and 24, ranks are 20:0 22:1 23:2 25:3 26:4 27:5
    negs = ns.TopKSampler(k=8, range_min=2, range_max=4, strategy="top").sample(
        IDS, SCORES, [[21, 24]], n=2
    )
    assert negs.ids.tolist() == [[23, 25]]


def test_topk_k_truncates_candidates() -> None:
    negs = ns.TopKSampler(k=3, strategy="top").sample(IDS, SCORES, [[99]], n=3)
    assert negs.ids.tolist() == [[20, 21, 22]]
    for seed in range(20):
        r = ns.TopKSampler(k=3).sample(IDS, SCORES, [[99]], n=2, seed=seed)
        assert set(r.ids[0].tolist()) <= {20, 21, 22}


def test_topk_random_is_uniform_over_window() -> None:
    # 4000 identical rows are 4000 independent draws (streams come from the query index)
    b = 4000
    ids = np.repeat(IDS, b, axis=0)
    scores = np.repeat(SCORES, b, axis=0)
    negs = ns.TopKSampler(k=8, range_min=1, range_max=7).sample(
        ids, scores, [[20]] * b, n=2, seed=5
    )
    # window = ranks 1..6 after removing 20 → ids 22..27; every id equally likely in each slot
    counts = np.bincount(negs.ids[:, 0] - 22, minlength=6)
    assert counts.sum() == b and set(negs.ids.ravel().tolist()) <= set(range(22, 28))
    assert sps.chisquare(counts).pvalue > 1e-4


@pytest.mark.parametrize("policy, expect", [("pad", [[23, -1, -1]]), ("fill", [[23, 22, 20]])])
def test_topk_shortfall_pad_and_fill(policy: str, expect: list[list[int]]) -> None:
    sampler = ns.TopKSampler(k=8, range_min=2, range_max=3, strategy="top", on_shortfall=policy)
    with pytest.raises(ValueError, match="holds 1 candidates"):
        sampler.sample(IDS, SCORES, [[21]], n=3)
    # a window that can hold n, but the filters leave it short
    sampler = ns.TopKSampler(k=8, range_min=2, range_max=5, strategy="top", on_shortfall=policy)
    negs = sampler.sample(IDS, SCORES, [[21]], n=3, filters=ns.Filters(min_score=0.55))
    # after removing 21: ranks 20:0 (0.9) 22:1 (0.7) 23:2 (0.6) 24:3 (0.5) 25:4 (0.4);
    # window [2, 5) = 23, 24, 25 and min_score 0.55 keeps only 23; fill looks below the
    # window first (ranks 5.., all filtered), then above it nearest first: 22, then 20
    assert negs.stats.short_rows == 1
    assert negs.ids.tolist() == expect
    assert negs.stats.padded == (2 if policy == "pad" else 0)
    assert negs.stats.filled == (0 if policy == "pad" else 2)


@pytest.mark.parametrize("range_min", [0, 3])
def test_topk_fill_when_nothing_lies_outside_the_window(range_min: int) -> None:
    """Issue 20, item 5: a window covering every candidate column left ``"fill"`` an empty
    source, and the fill read column 0 of it (IndexError). Short rows now pad."""
    corpus = np.random.default_rng(0).standard_normal((12, 4)).astype(np.float32)
    sampler = ns.TopKSampler(k=10, range_min=range_min, on_shortfall="fill")
    positives = [[0, 1, 2, 3, 4, 5]] * 3
    negs = ns.mine(corpus[:3], ns.NumpyIndex(corpus), positives, sampler=sampler, n=7, seed=0)
    # 6 candidates left per query: all of them (ranks above the window filled), one padded
    assert (negs.ids >= 0).sum(axis=1).tolist() == [6, 6, 6]
    assert negs.stats.short_rows == 3 and negs.stats.padded == 3
    assert negs.stats.filled == 3 * range_min


def test_filters_do_not_shift_the_topk_window() -> None:
    # max_score removes 20 and 22 (ranks 0, 1): the window [0, 3) keeps only 23, it does not
    # reach down to 24 and 25
    sampler = ns.TopKSampler(k=8, range_max=3, strategy="top")
    negs = sampler.sample(IDS, SCORES, [[21]], n=3, filters=ns.Filters(max_score=0.65))
    assert negs.ids.tolist() == [[23, -1, -1]]


def test_topk_shortfall_drop() -> None:
    ids = np.array([[20, 21, 22, 23], [30, 31, 32, 33]])
    sc = np.array([[0.9, 0.8, 0.7, 0.6]] * 2, dtype=np.float32)
    sampler = ns.TopKSampler(k=4, strategy="top", on_shortfall="drop")
    negs = sampler.sample(ids, sc, [[20, 21, 22], [30]], n=2)
    assert negs.ids.tolist() == [[31, 32]]
    assert negs.query_index.tolist() == [1]
    assert negs.stats.dropped_rows == 1 and negs.stats.n_rows == 1


def test_random_sampler_uniform_and_excludes_positives() -> None:
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((60, 4)).astype(np.float32)
    index = ns.NumpyIndex(corpus)
    q = np.repeat(corpus[:1], 3000, axis=0)
    negs = ns.mine(q, index, [[0, 1, 2]] * 3000, sampler=ns.RandomSampler(), n=1, seed=0)
    counts = np.bincount(negs.ids[:, 0], minlength=60)
    assert counts[:3].sum() == 0
    assert sps.chisquare(counts[3:]).pvalue > 1e-4


def test_random_sampler_large_corpus_path_without_duplicates() -> None:
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((10_000, 4)).astype(np.float32)  # above the exact-path size
    index = ns.NumpyIndex(corpus)
    negs = ns.mine(
        corpus[:200], index, [[i] for i in range(200)], sampler=ns.RandomSampler(), n=50, seed=3
    )
    for i, row in enumerate(negs.ids):
        assert len(set(row.tolist())) == 50 and i not in row
    again = ns.mine(
        corpus[:200],
        index,
        [[i] for i in range(200)],
        sampler=ns.RandomSampler(),
        n=50,
        seed=3,
        chunk_size=7,
    )
    np.testing.assert_array_equal(negs.ids, again.ids)


def test_random_sampler_corpus_smaller_than_n_pads() -> None:
    corpus = np.eye(6, dtype=np.float32)
    negs = ns.mine(corpus[:1], ns.NumpyIndex(corpus), [[0, 1, 2]], sampler=ns.RandomSampler(), n=5)
    assert sorted(negs.ids[0][negs.ids[0] >= 0].tolist()) == [3, 4, 5]
    assert negs.stats.padded == 2 and negs.stats.short_rows == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0},
        {"range_min": 5, "range_max": 5},
        {"k": 10, "range_max": 11},
        {"strategy": "x"},
        {"on_shortfall": "repeat"},
        {"k": 10, "range_min": 10},
    ],
)
def test_topk_bad_parameters(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        ns.TopKSampler(**kwargs)


def test_max_n_is_the_largest_n_each_sampler_accepts() -> None:
    for sampler in [
        ns.TopKSampler(k=50, range_min=10, range_max=30),
        ns.SimANSSampler(k=40),
        ns.TriSampler(k=40, m=12),
        ns.ReSa2Sampler(k1=100, k1_prime=50, k2=20),
    ]:
        top = sampler.max_n
        assert top is not None
        sampler.check_n(top)
        with pytest.raises(ValueError):
            sampler.check_n(top + 1)
    assert ns.RandomSampler().max_n is None


def test_cli_topk_fill_on_short_rows_exits_0(tmp_path: Path) -> None:
    """Issue 20, item 5, as the CLI saw it: exit 1 "unexpected IndexError" after mining."""
    from negsample.cli import main
    from tests.beir_helpers import write_beir

    root = write_beir(tmp_path / "data", n_docs=60, n_queries=4, dim=4)
    sampler = "TopKSampler(k=100, on_shortfall='fill')"
    argv = ["mine", "--data", str(root), "--embeddings", str(root / "embeddings")]
    out = tmp_path / "out.jsonl"
    assert main([*argv, "--sampler", sampler, "--n", "58", "--out", str(out), "--quiet"]) == 0
    assert out.is_file()


@pytest.mark.parametrize("n_docs", [3000, 10_000])  # the exact path and the rejection rounds
def test_random_sampler_output_does_not_depend_on_the_memory_budget(n_docs: int) -> None:
    """Issue 20, item 4: RandomSampler works in pieces sized by memory_budget_mb (rows and
    rejection rounds); the pieces never change the draws."""
    rng = np.random.default_rng(5)
    corpus = rng.standard_normal((n_docs, 8)).astype(np.float32)
    index = ns.NumpyIndex(corpus)
    positives = [[i] for i in range(60)]
    positives[3] = rng.choice(n_docs, 2500, replace=False).tolist()  # one crowded row
    exclude = [rng.choice(n_docs, 5, replace=False).tolist() for _ in range(60)]
    runs = [
        ns.mine(corpus[:60], index, positives, sampler=ns.RandomSampler(), n=120, seed=9,
                exclude=exclude, memory_budget_mb=mb, chunk_size=chunk)
        for mb, chunk in [(1024, None), (64, None), (1, 7), (0.05, None), (0.05, 1)]
    ]  # fmt: skip
    for got in runs[1:]:
        np.testing.assert_array_equal(got.ids, runs[0].ids)
        np.testing.assert_array_equal(got.scores, runs[0].scores)
    ids = runs[0].ids
    assert (ids >= 0).all()
    for row, pos, exc in zip(ids, positives, exclude, strict=True):
        assert len(set(row.tolist())) == 120 and not set(row.tolist()) & (set(pos) | set(exc))
