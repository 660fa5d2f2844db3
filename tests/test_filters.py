from __future__ import annotations

import numpy as np
import pytest

import negsample as ns

IDS = np.array([[10, 11, 12, 13, 14, 15]])
SCORES = np.array([[0.95, 0.9, 0.8, 0.7, -0.2, -0.5]], dtype=np.float32)


def _keep(filters: ns.Filters, pos_score: float, positives: list[list[int]] | None = None):  # type: ignore[no-untyped-def]
    sampler = ns.TopKSampler(k=6, strategy="top")
    positives = positives or [[99]]
    negs = sampler.sample(
        IDS, SCORES, positives, n=6, positive_scores=[[pos_score]], filters=filters
    )
    return set(negs.ids[0][negs.ids[0] >= 0].tolist()), negs.stats


def test_absolute_margin() -> None:
    # keep s < 0.9 - 0.15 = 0.75
    kept, stats = _keep(ns.Filters(absolute_margin=0.15), pos_score=0.9)
    assert kept == {13, 14, 15}
    assert stats.removed["absolute_margin"] == 3


def test_relative_margin_positive_score() -> None:
    # keep s < 0.9 - 0.9 * 0.05 = 0.855
    kept, stats = _keep(ns.Filters(relative_margin=0.05), pos_score=0.9)
    assert kept == {12, 13, 14, 15}
    assert stats.removed["relative_margin"] == 2


def test_relative_margin_is_sign_safe() -> None:
    # s+ = -0.1: keep s < -0.1 - 0.1 * 0.05 = -0.105; the naive p * s+ = -0.095 would be wrong
    kept, _ = _keep(ns.Filters(relative_margin=0.05), pos_score=-0.1)
    assert kept == {14, 15}
    naive_threshold = 0.95 * -0.1
    assert naive_threshold > -0.1, "naive rule would keep negatives above the positive"


def test_score_caps_and_rank_window_counts() -> None:
    kept, stats = _keep(ns.Filters(max_score=0.9, min_score=-0.5, range_min=1), pos_score=1.0)
    # rank window drops rank 0 (10); max_score drops 11 (0.9 is not < 0.9); min_score drops 15
    assert kept == {12, 13, 14}
    assert stats.removed == {"positive": 0, "rank_window": 1, "max_score": 1, "min_score": 1}


def test_positive_removed_first_and_counted() -> None:
    sampler = ns.TopKSampler(k=5, strategy="top")
    negs = sampler.sample(IDS, SCORES, [[11, 13]], n=4)
    assert negs.ids.tolist() == [[10, 12, 14, 15]]
    assert negs.stats.removed["positive"] == 2


def test_filter_anchor_min_over_positives() -> None:
    f = ns.Filters(absolute_margin=0.0)
    sampler = ns.TopKSampler(k=6, strategy="top", on_shortfall="pad")
    negs = sampler.sample(IDS, SCORES, [[98, 99]], n=6, positive_scores=[[0.85, 0.75]], filters=f)
    # anchor "min" → s+ = 0.75: keep s < 0.75
    assert set(negs.ids[0][negs.ids[0] >= 0].tolist()) == {13, 14, 15}
    f_max = ns.Filters(absolute_margin=0.0, anchor="max")
    negs = sampler.sample(
        IDS, SCORES, [[98, 99]], n=6, positive_scores=[[0.85, 0.75]], filters=f_max
    )
    assert set(negs.ids[0][negs.ids[0] >= 0].tolist()) == {12, 13, 14, 15}


def test_margin_without_positive_score_is_clear() -> None:
    with pytest.raises(ValueError, match="no positive score is known"):
        ns.TopKSampler(k=6).sample(
            IDS, SCORES, [[99]], n=2, filters=ns.Filters(absolute_margin=0.1)
        )


def test_positive_score_looked_up_from_candidates() -> None:
    negs = ns.TopKSampler(k=6, strategy="top").sample(
        IDS, SCORES, [[12]], n=5, filters=ns.Filters(absolute_margin=0.0)
    )
    # s+ = 0.8 from the candidate list → keep s < 0.8
    assert set(negs.ids[0][negs.ids[0] >= 0].tolist()) == {13, 14, 15}


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"range_min": -1}, "range_min"),
        ({"range_min": 5, "range_max": 5}, "range_max"),
        ({"relative_margin": 1.5}, "relative_margin"),
        ({"relative_margin": -0.05}, "relative_margin"),
        ({"absolute_margin": float("nan")}, "absolute_margin must be finite"),
        ({"anchor": "random"}, "anchor must be one of"),
    ],
)
def test_bad_filter_parameters(kwargs: dict, msg: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=msg):
        ns.Filters(**kwargs)


def test_filters_in_mine_match_direct_computation() -> None:
    data = ns.make_synthetic(4000, 60, 16, seed=2)
    index = ns.NumpyIndex(data.corpus)
    f = ns.Filters(relative_margin=0.1)
    negs = ns.mine(data.queries, index, data.positives, ns.TopKSampler(k=100), n=5, filters=f)
    s_pos_min = np.array(
        [min(data.queries[i] @ data.corpus[p] for p in data.positives[i]) for i in range(60)]
    )
    limit = s_pos_min - np.abs(s_pos_min) * 0.1
    valid = negs.ids >= 0
    assert np.all(np.where(valid, negs.scores < limit[:, None] + 1e-6, True))
    assert negs.stats.removed["relative_margin"] > 0


def test_filters_refused_for_random_sampler() -> None:
    data = ns.make_synthetic(2000, 5, 8, seed=0)
    with pytest.raises(ValueError, match="score filters do not apply"):
        ns.mine(
            data.queries,
            ns.NumpyIndex(data.corpus),
            data.positives,
            ns.RandomSampler(),
            filters=ns.Filters(absolute_margin=0.1),
        )


# -- sentence-transformers' conventions (issue 13) -------------------------------------------


def test_relative_margin_is_sentence_transformers_convention() -> None:
    # ST: relative_margin=0.05 discards negatives scored above s+ - |s+| * 0.05
    for s_pos in (0.9, 0.3, -0.1, -0.6):
        thr = s_pos - abs(s_pos) * 0.05
        kept, _ = _keep(ns.Filters(relative_margin=0.05), pos_score=s_pos)
        expected = {int(i) for i, s in zip(IDS[0], SCORES[0], strict=True) if s < thr}
        assert kept == expected, s_pos
        assert thr < s_pos  # never above the positive, whatever its sign


def test_relative_margin_zero_discards_only_negatives_above_the_positive() -> None:
    kept, _ = _keep(ns.Filters(relative_margin=0.0), pos_score=0.8)
    assert kept == {13, 14, 15}  # 0.95, 0.9 are above 0.8; 0.8 itself is not < 0.8


def test_margin_is_a_deprecated_alias() -> None:
    with pytest.warns(DeprecationWarning, match="absolute_margin"):
        f = ns.Filters(margin=0.15)
    assert f == ns.Filters(absolute_margin=0.15)
    assert repr(f).endswith(
        "absolute_margin=0.15, relative_margin=None, max_score=None, min_score=None, anchor='min')"
    )
    assert ", margin=" not in repr(f)
    with pytest.raises(ValueError, match="not both"):
        ns.Filters(margin=0.1, absolute_margin=0.2)


def test_large_relative_margin_warns_about_the_convention(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="negsample"):
        ns.Filters(relative_margin=0.95)
    assert "relative_margin=0.05" in caplog.text


def test_filter_that_removes_every_candidate_warns_with_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = ns.make_synthetic(2000, 40, 16, seed=1)
    index = ns.NumpyIndex(data.corpus)
    # absolute_margin=5 on unit-scale scores leaves nothing for any query
    with caplog.at_level("WARNING", logger="negsample"):
        negs = ns.mine(
            data.queries,
            index,
            data.positives,
            ns.TopKSampler(k=50),
            n=3,
            filters=ns.Filters(absolute_margin=5.0),
        )
    assert negs.stats.emptied == {"absolute_margin": 40}
    assert (negs.ids == -1).all()
    msgs = [r.getMessage() for r in caplog.records if r.name.startswith("negsample")]
    assert len(msgs) == 1, msgs
    assert "40 of 40 queries" in msgs[0] and "absolute_margin 40" in msgs[0]


def test_emptied_counts_only_queries_left_with_nothing(caplog: pytest.LogCaptureFixture) -> None:
    # query 0: s+ = 0.9 keeps some; query 1: s+ = -0.9 keeps none (every score is above it)
    ids = np.vstack([IDS, IDS])
    sc = np.vstack([SCORES, SCORES])
    with caplog.at_level("WARNING", logger="negsample"):
        negs = ns.TopKSampler(k=6, strategy="top").sample(
            ids,
            sc,
            [[99], [99]],
            n=2,
            positive_scores=[[0.9], [-0.9]],
            filters=ns.Filters(max_score=0.92, relative_margin=0.05),
        )
    assert negs.stats.emptied == {"relative_margin": 1}
    assert "1 of 2 queries" in caplog.text
    assert negs.ids[1].tolist() == [-1, -1]


def test_no_warning_when_every_query_keeps_candidates(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="negsample"):
        _, stats = _keep(ns.Filters(relative_margin=0.05), pos_score=0.9)
    assert stats.emptied == {}
    assert caplog.records == []


# -- one rule engine for Filters and the teacher-score Margins (issue 18) ----------------------

_RULE_VALUES = [
    0.0,
    0.05,
    0.5,
    1.0,
    1.0000001,
    1.5,
    -0.05,
    -3,
    7,
    np.float32(0.25),
    np.float64(2.0),
    np.int64(3),
    float("nan"),
    float("inf"),
    -float("inf"),
    True,
    False,
    "0.1",
    [0.1],
    None,
]


def _accepts(cls: type, **kw: object) -> bool:
    try:
        cls(**kw)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "name", ["absolute_margin", "relative_margin", "max_score", "min_score", "anchor"]
)
def test_filters_and_margins_accept_and_refuse_the_same_values(name: str) -> None:
    from negsample.filters import ScoreRules
    from negsample.scoring import Margins

    values = [*_RULE_VALUES, "min", "max", "mean", "each", "random", "MIN", ""]
    verdicts = []
    for v in values:
        f, m, r = (_accepts(c, **{name: v}) for c in (ns.Filters, Margins, ScoreRules))
        assert f == m == r, (name, v, f, m)
        verdicts.append(f)
    # the test is not vacuous: each parameter accepts some values and refuses others
    assert any(verdicts) and not all(verdicts)
    if name == "relative_margin":
        ok = {repr(v) for v, a in zip(values, verdicts, strict=True) if a}
        assert ok == {"0.0", "0.05", "0.5", "1.0", "np.float32(0.25)", "None"}


def test_filters_and_margins_apply_the_same_rules() -> None:
    """The same settings keep the same candidates whether they filter the retriever's
    scores (Filters, through a sampler) or teacher scores (Margins), and both match the
    rules written out by hand."""
    from negsample.scoring import Margins

    rng = np.random.default_rng(0)
    rows, k = 40, 9
    s_pos = rng.normal(size=rows)
    s = rng.normal(size=(rows, k)).astype(np.float32)
    ids = np.arange(rows * k, dtype=np.int64).reshape(rows, k)
    for kw in (
        {"relative_margin": 0.05},
        {"absolute_margin": 0.1, "max_score": 1.0},
        {"min_score": -0.5, "relative_margin": 1.0},
        {"max_score": 0.3, "min_score": -0.3, "absolute_margin": -0.2, "relative_margin": 0.2},
    ):
        f, m = ns.Filters(**kw), Margins(**kw)  # type: ignore[arg-type]
        assert f.rules == m.rules
        sp = s_pos[:, None]
        want = np.ones(s.shape, bool)
        if "max_score" in kw:
            want &= s < kw["max_score"]
        if "min_score" in kw:
            want &= s > kw["min_score"]
        if "absolute_margin" in kw:
            want &= s < sp - kw["absolute_margin"]
        if "relative_margin" in kw:
            want &= s < sp - np.abs(sp) * kw["relative_margin"]
        assert 0 < want.sum() < want.size, kw
        keep, _ = m.keep(s, np.broadcast_to(sp, s.shape))
        assert (keep == want).all(), kw
        negs = ns.TopKSampler(k=k, strategy="top", on_shortfall="pad").sample(
            ids, s, [[10**6]] * rows, n=k, positive_scores=sp.tolist(), filters=f
        )
        kept = {int(i) for i in negs.ids.ravel() if i >= 0}
        assert kept == set(ids[want].tolist()), kw
        assert sum(v for r, v in negs.stats.removed.items() if r != "positive") == (~want).sum()


def test_filters_doctests() -> None:
    import doctest

    import negsample.filters

    result = doctest.testmod(negsample.filters, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= 2
