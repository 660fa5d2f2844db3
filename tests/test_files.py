"""One module for atomic files and locks, one mode: every kind of output negsample writes
is ``0o666 & ~umask`` (files) and ``0o777 & ~umask`` (folders), whatever wrote it."""

from __future__ import annotations

import importlib.util
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import negsample as ns
from negsample import _files
from negsample.cli import main
from tests.beir_helpers import write_beir

UMASKS = [0o022, 0o077, 0o002]


@pytest.fixture(params=UMASKS, ids=[f"umask{u:03o}" for u in UMASKS])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(old)


def _modes(path: Path) -> dict[str, int]:
    """``{relative path: permission bits}`` of ``path`` and everything under it."""
    out = {".": stat.S_IMODE(path.stat().st_mode)}
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            out[str(p.relative_to(path))] = stat.S_IMODE(p.lstat().st_mode)
    return out


def assert_modes(path: Path, umask: int) -> None:
    want_file, want_dir = 0o666 & ~umask, 0o777 & ~umask
    assert path.exists(), path
    for rel, mode in _modes(path).items():
        p = path / rel
        want = want_dir if p.is_dir() else want_file
        assert mode == want, f"{p}: mode {mode:o}, expected {want:o} under umask {umask:03o}"


def test_umask_is_read_without_changing_it(umask: int) -> None:
    assert _files.umask() == umask
    assert _files.file_mode() == 0o666 & ~umask and _files.folder_mode() == 0o777 & ~umask
    assert os.umask(umask) == umask  # (unchanged)


def test_atomic_primitives(tmp_path: Path, umask: int) -> None:
    with _files.atomic_path(tmp_path / "a" / "f.txt") as tmp:
        tmp.write_text("x")
    assert_modes(tmp_path / "a", umask)
    with _files.atomic_file(tmp_path / "g.bin", fsync=True) as f:
        f.write(b"y")
    _files.write_json(tmp_path / "h.json", {"a": 1})
    for name in ("g.bin", "h.json"):
        assert_modes(tmp_path / name, umask)
    with _files.atomic_dir(tmp_path / "d") as d:
        (d / "sub").mkdir()
        (d / "sub" / "x").write_text("1")
    assert_modes(tmp_path / "d", umask)
    _files.write_dir_atomic(tmp_path / "d", lambda t: (t / "y").write_text("2"))  # replaced
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["y"]
    assert_modes(tmp_path / "d", umask)
    _files.ensure_file(tmp_path / "e" / "db")
    assert_modes(tmp_path / "e", umask)
    assert not [p for p in tmp_path.rglob(".*")]  # no temporaries left
    with _files.hold_lock(tmp_path / "run.lock") as lock:
        assert_modes(lock, umask)


def test_failed_writes_leave_nothing(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("old")
    with pytest.raises(RuntimeError), _files.atomic_file(tmp_path / "out") as f:
        f.write(b"half")
        raise RuntimeError
    with pytest.raises(RuntimeError), _files.atomic_dir(tmp_path / "folder") as d:
        (d / "x").write_text("half")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out").read_text() == "old"


def test_stale_temporaries_named_and_removed(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    left = [".out.jsonl.ab12_xyz.tmp", ".out.jsonl.abcdefgh.old"]
    kept = [".out.jsonl.x.abcdefgh.tmp", ".other.abcdefgh.tmp", "out.jsonl"]
    (tmp_path / left[0]).write_text("half a file")
    (tmp_path / left[1]).mkdir()
    for k in kept:
        (tmp_path / k).write_text("")
    assert all(_files.stale_pattern("out.jsonl").match(n) for n in left)
    assert _files.remove_stale(target) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    # what the writers really name their temporaries is what is removed
    with _files.atomic_path(target) as tmp:
        assert _files.stale_pattern(target.name).match(tmp.name)
    with _files.atomic_dir(tmp_path / "hf") as tmpd:
        assert _files.stale_pattern("hf").match(tmpd.name)


def test_lock_module_reexports() -> None:
    from negsample.pipeline import lock

    assert lock.RunLocked is _files.RunLocked and lock.hold_lock is _files.hold_lock
    from negsample.index.base import write_dir_atomic
    from negsample.io.writers import atomic_dir, atomic_path

    assert atomic_path is _files.atomic_path and write_dir_atomic is _files.write_dir_atomic
    assert issubclass(atomic_dir, _files.atomic_dir)


# -- every kind of output -------------------------------------------------------------------


def test_cli_outputs(tmp_path: Path, umask: int) -> None:
    """The training file (every format family) and the stats JSON."""
    root = write_beir(tmp_path / "beir", n_docs=200, n_queries=12)
    base = ["mine", "--data", str(root), "--embeddings", str(root / "embeddings"), "--quiet"]
    out = tmp_path / "out"
    assert main([*base, "--out", str(out / "a.jsonl"), "--stats-json", str(out / "s.json")]) == 0
    assert main([*base, "--out", str(out / "t.jsonl"), "--format", "tevatron"]) == 0
    if importlib.util.find_spec("pyarrow") is not None:
        assert main([*base, "--out", str(out / "p.parquet"), "--format", "parquet"]) == 0
    if importlib.util.find_spec("datasets") is not None:
        assert main([*base, "--out", str(out / "hf"), "--format", "hf"]) == 0
    assert_modes(out, umask)


def test_resume_chunks_and_manifest(tmp_path: Path, umask: int) -> None:
    data = ns.make_synthetic(500, 20, 8, seed=0)
    wd = tmp_path / "work"
    with pytest.raises(ns.RunIncomplete):
        ns.mine_resumable(
            data.queries,
            ns.NumpyIndex(data.corpus),
            data.positives,
            work_dir=wd,
            chunk_size=5,
            max_chunks=2,
        )
    assert (wd / "manifest.json").is_file() and len(list(wd.glob("chunk_*.npz"))) == 2
    assert_modes(wd, umask)


def _indexes(corpus: np.ndarray) -> Iterator[Any]:
    yield ns.NumpyIndex(corpus)
    if importlib.util.find_spec("faiss") is not None:
        yield ns.FaissIndex(corpus, "Flat")
        yield ns.FaissIndex(corpus, "HNSW8")
    if importlib.util.find_spec("torch") is not None:
        yield ns.TorchIndex(corpus, device="cpu")


def test_saved_indexes(tmp_path: Path, umask: int) -> None:
    corpus = ns.make_synthetic(300, 4, 8, seed=0).corpus
    for i, index in enumerate(_indexes(corpus)):
        path = tmp_path / "indexes" / f"{type(index).__name__}-{i}"
        index.save(path)
        index.save(path)  # replacing a saved index keeps the mode too
        loaded = ns.load_index(path)
        assert loaded.ntotal == index.ntotal
    assert_modes(tmp_path / "indexes", umask)


def test_encoding_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int) -> None:
    from negsample.io import encoding as enc

    class Model:
        max_seq_length = 16

        def encode(self, texts: list[str], **kw: Any) -> np.ndarray:
            return np.asarray([[len(t), 1.0, 2.0] for t in texts], np.float32)

    monkeypatch.setattr(enc, "_load_model", lambda *a, **k: Model())
    cache = tmp_path / "cache"
    v = ns.encode(["a", "bb", "ccc"], "stub-model", cache_dir=cache, progress=False)
    assert v.shape == (3, 3)
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]
    assert_modes(cache, umask)


def test_drop_in_embedding_cache(tmp_path: Path, umask: int) -> None:
    from negsample.integrations._st.cache import save_atomic as _save_atomic

    folder = tmp_path / "st-cache"
    folder.mkdir()
    _save_atomic(str(folder / "corpus_embeddings_x.npy"), np.ones((3, 2), np.float32))
    np.testing.assert_array_equal(np.load(folder / "corpus_embeddings_x.npy"), 1.0)
    assert_modes(folder, umask)


def test_judge_cache(tmp_path: Path, umask: int) -> None:
    from negsample.scoring import JudgeItem, JudgementCache

    path = tmp_path / "judge" / "cache.sqlite"
    cache = JudgementCache(path)
    key = cache.key("m", "v1", JudgeItem("q", "p", "d"))
    cache.put(key, "HN", model="m", prompt_version="v1")
    assert cache.get_many([key]) == {key: "HN"}
    assert_modes(tmp_path / "judge", umask)  # the database and its -wal / -shm files
    cache.close()
