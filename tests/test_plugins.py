"""The extension contract, exercised from outside the package (tests/plugins/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from tests.plugins.samplers import HalfWindow, SamplesPositives, UniformWindow

DATA = ns.make_synthetic(n_docs=1500, n_queries=40, dim=16, seed=0)


@pytest.fixture(scope="module")
def data() -> ns.SyntheticRetrieval:
    return DATA


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


# -- installed plugins: a temporary dist-info with entry points on sys.path --------------------
ENTRY_POINTS = """\
[negsample.indexes]
half = tests.plugins.indexes:register
broken = tests.plugins.no_such_module:register

[negsample.samplers]
uniform_window = tests.plugins.samplers:UniformWindow
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``negsample-test-plugins`` "installed": its dist-info (with entry_points.txt) on
    sys.path, the registries restored afterwards."""
    import sys

    from negsample import _plugins
    from negsample.index import registry as index_registry
    from negsample.samplers import registry as sampler_registry

    site = tmp_path / "site"
    info = site / "negsample_test_plugins-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: negsample-test-plugins\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    monkeypatch.setattr(index_registry, "_KINDS", dict(index_registry._KINDS))
    monkeypatch.setattr(index_registry, "_BY_TYPE", dict(index_registry._BY_TYPE))
    monkeypatch.setattr(sampler_registry, "_REGISTRY", dict(sampler_registry._REGISTRY))
    _plugins._forget()
    yield tmp_path
    _plugins._forget()


def test_an_installed_index_plugin_is_found_by_its_spec(installed: Path) -> None:
    from tests.plugins.indexes import HalfIndex

    corpus = DATA.corpus
    index = ns.build_index(corpus, "half")  # loads the entry points: first unknown kind
    assert isinstance(index, HalfIndex) and "half" in ns.available_indexes()
    ref = ns.NumpyIndex(corpus.astype(np.float16).astype(np.float32))
    q16 = DATA.queries.astype(np.float16).astype(np.float32)  # HalfIndex rounds queries too
    np.testing.assert_array_equal(index.search(DATA.queries, 10).ids, ref.search(q16, 10).ids)
    spec = ns.parse_index_spec("half:exact=False")
    assert spec.kind == "half" and spec.options == {"exact": False} and not spec.exact
    assert ns.parse_index_spec("HALF").exact
    # saved and loaded back by the type in meta.json
    index.save(installed / "saved")
    assert isinstance(ns.load_index(installed / "saved"), HalfIndex)
    # the Ray workers build specs through the same registry
    from negsample.distributed._workers import build_spec_index, corpus_block
    from negsample.distributed.index import exact_like

    built = build_spec_index(corpus, "half", "ip", {})
    assert isinstance(built, HalfIndex) and corpus_block(built) == 1
    assert exact_like("half") and not exact_like("half:exact=False")


def test_a_plugin_that_fails_to_import_is_named_in_one_line(installed: Path) -> None:
    with pytest.raises(ValueError) as err:
        ns.parse_index_spec("broken")
    msg = str(err.value)
    assert "\n" not in msg
    assert "plugin 'broken'" in msg and "tests.plugins.no_such_module:register" in msg
    assert "ModuleNotFoundError" in msg
    # the others still load, and an unknown spec lists them
    with pytest.raises(ValueError, match=r"unknown index spec 'usearch'.*half\[:exact=False\]"):
        ns.parse_index_spec("usearch")


def test_plugins_reach_mine_dataset_and_the_cli(installed: Path) -> None:
    from negsample.cli import main
    from tests.beir_helpers import write_beir

    root = write_beir(installed / "data", n_docs=300, n_queries=12, dim=8)
    ds = ns.load_beir(root)
    emb = ns.load_embeddings(root / "embeddings", ds)
    sampler = ns.sampler_from_string("uniform_window(lo=2, hi=22)")
    assert type(sampler).__name__ == "UniformWindow"
    exact = ns.mine_dataset(ds, sampler, embeddings=emb, index="half", n=4, seed=1)
    work = installed / "work"
    approx = ns.mine_dataset(
        ds, sampler, embeddings=emb, index="half:exact=False", n=4, seed=1, work_dir=work
    )
    np.testing.assert_array_equal(exact.negatives.ids, approx.negatives.ids)
    saved = [p for p in work.iterdir() if p.name.startswith("index-")]
    assert len(saved) == 1 and ns.load_index(saved[0]).exact is False  # kept for a resume
    again = ns.mine_dataset(
        ds, sampler, embeddings=emb, index="half:exact=False", n=4, seed=1, work_dir=work
    )
    np.testing.assert_array_equal(again.negatives.ids, exact.negatives.ids)
    out = installed / "out.jsonl"
    argv = ["mine", "--data", str(root), "--embeddings", str(root / "embeddings"), "--quiet"]
    argv += ["--index", "half", "--sampler", "uniform_window(lo=2, hi=22)", "--n", "4"]
    assert main([*argv, "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == sum(len(p) for p in ds.positives)  # per positive
    # an unknown index spec is a usage error naming the known kinds, before any work
    assert main([*argv[:-6], "--index", "usearch", "--out", str(installed / "x.jsonl")]) == 2


def test_load_index_names_an_unknown_saved_type(tmp_path: Path) -> None:
    from tests.plugins.indexes import HalfIndex

    HalfIndex(DATA.corpus).save(tmp_path / "saved")
    with pytest.raises(ValueError, match="'HalfIndex' that no registered index kind loads"):
        ns.load_index(tmp_path / "saved")


@pytest.mark.slow
def test_plugins_reach_the_ray_workers(installed: Path) -> None:
    """On a real local Ray cluster whose nodes have the plugins installed (the dist-info on
    their PYTHONPATH): a plugin index spec built once and loaded by each worker, one built
    by every corpus shard, and a protocol sampler, give mine()'s own result."""
    import importlib.util
    import os

    if importlib.util.find_spec("ray") is None:
        pytest.skip('ray not installed (pip install "negsample[ray]")')
    saved_env = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
                                                "RAY_USAGE_STATS_ENABLED")}  # fmt: skip
    from tests.ray_cluster import DRIVER_ENV, LocalCluster

    os.environ.update(DRIVER_ENV)  # before Ray is imported: the driver keeps 127.0.0.1
    import ray

    from negsample.distributed import connect, mine_distributed
    from tests.plugins.indexes import HalfIndex

    cluster = LocalCluster(nodes=1, cpus=2)
    cluster.env["PYTHONPATH"] += os.pathsep + str(installed / "site")
    cluster.start()
    try:
        connect(cluster.address)
        sampler = UniformWindow(lo=2, hi=30)
        np.save(installed / "corpus.npy", DATA.corpus)
        ref = ns.mine(DATA.queries, HalfIndex(DATA.corpus), DATA.positives, sampler, n=5, seed=2)
        for spec, kw in [("half:exact=False", {"workers": 2}), ("half", {"corpus_shards": 2})]:
            got = mine_distributed(
                DATA.queries, spec, DATA.positives, sampler, corpus=installed / "corpus.npy",
                n=5, seed=2, work_dir=installed / f"work-{len(kw)}-{spec}", **kw,
            )  # fmt: skip
            np.testing.assert_array_equal(got.ids, ref.ids)
    finally:
        ray.shutdown()
        cluster.stop()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
