"""``mine(query_offset=...)``: mining query slices gives the same result as one call."""

from __future__ import annotations

import numpy as np
import pytest

import negsample as ns


@pytest.mark.parametrize("sampler", [ns.TopKSampler(k=30), ns.RandomSampler()])
def test_slices_with_offset_match_one_call(sampler: ns.BaseSampler) -> None:
    data = ns.make_synthetic(2000, 60, 16, seed=3)
    index = ns.NumpyIndex(data.corpus)
    whole = ns.mine(data.queries, index, data.positives, sampler=sampler, n=5, seed=7)
    parts = [
        ns.mine(
            data.queries[a:b],
            index,
            data.positives[a:b],
            sampler=sampler,
            n=5,
            seed=7,
            query_offset=a,
        )
        for a, b in [(0, 17), (17, 40), (40, 60)]
    ]
    np.testing.assert_array_equal(whole.ids, np.concatenate([p.ids for p in parts]))
    np.testing.assert_array_equal(whole.query_index, np.concatenate([p.query_index for p in parts]))


def test_bad_offset() -> None:
    data = ns.make_synthetic(500, 5, 8, seed=0)
    index = ns.NumpyIndex(data.corpus)
    with pytest.raises(ValueError, match="query_offset"):
        ns.mine(data.queries, index, data.positives, query_offset=-1)
