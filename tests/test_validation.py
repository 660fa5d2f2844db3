"""Bad input ends in a clear error naming the problem and the row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import negsample as ns


@pytest.fixture
def setup() -> tuple[np.ndarray, np.ndarray, ns.NumpyIndex]:
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((50, 8)).astype(np.float32)
    return corpus, corpus[:3].copy(), ns.NumpyIndex(corpus)


@pytest.mark.parametrize("bad, what", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_nan_or_inf_in_corpus_names_row(bad: float, what: str) -> None:
    corpus = np.ones((10, 4), np.float32)
    corpus[7, 2] = bad
    with pytest.raises(ValueError, match=f"corpus row 7 contains .*{what}"):
        ns.NumpyIndex(corpus)


@pytest.mark.parametrize("bad, what", [(np.nan, "NaN"), (-np.inf, "infinite")])
def test_nan_or_inf_in_queries_names_row(setup, bad: float, what: str) -> None:  # type: ignore[no-untyped-def]
    _, q, index = setup
    q[2, 0] = bad
    with pytest.raises(ValueError, match=f"queries row 2 contains .*{what}"):
        ns.mine(q, index, [[0], [1], [2]])


def test_dimension_mismatch(setup) -> None:  # type: ignore[no-untyped-def]
    _, q, index = setup
    with pytest.raises(ValueError, match="dimension 5, but the index has dimension 8"):
        ns.mine(q[:, :5], index, [[0], [1], [2]])


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, object])
def test_non_float_vectors_refused(dtype: type) -> None:
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        ns.NumpyIndex(np.ones((5, 3), dtype=dtype))


def test_empty_positives_names_query(setup) -> None:  # type: ignore[no-untyped-def]
    _, q, index = setup
    with pytest.raises(ValueError, match=r"query 1 has no positives \(1 queries in all\)"):
        ns.mine(q, index, [[0], [], [2]])


def test_positive_out_of_range_names_query(setup) -> None:  # type: ignore[no-untyped-def]
    _, q, index = setup
    with pytest.raises(ValueError, match=r"positives\[2\] holds id 50, out of range"):
        ns.mine(q, index, [[0], [1], [3, 50]])
    with pytest.raises(ValueError, match=r"positives\[0\] holds a negative id"):
        ns.mine(q, index, [[-4], [1], [3]])


def test_positive_count_mismatch(setup) -> None:  # type: ignore[no-untyped-def]
    _, q, index = setup
    with pytest.raises(ValueError, match="2 entries but there are 3 queries"):
        ns.mine(q, index, [[0], [1]])


def test_non_integer_positives(setup) -> None:  # type: ignore[no-untyped-def]
    _, q, index = setup
    with pytest.raises(TypeError, match="integer corpus row ids"):
        ns.mine(q, index, [[0.5], [1], [2]])


def test_n_larger_than_corpus(setup) -> None:  # type: ignore[no-untyped-def]
    _, q, index = setup
    with pytest.raises(ValueError, match="corpus has only 50 rows"):
        ns.mine(q, index, [[0], [1], [2]], sampler=ns.RandomSampler(), n=60)


def test_n_larger_than_window(setup) -> None:  # type: ignore[no-untyped-def]
    _, q, index = setup
    with pytest.raises(ValueError, match="holds 5 candidates, fewer than the n=7"):
        ns.mine(q, index, [[0], [1], [2]], sampler=ns.TopKSampler(k=5), n=7)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_bad_n(setup, n: object) -> None:  # type: ignore[no-untyped-def]
    _, q, index = setup
    with pytest.raises(ValueError, match="n must be a positive integer"):
        ns.mine(q, index, [[0], [1], [2]], n=n)  # type: ignore[arg-type]


def test_bad_seed(setup) -> None:  # type: ignore[no-untyped-def]
    _, q, index = setup
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\)"):
        ns.mine(q, index, [[0], [1], [2]], seed=-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        ns.mine(q, index, [[0], [1], [2]], seed="x")  # type: ignore[arg-type]


def test_not_a_matrix() -> None:
    with pytest.raises(ValueError, match="2-D array"):
        ns.NumpyIndex(np.ones(5, np.float32))


def test_cosine_zero_vector() -> None:
    x = np.ones((4, 3), np.float32)
    x[2] = 0
    with pytest.raises(ValueError, match="corpus row 2 has norm 0"):
        ns.NumpyIndex(x, metric="cosine")


def test_unknown_metric() -> None:
    with pytest.raises(ValueError, match="metric must be one of"):
        ns.NumpyIndex(np.ones((4, 3), np.float32), metric="l2")


def test_vectors_unknown_id(setup) -> None:  # type: ignore[no-untyped-def]
    _, _, index = setup
    with pytest.raises(ValueError, match=r"ids\[1\] = 50 is out of range"):
        index.vectors(np.array([3, 50]))


def test_direct_sample_bad_candidates() -> None:
    s = ns.TopKSampler(k=3)
    with pytest.raises(ValueError, match="row 0 holds id 4 twice"):
        s.sample([[4, 4, 1, 2]], [[0.9, 0.8, 0.7, 0.6]], [[9]], n=2)
    with pytest.raises(ValueError, match=r"row 0, column 1 is nan"):
        s.sample([[4, 5, 1, 2]], [[0.9, np.nan, 0.7, 0.6]], [[9]], n=2)
    with pytest.raises(ValueError, match="shape"):
        s.sample([[4, 5, 1, 2]], [[0.9, 0.7, 0.6]], [[9]], n=2)
    with pytest.raises(ValueError, match="use -1 for padding"):
        s.sample([[4, -3, 1, 2]], [[0.9, 0.8, 0.7, 0.6]], [[9]], n=2)


def test_torch_tensor_input() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((40, 6)).astype(np.float32)
    a = ns.mine(
        torch.from_numpy(corpus[:4]),
        ns.NumpyIndex(torch.from_numpy(corpus)),
        [[0], [1], [2], [3]],
        n=3,
        seed=1,
    )
    b = ns.mine(corpus[:4], ns.NumpyIndex(corpus), [[0], [1], [2], [3]], n=3, seed=1)
    np.testing.assert_array_equal(a.ids, b.ids)


# -- values that overflow float32 (issue 20, item 3) -------------------------------------------
def _index_makers() -> list:  # type: ignore[type-arg]
    makers = [lambda x: ns.NumpyIndex(x), lambda x: ns.build_index(x, "exact")]
    try:
        import faiss  # noqa: F401

        makers.append(lambda x: ns.FaissIndex(x, "Flat"))
    except ImportError:  # pragma: no cover - faiss is a test dependency
        pass
    try:
        import torch  # noqa: F401

        makers.append(lambda x: ns.TorchIndex(x, device="cpu"))
    except ImportError:  # pragma: no cover
        pass
    return makers


@pytest.mark.parametrize("make", _index_makers())
def test_float64_beyond_float32_in_the_corpus_names_the_row(make) -> None:  # type: ignore[no-untyped-def]
    """A float64 1e39 passed validation and became inf in the cast: exact search returned
    -1 holes. Every index constructor refuses it, naming the row."""
    corpus = np.random.default_rng(0).standard_normal((40, 4))
    corpus[17, 1] = -1e39
    with pytest.raises(ValueError, match=r"corpus row 17 holds .*beyond float32's range"):
        make(corpus)


@pytest.mark.parametrize("make", _index_makers())
def test_a_norm_whose_products_overflow_names_the_row(make) -> None:  # type: ignore[no-untyped-def]
    corpus = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
    corpus[23] = 3e19  # each value fits float32; |d|^2 and the scores do not
    with pytest.raises(ValueError, match=r"corpus row 23 has .*squared norm"):
        make(corpus)


def test_queries_beyond_float32_are_refused_everywhere(setup) -> None:  # type: ignore[no-untyped-def]
    _, q, index = setup
    q64 = q.astype(np.float64)
    q64[1, 3] = 5e38
    with pytest.raises(ValueError, match=r"queries row 1 holds 5e\+38, beyond float32's range"):
        ns.mine(q64, index, [[0], [1], [2]], n=2)
    res = index.search(q, 10)
    with pytest.raises(ValueError, match=r"queries row 1 holds 5e\+38"):
        ns.TopKSampler(k=10).sample(res.ids, res.scores, [[0], [1], [2]], n=2, queries=q64,
                                    index=index)  # fmt: skip
    with pytest.raises(ValueError, match=r"queries row 1 holds"):
        index.search(q64, 3)


def test_scores_beyond_float32_are_refused_with_their_place() -> None:
    ids = np.array([[5, 3, 9], [1, 2, 4]])
    scores = np.array([[0.9, 0.8, 0.7], [0.5, 4e38, 0.1]])
    with pytest.raises(ValueError, match=r"candidate scores row 1, column 1 is 4e\+38, beyond"):
        ns.TopKSampler(k=3).sample(ids, scores, [[3], [2]], n=1)
    ok = np.array([[0.9, 0.8, 0.7], [0.5, 0.4, 0.1]])
    with pytest.raises(ValueError, match=r"positive_scores of query 1 \(positive 8\) is 1e\+39"):
        ns.SimANSSampler(k=3).sample(ids, ok, [[3], [8]], n=1, positive_scores=[[0.8], [1e39]])


@settings(max_examples=60)
@given(
    n=st.integers(1, 200),
    dim=st.integers(1, 40),
    data=st.data(),
    kind=st.sampled_from(["nan", "inf", "cast", "norm"]),
)
def test_the_first_bad_row_is_named(n: int, dim: int, data: st.DataObject, kind: str) -> None:
    """Hypothesis: whatever the shape and the value, the first row that cannot be used as
    float32 is the one named, with its reason."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, dim))
    rows = sorted(set(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3))))
    for r in rows:
        col = data.draw(st.integers(0, dim - 1))
        if kind == "nan":
            x[r, col] = np.nan
        elif kind == "inf":
            x[r, col] = -np.inf
        elif kind == "cast":
            x[r, col] = data.draw(st.floats(3.41e38, 1e300)) * data.draw(st.sampled_from([1, -1]))
        else:  # each value within float32's range, the squared norm beyond it
            x[r] = data.draw(st.floats(1.9e19 / np.sqrt(dim), 1e38))
    reason = {"nan": "contains NaN", "inf": "contains an infinite value",
              "cast": "beyond float32's range", "norm": "squared norm"}[kind]  # fmt: skip
    for arr in (x, x.astype(np.float32) if kind == "norm" else x):
        with pytest.raises(ValueError, match=rf"vectors row {rows[0]} .*{reason}"):
            ns._validate.check_finite(arr, "vectors")
