from __future__ import annotations

import numpy as np
import pytest

import negsample as ns
from negsample._rng import gumbel, uniform


@pytest.fixture(scope="module")
def data() -> ns.SyntheticRetrieval:
    return ns.make_synthetic(5000, 120, 32, seed=11)


def test_mine_default_is_topk_200(data: ns.SyntheticRetrieval) -> None:
    negs = ns.mine(data.queries, ns.NumpyIndex(data.corpus), data.positives, seed=0)
    assert negs.ids.shape == (120, 7)
    exact = ns.NumpyIndex(data.corpus).search(data.queries, 260)
    for i, row in enumerate(negs.ids):
        top = [d for d in exact.ids[i] if d not in set(data.positives[i])][:200]
        assert set(row.tolist()) <= set(top)
    st = negs.stats
    assert st.n_queries == 120 and st.n_rows == 120 and st.seed == 0
    assert st.removed["positive"] == sum(len(p) for p in data.positives)
    assert set(st.timings) == {"search", "positives", "sample"}


@pytest.mark.parametrize("chunk", [1, 13, 1000])
def test_chunking_does_not_change_hnsw_results(data: ns.SyntheticRetrieval, chunk: int) -> None:
    pytest.importorskip("faiss")
    index = ns.FaissIndex(data.corpus, "HNSW32", device="cpu")
    ref = ns.mine(data.queries, index, data.positives, ns.TopKSampler(k=50), seed=4, chunk_size=120)
    got = ns.mine(
        data.queries, index, data.positives, ns.TopKSampler(k=50), seed=4, chunk_size=chunk
    )
    np.testing.assert_array_equal(got.ids, ref.ids)
    np.testing.assert_array_equal(got.scores, ref.scores)


def test_query_order_only_moves_rows_when_seeded_by_index(data: ns.SyntheticRetrieval) -> None:
    # the stream of query i is a function of (seed, i): mining a prefix gives the same rows
    index = ns.NumpyIndex(data.corpus)
    full = ns.mine(data.queries, index, data.positives, seed=9)
    head = ns.mine(data.queries[:30], index, data.positives[:30], seed=9)
    np.testing.assert_array_equal(full.ids[:30], head.ids)


def test_seed_none_is_recorded_and_reproducible(data: ns.SyntheticRetrieval) -> None:
    index = ns.NumpyIndex(data.corpus)
    a = ns.mine(data.queries, index, data.positives, seed=None)
    assert isinstance(a.stats.seed, int)
    b = ns.mine(data.queries, index, data.positives, seed=a.stats.seed)
    np.testing.assert_array_equal(a.ids, b.ids)
    g = ns.mine(data.queries, index, data.positives, seed=np.random.default_rng(5))
    assert g.ids.shape == a.ids.shape


def test_padded_positive_array_is_accepted(data: ns.SyntheticRetrieval) -> None:
    index = ns.NumpyIndex(data.corpus)
    pad = np.full((120, 3), -1, np.int64)
    for i, p in enumerate(data.positives):
        pad[i, : len(p)] = p
    a = ns.mine(data.queries, index, pad, seed=1)
    b = ns.mine(data.queries, index, data.positives, seed=1)
    np.testing.assert_array_equal(a.ids, b.ids)
    bad = pad.copy()
    bad[0] = [-1, 5, 6]
    with pytest.raises(ValueError, match="padding must come after"):
        ns.mine(data.queries, index, bad)


def test_memmap_float16_corpus_and_queries(tmp_path, data: ns.SyntheticRetrieval) -> None:  # type: ignore[no-untyped-def]
    np.save(tmp_path / "c.npy", data.corpus.astype(np.float16))
    np.save(tmp_path / "q.npy", data.queries.astype(np.float16))
    c = np.load(tmp_path / "c.npy", mmap_mode="r")
    q = np.load(tmp_path / "q.npy", mmap_mode="r")
    negs = ns.mine(q, ns.NumpyIndex(c, chunk_size=999), data.positives, n=3, seed=0)
    assert negs.ids.shape == (120, 3) and negs.scores.dtype == np.float32


def test_progress_bar_goes_to_stderr(data: ns.SyntheticRetrieval, capsys) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("tqdm")
    ns.mine(data.queries, ns.NumpyIndex(data.corpus), data.positives, progress=True, chunk_size=40)
    out = capsys.readouterr()
    assert out.out == "" and "120/120" in out.err


def test_chunk_size_is_bounded_by_budget() -> None:
    from negsample.mining import auto_chunk_size

    small = auto_chunk_size(ns.TopKSampler(k=200), 100_000, 384, budget_mb=64)
    big = auto_chunk_size(ns.TopKSampler(k=200), 100_000, 384, budget_mb=1024)
    assert 16 <= small < big <= 512
    assert auto_chunk_size(ns.TopKSampler(k=200), 260, 384, budget_mb=1024) == 512


def test_rng_streams_are_pure_functions() -> None:
    a = uniform(7, np.array([3, 4, 5]), 10, stream=2)
    b = uniform(7, np.array([5]), 10, stream=2)
    np.testing.assert_array_equal(a[2], b[0])
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(uniform(7, [3], 10, 2), uniform(7, [3], 10, 3))
    assert not np.array_equal(uniform(7, [3], 10, 2), uniform(8, [3], 10, 2))
    assert not np.array_equal(uniform(7, [3], 10, 2, sub=[1]), uniform(7, [3], 10, 2, sub=[2]))
    np.testing.assert_array_equal(uniform(7, [3], 10, 2)[:, 4:], uniform(7, [3], 6, 2, start=4))
    assert np.all((a > 0) & (a < 1))
    # distribution: uniform and Gumbel moments over many draws
    u = uniform(1, np.arange(200), 500, 1).ravel()
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    g = gumbel(1, np.arange(200), 500, 1).ravel()
    assert abs(g.mean() - np.euler_gamma) < 0.02 and abs(g.var() - np.pi**2 / 6) < 0.05


def test_gumbel_topk_never_underflows() -> None:
    from negsample.samplers.base import gumbel_topk

    logw = np.array([[-1e6, -1e6 - 1, -np.inf, -2e6]])
    pos = gumbel_topk(logw, 3, gumbel(0, [0], 4, 1))
    assert pos[0, 0] in (0, 1) and sorted(pos[0].tolist()) == [0, 1, 3]
    pos = gumbel_topk(logw, 4, gumbel(0, [0], 4, 1))
    assert pos[0, 3] == -1


def test_gumbel_topk_matches_successive_sampling() -> None:
    from scipy import stats as sps

    from negsample.samplers.base import gumbel_topk

    w = np.array([0.5, 0.3, 0.15, 0.05])
    rows = 20000
    pos = gumbel_topk(np.log(np.tile(w, (rows, 1))), 2, gumbel(3, np.arange(rows), 4, 1))
    first = np.bincount(pos[:, 0], minlength=4)
    assert sps.chisquare(first, w * rows).pvalue > 1e-4
    # second draw given the first is w_j / (1 - w_i): marginal of the second draw
    second_p = np.array(
        [sum(w[i] * w[j] / (1 - w[i]) for i in range(4) if i != j) for j in range(4)]
    )
    second = np.bincount(pos[:, 1], minlength=4)
    assert sps.chisquare(second, second_p * rows).pvalue > 1e-4


def test_search_depth_is_per_query(data: ns.SyntheticRetrieval) -> None:
    from negsample.mining import search_depths

    np.testing.assert_array_equal(
        search_depths(200, np.array([1, 2, 3, 5, 475]), 10_000), [201, 202, 204, 208, 712]
    )
    assert search_depths(200, np.array([3]), 150).tolist() == [150]
    assert search_depths(0, np.array([3]), 150).tolist() == [0]

    class Recording:
        """An Index wrapper that records the k of every search."""

        def __init__(self, inner: ns.NumpyIndex, exact: bool) -> None:
            self.inner, self.calls = inner, []  # type: list[tuple[int, int]]
            self.metric = inner.metric
            self.exact = exact
            self.search_block = 64

        ntotal = property(lambda self: self.inner.ntotal)
        dim = property(lambda self: self.inner.dim)

        def search(self, q, k):  # type: ignore[no-untyped-def]
            self.calls.append((len(q), k))
            return self.inner.search(q, k)

        def vectors(self, ids):  # type: ignore[no-untyped-def]
            return self.inner.vectors(ids)

    positives = [list(p) for p in data.positives]
    # one query with 300 positives that crowd its top ranks
    positives[0] = ns.NumpyIndex(data.corpus).search(data.queries[:1], 300).ids[0].tolist()
    # an approximate index (whose results depend on k): each query searches at its own
    # depth, in groups of equal depth within blocks of search_block queries; the crowded
    # query first searches 50 + 64 and, left short, once more at 50 + 512
    rec = Recording(ns.NumpyIndex(data.corpus), exact=False)
    negs = ns.mine(data.queries, rec, positives, ns.TopKSampler(k=50), n=5, seed=0)
    ks = dict((k, 0) for _, k in rec.calls)
    for nq, k in rec.calls:
        ks[k] += nq
    assert ks[50 + 64] == 1 and ks[50 + 512] == 1  # only that query searches deep
    assert max(k for k in ks if k not in (114, 562)) <= 54
    assert max(nq for nq, _ in rec.calls) <= 64
    assert not np.isin(negs.ids[0], positives[0]).any() and (negs.ids[0] >= 0).all()
    # an exact index: one call of exactly search_block rows per block, at the block's
    # largest first-pass depth (exact top-k lists are prefixes of each other), each query
    # cut to its own; the crowded query alone in a call of DEEP_BLOCK rows
    from negsample.mining import DEEP_BLOCK

    exact = Recording(ns.NumpyIndex(data.corpus), exact=True)
    negs_exact = ns.mine(data.queries, exact, positives, ns.TopKSampler(k=50), n=5, seed=0)
    n_blocks = -(-len(data.queries) // 64)
    assert exact.calls[0] == (64, 114) and exact.calls[1] == (DEEP_BLOCK, 562)
    assert len(exact.calls) == n_blocks + 1
    assert all(nq == 64 and k <= 54 for nq, k in exact.calls[2:])
    np.testing.assert_array_equal(negs_exact.ids, negs.ids)
    ref = ns.mine(
        data.queries[1:],
        ns.NumpyIndex(data.corpus),
        positives[1:],
        ns.TopKSampler(k=50),
        n=5,
        seed=0,
        query_offset=1,
    )
    np.testing.assert_array_equal(negs.ids[1:], ref.ids)
