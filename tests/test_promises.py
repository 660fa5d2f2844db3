"""Issue 9's promises, one regression test each: exclude honoured by every sampler, output
byte-identical whatever the chunk or slice, positives kept ragged, TopK's fill order,
duplicate / unknown / infinite positive scores, Gumbel noise under huge log-weights, and
clear errors for bad arguments."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import negsample as ns
from negsample.samplers.base import gumbel_topk

faiss = pytest.importorskip("faiss", reason="faiss-cpu not installed")


# -- 1. RandomSampler honours exclude= ----------------------------------------------------


def test_random_sampler_never_samples_excluded_ids() -> None:
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((200, 8)).astype(np.float32)
    queries = corpus[:30] + 0.1
    positives = [[i] for i in range(30)]
    exclude = [rng.choice(np.arange(30, 200), 150, replace=False).tolist() for _ in range(30)]
    index = ns.NumpyIndex(corpus)
    negs = ns.mine(queries, index, positives, ns.RandomSampler(), n=10, seed=0, exclude=exclude)
    for q, row in enumerate(negs.ids):
        assert not set(row.tolist()) & set(exclude[q]) and positives[q][0] not in row
    assert negs.stats.removed["excluded"] == sum(len(e) for e in exclude)
    assert negs.stats.removed["positive"] == 30
    # the direct entry point too
    direct = ns.RandomSampler().sample(
        np.zeros((30, 0), np.int64),
        np.zeros((30, 0), np.float32),
        positives,
        n=10,
        seed=0,
        index=index,
        exclude=exclude,
    )
    for q, row in enumerate(direct.ids):
        assert not set(row.tolist()) & set(exclude[q])


# -- 2. same seed, same output, whatever the chunk or the slice ---------------------------


def _near_tie_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """8,000 x 64 with exact and near copies, and queries close to their positives, so
    many candidates are near-tied (the case where BLAS rounding used to reorder them)."""
    rng = np.random.default_rng(seed)
    corpus = rng.standard_normal((8_000, 64)).astype(np.float32)
    src = rng.integers(0, 8_000, 1600)
    dst = rng.choice(8_000, 1600, replace=False)
    corpus[dst] = corpus[src] + 1e-6 * rng.standard_normal((1600, 64)).astype(np.float32)
    pos = [
        sorted(set(rng.choice(8_000, int(rng.integers(1, 5)), replace=False).tolist()))
        for _ in range(300)
    ]
    queries = np.stack([corpus[p[0]] + 0.5 * rng.standard_normal(64) for p in pos])
    return corpus, queries.astype(np.float32), pos


@pytest.fixture(scope="module")
def near_ties() -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    return _near_tie_data()


SAMPLERS = [
    ns.TopKSampler(k=100),
    ns.SimANSSampler(k=100, temperature=0.05),
    ns.TriSampler(k=100),
    ns.ReSa2Sampler(k1=300, k1_prime=150, k2=30),
    ns.RandomSampler(),
]


@pytest.mark.parametrize("kind", ["numpy", "flat"])
@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: type(s).__name__)
def test_byte_identical_whatever_the_chunk_or_slice(near_ties, kind, sampler) -> None:  # type: ignore[no-untyped-def]
    corpus, queries, pos = near_ties
    index = (
        ns.NumpyIndex(corpus, search_block=128)
        if kind == "numpy"
        else ns.FaissIndex(corpus, "Flat", search_block=128)
    )
    exclude = [[(p[0] + 1) % len(corpus)] for p in pos]
    kw = {"n": 7, "seed": 2**64 - 5, "exclude": exclude}
    full = ns.mine(queries, index, pos, sampler, **kw)
    for chunk in (1, 7, 129):
        got = ns.mine(queries, index, pos, sampler, chunk_size=chunk, **kw)
        np.testing.assert_array_equal(got.ids, full.ids)
        np.testing.assert_array_equal(got.scores, full.scores)
    small = ns.mine(queries, index, pos, sampler, memory_budget_mb=0.5, **kw)
    np.testing.assert_array_equal(small.ids, full.ids)
    for a, b in ((2, 3), (100, 161), (5, 200)):  # one query; across blocks; to the end
        part = ns.mine(
            queries[a:b],
            index,
            pos[a:b],
            sampler,
            query_offset=a,
            n=7,
            seed=kw["seed"],
            exclude=exclude[a:b],
        )
        np.testing.assert_array_equal(part.ids, full.ids[a:b])
        np.testing.assert_array_equal(part.scores, full.scores[a:b])


# -- 5. seeds: the whole integer or a refusal ---------------------------------------------


def test_seeds_do_not_alias() -> None:
    data = ns.make_synthetic(2000, 20, 16, seed=0)
    index = ns.NumpyIndex(data.corpus)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\)"):
        ns.mine(data.queries, index, data.positives, seed=2**64)
    top = ns.mine(data.queries, index, data.positives, seed=2**64 - 1)
    zero = ns.mine(data.queries, index, data.positives, seed=0)
    assert top.stats.seed == 2**64 - 1 and not np.array_equal(top.ids, zero.ids)


# -- 7. positives stay ragged: memory does not grow with queries x the widest row --------


def test_one_query_with_20000_positives_costs_its_positives_only() -> None:
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((30_000, 8)).astype(np.float32)
    queries = rng.standard_normal((3000, 8)).astype(np.float32)
    positives = [[int(i)] for i in rng.integers(0, 30_000, 3000)]
    index = ns.NumpyIndex(corpus)

    def peak_of(pos: list[list[int]]) -> tuple[int, ns.Negatives]:
        tracemalloc.start()
        negs = ns.mine(queries, index, pos, ns.TopKSampler(k=200), n=5, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, negs

    base, _ = peak_of(positives)
    positives[17] = rng.choice(30_000, 20_000, replace=False).tolist()
    peak, negs = peak_of(positives)
    # padded to the widest row, the positives alone would take 3000 x 20000 x 8 = 480 MB;
    # ragged, they take 160 kB, and the deep search of that one query a few MB
    assert peak - base < 30 * 2**20, f"{(peak - base) / 2**20:.0f} MB more"
    assert not np.isin(negs.ids[17], positives[17]).any() and (negs.ids[17] >= 0).all()
    # its positives crowd its first pass (two thirds of the corpus): it is searched again,
    # deeper, alone, and neither its search block nor its sampling chunk is widened
    assert negs.stats.deep_searches == 1


# -- 8. TopK fills from below its window first --------------------------------------------


def test_topk_fill_takes_ranks_below_the_window_before_those_above() -> None:
    ids = np.arange(40)[None, :]
    scores = -np.arange(40, dtype=np.float32)[None, :] / 40
    sampler = ns.TopKSampler(k=40, range_min=10, range_max=30, strategy="top", on_shortfall="fill")
    f = ns.Filters(max_score=float(scores[0, 27]) + 1e-6)  # ranks 0-26 are filtered out
    negs = sampler.sample(ids, scores, [[39]], n=5, filters=f)
    # window [10, 30) keeps ranks 27, 28, 29; fill takes 30, 31 (below), never ranks 0, 1
    assert negs.ids.tolist() == [[27, 28, 29, 30, 31]] and negs.stats.filled == 2
    # below the window empty (k=30): the ranks above it, nearest first
    sampler30 = ns.TopKSampler(
        k=30, range_min=10, range_max=30, strategy="top", on_shortfall="fill"
    )
    negs = sampler30.sample(
        ids[:, :30], scores[:, :30], [[39]], n=5, filters=ns.Filters(min_score=float(scores[0, 13]))
    )
    assert negs.ids.tolist() == [[10, 11, 12, 9, 8]]


# -- 9. duplicate, unknown and infinite positives; huge log-weights ------------------------


def test_duplicate_positive_ids_count_once() -> None:
    ids = np.tile(np.arange(10, 20), (4000, 1))
    scores = np.tile(np.linspace(0.9, 0.1, 10, dtype=np.float32), (4000, 1))
    sampler = ns.SimANSSampler(k=10, positive_anchor="random")
    negs = sampler.sample(
        ids, scores, [[3, 3, 5]] * 4000, n=2, positive_scores=[[0.5, 0.5, 0.6]] * 4000
    )
    share = (negs.anchor_ids == 3).mean()
    assert 0.47 < share < 0.53, share  # 3 and 5 equally likely, not 2:1
    assert negs.stats.duplicate_positives == 4000
    each = ns.SimANSSampler(k=10, positive_anchor="each").sample(
        ids[:1], scores[:1], [[3, 3, 5]], n=2, positive_scores=[[0.5, 0.5, 0.6]]
    )
    assert sorted(each.anchor_ids.tolist()) == [3, 5]


def test_each_counts_positives_whose_score_is_unknown() -> None:
    ids = np.arange(10, 20)[None, :]
    scores = np.linspace(0.9, 0.1, 10, dtype=np.float32)[None, :]
    negs = ns.SimANSSampler(k=10, positive_anchor="each").sample(
        ids, scores, [[3, 5]], n=2, positive_scores=[[0.5, np.nan]]
    )
    assert negs.anchor_ids.tolist() == [3] and negs.stats.skipped_anchors == 1


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_positive_scores_are_refused(bad: float) -> None:
    ids = np.arange(10, 20)[None, :]
    scores = np.linspace(0.9, 0.1, 10, dtype=np.float32)[None, :]
    with pytest.raises(ValueError, match=r"positive_scores of query 0 .*must be finite"):
        ns.SimANSSampler(k=10).sample(ids, scores, [[3]], n=2, positive_scores=[[bad]])


@pytest.mark.parametrize("shift", [0.0, -1e17, 1e17])
def test_gumbel_keeps_its_noise_under_huge_log_weights(shift: float) -> None:
    rows = 20_000
    logw = np.full((rows, 2), shift)
    from negsample._rng import gumbel

    noise = gumbel(0, np.arange(rows), 2, 1)
    first = gumbel_topk(logw, 1, noise)[:, 0]
    share = (first == 0).mean()
    assert 0.48 < share < 0.52, share


def test_simans_with_a_huge_kernel_or_a_tiny_temperature_stays_fair() -> None:
    rows = 20_000
    ids = np.tile(np.array([[10, 11, 12]]), (rows, 1))
    scores = np.tile(np.array([[0.75, 0.25, 0.125]], np.float32), (rows, 1))  # 10, 11 equidistant
    for sampler in (ns.SimANSSampler(k=3, a=1e17), ns.SimANSSampler(k=3, temperature=1e-9)):
        negs = sampler.sample(ids, scores, [[0]] * rows, n=1, positive_scores=[[0.5]] * rows)
        share = (negs.ids[:, 0] == 10).mean()
        assert 0.48 < share < 0.52, (sampler, share)


# -- clear errors for bad arguments --------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ns.TopKSampler(k="5"), "k must be a positive integer, got '5'"),
        (lambda: ns.TopKSampler(k=200.5), "k must be a positive integer, got 200.5"),
        (lambda: ns.TopKSampler(k=True), "k must be a positive integer, got True"),
        (lambda: ns.TriSampler(theta="60"), "theta must be a number, got '60'"),
        (lambda: ns.SimANSSampler(a="1"), "a must be a number"),
        (lambda: ns.ReSa2Sampler(k2=7.0), "k2 must be a positive integer"),
        (lambda: ns.SimANSSampler(temperature=0), "temperature must be > 0"),
    ],
)
def test_bad_sampler_parameters(make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"chunk_size": 2.5}, "chunk_size must be a positive integer"),
        ({"chunk_size": True}, "chunk_size must be a positive integer"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer"),
        ({"memory_budget_mb": -5}, "memory_budget_mb must be > 0"),
        ({"memory_budget_mb": float("nan")}, "memory_budget_mb must be a finite number"),
        ({"query_offset": 2**63}, "query_offset=.* runs past the largest query index"),
        ({"query_offset": -1}, "query_offset must be a non-negative integer"),
        ({"n": True}, "n must be a positive integer"),
        ({"progress": "yes"}, "progress must be True or False"),
    ],
)
def test_bad_mine_arguments(kw: dict, match: str) -> None:  # type: ignore[type-arg]
    data = ns.make_synthetic(500, 5, 8, seed=0)
    with pytest.raises(ValueError, match=match):
        ns.mine(data.queries, ns.NumpyIndex(data.corpus), data.positives, **kw)


def test_bad_query_index_in_sample() -> None:
    ids = np.arange(10, 20)[None, :].repeat(2, axis=0)
    scores = np.ones((2, 10), np.float32)
    s = ns.TopKSampler(k=10)
    with pytest.raises(ValueError, match=r"query_index must have one entry per row \(2\)"):
        s.sample(ids, scores, [[1], [2]], n=2, query_index=[0, 1, 2])
    with pytest.raises(ValueError, match="query_index holds a row index twice"):
        s.sample(ids, scores, [[1], [2]], n=2, query_index=[4, 4])
    with pytest.raises(ValueError, match="query_index must be >= 0"):
        s.sample(ids, scores, [[1], [2]], n=2, query_index=[-1, 4])


def test_sampling_threads_do_not_change_the_output(near_ties, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    corpus, queries, pos = near_ties
    index = ns.NumpyIndex(corpus, search_block=64)
    out = []
    for threads in ("1", "3"):
        monkeypatch.setenv("NEGSAMPLE_SAMPLING_THREADS", threads)
        negs = ns.mine(
            queries,
            index,
            pos,
            ns.ReSa2Sampler(k1=200, k1_prime=100, k2=20),
            n=7,
            seed=1,
            chunk_size=17,
        )
        out.append(negs)
    np.testing.assert_array_equal(out[0].ids, out[1].ids)
    np.testing.assert_array_equal(out[0].scores, out[1].scores)
    assert (
        out[0].stats.removed == out[1].stats.removed and out[0].stats.n_rows == out[1].stats.n_rows
    )


class _OffHostIndex(ns.NumpyIndex):
    """A NumpyIndex that says its search leaves the CPUs free (as a GPU index does), so
    mine() searches the next block ahead while it samples; it records the threads that
    searched."""

    threads: set[str]

    @property
    def searches_on_host(self) -> bool:
        return False

    def search(self, queries, k):  # type: ignore[no-untyped-def]
        import threading

        self.threads.add(threading.current_thread().name)
        return super().search(queries, k)


def test_search_ahead_does_not_change_the_output(near_ties, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    corpus, queries, pos = near_ties
    pos = [list(p) for p in pos]
    pos[5] = list(range(300))  # a query searched again deeper, in a prefetched block
    sampler = ns.ReSa2Sampler(k1=200, k1_prime=100, k2=20)
    ref = ns.mine(queries, ns.NumpyIndex(corpus, search_block=64), pos, sampler, n=7, seed=1)
    monkeypatch.setenv("NEGSAMPLE_SAMPLING_THREADS", "3")
    ahead = _OffHostIndex(corpus, search_block=64)
    ahead.threads = set()
    for chunk in (17, 64, 1000):
        got = ns.mine(queries, ahead, pos, sampler, n=7, seed=1, chunk_size=chunk)
        np.testing.assert_array_equal(got.ids, ref.ids)
        np.testing.assert_array_equal(got.scores, ref.scores)
        assert got.stats.removed == ref.stats.removed
        assert got.stats.deep_searches == ref.stats.deep_searches
    assert any(t.startswith("negsample-search") for t in ahead.threads)
    part = ns.mine(queries[100:], ahead, pos[100:], sampler, n=7, seed=1, query_offset=100)
    np.testing.assert_array_equal(part.ids, ref.ids[ref.query_index >= 100])
