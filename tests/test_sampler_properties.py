"""One Hypothesis suite over every registered sampler (docs/algorithms.md, the contract every
sampler shares)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import negsample as ns
from tests.strategies import Problem, problems, small_samplers, tiny_problems

SAMPLERS = ns.available_samplers()


def _mine(p: Problem, name: str, index: ns.Index | None = None, **kw: object) -> ns.Negatives:
    sampler = ns.get_sampler(name)
    return ns.mine(
        p.queries,
        ns.NumpyIndex(p.corpus) if index is None else index,
        p.positives,
        sampler=sampler,
        n=p.n,
        seed=p.seed,
        exclude=p.exclude,
        **kw,
    )  # type: ignore[arg-type]


def _exact_indexes(p: Problem, block: int) -> list[ns.Index]:
    out: list[ns.Index] = [ns.NumpyIndex(p.corpus, search_block=block)]
    try:
        out.append(ns.FaissIndex(p.corpus, "Flat", search_block=block))
    except ImportError:  # pragma: no cover - faiss is a test dependency
        pass
    return out


@pytest.mark.parametrize("name", SAMPLERS)
@given(p=problems(), chunk=st.integers(1, 4))
def test_sampler_contract(name: str, p: Problem, chunk: int) -> None:
    negs = _mine(p, name)
    ids = negs.ids
    # shape: n columns; rows belong to known queries, in order
    assert ids.shape[1] == p.n and ids.dtype == np.int64 and negs.scores.dtype == np.float32
    assert ids.shape[0] == len(negs.query_index) == len(negs.anchor_ids)
    assert np.all(np.diff(negs.query_index) >= 0)
    assert set(negs.query_index.tolist()) <= set(range(len(p.positives)))
    # ids valid, -1 only as padding, scores NaN exactly there
    assert np.all((ids >= -1) & (ids < len(p.corpus)))
    assert np.array_equal(np.isnan(negs.scores), ids < 0)
    for row, q in zip(ids, negs.query_index, strict=True):
        got = row[row >= 0]
        assert len(set(got.tolist())) == len(got), "duplicate negative in a row"
        assert not set(got.tolist()) & set(p.positives[q]), "a positive was sampled"
        if p.exclude is not None:
            assert not set(got.tolist()) & set(p.exclude[q]), "an excluded id was sampled"
    # scores are the real s(q, d-)
    valid = ids >= 0
    expect = np.einsum("rd,rkd->rk", p.queries[negs.query_index], p.corpus[np.maximum(ids, 0)])
    np.testing.assert_allclose(negs.scores[valid], expect[valid], rtol=1e-4, atol=1e-4)
    # counted: every missing slot is a padded one
    assert negs.stats.padded == int((ids < 0).sum())
    # same seed, same output; chunking does not change it
    again = _mine(p, name, chunk_size=chunk)
    np.testing.assert_array_equal(again.ids, ids)
    np.testing.assert_array_equal(again.scores, negs.scores)
    np.testing.assert_array_equal(again.query_index, negs.query_index)


@pytest.mark.parametrize("name", SAMPLERS)
@given(
    p=problems(max_docs=400, max_queries=40, dims=(8, 72)),
    chunk=st.integers(1, 9),
    block=st.sampled_from([1, 3, 16, 64]),
    cut=st.floats(0.0, 1.0),
)
def test_exact_indexes_are_invariant_to_chunks_and_slices(
    name: str, p: Problem, chunk: int, block: int, cut: float
) -> None:
    """Byte-identical output whatever the sampling chunk or the slice mined (query_offset),
    with NumpyIndex and faiss Flat, on data with exact and near ties."""
    n_q = len(p.positives)
    a = int(cut * n_q)
    for index in _exact_indexes(p, block):
        full = _mine(p, name, index=index)
        chunked = _mine(p, name, index=index, chunk_size=chunk)
        for got in (chunked,):
            np.testing.assert_array_equal(got.ids, full.ids)
            np.testing.assert_array_equal(got.scores, full.scores)
        if a < n_q:
            part = ns.mine(
                p.queries[a:],
                index,
                p.positives[a:],
                sampler=ns.get_sampler(name),
                n=p.n,
                seed=p.seed,
                exclude=None if p.exclude is None else p.exclude[a:],
                query_offset=a,
            )
            rows = full.query_index >= a
            np.testing.assert_array_equal(part.ids, full.ids[rows])
            np.testing.assert_array_equal(part.scores, full.scores[rows])
            np.testing.assert_array_equal(part.query_index, full.query_index[rows])


@pytest.mark.parametrize("policy", ns.samplers.base.SHORTFALL_POLICIES)
@pytest.mark.parametrize("name", SAMPLERS)
@given(p=tiny_problems(), data=st.data())
def test_every_shortfall_policy_on_tiny_corpora(
    name: str, policy: str, p: Problem, data: st.DataObject
) -> None:
    """Every sampler x every ``on_shortfall`` policy on corpora of 3 to 16 rows, where most
    rows run short: an ``n`` the region can never hold is refused before any work, and
    otherwise the output keeps the contract and its counters add up (issue 20, item 5:
    ``on_shortfall="fill"`` used to raise IndexError when nothing lay outside the region)."""
    sampler = data.draw(small_samplers(name, policy))
    index = ns.NumpyIndex(p.corpus)
    limit = sampler.max_n
    if limit is not None and p.n > limit:
        with pytest.raises(ValueError, match=rf"\b{limit}\b.*n={p.n}\b"):
            ns.mine(p.queries, index, p.positives, sampler=sampler, n=p.n, seed=p.seed)
        return
    negs = ns.mine(
        p.queries, index, p.positives, sampler=sampler, n=p.n, seed=p.seed, exclude=p.exclude
    )
    ids, st_ = negs.ids, negs.stats
    assert ids.shape == (st_.n_rows, p.n)
    assert np.array_equal(np.isnan(negs.scores), ids < 0)
    for row, q in zip(ids, negs.query_index, strict=True):
        got = row[row >= 0].tolist()
        assert len(set(got)) == len(got), "duplicate negative in a row"
        assert not set(got) & set(p.positives[q]), "a positive was sampled"
        assert p.exclude is None or not set(got) & set(p.exclude[q]), "an excluded id"
    assert st_.padded == int((ids < 0).sum())
    short_out = int((ids < 0).any(axis=1).sum())
    assert short_out <= st_.short_rows
    if policy == "pad":
        assert st_.filled == 0 and st_.dropped_rows == 0
    if policy == "drop":
        assert short_out == 0 and st_.dropped_rows == st_.short_rows
    if policy == "fill" and isinstance(sampler, ns.TopKSampler):
        # every valid candidate within the search depth can fill a short row
        for row, q in zip(ids, negs.query_index, strict=True):
            banned = set(p.positives[q]) | set(p.exclude[q] if p.exclude else [])
            free = len(p.corpus) - len(banned)
            assert int((row >= 0).sum()) == min(p.n, free, sampler.k)


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_repr_round_trips(name: str) -> None:
    sampler = ns.get_sampler(name)
    assert ns.sampler_from_string(repr(sampler)) == sampler


@pytest.mark.parametrize("name", SAMPLERS)
def test_different_seeds_differ(name: str) -> None:
    data = ns.make_synthetic(3000, 40, 16, seed=3)
    index = ns.NumpyIndex(data.corpus)
    a = ns.mine(data.queries, index, data.positives, sampler=ns.get_sampler(name), seed=1)
    b = ns.mine(data.queries, index, data.positives, sampler=ns.get_sampler(name), seed=2)
    assert not np.array_equal(a.ids, b.ids)


# -- the same contract over TorchIndex (issue 10; kept apart from the suite above) ---------------
@pytest.mark.parametrize("name", SAMPLERS)
@settings(max_examples=8)
@given(
    p=problems(max_docs=400, max_queries=40, dims=(8, 72)),
    chunk=st.integers(1, 9),
    block=st.sampled_from([1, 3, 16, 64]),
    cut=st.floats(0.0, 1.0),
)
def test_sampler_contract_torch_index(
    name: str, p: Problem, chunk: int, block: int, cut: float
) -> None:
    pytest.importorskip("torch", reason="torch not installed (pip install negsample[torch])")
    index = ns.TorchIndex(p.corpus, device="cpu", search_block=block)
    negs = _mine(p, name, index=index)
    ids = negs.ids
    assert ids.shape[1] == p.n and ids.dtype == np.int64 and negs.scores.dtype == np.float32
    assert np.all((ids >= -1) & (ids < len(p.corpus)))
    assert np.array_equal(np.isnan(negs.scores), ids < 0)
    for row, q in zip(ids, negs.query_index, strict=True):
        got = row[row >= 0]
        assert len(set(got.tolist())) == len(got), "duplicate negative in a row"
        assert not set(got.tolist()) & set(p.positives[q]), "a positive was sampled"
        if p.exclude is not None:
            assert not set(got.tolist()) & set(p.exclude[q]), "an excluded id was sampled"
    valid = ids >= 0
    expect = np.einsum("rd,rkd->rk", p.queries[negs.query_index], p.corpus[np.maximum(ids, 0)])
    np.testing.assert_allclose(negs.scores[valid], expect[valid], rtol=1e-4, atol=1e-4)
    assert negs.stats.padded == int((ids < 0).sum())
    # byte-identical whatever the sampling chunk or the slice mined (fixed, padded blocks)
    again = _mine(p, name, index=index, chunk_size=chunk)
    np.testing.assert_array_equal(again.ids, ids)
    np.testing.assert_array_equal(again.scores, negs.scores)
    a = int(cut * len(p.positives))
    if a < len(p.positives):
        part = ns.mine(
            p.queries[a:],
            index,
            p.positives[a:],
            sampler=ns.get_sampler(name),
            n=p.n,
            seed=p.seed,
            exclude=None if p.exclude is None else p.exclude[a:],
            query_offset=a,
        )
        rows = negs.query_index >= a
        np.testing.assert_array_equal(part.ids, ids[rows])
        np.testing.assert_array_equal(part.scores, negs.scores[rows])
