"""The quick sampler probe and the retrieval metrics it scores with."""

from __future__ import annotations

import numpy as np
import pytest

import negsample as ns
from negsample.probe import IN_BATCH, UNTRAINED, ProbeResult, probe, retrieval_metrics


def test_retrieval_metrics_hand_computed() -> None:
    ranked = [[3, 1, 2, 0], [0, 1, 2, 3], [5, 6, 7, 8]]
    positives = [[1], [2, 3], [4]]
    m = retrieval_metrics(ranked, positives, k_ndcg=3, k_mrr=3, k_recall=2)
    # q0: hit at rank 2 -> nDCG 1/log2(3), RR 1/2, R@2 1
    # q1: hits at ranks 3 (and 4) -> DCG 1/log2(4) = 0.5, ideal 1 + 1/log2(3); RR 1/3; R@2 0
    # q2: no hit
    ndcg = (1 / np.log2(3) + 0.5 / (1 + 1 / np.log2(3)) + 0) / 3
    assert m["ndcg@3"] == pytest.approx(ndcg)
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1 / 3) / 3)
    assert m["recall@2"] == pytest.approx(1 / 3)


def test_retrieval_metrics_needs_a_relevant_document() -> None:
    with pytest.raises(ValueError):
        retrieval_metrics([[0, 1]], np.array([[-1]]))


@pytest.fixture(scope="module")
def synth() -> ns.SyntheticRetrieval:
    return ns.make_synthetic(3000, 200, 16, seed=3)


def _run(synth: ns.SyntheticRetrieval, seeds: tuple[int, ...]) -> ProbeResult:
    samplers = {"topk": ns.TopKSampler(k=50), "random": ns.RandomSampler()}
    return probe(
        samplers,
        synth.queries[:150],
        synth.corpus,
        synth.positives[:150],
        synth.queries[150:],
        synth.positives[150:],
        n=3,
        seeds=seeds,
        epochs=2,
        batch_size=32,
    )


def test_probe_is_deterministic_for_a_seed(synth: ns.SyntheticRetrieval) -> None:
    a, b = _run(synth, (0, 1)), _run(synth, (0, 1))
    assert [r.per_seed for r in a.rows] == [r.per_seed for r in b.rows]
    assert a.ranking == b.ranking
    labels = [r.label for r in a.rows]
    assert labels == [UNTRAINED, "topk", "random", IN_BATCH]
    assert sorted(a.ranking) == ["random", "topk"]
    # different seeds give different training runs
    c = _run(synth, (2,))
    assert c.rows[1].per_seed[0] != a.rows[1].per_seed[0]


def test_probe_training_helps_and_ranks_by_ndcg(synth: ns.SyntheticRetrieval) -> None:
    # queries seen through a fixed linear distortion: a trained map can undo part of it
    rng = np.random.default_rng(0)
    distort = np.eye(16) + 0.15 * rng.standard_normal((16, 16))
    q = (synth.queries @ distort).astype(np.float32)
    res = probe(
        {"topk": ns.TopKSampler(k=50), "random": ns.RandomSampler()},
        q[:150],
        synth.corpus,
        synth.positives[:150],
        q[150:],
        synth.positives[150:],
        n=3,
        seeds=(0,),
        epochs=2,
        batch_size=32,
    )
    by = {r.label: r for r in res.rows}
    # the training signal is real: a trained map beats the identity on held-out queries
    assert by["topk"].mean["ndcg@10"] > by[UNTRAINED].mean["ndcg@10"]
    assert res.ranking == sorted(["topk", "random"], key=lambda k: -by[k].mean["ndcg@10"])
    assert "ndcg@10" in res.table()


def test_probe_rejects_bad_input(synth: ns.SyntheticRetrieval) -> None:
    with pytest.raises(ValueError, match="at least one sampler"):
        probe({}, synth.queries, synth.corpus, synth.positives, synth.queries, synth.positives)
    with pytest.raises(TypeError):
        probe(
            {"x": "topk"},  # type: ignore[dict-item]
            synth.queries,
            synth.corpus,
            synth.positives,
            synth.queries,
            synth.positives,
        )
