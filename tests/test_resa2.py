"""ReSa2Sampler: a hand-computed case, the stage-1 distribution, the stage-2 region, the
released code's chunked re-rank (faithful=True), and the shortfall rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

import negsample as ns
from negsample._ragged import Ragged, as_ragged
from negsample._types import MiningStats
from negsample.samplers.base import (
    Anchor,
    SamplerBatch,
    build_batch,
    positive_scores_for,
    resolve_anchor,
)
from negsample.samplers.resa2 import RELEASED_CHUNK

# -- construction -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"k1": 100, "k1_prime": 200},
        {"k1_prime": 50, "k2": 75},
        {"k2": 0},
        {"tau": -1.0},
        {"tau": float("nan")},
        {"temperature": 0.0},
        {"positive_anchor": "best"},
    ],
)
def test_invalid_parameters_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ns.ReSa2Sampler(**kw)  # type: ignore[arg-type]


def test_n_larger_than_k2_is_refused_before_any_work() -> None:
    with pytest.raises(ValueError, match=r"k2=75 .* n=76"):
        ns.ReSa2Sampler().check_n(76)
    corpus = np.eye(200, 8, dtype=np.float32) + 0.01
    with pytest.raises(ValueError, match="k2=5"):
        ns.mine(corpus[:2], ns.NumpyIndex(corpus), [[0], [1]], ns.ReSa2Sampler(k2=5), n=6)
    ns.ReSa2Sampler().check_n(75)  # the boundary is allowed


def test_defaults_follow_the_paper_and_the_released_anchor() -> None:
    s = ns.ReSa2Sampler()
    assert (s.k1, s.k1_prime, s.k2, s.tau, s.positive_anchor) == (1000, 500, 75, 0.25, "max")
    assert s.depth == 1000 and s.vectors_per_query() == 0 and s.needs_vectors
    assert ns.sampler_from_string(repr(s)) == s
    assert ns.get_sampler("resa2", faithful=True) == ns.ReSa2Sampler(faithful=True)


# -- a hand-computed case ---------------------------------------------------------------

# 2-d unit vectors. Query q = (1, 0).
CORPUS = np.array(
    [
        [0.8, 0.6],  # 0: positive of both queries; s(q, .) = 0.8
        [1.0, 0.0],  # 1: s(q) = 1.00  s(d0, .) = 0.800  s(d7, .) = -1.0
        [0.6, 0.8],  # 2: s(q) = 0.60  s(d0, .) = 0.960  s(d7, .) = -0.6
        [0.0, 1.0],  # 3: s(q) = 0.00  s(d0, .) = 0.600  s(d7, .) =  0.0
        [0.8, -0.6],  # 4: s(q) = 0.80  s(d0, .) = 0.280  s(d7, .) = -0.8
        [-0.6, 0.8],  # 5: s(q) = -0.6  s(d0, .) = 0.000  s(d7, .) =  0.6
        [0.96, 0.28],  # 6: s(q) = 0.96  s(d0, .) = 0.936  s(d7, .) = -0.96
        [-1.0, 0.0],  # 7: second positive of query 1; s(q, .) = -1
    ],
    dtype=np.float32,
)
QUERIES = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
POSITIVES = [[0], [0, 7]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_computed_region_and_negatives(seed: int) -> None:
    # k1 = k1' = 7 >= the candidates, so stage 1 keeps every candidate (in a random order)
    # and the result is fixed: the top-3 by s(d+, d-).
    # Query 0 (d+ = d0): s(d0, .) ranks 2 (0.96), 6 (0.936), 1 (0.8), 3, 4, 5, 7 -> {1, 2, 6}.
    # Query 1, anchor "max" (d0, s = 0.8 > s(q, d7) = -1), candidates 1..6 -> {1, 2, 6}.
    # Query 1, anchor "min" (d7): s(d7, .) ranks 5 (0.6), 3 (0.0), 2 (-0.6), ... -> {2, 3, 5}.
    # For contrast, the query-centric top-3 (TopK) would be {1, 6, 4}.
    index = ns.NumpyIndex(CORPUS)
    top = ns.mine(
        QUERIES, index, POSITIVES, ns.ReSa2Sampler(k1=7, k1_prime=7, k2=3), n=3, seed=seed
    )
    assert [set(r.tolist()) for r in top.ids] == [{1, 2, 6}, {1, 2, 6}]
    assert top.anchor_ids.tolist() == [0, 0]
    mn = ns.ReSa2Sampler(k1=7, k1_prime=7, k2=3, positive_anchor="min")
    low = ns.mine(QUERIES, index, POSITIVES, mn, n=3, seed=seed)
    assert set(low.ids[1].tolist()) == {2, 3, 5} and low.anchor_ids.tolist() == [0, 7]
    # n < k2: two distinct of the three, scores are s(q, d-)
    two = ns.mine(
        QUERIES, index, POSITIVES, ns.ReSa2Sampler(k1=7, k1_prime=7, k2=3), n=2, seed=seed
    )
    for row in two.ids:
        assert len(set(row.tolist())) == 2 and set(row.tolist()) <= {1, 2, 6}
    np.testing.assert_allclose(two.scores, CORPUS[two.ids] @ np.array([1.0, 0.0]), atol=1e-6)


def test_uniform_final_draw_covers_the_region() -> None:
    # n = 1 from the k2 = 3 region {1, 2, 6} of query 0, over many seeds: each about 1/3
    index = ns.NumpyIndex(CORPUS)
    s = ns.ReSa2Sampler(k1=7, k1_prime=7, k2=3)
    picks = [int(ns.mine(QUERIES[:1], index, [[0]], s, n=1, seed=i).ids[0, 0]) for i in range(600)]
    counts = [picks.count(d) for d in (1, 2, 6)]
    assert sum(counts) == 600
    assert chisquare(counts).pvalue > 1e-3


# -- stage 1: the weighted draw ---------------------------------------------------------


def _manual_batch(scores: np.ndarray, s_pos: float, rows: int, valid: np.ndarray) -> SamplerBatch:
    k = scores.size
    return SamplerBatch(
        query_index=np.arange(rows, dtype=np.int64),
        ids=np.broadcast_to(np.arange(k, dtype=np.int64), (rows, k)).copy(),
        scores=np.broadcast_to(scores.astype(np.float32), (rows, k)).copy(),
        valid=np.broadcast_to(valid, (rows, k)).copy(),
        positives=Ragged(np.arange(rows + 1, dtype=np.int64), np.full(rows, 10_000, np.int64)),
        positive_scores=np.full(rows, s_pos, np.float32),
        seed=20240501,
    )


@pytest.mark.parametrize(
    ("scores", "s_pos", "temperature"),
    [
        (np.linspace(12.0, 5.0, 12), 10.0, None),  # raw BERT-like inner products
        (np.linspace(0.78, 0.5, 12), 0.7, 0.05),  # cosine scores with a temperature
    ],
)
def test_stage1_first_and_second_draw_follow_the_kernel(
    scores: np.ndarray, s_pos: float, temperature: float | None
) -> None:
    rows = 20_000
    valid = np.ones(scores.size, bool)
    valid[3] = False  # a filtered candidate is never drawn
    batch = _manual_batch(scores, s_pos, rows, valid)
    sampler = ns.ReSa2Sampler(k1=12, k1_prime=4, k2=2, temperature=temperature)
    anchor = Anchor(batch.positives.values, np.full(rows, s_pos), "max")
    draws = sampler.stage1(batch, anchor)
    assert draws.shape == (rows, 4) and np.all(draws >= 0) and not np.any(draws == 3)
    assert all(len(set(r)) == 4 for r in draws[:200].tolist())
    # target, computed here: w = exp(-0.25 * ((s - s+) / T)^2) over the valid candidates
    t = 1.0 if temperature is None else temperature
    w = np.exp(-0.25 * ((scores - s_pos) / t) ** 2) * valid
    p1 = w / w.sum()
    # second draw, successive sampling: P2(j) = sum_{i != j} p_i p_j / (1 - p_i)
    p2 = np.array(
        [sum(p1[i] * p1[j] / (1 - p1[i]) for i in range(12) if i != j) for j in range(12)]
    )
    keep = valid
    for col, p in ((0, p1), (1, p2)):
        obs = np.bincount(draws[:, col], minlength=12)[keep]
        exp = rows * p[keep]
        assert exp.min() >= 5, "cells too small for chi-square"
        assert chisquare(obs, exp).pvalue > 1e-3, (col, obs, exp.round(1))
    # the test has power: the same counts are far from uniform
    obs = np.bincount(draws[:, 0], minlength=12)[keep]
    assert chisquare(obs).pvalue < 1e-6


# -- stage 2: the region --------------------------------------------------------------


def _mining_batch(
    data: ns.SyntheticRetrieval, sampler: ns.ReSa2Sampler, seed: int
) -> tuple[SamplerBatch, Anchor]:
    """The batch mine() builds for one chunk holding every query (same search depth)."""
    index = ns.NumpyIndex(data.corpus)
    q = data.queries
    pos, _ = as_ragged(data.positives, len(q), index.ntotal)
    # searched as mine() does: one call of index.search_block rows, queries in place
    call = np.repeat(q[:1], index.search_block, axis=0)
    call[: len(q)] = q
    res = index.search(call, sampler.depth + int(pos.lengths.max()))
    batch = build_batch(
        res.ids[: len(q)],
        res.scores[: len(q)],
        pos,
        query_index=np.arange(len(q), dtype=np.int64),
        seed=seed,
        depth=sampler.depth,
        stats=MiningStats(seed=seed),
        positive_scores=positive_scores_for(q, pos, index),
        queries=q,
        index=index,
    )
    return resolve_anchor(batch, sampler.positive_anchor)


def _sim_to_anchor(data: ns.SyntheticRetrieval, anchor: Anchor, ids: np.ndarray) -> np.ndarray:
    """s(d+, d-) computed here from the corpus, -inf at -1."""
    s = np.einsum("bd,bmd->bm", data.corpus[anchor.ids], data.corpus[np.maximum(ids, 0)])
    return np.where(ids >= 0, s, -np.inf)


@pytest.fixture(scope="module")
def data() -> ns.SyntheticRetrieval:
    return ns.make_synthetic(4000, 60, 32, seed=11)


def test_every_negative_is_in_the_top_k2_of_its_stage1_draws(data: ns.SyntheticRetrieval) -> None:
    sampler = ns.ReSa2Sampler(k1=400, k1_prime=200, k2=25)
    seed = 5
    negs = ns.mine(
        data.queries, ns.NumpyIndex(data.corpus), data.positives, sampler, n=7, seed=seed
    )
    batch, anchor = _mining_batch(data, sampler, seed)
    stages = sampler.stages(batch, anchor)
    s1_ids = np.take_along_axis(batch.ids, stages.stage1, axis=1)
    assert np.all(stages.stage1 >= 0) and s1_ids.shape == (len(data.queries), 200)
    sim = _sim_to_anchor(data, anchor, s1_ids)
    kth = -np.sort(-sim, axis=1)[:, 24]  # the 25th best s(d+, d-) among the stage-1 draws
    for r in range(len(data.queries)):
        got = negs.ids[r]
        assert set(got.tolist()) <= set(s1_ids[r].tolist())
        g = data.corpus[got] @ data.corpus[anchor.ids[r]]
        assert np.all(g >= kth[r] - 1e-6), r
        # the region itself is exactly the top 25 (no ties in random float vectors)
        region = set(np.take(batch.ids[r], stages.stage2[r]).tolist())
        assert region == set(s1_ids[r][np.argsort(-sim[r])[:25]].tolist())


def test_the_region_is_not_the_query_centric_top(data: ns.SyntheticRetrieval) -> None:
    # stage 2 re-ranks by the positive: its region differs from the top-k2 by s(q, d-)
    sampler = ns.ReSa2Sampler(k1=400, k1_prime=400, k2=25)
    batch, anchor = _mining_batch(data, sampler, 0)
    region = sampler.stages(batch, anchor).stage2
    assert not all(set(r.tolist()) == set(range(25)) for r in region)


class _CountingIndex(ns.BaseIndex):
    """Wraps an index and records the shape of every vectors() and score() call."""

    def __init__(self, inner: ns.NumpyIndex) -> None:
        self.inner = inner
        self.metric = inner.metric
        self.gathered: list[tuple[int, ...]] = []
        self.scored: list[tuple[int, ...]] = []

    @property
    def ntotal(self) -> int:
        return self.inner.ntotal

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def exact(self) -> bool:
        return True

    def search(self, queries: np.ndarray, k: int) -> ns.SearchResult:
        return self.inner.search(queries, k)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        self.gathered.append(np.shape(ids))
        return self.inner.vectors(ids)

    def score(self, vectors: np.ndarray, ids: np.ndarray) -> np.ndarray:
        self.scored.append(np.shape(ids))
        return self.inner.score(vectors, ids)

    def save(self, path: str) -> None:  # pragma: no cover
        raise NotImplementedError


def test_no_candidate_vector_is_gathered(data: ns.SyntheticRetrieval) -> None:
    # stage 2 asks the index for s(d+, d-) of the stage-1 draws; the only vectors handed
    # out are the anchor positives', one per row
    index = _CountingIndex(ns.NumpyIndex(data.corpus))
    sampler = ns.ReSa2Sampler(k1=400, k1_prime=120, k2=25)
    ns.mine(data.queries, index, data.positives, sampler, n=7, seed=0)
    assert index.gathered and all(len(shape) == 1 for shape in index.gathered)
    assert (len(data.queries), 120) in index.scored


# -- faithful=True: the released code's chunked sort ------------------------------------


@pytest.mark.parametrize("k2", [20, 150])
def test_faithful_sorts_in_chunks_of_100(data: ns.SyntheticRetrieval, k2: int) -> None:
    default = ns.ReSa2Sampler(k1=400, k1_prime=300, k2=k2)
    faithful = ns.ReSa2Sampler(k1=400, k1_prime=300, k2=k2, faithful=True)
    batch, anchor = _mining_batch(data, default, 3)
    a = default.stages(batch, anchor)
    b = faithful.stages(batch, anchor)
    np.testing.assert_array_equal(a.stage1, b.stage1)  # stage 1 is shared
    draws = np.take_along_axis(batch.ids, a.stage1, axis=1)
    sim = _sim_to_anchor(data, anchor, draws)
    # expected, computed here: sort each chunk of 100 draws (in draw order), concatenate
    chunks = [
        np.take_along_axis(draws[:, c : c + 100], np.argsort(-sim[:, c : c + 100], axis=1), 1)
        for c in range(0, 300, RELEASED_CHUNK)
    ]
    want_faithful = np.concatenate(chunks, axis=1)[:, :k2]
    want_default = np.take_along_axis(draws, np.argsort(-sim, axis=1), axis=1)[:, :k2]
    got_f = np.take_along_axis(batch.ids, b.stage2, axis=1)
    got_d = np.take_along_axis(batch.ids, a.stage2, axis=1)
    np.testing.assert_array_equal(got_f, want_faithful)
    np.testing.assert_array_equal(got_d, want_default)
    if k2 <= RELEASED_CHUNK:  # the faithful region lies in the first 100 draws
        assert all(
            set(f) <= set(d) for f, d in zip(got_f.tolist(), draws[:, :100].tolist(), strict=True)
        )
    # and it differs: the global top-k2 are closer to the positive
    sim_f = _sim_to_anchor(data, anchor, got_f).mean(axis=1)
    sim_d = _sim_to_anchor(data, anchor, got_d).mean(axis=1)
    assert np.all(sim_d >= sim_f - 1e-9) and np.mean(sim_d > sim_f + 1e-6) > 0.9


# -- shortfall ---------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["pad", "fill", "drop"])
def test_fewer_valid_candidates_than_n(policy: str) -> None:
    # 9 documents, query 0 has 3 positives: 6 candidates remain for n = 7
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((9, 4)).astype(np.float32)
    sampler = ns.ReSa2Sampler(k1=20, k1_prime=10, k2=8, on_shortfall=policy)
    negs = ns.mine(corpus[:2], ns.NumpyIndex(corpus), [[0, 1, 2], [3]], sampler, n=7, seed=0)
    st = negs.stats
    assert st.short_rows == 1
    if policy == "drop":
        assert st.dropped_rows == 1 and negs.query_index.tolist() == [1]
        return
    assert set(negs.ids[0][negs.ids[0] >= 0].tolist()) == {3, 4, 5, 6, 7, 8}
    assert st.padded == 1 and st.filled == 0 and (negs.ids[0] < 0).sum() == 1
    assert (negs.ids[1] >= 0).all()


def test_stage2_selection_equals_a_stable_descending_sort_ties_included() -> None:
    from negsample.samplers.resa2 import _top_stable

    rng = np.random.default_rng(0)
    for _ in range(300):
        b, m, k = (int(v) for v in (rng.integers(1, 20), rng.integers(1, 60), rng.integers(1, 70)))
        x = np.round(rng.standard_normal((b, m)), int(rng.integers(0, 3)))  # many ties, -0.0
        x[rng.random((b, m)) < 0.2] = -np.inf
        want = np.argsort(-x, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(_top_stable(x, k)[:, :k], want)


@pytest.mark.parametrize("params", [{"temperature": 1e-200}, {"tau": 1e300}])
def test_stage1_with_extreme_parameters_draws_by_distance(params: dict) -> None:  # type: ignore[type-arg]
    """Issue 20, item 3: a temperature of 1e-200 made every (s - s+)^2 / T^2 overflow, so
    stage 1 drew nothing and every row was short. In the limit the kernel orders the
    candidates by |s - s+|, and stage 1 now draws them so."""
    scores = np.array([12.0, 10.5, 9.75, 8.0, 11.25, 6.0])
    batch = _manual_batch(scores, 10.0, 50, np.ones(6, bool))
    sampler = ns.ReSa2Sampler(k1=6, k1_prime=5, k2=3, **params)
    anchor = Anchor(batch.positives.values, np.full(50, 10.0), "max")
    draws = sampler.stage1(batch, anchor)
    # |s - 10|: 2.0, 0.5, 0.25, 2.0, 1.25, 4.0 -> 2, 1, 4, then 0 and 3 (tied), not 5
    assert (draws[:, :3] == [2, 1, 4]).all()
    assert (np.sort(draws[:, 3:], axis=1) == [0, 3]).all()
