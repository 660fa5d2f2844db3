"""Every input of a resumable run is fingerprinted by content: a resume under another
index, corpus, data or embeddings file never reuses a chunk, and unchanged files are not
read again (their digests are cached)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample import _digest
from negsample.cli import main
from negsample.pipeline import SettingsMismatch
from negsample.pipeline.settings import identify_file, identify_files, index_fingerprint
from tests.beir_helpers import write_beir

DATA = ns.make_synthetic(3000, 40, 16, seed=1)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private negsample cache (so the digest cache starts empty), fresh per test."""
    d = tmp_path / "negsample-cache"
    monkeypatch.setenv("NEGSAMPLE_CACHE", str(d))
    monkeypatch.setattr(_digest, "_DEFAULT", {})
    yield d


def _settle() -> None:
    """Let freshly written files leave the window in which their digest is not cached."""
    time.sleep(_digest.RACY_SECONDS + 0.05)


def _other_corpus() -> np.ndarray:
    """Another corpus of the same shape (and dtype): the first one's rows shuffled."""
    return np.ascontiguousarray(DATA.corpus[np.random.default_rng(5).permutation(3000)])


def _mine(index: ns.Index, wd: Path, **kw: object) -> ns.Negatives:
    return ns.mine_resumable(
        DATA.queries,
        index,
        DATA.positives,
        ns.TopKSampler(k=40),
        n=5,
        seed=3,
        work_dir=wd,
        chunk_size=8,
        **kw,  # type: ignore[arg-type]
    )


# -- 1. a resume with an index over another corpus -----------------------------------------


def test_resume_with_an_index_over_another_corpus_reuses_no_chunk(tmp_path: Path) -> None:
    wd = tmp_path / "w"
    first, other = ns.NumpyIndex(DATA.corpus), ns.NumpyIndex(_other_corpus())
    with pytest.raises(ns.RunIncomplete):
        _mine(first, wd, max_chunks=3)
    # the manifest holds the first index's fingerprint: refused, naming what differs
    with pytest.raises(SettingsMismatch, match=r"differ in index\.content"):
        _mine(other, wd)
    # even without the manifest, none of the first index's chunks is loaded
    (wd / "manifest.json").unlink()
    logs: list[str] = []
    got = _mine(other, wd, log=logs.append)
    want = ns.mine(DATA.queries, other, DATA.positives, ns.TopKSampler(k=40), n=5, seed=3)
    np.testing.assert_array_equal(got.ids, want.ids)
    assert f"removed 3 chunk files made with other settings from {wd}" in logs, logs
    assert not any("resumed" in m for m in logs), logs
    old = ns.mine(DATA.queries, first, DATA.positives, ns.TopKSampler(k=40), n=5, seed=3)
    assert (got.ids[:24] != old.ids[:24]).any()  # the old chunks would have been wrong


def test_mine_dataset_with_a_given_index_over_another_corpus(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir")
    ds = ns.load_beir(root, "train")
    emb = ns.load_embeddings(root / "embeddings", ds)
    shuffled = np.ascontiguousarray(emb.corpus[::-1])
    kw = dict(embeddings=emb, n=5, seed=0, work_dir=tmp_path / "w", chunk_size=5)
    with pytest.raises(ns.RunIncomplete):
        ns.mine_dataset(ds, index=ns.NumpyIndex(emb.corpus), max_chunks=2, **kw)  # type: ignore[arg-type]
    with pytest.raises(SettingsMismatch, match=r"index\.content"):
        ns.mine_dataset(ds, index=ns.NumpyIndex(shuffled), **kw)  # type: ignore[arg-type]


def _indexes(corpus: np.ndarray) -> Iterator[ns.Index]:
    yield ns.NumpyIndex(corpus)
    yield ns.NumpyIndex(corpus, metric="cosine")
    if importlib.util.find_spec("faiss") is not None:
        yield ns.FaissIndex(corpus, "Flat")
        yield ns.FaissIndex(corpus, "Flat", keep_vectors=False)
        yield ns.FaissIndex(corpus, "IVF4,Flat", nprobe=2)
    if importlib.util.find_spec("torch") is not None:
        yield ns.TorchIndex(corpus, device="cpu")
        yield ns.TorchIndex(corpus, device="cpu", dtype="bfloat16")
    yield _Plain(corpus)


class _Plain(ns.BaseIndex):
    """An index without a fingerprint() method: digested through ``vectors``."""

    def __init__(self, corpus: np.ndarray) -> None:
        self._x, self.metric = corpus, "ip"

    @property
    def ntotal(self) -> int:
        return int(self._x.shape[0])

    @property
    def dim(self) -> int:
        return int(self._x.shape[1])

    def vectors(self, ids: object) -> np.ndarray:
        return np.asarray(self._x[np.asarray(ids)], np.float32)


def test_every_index_kind_tells_corpora_apart() -> None:
    a = [index_fingerprint(i) for i in _indexes(DATA.corpus)]
    b = [index_fingerprint(i) for i in _indexes(_other_corpus())]
    again = [index_fingerprint(i) for i in _indexes(DATA.corpus)]
    for x, y, z in zip(a, b, again, strict=True):
        assert x["content"] != y["content"], x["type"]
        assert (x["ntotal"], x["dim"]) == (y["ntotal"], y["dim"])
        if "IVF" not in str(x.get("factory")):  # (k-means is seeded: rebuilt alike, too)
            assert x == z, x["type"]
    assert len({json.dumps(x, sort_keys=True) for x in a}) == len(a)  # kinds differ too


def test_a_memory_mapped_corpus_has_its_arrays_digest(tmp_path: Path) -> None:
    np.save(tmp_path / "c.npy", DATA.corpus)
    mm = np.load(tmp_path / "c.npy", mmap_mode="r")
    assert index_fingerprint(ns.NumpyIndex(mm)) == index_fingerprint(ns.NumpyIndex(DATA.corpus))
    assert _digest.array_digest(mm[5:]) == _digest.array_digest(DATA.corpus[5:])


def test_digests_do_not_depend_on_threads_or_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_digest, "LEAF_BYTES", 4096)  # many leaves for a small array
    a = np.random.default_rng(0).standard_normal((1000, 7)).astype(np.float32)
    one = _digest.array_digest(a, threads=1)
    assert _digest.array_digest(a, threads=4) == one
    for step in (1, 13, 585, 1000):
        d = _digest.RowDigest(a.dtype, a.shape, threads=3)
        for s in range(0, 1000, step):
            d.update(a[s : s + step])
        assert d.hexdigest() == one
    assert _digest.array_digest(a.astype(np.float64)) != one
    assert _digest.array_digest(a.reshape(7, 1000)) != one
    b = a.copy()
    b[999, 6] = np.nextafter(b[999, 6], np.float32(10))
    assert _digest.array_digest(b) != one


# -- 2. a content change that keeps the size and the modification time ---------------------


def _rewrite_keeping_mtime(path: Path, change: object) -> None:
    st = path.stat()
    data = path.read_bytes()
    new = change(data)  # type: ignore[operator]
    assert len(new) == len(data) and new != data
    with open(path, "r+b") as f:  # in place: same inode, same size
        f.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )


def test_identify_file_sees_a_change_that_keeps_size_and_mtime(tmp_path: Path) -> None:
    f = tmp_path / "corpus.jsonl"
    f.write_text('{"_id": "d1", "text": "alpha"}\n')
    _settle()
    before = identify_file(f)
    assert before["name"] == "corpus.jsonl" and before["size"] == f.stat().st_size
    _rewrite_keeping_mtime(f, lambda b: b.replace(b"alpha", b"omega"))
    after = identify_file(f)
    assert after["content"] != before["content"] and after["size"] == before["size"]
    assert identify_files([f, f]) == [after, after]


def test_cli_resume_refused_after_such_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The embeddings (memory-mapped: ids in order) and the qrels change in place, size
    and modification time kept: the resume is refused, naming what differs."""
    root = write_beir(tmp_path / "beir", shuffle_embedding_ids=False)
    out = tmp_path / "out.jsonl"
    cli = [
        "mine",
        "--data",
        str(root),
        "--embeddings",
        str(root / "embeddings"),
        "--chunk-size",
        "5",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main([*cli, "--max-chunks", "1"]) == 3
    corpus = root / "embeddings" / "corpus.npy"
    _rewrite_keeping_mtime(corpus, lambda b: b[:-64] + bytes(reversed(b[-64:])))
    capsys.readouterr()
    assert main(cli) == 2
    err = capsys.readouterr().err
    assert "holds a run with other settings" in err and "index.corpus" in err, err
    assert main([*cli, "--fresh", "--max-chunks", "1"]) == 3  # started over on the new one
    qrels = root / "qrels" / "train.tsv"
    text = qrels.read_text()
    first = text.splitlines()[1].split("\t")[1]  # a positive of the first query
    swap = next(f"d{i}" for i in range(400) if len(f"d{i}") == len(first) and f"d{i}" != first)
    _rewrite_keeping_mtime(
        qrels, lambda b: b.replace(f"\t{first}\t".encode(), f"\t{swap}\t".encode(), 1)
    )
    assert main(cli) == 2
    assert "inputs.positives" in capsys.readouterr().err


# -- 3. unchanged files are not read again --------------------------------------------------


def test_unchanged_files_are_not_rehashed(tmp_path: Path, cache_dir: Path) -> None:
    np.save(tmp_path / "corpus.npy", DATA.corpus)
    (tmp_path / "data.jsonl").write_text("x" * 10_000)
    _settle()
    index = ns.NumpyIndex(np.load(tmp_path / "corpus.npy", mmap_mode="r"))
    with pytest.raises(ns.RunIncomplete):
        _mine(index, tmp_path / "w", max_chunks=1)
    first = identify_file(tmp_path / "data.jsonl")
    cache = _digest.default_cache()
    assert (cache.hits, cache.misses) == (0, 2)  # the corpus and the data file, read once
    assert (cache_dir / "fingerprints.json").is_file()
    # a new process: a new cache object reading the same file
    _digest._DEFAULT.clear()
    index = ns.NumpyIndex(np.load(tmp_path / "corpus.npy", mmap_mode="r"))
    logs: list[str] = []
    _mine(index, tmp_path / "w", log=logs.append)
    assert identify_file(tmp_path / "data.jsonl") == first
    cache = _digest.default_cache()
    assert (cache.hits, cache.misses) == (2, 0), cache
    assert any("resumed 1 of 5 chunks" in m for m in logs), logs
    # touched (content unchanged): the key changes, the file is read again, same digest
    os.utime(tmp_path / "data.jsonl")
    _settle()
    assert identify_file(tmp_path / "data.jsonl") == first and cache.misses == 1


def test_a_fresh_file_is_hashed_but_not_cached(tmp_path: Path) -> None:
    f = tmp_path / "new.txt"
    f.write_text("just written")
    cache = _digest.DigestCache(tmp_path / "c.json")
    d1 = _digest.file_digest(f, cache=cache)
    assert _digest.file_digest(f, cache=cache) == d1
    assert (cache.hits, cache.misses) == (0, 2)  # within the racy window: not trusted


_STORE = """
import sys
from negsample import _digest
cache = _digest.DigestCache(sys.argv[1])
for path in sys.argv[2:]:
    _digest.file_digest(path, cache=cache)
print(cache.misses)
"""


def test_the_cache_is_shared_by_processes(tmp_path: Path) -> None:
    files = []
    for i in range(8):
        f = tmp_path / f"f{i}.bin"
        f.write_bytes(bytes([i]) * 100_000)
        files.append(str(f))
    _settle()
    cache_file = str(tmp_path / "c.json")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _STORE, cache_file, *files[k::2]],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in (0, 1)
    ]
    assert [int(p.communicate(timeout=120)[0]) for p in procs] == [4, 4]
    cache = _digest.DigestCache(cache_file)
    for f in files:
        _digest.file_digest(f, cache=cache)
    assert (cache.hits, cache.misses) == (8, 0)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_an_unwritable_cache_is_counted_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the cache folder should be")
    f = tmp_path / "x.txt"
    f.write_text("x")
    _settle()
    cache = _digest.DigestCache(tmp_path / "blocker" / "c.json")
    assert _digest.file_digest(f, cache=cache) == _digest.file_digest(f, cache=None)
    assert cache.errors >= 1
