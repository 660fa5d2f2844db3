"""TriSampler: the quasi-triangular region worked out by hand (T1 and T2), the final ReLU
weights and the transitional kernel against target probabilities, the shortfall rule, the
anchor policies and the temperature."""

from __future__ import annotations

import doctest
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

import negsample as ns
from negsample.samplers import trisampler

DOCS = Path(__file__).parents[1] / "docs" / "samplers"

# A 2-d geometry worked out by hand. q = (-2, 1); positive P1 = q + (1, 0), so d+ - q = (1, 0).
# For a candidate d = q + o, the T1 angle is the angle between o and (1, 0), and the final
# weight is ReLU(<d, d+ - q>) = ReLU(d_x).
Q = np.array([-2.0, 1.0])
OFFSETS = {
    1: (4.0, 0.0),  # A: T1 angle 0          w = 2   -> in
    2: (3.0, 3.0),  # B: 45 deg              w = 1   -> in
    3: (3.0, -3.0),  # C: 45 deg             w = 1   -> in
    4: (1.0, 0.5),  # D: 26.57 deg           w = -1  -> out (ReLU weight 0)
    5: (0.0, 2.0),  # E: 90 deg              w = -2  -> out
    6: (5.0, 10.0),  # G: 63.43 deg          w = 3   -> out (angle only)
}
P1 = Q + np.array([1.0, 0.0])  # id 0, s(q, P1) = 3
P2 = Q + np.array([0.0, 1.0])  # id 7, s(q, P2) = 6; d+ - q = (0, 1), region {B, E, G}
CORPUS = np.array([P1, *(Q + np.array(o) for o in OFFSETS.values()), P2], dtype=np.float32)
CAND = np.array(list(OFFSETS))  # ids 1..6
T1_REGION_P1 = {1: 2.0, 2: 1.0, 3: 1.0}  # id -> ReLU weight


def _t2_angle(q: np.ndarray, p: np.ndarray, d: np.ndarray) -> float:
    """The paper's T2 angle, written out with math (independent of the sampler)."""

    def ang(x: np.ndarray, y: np.ndarray) -> float:
        c = float(x @ y) / math.sqrt(float(x @ x) * float(y @ y))
        return math.degrees(math.acos(max(-1.0, min(1.0, c))))

    return abs(ang(q, p) - ang(q, d))


def _t1_angle(q: np.ndarray, p: np.ndarray, d: np.ndarray) -> float:
    u, v = p - q, d - q
    c = float(u @ v) / math.sqrt(float(u @ u) * float(v @ v))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def _region(variant: str, p: np.ndarray, theta: float = 60.0) -> dict[int, float]:
    """id -> final weight of every candidate inside the region, computed here."""
    angle = _t1_angle if variant == "T1" else _t2_angle
    out = {}
    for i in CAND.tolist():
        d = CORPUS[i].astype(np.float64)
        w = float(d @ (p - Q))
        if angle(Q, p, d) <= theta and w > 0:
            out[i] = w
    return out


def _sample(sampler: ns.TriSampler, rows: int, n: int, seed: int = 0, **kw: object):
    index = ns.NumpyIndex(CORPUS)
    q = np.repeat(Q[None, :].astype(np.float32), rows, axis=0)
    ids = np.repeat(CAND[None, :], rows, axis=0)
    scores = (CORPUS[ids] @ Q.astype(np.float32)).astype(np.float32)
    pos = kw.pop("positives", [[0]] * rows)
    return sampler.sample(ids, scores, pos, n=n, seed=seed, queries=q, index=index, **kw)


def test_hand_computed_t1_region_is_exact() -> None:
    assert _region("T1", P1) == T1_REGION_P1  # the test's helper agrees with the comments
    for seed in range(5):
        negs = _sample(ns.TriSampler(variant="T1", k=6, m=6), 1, n=3, seed=seed)
        assert set(negs.ids[0].tolist()) == set(T1_REGION_P1)
        assert negs.stats.short_rows == 0 and negs.stats.filled == 0
        np.testing.assert_allclose(negs.scores[0], CORPUS[negs.ids[0]] @ Q, rtol=1e-6)


def test_hand_computed_t2_region_is_exact() -> None:
    # T2 = |angle(q, d+) - angle(q, d-)|. For P1: angle(q, P1) = 18.43 deg; the candidates'
    # angles to q give T2 = A 108.43, B 59.04, C 124.70, D 11.31, E 11.31, G 60.26 deg, so the
    # angle keeps B, D, E; D and E have ReLU weight 0 (w = d_x = -1, -2): the region is {B}.
    assert _region("T2", P1) == {2: 1.0}
    # For P2 (d+ - q = (0, 1), w = d_y): B 4.0, D 1.5, E 3.0 are in the region.
    assert _region("T2", P2) == {2: 4.0, 4: 1.5, 5: 3.0}
    for seed in range(3):
        one = _sample(ns.TriSampler(variant="T2", k=6, m=6), 1, n=1, seed=seed)
        assert one.ids.tolist() == [[2]] and one.stats.short_rows == 0
        sampler = ns.TriSampler(variant="T2", k=6, m=6)
        three = _sample(sampler, 1, n=3, seed=seed, positives=[[7]])
        assert set(three.ids[0].tolist()) == {2, 4, 5} and three.stats.short_rows == 0


@pytest.mark.parametrize("variant, pos_id, positive", [("T1", 0, P1), ("T2", 7, P2)])
def test_final_first_draw_is_proportional_to_relu_weight(
    variant: str, pos_id: int, positive: np.ndarray
) -> None:
    # m = k: stage 1 keeps every candidate, so the first draw follows the ReLU weights
    region = _region(variant, positive)
    assert len(region) == 3
    rows = 6000
    negs = _sample(
        ns.TriSampler(variant=variant, k=6, m=6), rows, n=1, seed=17, positives=[[pos_id]] * rows
    )
    first = negs.ids[:, 0]
    ids = sorted(region)
    counts = np.array([(first == i).sum() for i in ids])
    w = np.array([region[i] for i in ids])
    assert counts.sum() == rows  # nothing outside the region
    assert sps.chisquare(counts, rows * w / w.sum()).pvalue > 1e-3


def test_shortfall_fill_comes_from_outside_the_region_and_is_counted() -> None:
    # n = 4 > |region| = 3: the 4th slot is a transitional candidate outside the region
    negs = _sample(ns.TriSampler(variant="T1", k=6, m=6), 50, n=4, seed=2)
    assert negs.stats.short_rows == 50 and negs.stats.filled == 50 and negs.stats.padded == 0
    for row in negs.ids.tolist():
        assert set(row[:3]) == set(T1_REGION_P1)  # region picks first, then the fill
        assert row[3] in {4, 5, 6}
    pad = _sample(ns.TriSampler(variant="T1", k=6, m=6, on_shortfall="pad"), 1, n=4)
    assert pad.ids[0, 3] == -1 and pad.stats.padded == 1 and pad.stats.filled == 0
    drop = _sample(ns.TriSampler(variant="T1", k=6, m=6, on_shortfall="drop"), 2, n=4)
    assert len(drop) == 0 and drop.stats.dropped_rows == 2


def test_fill_stays_within_the_transitional_set() -> None:
    # m = n = 4 of 6 and a region of 0.001 degrees (only A, at angle exactly 0, can be in it):
    # every row is its 4 stage-1 draws. Stage-1 weights exp(-(s - 3)^2 / 4), s = s(q, d):
    # A -3 -> e^-9, B 2 -> e^-0.25, C -4 -> e^-12.25, D 3.5 -> e^-0.06, E 7 -> e^-4, G 5 -> e^-1,
    # so rows are almost always {B, D, G, E}. Filling by rank instead would give {A, B, C, D}.
    rows = 300
    negs = _sample(ns.TriSampler(variant="T1", k=6, m=4, theta=1e-3), rows, n=4, seed=1)
    assert negs.stats.filled == rows * 4 - int((negs.ids == 1).sum())
    has = {i: np.mean([i in r for r in negs.ids.tolist()]) for i in range(1, 7)}
    assert has[2] > 0.95 and has[4] > 0.95 and has[6] > 0.9 and has[5] > 0.5
    assert has[1] < 0.05 and has[3] < 0.05


def test_transitional_first_draw_follows_the_kernel() -> None:
    # An empty region (theta tiny, no candidate at angle 0) sends every slot to the fill,
    # which takes the transitional draws in order: the output is stage 1 itself.
    rng = np.random.default_rng(4)
    k = 8
    s = np.sort(rng.uniform(-2.0, 5.0, k))[::-1]  # s(q, d-) = d_x for q = (1, 0)
    corpus = np.zeros((k + 1, 2), np.float32)
    corpus[0] = (2.0, 0.0)  # positive: s(q, d+) = 2, d+ - q = (1, 0)
    corpus[1:, 0] = s
    corpus[1:, 1] = rng.uniform(1.0, 3.0, k)  # off the axis: every angle is > 0
    rows = 8000
    ids = np.repeat(np.arange(1, k + 1)[None, :], rows, 0)
    q = np.repeat(np.array([[1.0, 0.0]], np.float32), rows, 0)
    scores = corpus[ids][:, :, 0].astype(np.float32)
    for variant, temperature in [("T1", None), ("T2", 2.0)]:
        sampler = ns.TriSampler(variant=variant, k=k, m=3, theta=1e-6, temperature=temperature)
        negs = sampler.sample(
            ids, scores, [[0]] * rows, n=1, seed=9, queries=q, index=ns.NumpyIndex(corpus)
        )
        assert negs.stats.filled == rows and negs.stats.short_rows == rows
        t = 1.0 if temperature is None else temperature
        w = np.exp(-0.25 * ((corpus[1:, 0].astype(np.float64) - 2.0) / t) ** 2)
        counts = np.bincount(negs.ids[:, 0] - 1, minlength=k)
        assert sps.chisquare(counts, rows * w / w.sum()).pvalue > 1e-3, (variant, counts)


@pytest.mark.parametrize("variant", ["T1", "T2"])
def test_every_negative_satisfies_the_region_unless_filled(variant: str) -> None:
    data = ns.make_synthetic(3000, 80, 16, seed=5)
    index = ns.NumpyIndex(data.corpus)
    theta = 45.0
    for policy in ("pad", "fill"):
        sampler = ns.TriSampler(variant=variant, k=100, m=40, theta=theta, on_shortfall=policy)
        negs = ns.mine(data.queries, index, data.positives, sampler=sampler, n=7, seed=3)
        q = data.queries[negs.query_index].astype(np.float64)
        p = data.corpus[negs.anchor_ids].astype(np.float64)
        d = data.corpus[np.maximum(negs.ids, 0)].astype(np.float64)
        # the region, computed here with the formulas written out
        if variant == "T1":
            u, v = p - q, d - q[:, None, :]
            cos = np.einsum("rd,rkd->rk", u, v) / (
                np.linalg.norm(u, axis=1)[:, None] * np.linalg.norm(v, axis=2)
            )
            angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        else:

            def ang(x: np.ndarray, y: np.ndarray) -> np.ndarray:
                c = np.sum(x * y, -1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
                return np.degrees(np.arccos(np.clip(c, -1, 1)))

            angle = np.abs(ang(q, p)[:, None] - ang(q[:, None, :], d))
        w = np.einsum("rkd,rd->rk", d, p - q)
        inside = (angle <= theta + 1e-3) & (w > -1e-6)
        got = negs.ids >= 0
        outside = got & ~inside
        assert negs.stats.short_rows > 0  # the region does bind on this data
        if policy == "pad":
            assert not outside.any()
            assert negs.stats.padded == int((~got).sum()) > 0
        else:
            assert int(outside.sum()) <= negs.stats.filled
            # fills come after the region picks in every row
            first_out = np.where(outside.any(1), outside.argmax(1), negs.n)
            assert all(not (inside & got)[r, first_out[r] :].any() for r in range(len(negs)))
            assert not (~got).any()  # k = 100 valid candidates: the fill never runs dry


def test_t1_undefined_angle_is_outside_the_region() -> None:
    # q == d+: d+ - q has no direction, so T1 has no region; every slot is a counted fill
    corpus = np.array([[1.0, 2.0], [3.0, 1.0], [0.0, 2.5], [2.0, 2.0]], np.float32)
    negs = ns.TriSampler(variant="T1", k=3, m=3).sample(
        [[1, 2, 3]],
        [corpus[1:] @ corpus[0]],
        [[0]],
        n=2,
        queries=corpus[:1],
        index=ns.NumpyIndex(corpus),
    )
    assert negs.stats.filled == 2 and negs.stats.short_rows == 1
    assert len(set(negs.ids[0].tolist())) == 2


@pytest.mark.parametrize(
    "policy, expect_anchor, positive",
    [("min", 0, P1), ("max", 7, P2), ("mean", -1, (P1 + P2) / 2)],
)
def test_anchor_policies_choose_the_region(
    policy: str, expect_anchor: int, positive: np.ndarray
) -> None:
    region = _region("T1", positive)
    sampler = ns.TriSampler(variant="T1", k=6, m=6, positive_anchor=policy)
    negs = _sample(sampler, 1, n=len(region), positives=[[0, 7]])
    assert negs.anchor_ids.tolist() == [expect_anchor]
    assert set(negs.ids[0].tolist()) == set(region)
    assert negs.stats.short_rows == 0


def test_anchor_each_and_random() -> None:
    r1, r2 = set(_region("T1", P1)), set(_region("T1", P2))
    assert r1 == {1, 2, 3} and r2 == {2, 5, 6}  # P2's region by hand: B 45, E 0, G 26.6 deg
    each = _sample(
        ns.TriSampler(variant="T1", k=6, m=6, positive_anchor="each"), 1, n=3, positives=[[0, 7]]
    )
    assert each.anchor_ids.tolist() == [0, 7] and each.query_index.tolist() == [0, 0]
    assert [set(r) for r in each.ids.tolist()] == [r1, r2]
    rows = 100
    rnd = _sample(ns.TriSampler(variant="T1", k=6, m=6), rows, n=3, positives=[[0, 7]] * rows)
    assert 25 < (rnd.anchor_ids == 0).sum() < 75
    for a, row in zip(rnd.anchor_ids.tolist(), rnd.ids.tolist(), strict=True):
        assert set(row) == (r1 if a == 0 else r2)


def test_temperature_scales_stage_one_only() -> None:
    data = ns.make_synthetic(2000, 40, 16, seed=2)
    index = ns.NumpyIndex(data.corpus)
    res = index.search(data.queries, 60)
    pos = [p[:1] for p in data.positives]
    s_pos = np.array([[float(data.queries[i] @ data.corpus[p[0]])] for i, p in enumerate(pos)])
    t = 0.0625  # a power of two: dividing by it is exact
    kw = {"n": 5, "seed": 6, "queries": data.queries, "index": index}
    hot = ns.TriSampler(k=50, m=20, temperature=t).sample(
        res.ids, res.scores, pos, positive_scores=s_pos, **kw
    )
    # -tau * ((s - s+) / t)^2 == -(tau / t^2) * (s - s+)^2 exactly (t a power of two): the
    # same stage 1, and stage 2 (geometry, ReLU weights) does not see the temperature
    cold = ns.TriSampler(k=50, m=20, tau=0.25 / t**2).sample(
        res.ids, res.scores, pos, positive_scores=s_pos, **kw
    )
    np.testing.assert_array_equal(hot.ids, cold.ids)
    flat = ns.TriSampler(k=50, m=20).sample(res.ids, res.scores, pos, positive_scores=s_pos, **kw)
    assert not np.array_equal(hot.ids, flat.ids)


def test_needs_query_vectors_and_an_index() -> None:
    with pytest.raises(ValueError, match="needs corpus vectors"):
        ns.TriSampler(k=6).sample([CAND], [[1.0] * 6], [[0]], n=2, positive_scores=[[1.0]])
    with pytest.raises(ValueError, match="needs the query vectors"):
        ns.TriSampler(k=6).sample(
            [CAND], [[1.0] * 6], [[0]], n=2, positive_scores=[[1.0]], index=ns.NumpyIndex(CORPUS)
        )


@pytest.mark.parametrize(
    "params, match",
    [
        ({"variant": "T3"}, "variant must be"),
        ({"k": 0}, "k must be"),
        ({"m": 0}, "m must be"),
        ({"k": 10, "m": 11}, "m must be"),
        ({"m": 2.5}, "m must be"),
        ({"theta": 0.0}, "theta must be"),
        ({"theta": 181.0}, "theta must be"),
        ({"tau": -1.0}, "tau must be"),
        ({"temperature": -0.1}, "temperature must be"),
        ({"positive_anchor": "best"}, "positive_anchor must be"),
        ({"on_shortfall": "repeat"}, "on_shortfall must be"),
    ],
)
def test_bad_parameters_fail_at_construction(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ns.TriSampler(**params)


def test_n_is_checked_against_k_and_m() -> None:
    with pytest.raises(ValueError, match=r"m=3 transitional candidates \(of its top-6\)"):
        ns.TriSampler(k=6).check_n(7)  # the region is m = k // 2 = 3
    with pytest.raises(ValueError, match="m=6 transitional"):
        ns.TriSampler(k=6, m=6).check_n(7)
    with pytest.raises(ValueError, match="m=3 transitional"):
        ns.TriSampler(k=6, m=3).check_n(4)
    with pytest.raises(ValueError, match="m=100 transitional"):
        ns.TriSampler().check_n(101)  # default m = k // 2
    ns.TriSampler(k=6, m=3).check_n(3)


def test_defaults_and_config_round_trip() -> None:
    s = ns.TriSampler()
    assert (s.variant, s.k, s.transitional_size, s.theta, s.tau) == ("T2", 200, 100, 60.0, 0.25)
    assert (s.positive_anchor, s.on_shortfall, s.needs_vectors) == ("random", "fill", True)
    assert s.vectors_per_query() == 0  # scores and norms come from the index, nothing gathered
    custom = ns.TriSampler(variant="T1", k=400, m=150, theta=45.0, temperature=0.05)
    assert ns.sampler_from_string(repr(custom)) == custom
    assert ns.get_sampler("trisampler", variant="T1") == ns.TriSampler(variant="T1")


def test_docstring_example_runs() -> None:
    result = doctest.testmod(trisampler, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_doc_page_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "trisampler.md").read_text(), flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "trisampler.md", "exec"), {})


def test_transitional_stage_with_a_tiny_temperature_draws_by_distance() -> None:
    """Issue 20, item 3: temperature=1e-200 used to leave the transitional set empty (every
    log-weight -inf), so every row was short; the limit orders by |s(q, d-) - s(q, d+)|."""
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((400, 8)).astype(np.float32)
    queries = corpus[:5] + 0.3 * rng.standard_normal((5, 8)).astype(np.float32)
    index = ns.NumpyIndex(corpus)
    pos = [[i] for i in range(5)]
    res = index.search(queries, 60)
    sampler = ns.TriSampler(k=40, m=10, temperature=1e-200, positive_anchor="max")
    from negsample._ragged import as_ragged
    from negsample._types import MiningStats
    from negsample.samplers.base import build_batch, resolve_anchor

    batch = build_batch(res.ids, res.scores, as_ragged(pos, 5, 400)[0],
                        query_index=np.arange(5), seed=1, depth=40, stats=MiningStats(),
                        queries=queries, index=index)  # fmt: skip
    batch, anchor = resolve_anchor(batch, "max")
    trans = sampler.transitional(batch, anchor)
    assert (trans >= 0).all()
    dist = np.abs(batch.scores.astype(np.float64) - anchor.scores[:, None])
    want = np.argsort(dist, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(trans, want)
    negs = ns.mine(queries, index, pos, sampler=sampler, n=4, seed=1)
    assert (negs.ids >= 0).all()  # the region or its fill from the transitional set
