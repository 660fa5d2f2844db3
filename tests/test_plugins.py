"""The extension contract, exercised from outside the package (tests/plugins/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from tests.plugins.samplers import HalfWindow, SamplesPositives, UniformWindow


@pytest.fixture(scope="module")
def data() -> ns.SyntheticRetrieval:
    return ns.make_synthetic(n_docs=1500, n_queries=40, dim=16, seed=0)


def test_stream_is_public() -> None:
    from negsample._rng import Stream as private

    assert ns.Stream is ns.samplers.Stream is private
    assert ns.Stream.USER > max(ns.Stream.CORPUS, ns.Stream.FINAL)


def test_a_protocol_sampler_mines_like_the_builtin(data: ns.SyntheticRetrieval) -> None:
    """A sampler that does not subclass BaseSampler goes through mine(), with the same
    draws as the same rule written as a TopKSampler window (up to its stream)."""
    sampler = UniformWindow(lo=5, hi=25)
    assert isinstance(sampler, ns.Sampler) and not isinstance(sampler, ns.BaseSampler)
    index = ns.NumpyIndex(data.corpus)
    negs = ns.mine(data.queries, index, data.positives, sampler=sampler, n=6, seed=3)
    assert negs.ids.shape == (40, 6) and negs.stats.short_rows == 0
    ref = ns.mine(data.queries, index, data.positives, sampler=ns.TopKSampler(k=25, strategy="top"),
                  n=25, seed=3)  # fmt: skip
    for row, window in zip(negs.ids, ref.ids[:, 5:25], strict=True):
        assert set(row.tolist()) <= set(window.tolist())
    chunked = ns.mine(data.queries, index, data.positives, sampler=sampler, n=6, seed=3,
                      chunk_size=7)  # fmt: skip
    np.testing.assert_array_equal(chunked.ids, negs.ids)
    # candidates you already have: the same rows through sample_candidates
    res = index.search(data.queries, 40)
    direct = ns.samplers.base.sample_candidates(
        sampler, res.ids, res.scores, data.positives, n=6, seed=3
    )
    np.testing.assert_array_equal(direct.ids, negs.ids)


def test_the_region_refuses_n_before_any_work(data: ns.SyntheticRetrieval, tmp_path: Path) -> None:
    """n=70 from a 45-wide region: refused by mine(), mine_resumable() and sample()
    before any work (it used to run, with every row short)."""
    index = ns.NumpyIndex(data.corpus)
    for sampler in (HalfWindow(k=90), UniformWindow(lo=45, hi=90)):
        assert ns.samplers.region_size_of(sampler) == 45
        with pytest.raises(ValueError, match=r"45 candidates per query.*n=70"):
            ns.mine(data.queries, index, data.positives, sampler=sampler, n=70)
        work = tmp_path / type(sampler).__name__
        with pytest.raises(ValueError, match="n=70"):
            ns.mine_resumable(data.queries, index, data.positives, sampler, n=70, work_dir=work)
        assert not work.exists() and not work.with_name(work.name + ".lock").exists()
        res = index.search(data.queries[:2], 100)
        with pytest.raises(ValueError, match="n=70"):
            ns.samplers.base.sample_candidates(
                sampler, res.ids, res.scores, data.positives[:2], n=70
            )
    assert HalfWindow(k=90).max_n == 45
    negs = ns.mine(data.queries, index, data.positives, sampler=HalfWindow(k=90), n=45, seed=0)
    assert negs.stats.short_rows <= 40


def test_every_builtin_region(data: ns.SyntheticRetrieval) -> None:
    cases = [
        (ns.TopKSampler(k=50, range_min=10, range_max=30), 20),
        (ns.TopKSampler(k=50, range_min=10), 40),
        (ns.SimANSSampler(k=40), 40),
        (ns.TriSampler(k=40, m=12), 12),
        (ns.TriSampler(k=40), 20),
        (ns.ReSa2Sampler(k1=100, k1_prime=50, k2=20), 20),
        (ns.RandomSampler(), None),
    ]
    for sampler, region in cases:
        assert sampler.region_size == region == sampler.max_n
        if region is not None:
            sampler.check_n(region)
            with pytest.raises(ValueError, match=str(region)):
                sampler.check_n(region + 1)


def test_mine_checks_what_a_protocol_sampler_returns(data: ns.SyntheticRetrieval) -> None:
    index = ns.NumpyIndex(data.corpus)
    with pytest.raises(RuntimeError, match=r"SamplesPositives\.sample_batch returned a positive"):
        ns.mine(data.queries, index, data.positives, sampler=SamplesPositives(), n=3)


def test_mine_names_what_a_non_sampler_lacks(data: ns.SyntheticRetrieval) -> None:
    class NoBatch:
        depth = 10

    with pytest.raises(TypeError, match="NoBatch lacks sample_batch"):
        ns.mine(data.queries, ns.NumpyIndex(data.corpus), data.positives, sampler=NoBatch())  # type: ignore[arg-type]


def test_resumable_with_a_protocol_sampler(data: ns.SyntheticRetrieval, tmp_path: Path) -> None:
    index = ns.NumpyIndex(data.corpus)
    sampler = UniformWindow(lo=0, hi=30)
    a = ns.mine_resumable(data.queries, index, data.positives, sampler, n=4, work_dir=tmp_path / "w",
                          chunk_size=16)  # fmt: skip
    b = ns.mine(data.queries, index, data.positives, sampler=sampler, n=4)
    np.testing.assert_array_equal(a.ids, b.ids)
