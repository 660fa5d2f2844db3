"""Distributed mining on a real local Ray cluster (two nodes, each its own processes).

The workers run BLAS with one thread (Ray gives a 1-CPU worker one), and OpenBLAS's
matrix product rounds differently with different thread counts, so the single-process
references here are computed with one BLAS thread too.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import negsample as ns
from tests.ray_cluster import DRIVER_ENV, ROOT, KillOnceTopK, LocalCluster, SlowTopK

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason='needs Ray: pip install "negsample[ray]"',
)

CPUS = 0.25  # logical CPUs per test worker: several pools fit the 2-CPU test cluster
CHUNK = 16  # queries per chunk (and per search block): 6 chunks of 96 queries
DATA = ns.make_synthetic(3000, 96, 16, seed=1, max_positives=3)
# exact ties across the shard boundaries (row 1536 for "exact", 2048 for faiss Flat): the
# last rows repeat the two best rows of the first 40 queries, which lie before row 1500
_top = np.unique(ns.NumpyIndex(DATA.corpus).search(DATA.queries[:40], 2).ids)
TIED = _top[_top < 1500]
DATA.corpus[3000 - TIED.size :] = DATA.corpus[TIED]
SAMPLERS = ns.available_samplers()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    saved = {k: os.environ.get(k) for k in DRIVER_ENV}
    os.environ.update(DRIVER_ENV)  # before Ray is imported: the driver keeps 127.0.0.1
    import ray

    from negsample.distributed import connect

    c = LocalCluster(nodes=2, cpus=1)
    c.start()
    try:
        connect(c.address)
        yield c
    finally:
        ray.shutdown()
        c.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def one_thread() -> Iterator[None]:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1):
        yield


def _reference_index(kind: str) -> Any:
    if kind == "exact":
        return ns.NumpyIndex(DATA.corpus, search_block=CHUNK, chunk_size=512)
    return ns.FaissIndex(DATA.corpus, "Flat", search_block=CHUNK)


def _held(mode: str, kind: str) -> Any:
    from negsample.distributed import ReplicatedIndex, ShardedIndex

    opts: dict[str, Any] = {"search_block": CHUNK}
    spec = "Flat" if kind == "flat" else "exact"
    if kind == "exact":
        opts["chunk_size"] = 512
    if mode == "query":
        return ReplicatedIndex(
            spec, corpus=DATA.corpus, workers=2, cpus_per_worker=CPUS, index_options=opts
        )
    return ShardedIndex(spec, corpus=DATA.corpus, shards=2, cpus_per_shard=CPUS, index_options=opts)


def assert_same(got: ns.Negatives, ref: ns.Negatives) -> None:
    np.testing.assert_array_equal(got.ids, ref.ids)
    np.testing.assert_array_equal(got.scores, ref.scores)  # NaN where -1, in both
    np.testing.assert_array_equal(got.query_index, ref.query_index)
    np.testing.assert_array_equal(got.anchor_ids, ref.anchor_ids)
    a, b = got.stats.as_dict(), ref.stats.as_dict()
    a.pop("timings"), b.pop("timings")
    assert a == b


def _mine_ref(sampler: Any, kind: str = "exact") -> ns.Negatives:
    """One mine() call over all queries, at its own chunk size."""
    return ns.mine(DATA.queries, _reference_index(kind), DATA.positives, sampler, n=5, seed=3)


# -- without a cluster ------------------------------------------------------------------------


def test_import_negsample_does_not_import_ray() -> None:
    code = "import sys, negsample, negsample.distributed; print('ray' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False", out.stderr


def test_topk_merge_breaks_ties_at_the_cut_by_id() -> None:
    """Equal scores straddling the k-th place: the smaller ids are kept, as one exact
    index over the whole corpus keeps them (the merge of the shards' results)."""
    from negsample.index.numpy_index import topk_merge

    s = np.array([[0.5, 0.3, 0.3, 0.3, -np.inf], [0.1, 0.1, 0.2, -np.inf, -np.inf]], np.float32)
    i = np.array([[7, 9, 2, 5, -1], [8, 3, 4, -1, -1]])
    got_s, got_i = topk_merge(s, i, 2)
    np.testing.assert_array_equal(got_i, [[7, 2], [4, 3]])
    np.testing.assert_array_equal(got_s, np.array([[0.5, 0.3], [0.2, 0.1]], np.float32))
    _, all_i = topk_merge(s, i, 9)
    np.testing.assert_array_equal(all_i, [[7, 2, 5, 9, -1], [4, 3, 8, -1, -1]])
    corpus = np.repeat(np.eye(4, dtype=np.float32), 3, axis=0)  # each row three times
    whole = ns.NumpyIndex(corpus).search(corpus[[0, 5]], 2)
    halves = [
        ns.NumpyIndex(corpus[:6]).search(corpus[[0, 5]], 2),
        ns.NumpyIndex(corpus[6:]).search(corpus[[0, 5]], 2),
    ]
    m_s, m_i = topk_merge(
        np.concatenate([h.scores for h in halves], 1),
        np.concatenate([halves[0].ids, halves[1].ids + 6], 1),
        2,
    )
    np.testing.assert_array_equal(m_i, whole.ids)
    np.testing.assert_array_equal(m_s, whole.scores)


def test_shard_bounds() -> None:
    from negsample.distributed import shard_bounds

    assert shard_bounds(10_000, 3, 1024) == [0, 4096, 7168, 10_000]
    assert shard_bounds(3000, 2, 512) == [0, 1536, 3000]
    assert shard_bounds(5, 5) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="at most 3 shards"):
        shard_bounds(3000, 4, 1024)
    with pytest.raises(ValueError, match="shards must be a positive integer"):
        shard_bounds(3000, 0)


def test_unreachable_address_fails_fast() -> None:
    from negsample.distributed._ray import _check_reachable

    t0 = time.monotonic()
    with pytest.raises(ValueError, match=r"cannot reach a Ray cluster at '127.0.0.1:1'"):
        _check_reachable("127.0.0.1:1")
    assert time.monotonic() - t0 < 15
    with pytest.raises(ValueError, match="HOST:PORT"):
        _check_reachable("nonsense")
    _check_reachable("auto")  # left to Ray


def test_cli_ray_flags_need_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from negsample.cli import main

    base = ["mine", "--data", str(tmp_path), "--out", str(tmp_path / "o.jsonl")]
    assert main([*base, "--workers", "2"]) == 2
    assert "--workers need --ray" in capsys.readouterr().err
    assert main([*base, "--ray", "auto", "--workers", "2", "--corpus-shards", "2"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*base, "--ray", "auto", "--max-chunks", "1"]) == 2
    assert "--max-chunks is not available with --ray" in capsys.readouterr().err


# -- identical to mine(), every sampler, both ways of sharding, numpy and faiss Flat ----------

CONFIGS = ["query-exact", "corpus-exact", "query-flat", "corpus-flat"]


@pytest.fixture(scope="module", params=CONFIGS)
def held(request: pytest.FixtureRequest, cluster: LocalCluster) -> Iterator[tuple[str, Any]]:
    mode, kind = request.param.split("-")
    if kind == "flat":
        pytest.importorskip("faiss")
    h = _held(mode, kind)
    try:
        yield kind, h
    finally:
        h.close()


@pytest.mark.parametrize("name", SAMPLERS)
def test_identical_to_mine(held: tuple[str, Any], name: str, one_thread: None) -> None:
    from negsample.distributed import ReplicatedIndex, mine_distributed

    kind, h = held
    sampler = ns.get_sampler(name)
    logs: list[str] = []
    got = mine_distributed(
        DATA.queries, h, DATA.positives, sampler, n=5, seed=3, chunk_size=CHUNK, log=logs.append
    )
    assert_same(got, _mine_ref(sampler, kind))
    if isinstance(h, ReplicatedIndex):  # both workers took chunks
        line = next(m for m in logs if "chunks on 2 workers" in m)
        counts = [int(c) for c in re.findall(r"worker \d+: (\d+)", line)]
        assert len(counts) == 2 and min(counts) > 0 and sum(counts) == 6, logs


@pytest.mark.parametrize("held", ["query-exact", "corpus-exact"], indirect=True)
def test_near_duplicate_filter_on_the_cluster(held: tuple[str, Any], one_thread: None) -> None:
    """Filters(near_duplicate=...) reaches the workers (query sharding) and scores through
    the shards (corpus sharding): the same negatives and counts as one process."""
    from negsample.distributed import mine_distributed

    kind, h = held
    sampler = ns.ReSa2Sampler(k1=100, k1_prime=50, k2=20)
    f = ns.Filters(near_duplicate=0.9)
    got = mine_distributed(
        DATA.queries, h, DATA.positives, sampler, n=5, seed=3, chunk_size=CHUNK, filters=f
    )
    ref = ns.mine(
        DATA.queries, _reference_index(kind), DATA.positives, sampler, n=5, seed=3, filters=f
    )
    assert_same(got, ref)
    assert ref.stats.removed["near_duplicate"] > 0  # the copies at the end of the corpus


def test_near_duplicate_texts_on_the_cluster(
    cluster: LocalCluster, tmp_path: Path, one_thread: None
) -> None:
    """mine_dataset_distributed excludes the normalised-text copies as mine_dataset does."""
    from negsample.distributed import mine_dataset_distributed
    from tests.test_near_duplicates import _with_near_copies

    root, copies = _with_near_copies(tmp_path / "beir")
    ds = ns.load_beir(root, "train")
    emb = ns.load_embeddings(root / "embeddings", ds)
    kw: dict[str, Any] = {
        "embeddings": emb,
        "n": 5,
        "seed": 1,
        "near_duplicate_texts": True,
        "filters": ns.Filters(near_duplicate=0.95),
    }
    sampler = ns.TopKSampler(k=10, strategy="top")
    ref = ns.mine_dataset(ds, sampler, **kw)
    got = mine_dataset_distributed(ds, sampler, workers=1, cpus_per_worker=CPUS, **kw)
    assert_same(got.negatives, ref.negatives)
    assert ref.negatives.stats.removed["excluded"] == len(copies)


@pytest.mark.parametrize("held", ["corpus-exact", "corpus-flat"], indirect=True)
def test_sharded_index_primitives(held: tuple[str, Any], one_thread: None) -> None:
    """search, score, sq_norms and vectors of the shards equal one index's, bit for bit."""
    from negsample.distributed import ShardedIndex

    kind, h = held
    assert isinstance(h, ShardedIndex)
    ref = _reference_index(kind)
    assert h.exact and h.ntotal == ref.ntotal and h.search_block == CHUNK
    assert h.bounds == ([0, 1536, 3000] if kind == "exact" else [0, 2048, 3000])
    cut_at_tie = 0
    for k in (1, 2, 3, 9, ref.ntotal + 5):
        a, b = h.search(DATA.queries[:40], k), ref.search(DATA.queries[:40], k)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
        if k < ref.ntotal:  # equal scores on both sides of the k-th place
            deeper = ref.search(DATA.queries[:40], k + 1).scores
            cut_at_tie += int((deeper[:, k - 1] == deeper[:, k]).sum())
    assert cut_at_tie > 0  # the tie-break at the cut was exercised
    rng = np.random.default_rng(0)
    ids = rng.integers(-1, ref.ntotal, size=(40, 7))
    ids[:, 0] = [1535, 1536, 2047, 2048, 2999] * 8  # both sides of each boundary
    q = DATA.queries[:40]
    np.testing.assert_array_equal(h.score(q, ids), ref.score(q, ids))
    np.testing.assert_array_equal(h.sq_norms(ids), ref.sq_norms(ids))
    np.testing.assert_array_equal(h.vectors(ids), ref.vectors(ids))
    with pytest.raises(ValueError, match="out of range"):
        h.score(q[:1], [[ref.ntotal]])
    with pytest.raises(NotImplementedError, match="not saved"):
        h.save("x")


@pytest.mark.parametrize("held", ["query-exact"], indirect=True)
def test_cross_query_policies_on_the_cluster(held: tuple[str, Any], one_thread: None) -> None:
    """The reuse cap (on the driver, once every chunk is in) and the exclusion of other
    queries' positives (the mask sent to the workers): one mine() call's bytes."""
    from negsample.distributed import mine_distributed

    _, h = held
    sampler = ns.SimANSSampler(k=40, temperature=0.05)
    kw: dict[str, Any] = dict(n=5, seed=3, max_negative_reuse=1, exclude_other_positives=True)
    got = mine_distributed(DATA.queries, h, DATA.positives, sampler, chunk_size=CHUNK, **kw)
    ref = ns.mine(DATA.queries, _reference_index("exact"), DATA.positives, sampler, **kw)
    assert_same(got, ref)
    assert ref.stats.reuse is not None and ref.stats.reuse.documents_capped > 0
    assert ref.stats.removed["other_positive"] > 0 and ref.stats.other_positives == 0


# -- files, resuming, Ctrl-C, and either mode continuing the other's run ------------------------


def test_files_resume_and_interrupt(
    cluster: LocalCluster, tmp_path: Path, one_thread: None
) -> None:
    from negsample.distributed import mine_distributed

    np.save(tmp_path / "corpus.npy", DATA.corpus)
    np.save(tmp_path / "queries.npy", DATA.queries)
    sampler = ns.TriSampler()
    ref = _mine_ref(sampler)
    work = tmp_path / "work"
    kw: dict[str, Any] = dict(
        corpus=str(tmp_path / "corpus.npy"),
        n=5,
        seed=3,
        chunk_size=CHUNK,
        cpus_per_worker=CPUS,
        index_options={"search_block": CHUNK, "chunk_size": 512},
        work_dir=work,
    )

    def interrupt(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    logs: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        mine_distributed(
            str(tmp_path / "queries.npy"),
            "exact",
            DATA.positives,
            sampler,
            workers=2,
            on_chunk=interrupt,
            log=logs.append,
            **kw,
        )
    assert any("stopped: 2 of 6 chunks are saved" in m for m in logs), logs
    assert len(list(work.glob("chunk_*.npz"))) == 2
    # the corpus-sharded run continues the query-sharded one
    logs.clear()
    got = mine_distributed(
        str(tmp_path / "queries.npy"),
        "exact",
        DATA.positives,
        sampler,
        corpus_shards=2,
        log=logs.append,
        **kw,
    )
    assert_same(got, ref)
    assert any("resumed 2 of 6 chunks" in m for m in logs), logs
    # everything saved: a query-sharded rerun only loads
    logs.clear()
    again = mine_distributed(
        str(tmp_path / "queries.npy"),
        "exact",
        DATA.positives,
        sampler,
        workers=1,
        log=logs.append,
        **kw,
    )
    assert_same(again, ref)
    assert any("resumed 6 of 6" in m for m in logs), logs
    # other settings: refused
    with pytest.raises(ValueError, match="holds a run with other settings"):
        mine_distributed(
            str(tmp_path / "queries.npy"),
            "exact",
            DATA.positives,
            ns.TopKSampler(),
            workers=1,
            **kw,
        )


def test_errors_come_back_plain(cluster: LocalCluster) -> None:
    from negsample.distributed import ReplicatedIndex, ShardedIndex, mine_distributed

    if importlib.util.find_spec("faiss") is not None:  # raised in a worker
        with pytest.raises(
            ValueError,
            match="faiss refuses the index factory string 'NoSuchIndex': could not parse",
        ):
            ShardedIndex("NoSuchIndex", corpus=DATA.corpus, shards=2, cpus_per_shard=CPUS)
    with pytest.raises(ValueError, match="would be a different index on each"):
        ReplicatedIndex("HNSW32", corpus=DATA.corpus, workers=2)
    bad = DATA.corpus.copy()
    bad[2100, 3] = np.nan
    with pytest.raises(ValueError, match="corpus row 2100 contains NaN"):
        ShardedIndex(
            "exact", corpus=bad, shards=2, cpus_per_shard=CPUS, index_options={"chunk_size": 512}
        )
    with pytest.raises(ValueError, match="not a multiple of its index's corpus block"):
        ShardedIndex(
            "exact",
            corpus=DATA.corpus,
            shards=2,
            cpus_per_shard=CPUS,
            corpus_block=100,
            index_options={"chunk_size": 512},
        )
    with pytest.raises(ValueError, match="fewer than the n=9 negatives requested"):
        mine_distributed(
            DATA.queries, "exact", DATA.positives, ns.TopKSampler(k=5), corpus=DATA.corpus, n=9
        )


def test_approximate_index_built_once(
    cluster: LocalCluster, tmp_path: Path, one_thread: None
) -> None:
    """An HNSW index is built once and saved in the work folder; every worker loads that
    one, so query sharding gives mine()'s output on that index."""
    pytest.importorskip("faiss")
    from negsample.distributed import mine_distributed

    sampler = ns.SimANSSampler()
    got = mine_distributed(
        DATA.queries,
        "HNSW32",
        DATA.positives,
        sampler,
        corpus=DATA.corpus,
        n=5,
        seed=3,
        chunk_size=CHUNK,
        workers=2,
        cpus_per_worker=CPUS,
        index_options={"search_block": CHUNK},
        work_dir=tmp_path / "work",
    )
    (saved,) = (tmp_path / "work").glob("index-*")
    index = ns.FaissIndex.load(saved, vectors=DATA.corpus)
    ref = ns.mine(DATA.queries, index, DATA.positives, sampler, n=5, seed=3)
    assert_same(got, ref)


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_worker_killed_mid_chunk(cluster: LocalCluster, tmp_path: Path, one_thread: None) -> None:
    """A worker's process dies while it mines a chunk: Ray restarts it, the chunk is mined
    again, and the output is unchanged."""
    from negsample.distributed import ReplicatedIndex, mine_distributed

    marker = tmp_path / "killed"
    sampler = KillOnceTopK(k=50, marker=str(marker))
    with ReplicatedIndex(
        "exact",
        corpus=DATA.corpus,
        workers=2,
        cpus_per_worker=CPUS,
        index_options={"search_block": CHUNK, "chunk_size": 512},
    ) as pool:
        before = pool.pids()
        assert set(before) <= _index_workers(cluster)  # (what the CLI test relies on)
        got = mine_distributed(
            DATA.queries, pool, DATA.positives, sampler, n=5, seed=3, chunk_size=CHUNK
        )
        after = pool.pids()
    dead = int(marker.read_text())
    assert dead in before and dead not in after
    assert_same(got, _mine_ref(ns.TopKSampler(k=50)))


@pytest.mark.slow
def test_shard_killed_between_calls(cluster: LocalCluster, one_thread: None) -> None:
    """A corpus shard's process is killed mid-run: Ray restarts it (it loads its shard
    again) and the search it missed is retried; same output."""
    from negsample.distributed import ShardedIndex, mine_distributed

    killed: list[int] = []
    with ShardedIndex(
        "exact",
        corpus=DATA.corpus,
        shards=2,
        cpus_per_shard=CPUS,
        index_options={"search_block": CHUNK, "chunk_size": 512},
    ) as index:

        def kill_shard(done: int, total: int) -> None:
            if done == 2:
                pid = index.pids()[1]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        sampler = ns.ReSa2Sampler(k1=200, k1_prime=100, k2=20)
        got = mine_distributed(
            DATA.queries,
            index,
            DATA.positives,
            sampler,
            n=5,
            seed=3,
            chunk_size=CHUNK,
            on_chunk=kill_shard,
        )
        assert killed and index.pids()[1] != killed[0]
    assert_same(got, _mine_ref(sampler))


_DRIVER = """
import os, signal, sys
import numpy as np
from negsample.distributed import connect, mine_distributed
import negsample as ns
from threadpoolctl import threadpool_limits

threadpool_limits(1)
d = sys.argv[1]
connect(sys.argv[2])

def die(done, total):
    if done == 3:
        os.kill(os.getpid(), signal.SIGKILL)

mine_distributed(
    d + "/queries.npy", "exact", np.load(d + "/positives.npy"), ns.SimANSSampler(),
    corpus=d + "/corpus.npy", n=5, seed=3, chunk_size=16, workers=2, cpus_per_worker=0.25,
    index_options={"search_block": 16, "chunk_size": 512}, work_dir=d + "/work", on_chunk=die,
)
"""


@pytest.mark.slow
def test_killed_driver_resumes(cluster: LocalCluster, tmp_path: Path, one_thread: None) -> None:
    """The driver process is killed after three chunks: a new driver continues from them."""
    from negsample._validate import pad_positives
    from negsample.distributed import mine_distributed

    pytest.importorskip("threadpoolctl")
    np.save(tmp_path / "corpus.npy", DATA.corpus)
    np.save(tmp_path / "queries.npy", DATA.queries)
    pos = pad_positives(DATA.positives, len(DATA.positives), DATA.corpus.shape[0])
    np.save(tmp_path / "positives.npy", pos)
    env = {**os.environ, **DRIVER_ENV, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(tmp_path), cluster.address],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    saved = len(list((tmp_path / "work").glob("chunk_*.npz")))
    assert saved >= 3
    time.sleep(0.5)
    logs: list[str] = []
    got = mine_distributed(
        str(tmp_path / "queries.npy"),
        "exact",
        pos,
        ns.SimANSSampler(),
        corpus=str(tmp_path / "corpus.npy"),
        n=5,
        seed=3,
        chunk_size=CHUNK,
        workers=2,
        cpus_per_worker=CPUS,
        index_options={"search_block": CHUNK, "chunk_size": 512},
        work_dir=tmp_path / "work",
        log=logs.append,
    )
    assert any(f"resumed {saved} of 6 chunks" in m for m in logs), logs
    assert_same(got, _mine_ref(ns.SimANSSampler()))


_INTERRUPTED = """
import sys
from negsample.distributed import connect, mine_distributed
import negsample as ns
from tests.ray_cluster import SlowTopK

d = sys.argv[1]
connect(sys.argv[2])
try:
    mine_distributed(
        d + "/queries.npy", "exact", [[int(p) for p in row] for row in ns.make_synthetic(
            3000, 96, 16, seed=1, max_positives=3).positives],
        SlowTopK(k=50, pause=2.0), corpus=d + "/corpus.npy", n=5, seed=3, chunk_size=16,
        workers=2, cpus_per_worker=0.25, index_options={"search_block": 16, "chunk_size": 512},
        work_dir=d + "/work", on_chunk=lambda done, total: print("chunk", done, flush=True),
        log=lambda m: print(m, flush=True),
    )
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


@pytest.mark.slow
def test_ctrl_c_stops_the_cluster_work(
    cluster: LocalCluster, tmp_path: Path, one_thread: None
) -> None:
    """SIGINT to a driver waiting on its workers: KeyboardInterrupt, the work in flight
    cancelled, the finished chunks saved; a new run continues from them."""
    from negsample.distributed import mine_distributed

    np.save(tmp_path / "corpus.npy", DATA.corpus)
    np.save(tmp_path / "queries.npy", DATA.queries)
    env = {**os.environ, **DRIVER_ENV, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED, str(tmp_path), cluster.address],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # wait for the first finished chunk
            lines.append(line)
            if line.startswith("chunk"):
                break
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    out = "".join(lines) + rest
    assert proc.returncode == 130, out
    assert time.monotonic() - t0 < 20, out
    assert "interrupted" in out and "chunks are saved" in out, out
    saved = len(list((tmp_path / "work").glob("chunk_*.npz")))
    assert 1 <= saved < 6
    logs: list[str] = []
    got = mine_distributed(
        str(tmp_path / "queries.npy"),
        "exact",
        DATA.positives,
        SlowTopK(k=50, pause=2.0),
        corpus=str(tmp_path / "corpus.npy"),
        n=5,
        seed=3,
        chunk_size=CHUNK,
        workers=2,
        cpus_per_worker=CPUS,
        index_options={"search_block": CHUNK, "chunk_size": 512},
        work_dir=tmp_path / "work",
        log=logs.append,
    )
    assert any(f"resumed {saved} of 6 chunks" in m for m in logs), logs
    assert_same(got, _mine_ref(ns.TopKSampler(k=50)))


@pytest.mark.slow
def test_torch_index_workers_on_cpu(cluster: LocalCluster, one_thread: None) -> None:
    """A "torch" spec: every worker builds a TorchIndex (here on the CPU), and corpus shards
    cut on its block_rows (asked of a worker before the shards start)."""
    torch = pytest.importorskip("torch")
    from negsample.distributed import mine_distributed

    # a small memory budget: blocks of 256 corpus rows, so 2 shards can cut on them
    opts = {"search_block": CHUNK, "memory_budget_mb": 0.05}
    ref_index = ns.build_index(DATA.corpus, "torch:cpu", **opts)
    assert ref_index.block_rows == 256
    sampler = ns.TriSampler()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a 1-CPU worker
    try:
        ref = ns.mine(DATA.queries, ref_index, DATA.positives, sampler, n=5, seed=3)
    finally:
        torch.set_num_threads(threads)
    for kw in ({"workers": 2}, {"corpus_shards": 2}):
        got = mine_distributed(
            DATA.queries,
            "torch:cpu",
            DATA.positives,
            sampler,
            corpus=DATA.corpus,
            n=5,
            seed=3,
            chunk_size=CHUNK,
            index_options=opts,
            cpus_per_worker=CPUS,
            **kw,
        )
        assert_same(got, ref)


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_workers_with_torch_index(cluster: LocalCluster, tmp_path: Path) -> None:
    """GPU workers (gpus_per_worker) build a TorchIndex on their GPU: the output of
    mine() with the same TorchIndex in this process, by query and by corpus shards."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    if not hasattr(ns, "TorchIndex"):
        pytest.skip("needs negsample.TorchIndex")
    import ray

    from negsample.distributed import connect, mine_distributed

    # a small memory budget: blocks of 256 corpus rows, so 2 shards can cut on them
    opts = {"search_block": CHUNK, "memory_budget_mb": 0.05}
    ref_index = ns.build_index(DATA.corpus, "torch:cuda", **opts)
    assert ref_index.block_rows == 256
    sampler = ns.ReSa2Sampler(k1=200, k1_prime=100, k2=20)
    ref = ns.mine(DATA.queries, ref_index, DATA.positives, sampler, n=5, seed=3)
    ray.shutdown()  # this test's own cluster: one node with the GPU
    gpu = LocalCluster(nodes=1, cpus=2, gpus=1).start()
    try:
        connect(gpu.address)
        for kw in ({"workers": 1}, {"corpus_shards": 2}):
            got = mine_distributed(
                DATA.queries,
                "torch:cuda",
                DATA.positives,
                sampler,
                corpus=DATA.corpus,
                n=5,
                seed=3,
                chunk_size=CHUNK,
                index_options=opts,
                cpus_per_worker=0.5,
                gpus_per_worker=0.5,
                **kw,
            )
            assert_same(got, ref)
    finally:
        ray.shutdown()
        gpu.stop()
        connect(cluster.address)


# -- the CLI ---------------------------------------------------------------------------------


def _index_workers(cluster: LocalCluster) -> set[int]:
    """Process ids of the cluster's live IndexWorker actors."""
    import psutil

    out = set()
    for p in cluster.processes():
        try:
            if "IndexWorker" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                out.add(p.pid)
        except psutil.Error:
            continue
    return out


def _cli(root: Path, out: Path, *extra: str) -> int:
    from negsample.cli import main

    return main(
        [
            "mine",
            "--data",
            str(root),
            "--embeddings",
            str(root / "embeddings"),
            "--sampler",
            "ReSa2Sampler(k1=100, k1_prime=50, k2=20)",
            "--n",
            "4",
            "--seed",
            "2",
            "--scores",
            "--chunk-size",
            "1024",
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


def test_cli_ray_same_file(
    cluster: LocalCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    one_thread: None,
) -> None:
    from negsample.pipeline.store import RunStore
    from tests.beir_helpers import write_beir

    # three blocks of the default NumpyIndex (16384 rows): two corpus shards; 3 chunks of
    # 1024 queries (its search block)
    root = write_beir(tmp_path / "beir", n_docs=2 * 16384 + 600, n_queries=2100)
    ref = tmp_path / "ref.jsonl"
    assert _cli(root, ref) == 0
    ray_flags = ["--ray", cluster.address, "--worker-cpus", str(CPUS)]
    out = tmp_path / "q.jsonl"  # query sharding
    assert _cli(root, out, *ray_flags, "--workers", "2") == 0
    assert out.read_bytes() == ref.read_bytes()
    capsys.readouterr()
    # one run, three ways: a local run stopped (Ctrl-C) after its first chunk, continued
    # by corpus shards stopped after one more chunk, finished by query shards
    real = RunStore.save_chunk
    saves: list[int] = []

    def stop_after(k: int) -> Any:
        def save(self: RunStore, h: str, a: int, b: int, part: ns.Negatives) -> None:
            saves.append(1)
            if len(saves) > k:
                raise KeyboardInterrupt
            real(self, h, a, b, part)

        return save

    out = tmp_path / "c.jsonl"
    work = tmp_path / ".c.jsonl.negsample-work"
    monkeypatch.setattr(RunStore, "save_chunk", stop_after(1))
    assert _cli(root, out) == 130
    assert len(list(work.glob("chunk_*.npz"))) == 1
    saves.clear()
    monkeypatch.setattr(RunStore, "save_chunk", stop_after(1))
    before = _index_workers(cluster)
    assert _cli(root, out, *ray_flags, "--corpus-shards", "2") == 130
    assert "interrupted" in capsys.readouterr().err
    assert len(list(work.glob("chunk_*.npz"))) == 2 and not out.exists()
    for _ in range(50):  # the interrupted run's workers are stopped
        if _index_workers(cluster) <= before:
            break
        time.sleep(0.2)
    assert _index_workers(cluster) <= before
    monkeypatch.setattr(RunStore, "save_chunk", real)
    assert _cli(root, out, *ray_flags, "--workers", "2") == 0
    assert "resumed 2 of 3 chunks" in capsys.readouterr().err
    assert out.read_bytes() == ref.read_bytes()
