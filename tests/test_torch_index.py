"""TorchIndex: exact torch search, held against NumpyIndex on the CPU; CUDA under ``gpu``."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import negsample as ns
from negsample.index import _torch_topk as topk
from negsample.index.numpy_index import _unpack

torch = pytest.importorskip("torch", reason="torch not installed (pip install negsample[torch])")


def _data(n: int = 2000, d: int = 24, nq: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, d)).astype(np.float32),
        rng.standard_normal((nq, d)).astype(np.float32),
    )


def _cpu(x: object, **kw: object) -> ns.TorchIndex:
    return ns.TorchIndex(x, device="cpu", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_float32_equals_numpy_index(metric: str) -> None:
    x, q = _data()
    want = ns.NumpyIndex(x, metric=metric).search(q, 30)
    index = _cpu(x, metric=metric)
    got = index.search(q, 30)
    assert index.dtype == "float32" and index.exact and isinstance(index, ns.Index)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-5)
    assert got.ids.dtype == np.int64 and got.scores.dtype == np.float32


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_corpus_blocks_do_not_change_the_result(metric: str) -> None:
    x, q = _data(n=1500)
    one = _cpu(x, metric=metric, search_block=64, memory_budget_mb=64).search(q, 40)
    # 256-row corpus blocks: six blocks, the last one short, every merge exercised
    many_index = _cpu(x, metric=metric, search_block=64, memory_budget_mb=0.01)
    assert many_index.block_rows == 256
    many = many_index.search(q, 40)
    np.testing.assert_array_equal(many.ids, one.ids)
    np.testing.assert_array_equal(many.scores, one.scores)


@pytest.mark.parametrize(("k", "budget"), [(12, 64.0), (12, 0.001), (3, 0.001)])
def test_ties_broken_by_the_smaller_id_like_numpy(k: int, budget: float) -> None:
    rng = np.random.default_rng(3)
    # small integers: every product is exact; each vector appears 5 times, at shuffled ids,
    # so ties straddle the cut of the top-k in every block
    base = rng.integers(-3, 4, (6, 8)).astype(np.float32)
    x = np.repeat(base, 100, axis=0)[rng.permutation(600)]
    q = rng.integers(-3, 4, (9, 8)).astype(np.float32)
    want = ns.NumpyIndex(x).search(q, k)
    got = _cpu(x, search_block=16, memory_budget_mb=budget).search(q, k)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.scores, want.scores)


def test_k_larger_than_the_corpus_pads() -> None:
    x, q = _data(n=5)
    res = _cpu(x).search(q[:2], 8)
    assert res.ids.shape == (2, 8)
    assert np.all(res.ids[:, 5:] == -1) and np.all(np.isneginf(res.scores[:, 5:]))
    assert sorted(res.ids[0, :5].tolist()) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(res.ids, ns.NumpyIndex(x).search(q[:2], 8).ids)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_half_precision_within_tolerance(dtype: str, metric: str) -> None:
    x, q = _data()
    want = ns.NumpyIndex(x, metric=metric).search(q, 30)
    got = _cpu(x, metric=metric, dtype=dtype).search(q, 30)
    # rounding q and x to the dtype (unit roundoff u) moves s(q, x) by at most
    # 2u sum_i |q_i x_i| (plus float32 summation noise)
    u = {"float16": 2.0**-11, "bfloat16": 2.0**-8}[dtype]
    xx, qq = (x, q)
    if metric == "cosine":
        xx = x / np.linalg.norm(x, axis=1, keepdims=True)
        qq = q / np.linalg.norm(q, axis=1, keepdims=True)
    bound = 2.01 * u * np.einsum("qd,qkd->qk", np.abs(qq), np.abs(xx)[want.ids]) + 1e-5
    tol = bound.max(axis=1, keepdims=True)  # the j-th best moves by at most the row's bound
    assert np.all(np.abs(got.scores - want.scores) <= tol)
    # the ids agree wherever the exact scores are separated by more than twice that
    gaps = np.abs(np.diff(want.scores, axis=1)) > 2 * tol
    clear = np.ones(want.ids.shape, dtype=bool)
    clear[:, 1:] &= gaps
    clear[:, :-1] &= gaps
    assert clear.sum() >= 10
    np.testing.assert_array_equal(got.ids[clear], want.ids[clear])


def test_float16_memmap_and_torch_tensor_inputs(tmp_path: Path) -> None:
    x, q = _data(n=700)
    path = tmp_path / "c.npy"
    np.save(path, x.astype(np.float16))
    mm = np.load(path, mmap_mode="r")
    from_mm = _cpu(mm, dtype="float16").search(q, 10)
    from_np = _cpu(x.astype(np.float16), dtype="float16").search(q, 10)
    from_t = _cpu(torch.from_numpy(x).to(torch.float16), dtype="float16").search(q, 10)
    np.testing.assert_array_equal(from_mm.ids, from_np.ids)
    np.testing.assert_array_equal(from_t.scores, from_np.scores)
    # a float16 corpus stored in float32 scores like the NumpyIndex over the same file
    ref = ns.NumpyIndex(mm).search(q, 10)
    got = _cpu(mm).search(q, 10)
    np.testing.assert_array_equal(got.ids, ref.ids)
    np.testing.assert_allclose(got.scores, ref.scores, rtol=1e-5, atol=1e-5)


def test_a_query_depends_only_on_itself_and_its_row() -> None:
    """mine() searches fixed blocks padded to search_block rows: the same query at the same
    row gives bitwise the same ids and scores whatever the other rows hold."""
    x, q = _data(n=1500, nq=32)
    for dtype in ("float32", "float16"):
        index = _cpu(x, dtype=dtype, search_block=32, memory_budget_mb=0.01)
        full = index.search(q, 20)
        for row in (0, 13, 31):
            alone = np.zeros_like(q)
            alone[row] = q[row]
            res = index.search(alone, 20)
            np.testing.assert_array_equal(res.ids[row], full.ids[row])
            np.testing.assert_array_equal(res.scores[row], full.scores[row])


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_score_and_sq_norms_equal_gathered_dot_products(dtype: str, metric: str) -> None:
    x, q = _data(n=800, d=16, nq=30)
    index = _cpu(x, metric=metric, dtype=dtype)
    qq = q / np.linalg.norm(q, axis=1, keepdims=True) if metric == "cosine" else q
    qr = torch.from_numpy(qq).to(getattr(torch, dtype)).float().numpy()  # rounded to dtype
    ids = np.random.default_rng(1).integers(-1, index.ntotal, (30, 25))
    ids[0, :3] = -1
    got = index.score(qq, ids)
    v = index.vectors(ids)
    want = np.einsum("bd,bmd->bm", qr.astype(np.float64), v.astype(np.float64))
    assert got.dtype == np.float32 and got.shape == ids.shape
    assert np.array_equal(np.isnan(got), ids < 0)
    np.testing.assert_allclose(got[ids >= 0], want[ids >= 0], rtol=1e-5, atol=1e-5)
    norms = index.sq_norms(ids)
    want_n = np.einsum("bmd,bmd->bm", v.astype(np.float64), v.astype(np.float64))
    assert np.array_equal(np.isnan(norms), ids < 0)
    np.testing.assert_allclose(norms[ids >= 0], want_n[ids >= 0], rtol=1e-5, atol=1e-5)
    # one row at a time gives the very same bits (no batch-dependent rounding)
    one = np.array([index.score(qq[i : i + 1], ids[i : i + 1])[0] for i in range(5)])
    np.testing.assert_array_equal(one, got[:5])
    # and search scores agree with score() up to the summation order
    res = index.search(qq, 5)
    np.testing.assert_allclose(index.score(qq, res.ids), res.scores, rtol=1e-5, atol=1e-5)
    assert np.all(v[ids < 0] == 0)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_save_load_round_trip(tmp_path: Path, dtype: str) -> None:
    x, q = _data(n=300)
    index = _cpu(x, metric="cosine", dtype=dtype, search_block=64)
    before = index.search(q, 7)
    index.save(tmp_path / "idx")
    again = ns.load_index(tmp_path / "idx", device="cpu")
    assert isinstance(again, ns.TorchIndex)
    assert (again.metric, again.dtype, again.search_block) == ("cosine", dtype, 64)
    after = again.search(q, 7)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.scores, before.scores)
    np.testing.assert_array_equal(again.vectors(np.arange(300)), index.vectors(np.arange(300)))
    # saving over an existing index replaces it atomically
    _cpu(x[:10]).save(tmp_path / "idx")
    assert ns.load_index(tmp_path / "idx", device="cpu").ntotal == 10


def test_bad_inputs_are_named() -> None:
    x, q = _data(n=50, d=8)
    bad = x.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match="corpus row 7 contains NaN"):
        _cpu(bad)
    bad = x.copy()
    bad[9, 0] = np.inf
    with pytest.raises(ValueError, match="corpus row 9 contains an infinite value"):
        _cpu(torch.from_numpy(bad))
    big = x.copy()
    big[4, 0] = 1e6
    with pytest.raises(ValueError, match="corpus row 4 overflows float16"):
        _cpu(big, dtype="float16")
    zero = x.copy()
    zero[2] = 0
    with pytest.raises(ValueError, match="corpus row 2 has norm 0"):
        _cpu(zero, metric="cosine")
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        _cpu(np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="2-D"):
        _cpu(x[0])
    with pytest.raises(ValueError, match="dimension 8, but the index has dimension 16"):
        _cpu(np.zeros((4, 16), np.float32) + 1).search(x[:2], 3)
    index = _cpu(x)
    q_bad = q[:3].copy()
    q_bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="queries row 1 contains NaN"):
        index.search(q_bad, 3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(q, 0)
    with pytest.raises(ValueError, match="out of range"):
        index.score(q[:3], np.full((3, 2), 50))
    with pytest.raises(ValueError, match="dtype must be one of"):
        _cpu(x, dtype="int8")
    with pytest.raises(ValueError, match="search_block"):
        _cpu(x, search_block=0)
    with pytest.raises(ValueError, match="memory_budget_mb"):
        _cpu(x, memory_budget_mb=-5)
    with pytest.raises(ValueError, match="torch device"):
        ns.TorchIndex(x, device="nonsense")
    with pytest.raises(ValueError, match="no rows"):
        _cpu(np.zeros((0, 8), np.float32))


def test_cuda_requested_without_a_gpu_is_clear() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    x, _ = _data(n=20, d=4)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        ns.TorchIndex(x, device="cuda")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        ns.TorchIndex(x, devices=["cuda:0", "cuda:1"])
    assert ns.TorchIndex(x).devices in (("cpu",), ("mps",))


def test_cpu_shards_merge_exactly() -> None:
    """Sharding is the multi-GPU path; on the CPU it cannot be built (one device name
    once), so the merge across shards is checked through the private shard list."""
    x, q = _data(n=900)
    whole = _cpu(x, metric="cosine").search(q, 50)
    index = _cpu(x, metric="cosine")
    one = index._shards[0]
    cut = 333
    index._shards = [
        type(one)("cpu", 0, one.data[:cut]),
        type(one)("cpu", cut, one.data[cut:]),
    ]
    split = index.search(q, 50)
    np.testing.assert_array_equal(split.ids, whole.ids)
    np.testing.assert_array_equal(split.scores, whole.scores)
    ids = np.random.default_rng(0).integers(-1, 900, (40, 9))
    whole_index = _cpu(x, metric="cosine")
    np.testing.assert_array_equal(index.vectors(ids), whole_index.vectors(ids))
    # pairs scored shard by shard: the very same bits as rows scored on one device
    qq = q / np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_array_equal(index.score(qq, ids), whole_index.score(qq, ids))


def test_build_index_spec() -> None:
    x, _ = _data(n=30, d=4)
    index = ns.build_index(x, "torch:cpu:bfloat16", metric="cosine")
    assert isinstance(index, ns.TorchIndex)
    assert (index.devices, index.dtype, index.metric) == (("cpu",), "bfloat16", "cosine")
    assert ns.build_index(x, "torch:cpu").dtype == "float32"
    with pytest.raises(ValueError, match=r"index 'torch:cpu:int3' .*not a torch device"):
        ns.build_index(x, "torch:cpu:int3")


def test_cli_mine_with_index_torch(tmp_path: Path) -> None:
    from negsample.cli import main
    from tests.beir_helpers import write_beir

    root = write_beir(tmp_path / "beir")
    outs = {}
    for spec in ("exact", "torch:cpu"):
        out = tmp_path / f"{spec.replace(':', '-')}.jsonl"
        args = ["mine", "--data", str(root), "--embeddings", str(root / "embeddings")]
        args += ["--sampler", "topk(k=30)", "--n", "5", "--index", spec, "--out", str(out)]
        assert main([*args, "--scores", "--quiet"]) == 0
        outs[spec] = [json.loads(line) for line in out.read_text().splitlines()]
    # float32 on the CPU: the same negatives as the exact numpy index, the same scores
    assert len(outs["exact"]) == len(outs["torch:cpu"]) > 0
    for a, b in zip(outs["exact"], outs["torch:cpu"], strict=True):
        np.testing.assert_allclose(a.pop("scores"), b.pop("scores"), atol=2e-6)
        assert a == b


@pytest.mark.gpu
def test_cuda_equals_cpu_and_shards_over_every_gpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    x, q = _data(n=20_000, d=64, nq=300)
    cpu = _cpu(x, metric="cosine").search(q, 100)
    for dtype, tol in (("float32", 1e-4), ("float16", 2e-3), ("bfloat16", 2e-2)):
        gpu_index = ns.TorchIndex(x, metric="cosine", device="cuda:0", dtype=dtype)
        assert gpu_index.search_block == 16384
        got = gpu_index.search(q, 100)
        np.testing.assert_allclose(got.scores, cpu.scores, atol=tol)
        gaps = np.abs(np.diff(cpu.scores, axis=1)) > 2 * tol
        clear = np.ones(cpu.ids.shape, dtype=bool)
        clear[:, 1:] &= gaps
        clear[:, :-1] &= gaps
        np.testing.assert_array_equal(got.ids[clear], cpu.ids[clear])
        # the half-precision path multiplies into float32: scores not rounded to float16
        if dtype == "float16":
            assert gpu_index._shards[0].fp32_out
            ids = got.ids[:, :10]
            np.testing.assert_allclose(gpu_index.score(q_n(q), ids), got.scores[:, :10], atol=1e-5)
        # score() is bit-identical to the CPU index in float32 (element-wise products and
        # tree sums; "ip", so that the stored rows are the input rows on both devices)
        if dtype == "float32":
            ids = cpu.ids[:, :10]
            on_gpu = ns.TorchIndex(x, device="cuda:0", dtype="float32").score(q, ids)
            np.testing.assert_array_equal(on_gpu, _cpu(x).score(q, ids))
    n_gpu = torch.cuda.device_count()
    if n_gpu >= 2:
        sharded = ns.TorchIndex(x, metric="cosine", device="cuda", dtype="float32")
        assert len(sharded._shards) == n_gpu
        single = ns.TorchIndex(x, metric="cosine", device="cuda:0", dtype="float32")
        a, b = sharded.search(q, 100), single.search(q, 100)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)


def q_n(q: np.ndarray) -> np.ndarray:
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@pytest.mark.parametrize("path", ["grouped", "lazy", "every-block"])
@pytest.mark.parametrize("k", [1, 7, 200, 300, 700, 2100])
def test_blocked_top_k_is_exact_with_ties(
    k: int, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Corpus blocks of 256 rows (the smallest), scores on a coarse grid (many ties): the
    top-k equals NumpyIndex's (score, then smaller id), whatever k against the block size
    (k below, above and beyond several blocks: 2,100 > 8 x 256) and the search path."""
    monkeypatch.setattr(topk, "PATH", path)
    x, q = _grid(k)
    want = ns.NumpyIndex(x).search(q, k)
    index = _cpu(x, search_block=32, memory_budget_mb=0.01)
    assert index.block_rows == 256
    got = index.search(q, k)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.scores, want.scores)


# -- the grouped top-k (issue 17) ------------------------------------------------------------------


def _grid(seed: int, n: int = 2500, d: int = 8, nq: int = 70) -> tuple[np.ndarray, np.ndarray]:
    """Integer vectors in [-2, 2]: every score exact and tied many times; one zero query
    (every score is +-0.0, tied)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (n, d)).astype(np.float32)
    q = rng.integers(-2, 3, (nq, d)).astype(np.float32)
    q[1] = 0
    return x, q


@pytest.mark.parametrize("slack", ["default", "none"])
@pytest.mark.parametrize("g", [1, 3, 32])
@pytest.mark.parametrize("k", [1, 7, 33, 200, 300, 700, 2100])
def test_grouped_top_k_equals_numpy_with_ties(
    k: int, g: int, slack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups of g columns (g=3 leaves a partial last group in every 256-row block; g=32 has
    8 groups a block, fewer than k from k=33 on), ties everywhere (inside groups, across
    group boundaries, at the k-th place), k from 1 to beyond 8 blocks. With no slack the
    blocks give too few groups and candidates, so rows miss entries and the blocks are
    scored again: the answer is the same."""
    monkeypatch.setattr(topk, "GROUP", g)
    if slack == "none":
        monkeypatch.setattr(topk, "SLACK_SD", 0.0)
        monkeypatch.setattr(topk, "SLACK", 0.0)
    x, q = _grid(k + g)
    want = ns.NumpyIndex(x).search(q, k)
    index = _cpu(x, search_block=32, memory_budget_mb=0.01)
    got = index.search(q, k)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.scores, want.scores)
    st = index._last_topk_stats
    assert st["blocks"] == 3 * 10  # 3 query blocks x 10 corpus blocks
    if slack == "none" and 7 <= k <= 300 and g < 32:
        assert st["pruned"] > 0 and st["grouped"] > 0 and st["rescored"] > 0  # every route


def test_grouped_prunes_without_rescoring_on_data_in_random_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A corpus in random order: after the first blocks every block gives a few groups and
    no block needs scoring again (the slack covers the Poisson tail); the ids and scores
    are bit for bit those of the former path."""
    x, q = _data(n=12_000, d=16, nq=64, seed=5)
    index = _cpu(x, search_block=64, memory_budget_mb=0.01)
    monkeypatch.setattr(topk, "GROUP", 8)
    got = index.search(q, 50)
    st = index._last_topk_stats
    assert st["blocks"] == 47 and st["pruned"] >= 40 and st["rescored"] == 0
    assert st["grouped"] >= 10  # the last blocks take a few groups of 8
    monkeypatch.setattr(topk, "PATH", "lazy")
    want = index.search(q, 50)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(got.ids, ns.NumpyIndex(x).search(q, 50).ids)


def _signs(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Rows with four entries +-1 (norm 2): normalised, +-0.5, exact in every dtype, so
    every score is exact (a multiple of 1/4 for cosine), and heavily tied."""
    out = np.zeros((n, d), np.float32)
    for i in range(n):
        out[i, rng.choice(d, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
    return out


def _split(index: ns.TorchIndex, cuts: list[int]) -> None:
    """Shard the (CPU) index at ``cuts``, as device='cuda' does over several GPUs."""
    one = index._shards[0]
    bounds = [0, *cuts, one.n]
    index._shards = [type(one)("cpu", a, one.data[a:b]) for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("shards", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_grouped_equals_numpy_in_every_dtype_metric_and_sharding(
    metric: str, dtype: str, shards: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(topk, "GROUP", 16)
    rng = np.random.default_rng(11)
    x, q = _signs(1800, 12, rng), _signs(40, 12, rng)
    ref = ns.NumpyIndex(x, metric=metric)
    index = _cpu(x, metric=metric, dtype=dtype, search_block=16, memory_budget_mb=0.01)
    if shards > 1:
        _split(index, [250, 1001])  # a shard smaller than k, cuts inside corpus blocks
    for k in (3, 120, 600):
        want, got = ref.search(q, k), index.search(q, k)
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.scores, want.scores)


@settings(max_examples=60)
@given(
    n=st.integers(1, 400),
    d=st.integers(1, 5),
    k=st.integers(1, 450),
    g=st.integers(1, 40),
    block_rows=st.integers(1, 150),
    search_block=st.integers(1, 40),
    no_slack=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_grouped_top_k_property(
    n: int, d: int, k: int, g: int, block_rows: int, search_block: int, no_slack: bool, seed: int
) -> None:
    """Any corpus size, block width (1 row up: partial groups, blocks narrower than g or
    than k), group size, depth and query block: the grouped top-k is NumpyIndex's."""
    x, q = _grid(seed, n=n, d=d, nq=12)
    index = _cpu(x, search_block=search_block)
    index.block_rows = block_rows
    old = (topk.GROUP, topk.SLACK_SD, topk.SLACK)
    topk.GROUP = g
    if no_slack:
        topk.SLACK_SD = topk.SLACK = 0.0
    try:
        got = index.search(q, k)
    finally:
        topk.GROUP, topk.SLACK_SD, topk.SLACK = old
    want = ns.NumpyIndex(x).search(q, k)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.scores, want.scores)


@settings(max_examples=60)
@given(
    m=st.integers(1, 90),
    kk=st.integers(1, 90),
    g=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_block_candidates_hold_the_block_top_k(m: int, kk: int, g: int, seed: int) -> None:
    """The kk groups of largest maxima (ties by the smaller group) hold every entry of the
    block's top-kk by (score, then smaller id), whatever the ties; padding is -1."""
    rng = np.random.default_rng(seed)
    hi = int(rng.integers(2, 40))  # few values: ties across groups
    s = rng.integers(0, hi, (6, m)).astype(np.float32)
    s[0, -1] = hi  # the best entry in the (partial) last group
    keys = topk.block_candidates(torch, torch.from_numpy(s), kk, g, 100)
    _, ids = _unpack(keys.numpy())
    for r in range(s.shape[0]):
        order = np.lexsort((np.arange(m), -s[r]))[:kk] + 100  # score desc, then id
        assert set(order.tolist()) <= set(ids[r].tolist())
        real = ids[r][ids[r] >= 0]
        assert len(set(real.tolist())) == real.size  # no entry twice
    assert np.all((ids == -1) | ((ids >= 100) & (ids < 100 + m)))  # padding: -1


@settings(max_examples=300)
@given(
    m=st.integers(1, 90),
    kk=st.integers(1, 60),
    c=st.integers(1, 60),
    g=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_a_block_keeps_what_can_enter_unless_it_says_missed(
    m: int, kk: int, c: int, g: int, seed: int
) -> None:
    """One block, any number of groups taken and any thresholds (``-inf`` included): where
    a row is not flagged as missed, every entry of the block's top-kk that reaches the row's
    threshold is kept; every key is a real entry of the block or padding (-1)."""
    rng = np.random.default_rng(seed)
    hi = int(rng.integers(2, 40))
    s = rng.integers(0, hi, (8, m)).astype(np.float32)
    s[0, -1] = hi  # the best entry in the (partial) last group
    thr = rng.integers(0, hi + 1, 8).astype(np.float32)
    thr[:2] = -np.inf
    c = min(c, kk, -(-m // g))
    keys, missed = topk._kept(torch, torch.from_numpy(s), kk, c, g, 7, torch.from_numpy(thr))
    vals, ids = _unpack(keys.numpy())
    assert np.all((ids == -1) | ((ids >= 7) & (ids < 7 + m)))
    ok = np.zeros(8, bool) if missed is None else ~missed.numpy()
    if missed is None:
        ok[:] = True
    for r in np.flatnonzero(ok):
        top = np.lexsort((np.arange(m), -s[r]))[:kk]
        need = {int(i) + 7 for i in top if s[r, i] >= thr[r]}
        assert need <= set(ids[r].tolist())
        real = ids[r] >= 0
        np.testing.assert_array_equal(vals[r][real], s[r, ids[r][real] - 7])


def test_a_candidate_cut_that_ties_the_threshold_is_missed() -> None:
    """Two groups taken, the second below the threshold 7: the four candidates kept end on a
    7 that ties the threshold, and two more 7s were left out: the row says missed."""
    s = torch.tensor([[8.0, 7, 7, 7, 7, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    keys, missed = topk._kept(torch, s, 6, 2, 6, 0, torch.tensor([7.0]))
    assert keys.shape == (1, 4) and bool(missed[0])
    _, missed = topk._kept(torch, s, 6, 2, 6, 0, torch.tensor([7.5]))
    assert not bool(missed[0])  # the 7s cannot reach 7.5


def test_the_search_path_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    x, q = _data(n=50, d=4)
    monkeypatch.setattr(topk, "PATH", "fast")
    with pytest.raises(ValueError, match="PATH must be one of"):
        _cpu(x).search(q, 3)


@pytest.mark.gpu
def test_grouped_on_cuda_equals_numpy_exactly() -> None:
    """On a GPU, in every dtype: integer data (exact products and sums), k from 1 to beyond
    the corpus block; and on random data the grouped and former paths agree bit for bit."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    x, q = _grid(3, n=6000, d=16, nq=700)
    ref = ns.NumpyIndex(x)
    for dtype in ("float32", "float16", "bfloat16"):
        index = ns.TorchIndex(x, device="cuda:0", dtype=dtype, search_block=512, memory_budget_mb=1)
        assert index.block_rows == 256
        for k in (1, 201, 1001, 2500):
            want, got = ref.search(q, k), index.search(q, k)
            np.testing.assert_array_equal(got.ids, want.ids)
            np.testing.assert_array_equal(got.scores, want.scores)
    xr, qr = _data(n=50_000, d=64, nq=2000, seed=9)
    index = ns.TorchIndex(
        xr, device="cuda:0", dtype="float16", search_block=1024, memory_budget_mb=8
    )
    assert index.block_rows == 512
    old = topk.PATH
    try:
        grouped = index.search(qr, 201)
        assert index._last_topk_stats["pruned"] > 0
        topk.PATH = "lazy"
        lazy = index.search(qr, 201)
    finally:
        topk.PATH = old
    np.testing.assert_array_equal(grouped.ids, lazy.ids)
    np.testing.assert_array_equal(grouped.scores, lazy.scores)
