from __future__ import annotations

import re
from collections.abc import Callable
from importlib.util import find_spec

import numpy as np
import pytest

import negsample as ns
from negsample.index.numpy_index import topk_merge

_HAS_TORCH = find_spec("torch") is not None

faiss = pytest.importorskip(
    "faiss", reason="faiss-cpu not installed (pip install negsample[faiss])"
)


def _data(n: int = 3000, d: int = 24, nq: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, d)).astype(np.float32),
        rng.standard_normal((nq, d)).astype(np.float32),
    )


def _brute(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q.astype(np.float64) @ x.astype(np.float64).T
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, ids, axis=1), ids


@pytest.mark.parametrize("metric", ["ip", "cosine"])
@pytest.mark.parametrize("chunk", [7, 1000, 100_000])
def test_numpy_index_is_exact(metric: str, chunk: int) -> None:
    x, q = _data()
    index = ns.NumpyIndex(x, metric=metric, chunk_size=chunk, query_block=16)
    res = index.search(q, 25)
    xx, qq = (x, q)
    if metric == "cosine":
        xx = x / np.linalg.norm(x, axis=1, keepdims=True)
        qq = q / np.linalg.norm(q, axis=1, keepdims=True)
    s, ids = _brute(xx, qq, 25)
    np.testing.assert_array_equal(res.ids, ids)
    np.testing.assert_allclose(res.scores, s, rtol=1e-5, atol=1e-5)
    assert res.ids.dtype == np.int64 and res.scores.dtype == np.float32


def test_numpy_index_k_larger_than_corpus_pads() -> None:
    x, q = _data(n=5)
    res = ns.NumpyIndex(x).search(q[:2], 8)
    assert res.ids.shape == (2, 8)
    assert np.all(res.ids[:, 5:] == -1) and np.all(np.isneginf(res.scores[:, 5:]))
    assert sorted(res.ids[0, :5].tolist()) == [0, 1, 2, 3, 4]


def test_topk_merge_breaks_ties_by_id() -> None:
    s = np.array([[1.0, 2.0, 2.0, 2.0]], dtype=np.float32)
    i = np.array([[9, 7, 3, 5]])
    _s2, i2 = topk_merge(s, i, 3)
    assert i2.tolist() == [[3, 5, 7]]


def test_numpy_index_float16_memmap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, q = _data(n=500)
    path = tmp_path / "c.npy"
    np.save(path, x.astype(np.float16))
    mm = np.load(path, mmap_mode="r")
    index = ns.NumpyIndex(mm, chunk_size=64)
    res = index.search(q, 10)
    ref = ns.NumpyIndex(x.astype(np.float16).astype(np.float32)).search(q, 10)
    np.testing.assert_array_equal(res.ids, ref.ids)
    assert index.vectors(np.array([3, -1])).dtype == np.float32


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_faiss_flat_equals_numpy(metric: str) -> None:
    x, q = _data(seed=5)
    exact = ns.NumpyIndex(x, metric=metric).search(q, 50)
    flat = ns.FaissIndex(x, "Flat", metric=metric, device="cpu").search(q, 50)
    np.testing.assert_allclose(flat.scores, exact.scores, rtol=1e-4, atol=1e-4)
    # ids agree except where two scores are within float rounding of each other
    gaps = np.abs(np.diff(exact.scores, axis=1))
    clear = np.ones_like(exact.ids, dtype=bool)
    clear[:, 1:] &= gaps > 1e-4
    clear[:, :-1] &= gaps > 1e-4
    np.testing.assert_array_equal(flat.ids[clear], exact.ids[clear])


def test_hnsw_recall_at_100() -> None:
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((50, 32)).astype(np.float32)
    x = (centers[rng.integers(0, 50, 20000)] + 0.5 * rng.standard_normal((20000, 32))).astype(
        np.float32
    )
    q = (centers[rng.integers(0, 50, 200)] + 0.5 * rng.standard_normal((200, 32))).astype(
        np.float32
    )
    exact = ns.NumpyIndex(x, metric="cosine").search(q, 100)
    hnsw = ns.FaissIndex(x, "HNSW32", metric="cosine", device="cpu").search(q, 100)
    recall = np.mean([len(set(a) & set(b)) / 100 for a, b in zip(hnsw.ids, exact.ids, strict=True)])
    assert recall >= 0.95, recall


def test_hnsw_ef_search_raised_to_k() -> None:
    x, q = _data(n=2000, d=8)
    index = ns.FaissIndex(x, "HNSW16", ef_search=4, device="cpu")
    res = index.search(q, 300)
    assert (res.ids >= 0).all(), "efSearch below k returned short rows"


def test_ivf_factory_and_reconstruct(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, q = _data(n=4000)
    index = ns.FaissIndex(x, "IVF16,Flat", nprobe=16, device="cpu")
    exact = ns.NumpyIndex(x).search(q, 10)
    assert np.mean(index.search(q, 10).ids == exact.ids) > 0.99
    index.save(tmp_path / "ivf")
    loaded = ns.load_index(tmp_path / "ivf")
    np.testing.assert_allclose(
        loaded.vectors(np.array([[1, 2], [3, -1]])),
        np.stack([x[[1, 2]], np.stack([x[3], np.zeros(24)])]),
        atol=1e-6,
    )


@pytest.mark.parametrize("kind", ["numpy", "faiss"])
def test_save_load_round_trip(tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    x, q = _data(n=400)
    index = (
        ns.NumpyIndex(x, metric="cosine")
        if kind == "numpy"
        else ns.FaissIndex(x, "Flat", metric="cosine", device="cpu")
    )
    index.save(tmp_path / "idx")
    loaded = ns.load_index(tmp_path / "idx")
    assert type(loaded) is type(index) and loaded.metric == "cosine"
    np.testing.assert_array_equal(loaded.search(q, 5).ids, index.search(q, 5).ids)
    np.testing.assert_allclose(loaded.vectors(np.arange(4)), index.vectors(np.arange(4)), atol=1e-6)
    assert not list(tmp_path.glob(".idx*")), "temporary folder left behind"


def test_load_index_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError, match=r"meta\.json"):
        ns.load_index(tmp_path)


def test_bad_factory_string() -> None:
    x, _ = _data(n=100)
    with pytest.raises(ValueError, match="NotAnIndex"):
        ns.FaissIndex(x, "NotAnIndex", device="cpu")


def test_ivf_with_more_lists_than_vectors_is_explained() -> None:
    x, _ = _data(n=100)
    with pytest.raises(
        ValueError,
        match=r"^IVF1024 needs at least 1024 training vectors, the corpus has 100: use a Flat "
        r"index or fewer lists \(e.g. IVF2,Flat",
    ):
        ns.FaissIndex(x, "IVF1024,Flat", device="cpu")


def test_gpu_device_without_gpu_is_clear() -> None:
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        pytest.skip("a GPU is present")
    x, _ = _data(n=100)
    with pytest.raises(RuntimeError, match="GPU"):
        ns.FaissIndex(x, "Flat", device="gpu")
    assert ns.FaissIndex(x, "Flat", device="auto").device == "cpu"


@pytest.mark.gpu
def test_gpu_flat_matches_cpu_and_handles_large_k() -> None:
    if not (hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0):
        pytest.skip("needs faiss-gpu (the GPU is there, faiss-gpu is not)")
    x, q = _data(n=5000)
    gpu = ns.FaissIndex(x, "Flat", device="gpu")
    assert gpu.device == "gpu"
    cpu = ns.NumpyIndex(x)
    np.testing.assert_allclose(gpu.search(q, 50).scores, cpu.search(q, 50).scores, atol=1e-3)
    with pytest.warns(RuntimeWarning, match="k <= 2048"):
        res = gpu.search(q, 3000)
    assert res.ids.shape == (50, 3000)


def test_index_protocol() -> None:
    x, _ = _data(n=50)
    assert isinstance(ns.NumpyIndex(x), ns.Index)
    assert isinstance(ns.FaissIndex(x, device="cpu"), ns.Index)


@pytest.mark.parametrize(("chunk", "qblock"), [(3, 2), (5, 7), (64, 64)])
def test_numpy_index_ties_broken_by_id_whatever_the_blocks(chunk: int, qblock: int) -> None:
    rng = np.random.default_rng(3)
    # small integers: every product is exact, whatever path BLAS takes for a block shape
    base = rng.integers(-3, 4, (6, 8)).astype(np.float32)
    x = np.repeat(base, 5, axis=0)[rng.permutation(30)]  # every score appears 5 times
    q = rng.integers(-3, 4, (9, 8)).astype(np.float32)
    res = ns.NumpyIndex(x, chunk_size=chunk, query_block=qblock).search(q, 12)
    s = q @ x.T
    order = np.lexsort((np.broadcast_to(np.arange(30), s.shape), -s), axis=1)[:, :12]
    np.testing.assert_array_equal(res.ids, order)
    np.testing.assert_array_equal(res.scores, np.take_along_axis(s, order, axis=1))


def _score_indexes(x: np.ndarray) -> list[Callable[[], ns.Index]]:
    """Builders (one index is built per test: IVF-PQ training takes seconds)."""
    x16 = x.astype(np.float16)
    return [
        lambda: ns.NumpyIndex(x),
        lambda: ns.NumpyIndex(x, metric="cosine"),
        lambda: ns.NumpyIndex(x16),
        lambda: ns.FaissIndex(x, "Flat"),
        lambda: ns.FaissIndex(x, "Flat", metric="cosine"),
        lambda: ns.FaissIndex(x, "HNSW16", metric="cosine"),
        lambda: ns.FaissIndex(x, "IVF8,Flat", nprobe=2),
        lambda: ns.FaissIndex(x, "IVF8,PQ4", keep_vectors=False),
        # TorchIndex (float32 here: half precision rounds the query too, see test_torch_index)
        lambda: ns.TorchIndex(x, device="cpu"),
        lambda: ns.TorchIndex(x, metric="cosine", device="cpu"),
    ]


@pytest.mark.parametrize("which", range(10))
def test_score_primitive_equals_gathered_dot_products(which: int) -> None:
    if which >= 8 and not _HAS_TORCH:
        pytest.skip("torch not installed (pip install negsample[torch])")
    x, q = _data(n=1200, d=16, nq=40)
    index = _score_indexes(x)[which]()
    qq = q / np.linalg.norm(q, axis=1, keepdims=True) if index.metric == "cosine" else q
    ids = np.random.default_rng(1).integers(-1, index.ntotal, (40, 25))
    got = index.score(qq, ids)
    v = index.vectors(ids)
    want = np.einsum("bd,bmd->bm", qq.astype(np.float64), v.astype(np.float64))
    assert got.dtype == np.float32 and got.shape == ids.shape
    assert np.array_equal(np.isnan(got), ids < 0)
    np.testing.assert_allclose(got[ids >= 0], want[ids >= 0], rtol=1e-5, atol=1e-5)
    norms = index.sq_norms(ids)
    want_n = np.einsum("bmd,bmd->bm", v.astype(np.float64), v.astype(np.float64))
    assert np.array_equal(np.isnan(norms), ids < 0)
    np.testing.assert_allclose(norms[ids >= 0], want_n[ids >= 0], rtol=1e-5, atol=1e-5)
    # one pair at a time gives the very same numbers (no batch-dependent rounding)
    one = np.array([index.score(qq[i : i + 1], ids[i : i + 1])[0] for i in range(5)])
    np.testing.assert_array_equal(one, got[:5])


def test_score_refuses_bad_shapes_and_ids() -> None:
    x, q = _data(n=100, d=8, nq=3)
    index = ns.NumpyIndex(x)
    with pytest.raises(ValueError, match="vectors must have shape"):
        index.score(q[:2], np.zeros((3, 4), np.int64))
    with pytest.raises(ValueError, match="out of range"):
        index.score(q, np.full((3, 2), 100))
    with pytest.raises(ValueError, match="2-D"):
        index.score(q, np.zeros(3, np.int64))


def test_exact_flag() -> None:
    x, _ = _data(n=500, d=8)
    assert ns.NumpyIndex(x).exact
    assert ns.FaissIndex(x, "Flat").exact
    assert not ns.FaissIndex(x, "HNSW16").exact
    assert not ns.FaissIndex(x, "IVF4,Flat").exact


def test_faiss_flat_breaks_ties_by_id_like_numpy() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((50, 16)).astype(np.float32)
    x = base[rng.integers(0, 50, 5000)]  # about 100 exact copies of each vector
    q = rng.standard_normal((64, 16)).astype(np.float32)
    flat, exact = ns.FaissIndex(x, "Flat"), ns.NumpyIndex(x)
    for k in (37, 300):
        a, b = flat.search(q, k), exact.search(q, k)
        # sorted by score, then by the smaller id; the same score profile as the oracle
        # (copies of one vector may differ in the last bit between the two computations)
        for s_row, i_row in zip(a.scores, a.ids, strict=True):
            assert np.all(np.lexsort((i_row, -s_row)) == np.arange(k))
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-5)
    # an exact top-k is the prefix of a deeper one, ties included
    np.testing.assert_array_equal(flat.search(q, 37).ids, flat.search(q, 300).ids[:, :37])


# -- the one spec parser (issue 18, item 1) -------------------------------------------------
@pytest.mark.parametrize(
    "spec, kind, options, exact, search",
    [
        ("exact", "exact", {}, True, ()),
        ("NUMPY", "exact", {}, True, ()),
        ("exact:chunk_size=256", "exact", {"chunk_size": 256}, True, ()),
        ("torch", "torch", {"device": "auto", "dtype": None}, True, ()),
        ("torch:cuda", "torch", {"device": "cuda", "dtype": None}, True, ()),
        ("torch:cuda:1:bfloat16", "torch", {"device": "cuda:1", "dtype": "bfloat16"}, True, ()),
        ("torch:float16", "torch", {"device": "auto", "dtype": "float16"}, True, ()),
        ("Flat", "faiss", {"factory": "Flat"}, True, ()),
        ("HNSW32", "faiss", {"factory": "HNSW32"}, False, ("ef_search",)),
        ("IVF1024,Flat", "faiss", {"factory": "IVF1024,Flat"}, False, ("nprobe",)),
        ("faiss:IVF64_HNSW32,Flat", "faiss", {"factory": "IVF64_HNSW32,Flat"}, False,
         ("nprobe", "ef_search")),
    ],
)  # fmt: skip
def test_parse_index_spec(spec: str, kind: str, options: dict, exact: bool, search: tuple) -> None:  # type: ignore[type-arg]
    p = ns.parse_index_spec(spec)
    assert (p.kind, dict(p.options), p.exact, p.search_options) == (kind, options, exact, search)
    assert ns.parse_index_spec(p) is p and str(p) == spec


@pytest.mark.parametrize("spec", ["torchfoo", "usearch", "flat", "", "exact:x", "faiss:"])
def test_unknown_or_bad_specs_are_refused_in_one_line(spec: str) -> None:
    """ "torchfoo" used to be torch for the Ray path and faiss for mine_dataset; "usearch"
    ended in a faiss C++ message. Every caller now gets the same one-line refusal."""
    from negsample.distributed.index import exact_like
    from negsample.pipeline.dataset import _search_options

    with pytest.raises(ValueError) as err:
        ns.parse_index_spec(spec)
    msg = str(err.value)
    assert "\n" not in msg and "index_factory.cpp" not in msg
    for call in (
        lambda: ns.build_index(np.eye(4, dtype=np.float32), spec),
        lambda: exact_like(spec),
        lambda: _search_options(spec, None, None),
    ):
        with pytest.raises(ValueError, match=re.escape(msg)):
            call()
    if spec in ("torchfoo", "usearch"):
        assert "known kinds: exact (also numpy)" in msg and "torch[:DEVICE[:DTYPE]]" in msg


def test_a_factory_string_faiss_refuses_is_named_in_one_line() -> None:
    pytest.importorskip("faiss")
    x = np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32)
    for spec, reason in [("Usearch", "could not parse index string Usearch"),
                         ("PQ4", "multiple of the number of subquantizers")]:  # fmt: skip
        with pytest.raises(ValueError) as err:
            ns.build_index(x, spec)
        msg = str(err.value)
        assert msg.startswith(f"faiss refuses the index factory string {spec!r}: ")
        assert reason in msg and "\n" not in msg and ".cpp" not in msg


def test_search_options_follow_the_spec() -> None:
    from negsample.pipeline.dataset import _search_options

    assert _search_options("IVF64,Flat", 8, None) == {"nprobe": 8}
    assert _search_options("HNSW32", None, 64) == {"ef_search": 64}
    with pytest.raises(ValueError, match="nprobe applies to a faiss IVF index spec"):
        _search_options("HNSW32", 8, None)
    with pytest.raises(ValueError, match="ef_search applies to a faiss HNSW index spec"):
        _search_options("torch:cpu", None, 8)


def test_register_index_refuses_a_taken_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        ns.register_index("exact", build=lambda v, s, **k: ns.NumpyIndex(v))
