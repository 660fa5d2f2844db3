"""Hypothesis strategies shared by the test suite."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st


@dataclass
class Problem:
    corpus: np.ndarray
    queries: np.ndarray
    positives: list[list[int]]
    n: int
    seed: int
    exclude: list[list[int]] | None = None


@st.composite
def problems(
    draw: st.DrawFn, max_docs: int = 120, max_queries: int = 10, dims: tuple[int, int] = (2, 8)
) -> Problem:
    """A small retrieval problem: corpus, queries, ragged positives, n and a seed.

    Vectors come from a seeded generator (Hypothesis shrinks the seed, not the floats);
    some queries are near copies of their positives so positives rank high.
    """
    n_docs = draw(st.integers(12, max_docs))
    n_q = draw(st.integers(1, max_queries))
    dim = draw(st.integers(*dims))
    data_seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(data_seed)
    corpus = rng.standard_normal((n_docs, dim)).astype(np.float32)
    if draw(st.booleans()):  # near ties: exact and near copies of a few vectors
        n_copy = draw(st.integers(1, n_docs // 2))
        src = rng.integers(0, n_docs, n_copy)
        dst = rng.choice(n_docs, n_copy, replace=False)
        jitter = draw(st.sampled_from([0.0, 1e-7, 1e-6]))
        corpus[dst] = corpus[src] + jitter * rng.standard_normal((n_copy, dim)).astype(np.float32)
    positives = [
        sorted(set(rng.choice(n_docs, size=draw(st.integers(1, 4)), replace=False).tolist()))
        for _ in range(n_q)
    ]
    queries = np.stack(
        [corpus[p[0]] + 0.3 * rng.standard_normal(dim).astype(np.float32) for p in positives]
    ).astype(np.float32)
    n = draw(st.integers(1, min(6, n_docs - 5)))
    seed = draw(st.integers(0, 2**64 - 1))
    exclude = None
    if draw(st.booleans()):
        exclude = [
            sorted(set(rng.choice(n_docs, size=draw(st.integers(0, 3)), replace=False).tolist()))
            for _ in range(n_q)
        ]
    return Problem(corpus, queries, positives, n, seed, exclude)


@st.composite
def tiny_problems(draw: st.DrawFn, max_docs: int = 16, max_queries: int = 5) -> Problem:
    """A retrieval problem on a corpus of 3 to ``max_docs`` rows, with ``n`` anywhere up to
    ``n_docs - 1``: most rows run short of candidates (every ``on_shortfall`` path runs)."""
    n_docs = draw(st.integers(3, max_docs))
    n_q = draw(st.integers(1, max_queries))
    dim = draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    corpus = rng.standard_normal((n_docs, dim)).astype(np.float32)
    if draw(st.booleans()):  # exact ties
        corpus[rng.integers(0, n_docs)] = corpus[0]
    positives = [
        sorted(
            set(rng.choice(n_docs, size=draw(st.integers(1, min(4, n_docs - 1))), replace=False))
        )
        for _ in range(n_q)
    ]
    queries = np.stack(
        [corpus[p[0]] + 0.3 * rng.standard_normal(dim).astype(np.float32) for p in positives]
    ).astype(np.float32)
    n = draw(st.integers(1, n_docs - 1))
    exclude = None
    if draw(st.booleans()):
        exclude = [
            sorted(set(rng.choice(n_docs, size=draw(st.integers(0, 2)), replace=False).tolist()))
            for _ in range(n_q)
        ]
    return Problem(
        corpus,
        queries,
        [[int(i) for i in p] for p in positives],
        n,
        draw(st.integers(0, 2**64 - 1)),
        exclude,
    )


@st.composite
def small_samplers(draw: st.DrawFn, name: str, on_shortfall: str) -> object:
    """A built-in sampler ``name`` with a small, drawn search depth (and window / stages),
    or its defaults (a depth far beyond a tiny corpus)."""
    import negsample as ns

    if draw(st.booleans()):
        return ns.get_sampler(name, on_shortfall=on_shortfall)
    k = draw(st.integers(1, 20))
    if name == "topk":
        rmin = draw(st.integers(0, k - 1))
        rmax = draw(st.one_of(st.none(), st.integers(rmin + 1, k)))
        strategy = draw(st.sampled_from(["random", "top"]))
        return ns.TopKSampler(
            k=k, range_min=rmin, range_max=rmax, strategy=strategy, on_shortfall=on_shortfall
        )
    if name == "simans":
        return ns.SimANSSampler(k=k, on_shortfall=on_shortfall)
    if name == "trisampler":
        m = draw(st.one_of(st.none(), st.integers(1, k)))
        variant = draw(st.sampled_from(["T1", "T2"]))
        return ns.TriSampler(k=k, m=m, variant=variant, on_shortfall=on_shortfall)
    if name == "resa2":
        k1p = draw(st.integers(1, k))
        k2 = draw(st.integers(1, k1p))
        return ns.ReSa2Sampler(k1=k, k1_prime=k1p, k2=k2, on_shortfall=on_shortfall)
    if name == "random":
        return ns.RandomSampler(on_shortfall=on_shortfall)
    return ns.get_sampler(name, on_shortfall=on_shortfall)  # a plugin: its defaults


@dataclass
class ReuseDraws:
    """Draws of several rows, in draw order (``-1`` after a row's last), for the reuse cap."""

    ids: np.ndarray
    query_index: np.ndarray
    anchor_ids: np.ndarray
    n: int
    max_reuse: int
    seed: int


@st.composite
def reuse_draws(draw: st.DrawFn, max_rows: int = 24, max_draws: int = 8) -> ReuseDraws:
    """Rows of distinct draws over few documents (so that documents are wanted by many
    rows), some rows short, some queries with several rows (one per anchor positive)."""
    rows = draw(st.integers(1, max_rows))
    width = draw(st.integers(1, max_draws))
    n_docs = draw(st.integers(width, 3 * width + 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    ids = np.full((rows, width), -1, np.int64)
    for r in range(rows):
        k = int(rng.integers(0, width + 1)) if draw(st.booleans()) else width
        # popular documents first: a skewed choice without replacement
        w = 1.0 / np.arange(1, n_docs + 1) ** 1.2
        ids[r, :k] = rng.choice(n_docs, size=k, replace=False, p=w / w.sum())
    n_queries = draw(st.integers(1, rows))
    qi = np.sort(rng.integers(0, n_queries, rows)).astype(np.int64)
    ai = np.full(rows, -1, np.int64)
    for q in np.unique(qi):  # several rows of one query: distinct anchors
        at = np.flatnonzero(qi == q)
        if at.size > 1:
            ai[at] = 1000 + np.arange(at.size)
    return ReuseDraws(
        ids,
        qi,
        ai,
        draw(st.integers(1, width)),
        draw(st.integers(1, 4)),
        draw(st.integers(0, 2**64 - 1)),
    )
