"""SimANSSampler: hand-computed weights, draw distributions, the sign of b, temperature and
the positive anchor policies."""

from __future__ import annotations

import doctest
import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

import negsample as ns
from negsample.samplers import simans

DOCS = Path(__file__).parents[1] / "docs" / "samplers"

# five candidates (ids 10..14) and a positive (id 99, not among them) scored 2.5
IDS = np.array([[10, 11, 12, 13, 14]])
SCORES = np.array([[3.0, 2.0, 1.0, 0.0, -1.0]], dtype=np.float32)
S_POS = 2.5


def _rows(b: int, ids: np.ndarray = IDS, scores: np.ndarray = SCORES) -> tuple[np.ndarray, ...]:
    """``b`` identical rows: each has its own query index, so each is an independent draw."""
    return np.repeat(ids, b, axis=0), np.repeat(scores, b, axis=0)


def _sample(sampler: ns.SimANSSampler, b: int, n: int, s_pos: float = S_POS, seed: int = 0):
    ids, scores = _rows(b)
    return sampler.sample(
        ids, scores, [[99]] * b, n=n, seed=seed, positive_scores=np.full((b, 1), s_pos)
    )


def _counts(first: np.ndarray, ids: np.ndarray = IDS[0]) -> np.ndarray:
    return np.array([(first == i).sum() for i in ids])


def test_log_weights_hand_computed() -> None:
    ids, scores = IDS, SCORES
    from negsample._ragged import as_ragged
    from negsample._types import MiningStats
    from negsample.samplers.base import build_batch, resolve_anchor

    batch = build_batch(
        ids,
        scores,
        as_ragged([[99]], 1, None)[0],
        query_index=np.array([0]),
        seed=0,
        depth=5,
        stats=MiningStats(),
        positive_scores=np.array([S_POS]),
    )
    batch, anchor = resolve_anchor(batch, "random")
    # x = s- - s+ + b with b = 0.5: 1.0, 0.0, -1.0, -2.0, -3.0
    g = ns.SimANSSampler(k=5, a=0.5, b=0.5).log_weights(batch, anchor)
    np.testing.assert_allclose(g[0], [-0.5, 0.0, -0.5, -2.0, -4.5])
    lap = ns.SimANSSampler(k=5, a=3.0, b=0.5, kernel="laplace").log_weights(batch, anchor)
    np.testing.assert_allclose(lap[0], [-3.0, 0.0, -3.0, -6.0, -9.0])


@pytest.mark.parametrize(
    "kernel, a, b",
    [("gaussian", 0.5, 0.0), ("gaussian", 1.0, 1.5), ("laplace", 1.0, 0.0), ("laplace", 0.7, -1.0)],
)
def test_first_draw_matches_kernel(kernel: str, a: float, b: float) -> None:
    # target, computed here from the formula: w = exp(-a x^2) or exp(-a |x|), x = s- - s+ + b
    x = [s - S_POS + b for s in SCORES[0].tolist()]
    w = [math.exp(-a * (v * v if kernel == "gaussian" else abs(v))) for v in x]
    p = np.array(w) / sum(w)
    n_rows = 6000
    negs = _sample(ns.SimANSSampler(k=5, a=a, b=b, kernel=kernel), n_rows, n=1, seed=11)
    counts = _counts(negs.ids[:, 0])
    assert counts.sum() == n_rows
    assert sps.chisquare(counts, n_rows * p).pvalue > 1e-3


def test_two_draws_are_successive_sampling_without_replacement() -> None:
    # P(i then j) = w_i / W * w_j / (W - w_i): the exact law of weighted sampling without
    # replacement, which the Gumbel-top-k trick must reproduce
    a = 0.5
    w = [math.exp(-a * (s - S_POS) ** 2) for s in SCORES[0].tolist()]
    total = sum(w)
    pairs = list(itertools.permutations(range(5), 2))
    p = np.array([w[i] / total * w[j] / (total - w[i]) for i, j in pairs])
    n_rows = 20000
    negs = _sample(ns.SimANSSampler(k=5, a=a), n_rows, n=2, seed=3)
    pos = negs.ids - 10
    assert np.all(pos[:, 0] != pos[:, 1])
    counts = np.array([((pos[:, 0] == i) & (pos[:, 1] == j)).sum() for i, j in pairs])
    assert counts.sum() == n_rows
    assert sps.chisquare(counts, n_rows * p).pvalue > 1e-3


def test_b_positive_puts_the_mode_below_the_positive() -> None:
    scores = np.arange(10, -1, -1, dtype=np.float32)[None, :]  # 10, 9, ..., 0
    ids = 100 + scores.astype(np.int64)
    b_rows = 400
    rid, rsc = _rows(b_rows, ids, scores)
    for b, s_pos, mode in [(3.0, 10.0, 7.0), (-2.0, 5.0, 7.0), (0.0, 6.0, 6.0)]:
        sampler = ns.SimANSSampler(k=11, a=4.0, b=b)
        negs = sampler.sample(rid, rsc, [[0]] * b_rows, n=1, positive_scores=[[s_pos]] * b_rows)
        picked = negs.scores[:, 0]
        values, counts = np.unique(picked, return_counts=True)
        assert values[np.argmax(counts)] == mode, (b, values, counts)
        # the released code's sign: the mean picked score sits b below the positive
        assert abs(float(picked.mean()) - (s_pos - b)) < 0.15


def test_extreme_weights_do_not_underflow() -> None:
    # scores hundreds of units apart: exp(-a x^2) underflows to 0 for every candidate but one
    # in linear space; in log space the sampler still draws, nearest first
    scores = np.array([[900.0, 500.0, 100.0, -300.0]], dtype=np.float32)
    negs = ns.SimANSSampler(k=4, a=50.0).sample(
        [[1, 2, 3, 4]], scores, [[9]], n=4, positive_scores=[[120.0]], seed=5
    )
    assert negs.ids.tolist() == [[3, 2, 4, 1]]


def test_temperature_divides_scores_before_the_kernel() -> None:
    rng = np.random.default_rng(0)
    b = 50
    scores = np.sort(rng.uniform(-1, 1, (b, 30)), axis=1)[:, ::-1].astype(np.float32)
    ids = np.tile(np.arange(30), (b, 1))
    s_pos = rng.uniform(0.2, 0.9, (b, 1))
    t = 0.0625  # a power of two: dividing by it is exact, in float32 as in float64
    hot = ns.SimANSSampler(k=30, temperature=t).sample(
        ids, scores, [[99]] * b, n=5, positive_scores=s_pos, seed=4
    )
    cold = ns.SimANSSampler(k=30).sample(
        ids,
        (scores.astype(np.float64) / t).astype(np.float32),
        [[99]] * b,
        n=5,
        positive_scores=s_pos / t,
        seed=4,
    )
    np.testing.assert_array_equal(hot.ids, cold.ids)
    # and it matters: on cosine-scale scores, a = 0.5 without a temperature is nearly flat,
    # with it the picks crowd around s+
    flat = ns.SimANSSampler(k=30).sample(
        ids, scores, [[99]] * b, n=5, positive_scores=s_pos, seed=4
    )
    gap_hot = np.abs(hot.scores - s_pos).mean()
    gap_flat = np.abs(flat.scores - s_pos).mean()
    assert gap_hot < 0.5 * gap_flat


# two positives (ids 97, 98) scored 9 and 3; candidates 0..10 with score = id
CAND_IDS = np.arange(11)[None, :]
CAND_SCORES = np.arange(11, dtype=np.float32)[None, :]
POS = [[97, 98]]
POS_SCORES = [[9.0, 3.0]]


@pytest.mark.parametrize("policy, expect", [("max", 9), ("min", 3), ("mean", 6)])
def test_anchor_policy_picks_the_score(policy: str, expect: int) -> None:
    sampler = ns.SimANSSampler(k=11, a=50.0, positive_anchor=policy)
    negs = sampler.sample(CAND_IDS, CAND_SCORES, POS, n=1, positive_scores=POS_SCORES)
    assert negs.ids.tolist() == [[expect]]
    assert negs.anchor_ids.tolist() == [{"max": 97, "min": 98, "mean": -1}[policy]]


def test_anchor_each_gives_one_row_per_positive() -> None:
    sampler = ns.SimANSSampler(k=11, a=50.0, positive_anchor="each")
    negs = sampler.sample(CAND_IDS, CAND_SCORES, POS, n=1, positive_scores=POS_SCORES)
    assert negs.ids.tolist() == [[9], [3]]
    assert negs.anchor_ids.tolist() == [97, 98]
    assert negs.query_index.tolist() == [0, 0]


def test_anchor_random_is_seeded_and_followed() -> None:
    b = 200
    sampler = ns.SimANSSampler(k=11, a=50.0)  # default anchor: "random"
    assert sampler.positive_anchor == "random"
    negs = sampler.sample(
        np.repeat(CAND_IDS, b, 0),
        np.repeat(CAND_SCORES, b, 0),
        POS * b,
        n=1,
        positive_scores=POS_SCORES * b,
        seed=8,
    )
    anchors = negs.anchor_ids
    assert 60 < (anchors == 97).sum() < 140  # each positive about half the time
    np.testing.assert_array_equal(negs.ids[:, 0], np.where(anchors == 97, 9, 3))


def test_shortfall_pads_and_drops() -> None:
    ids = np.array([[1, 2, -1, -1], [3, 4, 5, 6]])
    scores = np.array([[1.0, 0.5, np.nan, np.nan], [1.0, 0.9, 0.8, 0.7]], dtype=np.float32)
    pad = ns.SimANSSampler(k=4).sample(ids, scores, [[9], [9]], n=3, positive_scores=[[1], [1]])
    assert sorted(pad.ids[0].tolist()) == [-1, 1, 2]
    assert pad.stats.short_rows == 1 and pad.stats.padded == 1
    drop = ns.SimANSSampler(k=4, on_shortfall="drop").sample(
        ids, scores, [[9], [9]], n=3, positive_scores=[[1], [1]]
    )
    assert drop.query_index.tolist() == [1] and drop.stats.dropped_rows == 1


@pytest.mark.parametrize(
    "params, match",
    [
        ({"k": 0}, "k must be"),
        ({"k": 2.5}, "k must be"),
        ({"a": 0.0}, "a must be"),
        ({"a": float("nan")}, "a must be"),
        ({"b": float("inf")}, "b must be"),
        ({"kernel": "cauchy"}, "kernel must be"),
        ({"positive_anchor": "first"}, "positive_anchor must be"),
        ({"temperature": 0.0}, "temperature must be"),
        ({"on_shortfall": "dup"}, "on_shortfall must be"),
    ],
)
def test_bad_parameters_fail_at_construction(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ns.SimANSSampler(**params)


def test_n_larger_than_k_is_refused() -> None:
    with pytest.raises(ValueError, match="considers 5 candidates"):
        ns.SimANSSampler(k=5).sample(IDS, SCORES, [[99]], n=6, positive_scores=[[S_POS]])


def test_defaults_and_config_round_trip() -> None:
    s = ns.SimANSSampler()
    assert (s.k, s.a, s.b, s.kernel, s.positive_anchor) == (200, 0.5, 0.0, "gaussian", "random")
    custom = ns.SimANSSampler(k=400, a=3.0, kernel="laplace", temperature=0.05)
    assert ns.sampler_from_string(repr(custom)) == custom
    assert ns.get_sampler("simans", k=400) == ns.SimANSSampler(k=400)


def test_docstring_example_runs() -> None:
    result = doctest.testmod(simans, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_doc_page_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "simans.md").read_text(), flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "simans.md", "exec"), {})


# -- extreme parameters (issue 20, item 3): computed in a safe range, rows never emptied -------
@pytest.mark.parametrize(
    "params, groups",
    [
        # b > 0 puts the mode far below every score: the lowest-scored first, in score order
        ({"b": 1e200}, [{14}, {13}, {12}, {11}, {10}]),
        ({"b": 1e150}, [{14}, {13}, {12}, {11}, {10}]),  # finite, but b absorbed s- - s+
        ({"b": -1e200}, [{10}, {11}, {12}, {13}, {14}]),
        # a sharp kernel: nearest to the positive's 2.5 first (3.0 and 2.0 tie: noise)
        ({"temperature": 1e-200}, [{10, 11}, {12}, {13}, {14}]),
        ({"a": 1e300}, [{10, 11}, {12}, {13}, {14}]),
        ({"a": 1e300, "kernel": "laplace"}, [{10, 11}, {12}, {13}, {14}]),
        # the mode at s- = s+ - b * temperature = 1.5: 2.0 and 1.0 tie, then 3.0 and 0.0
        ({"temperature": 1e-250, "b": 1e250, "a": 1e300}, [{11, 12}, {10, 13}, {14}]),
    ],
)
def test_extreme_parameters_keep_every_row_and_the_limit_order(
    params: dict,  # type: ignore[type-arg]
    groups: list[set[int]],
) -> None:
    """These used to leave every row empty (x**2 beyond float64: all log-weights -inf),
    counted only as short rows, or sample uniformly (b absorbing the scores). In the limit
    the kernel is deterministic: by distance to its mode, which the draws now follow;
    candidates at equal distance come in either order, evenly."""
    negs = _sample(ns.SimANSSampler(k=5, **params), 400, n=5, seed=3)
    assert negs.stats.short_rows == 0 and negs.stats.padded == 0
    at = 0
    for g in groups:
        block = negs.ids[:, at : at + len(g)]
        assert (np.sort(block, axis=1) == sorted(g)).all(), (params, g)
        if len(g) == 2:
            share = (block[:, 0] == min(g)).mean()
            assert 0.4 < share < 0.6  # an even coin between the tied pair
        at += len(g)


def test_a_rounding_b_keeps_the_exact_distribution() -> None:
    """b = 1e17 rounds every x = s- - s+ + b to the same float64 (the kernel as written is
    then flat: uniform draws); relative to the mode, log w - log w* = -a (d - d*)(d + d* +
    2b) keeps the weights exp(-2ab (s- - s*)) = exp(-(s- - s*)) for a = 0.5e-17."""
    n_rows = 6000
    negs = _sample(ns.SimANSSampler(k=5, a=0.5e-17, b=1e17), n_rows, n=1, seed=5)
    w = np.exp(-(SCORES[0].astype(np.float64) - SCORES[0].min()))
    counts = _counts(negs.ids[:, 0])
    assert sps.chisquare(counts, n_rows * w / w.sum()).pvalue > 1e-3
    assert counts[-1] > 3 * counts[0]  # not uniform


@pytest.mark.parametrize(
    "params, match",
    [
        ({"temperature": 1e-300}, r"temperature must be within \[1e-250, 1e250\]"),
        ({"temperature": 1e260}, r"temperature must be within"),
        ({"b": 1e300}, r"b must be within \[-1e250, 1e250\]"),
        ({"b": -1e300}, r"b must be within"),
    ],
)
def test_parameters_beyond_float64_are_refused(params: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        ns.SimANSSampler(**params)
