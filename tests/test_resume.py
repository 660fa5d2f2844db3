"""Resumable mining: an interrupted run continues and gives the same file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from negsample.pipeline import resume
from negsample.pipeline.store import RunStore
from tests.beir_helpers import write_beir


def test_mine_resumable_equals_mine(tmp_path: Path) -> None:
    data = ns.make_synthetic(3000, 50, 16, seed=1)
    index = ns.NumpyIndex(data.corpus)
    whole = ns.mine(data.queries, index, data.positives, ns.TopKSampler(k=40), n=5, seed=3)
    kw = dict(n=5, seed=3, work_dir=tmp_path / "w", chunk_size=8)
    with pytest.raises(ns.RunIncomplete, match="stopped after 3 of 7 chunks"):
        ns.mine_resumable(
            data.queries, index, data.positives, ns.TopKSampler(k=40), max_chunks=3, **kw
        )
    assert len(list((tmp_path / "w").glob("chunk_*.npz"))) == 3
    got = ns.mine_resumable(data.queries, index, data.positives, ns.TopKSampler(k=40), **kw)
    np.testing.assert_array_equal(got.ids, whole.ids)
    np.testing.assert_array_equal(got.scores, whole.scores)
    assert got.stats.n_rows == whole.stats.n_rows == 50
    # other settings: refused (the message says how to start over), not mixed
    with pytest.raises(ValueError, match=r"holds a run with other settings.*--fresh"):
        ns.mine_resumable(data.queries, index, data.positives, ns.TopKSampler(k=41), **kw)


def _cli(root: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "mine",
            "--data",
            str(root),
            "--embeddings",
            str(root / "embeddings"),
            "--sampler",
            "topk(k=30)",
            "--n",
            "5",
            "--seed",
            "4",
            "--format",
            "st-ntuple",
            "--scores",
            "--chunk-size",
            "5",
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


def test_cli_resume_after_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    ref = tmp_path / "ref.jsonl"
    assert _cli(root, ref) == 0
    out = tmp_path / "out.jsonl"
    assert _cli(root, out, "--max-chunks", "2") == 3
    assert not out.exists()
    work = tmp_path / ".out.jsonl.negsample-work"
    assert len(list(work.glob("chunk_*.npz"))) == 2
    assert "run the same command again to continue" in capsys.readouterr().err
    assert _cli(root, out) == 0
    assert "resumed 2 of 5 chunks" in capsys.readouterr().err
    assert out.read_bytes() == ref.read_bytes()
    assert not work.exists()


def test_cli_resume_after_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run killed (here: KeyboardInterrupt) in the middle of its third chunk resumes."""
    root = write_beir(tmp_path / "beir")
    ref = tmp_path / "ref.jsonl"
    assert _cli(root, ref) == 0
    real = RunStore.save_chunk
    calls = {"n": 0}

    def dying(self: RunStore, h: str, a: int, b: int, part: ns.Negatives) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(self, h, a, b, part)

    monkeypatch.setattr(RunStore, "save_chunk", dying)
    out = tmp_path / "out.jsonl"
    capsys.readouterr()
    assert _cli(root, out) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "negsample: interrupted; rerun the same command to resume (finished chunks are kept)"
    )
    assert not out.exists()
    assert not (tmp_path / ".out.jsonl.negsample-work.lock").exists()  # lock released
    assert not list(tmp_path.glob(".out.jsonl.*.tmp"))  # no half-written output
    monkeypatch.setattr(RunStore, "save_chunk", real)
    assert _cli(root, out) == 0
    assert "resumed 2 of 5 chunks" in capsys.readouterr().err
    assert out.read_bytes() == ref.read_bytes()


def test_cli_changed_settings_and_fresh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    out = tmp_path / "out.jsonl"
    assert _cli(root, out, "--max-chunks", "1") == 3
    assert _cli(root, out, "--seed", "5") == 2
    assert "holds a run with other settings" in capsys.readouterr().err
    assert _cli(root, out, "--seed", "5", "--fresh") == 0


def test_hnsw_index_is_kept_for_resume(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir")
    out = tmp_path / "o.jsonl"
    assert _cli(root, out, "--index", "HNSW32", "--max-chunks", "1") == 3
    work = tmp_path / ".o.jsonl.negsample-work"
    assert len(list(work.glob("index-*/index.faiss"))) == 1
    assert _cli(root, out, "--index", "HNSW32") == 0


# -- safety: settings hash per chunk, the lock, stale temporaries, the manifest -------------


def _api_run(data: ns.SyntheticRetrieval, wd: Path, seed: int, **kw: object) -> ns.Negatives:
    return ns.mine_resumable(
        data.queries,
        ns.NumpyIndex(data.corpus),
        data.positives,
        ns.TopKSampler(k=40),
        n=5,
        seed=seed,
        work_dir=wd,
        chunk_size=8,
        **kw,  # type: ignore[arg-type]
    )


def test_chunks_of_other_settings_are_never_loaded(tmp_path: Path) -> None:
    """Deleting the manifest must not let seed-0 chunks into a seed-1 run."""
    data = ns.make_synthetic(3000, 50, 16, seed=1)
    wd = tmp_path / "w"
    with pytest.raises(ns.RunIncomplete):
        _api_run(data, wd, 0, max_chunks=4)
    (wd / "manifest.json").unlink()
    msgs: list[str] = []
    got = _api_run(data, wd, 1, log=msgs.append)
    want = _api_run(data, tmp_path / "fresh", 1)
    np.testing.assert_array_equal(got.ids, want.ids)
    assert "removed 4 chunk files made with other settings" in " ".join(msgs)
    assert not any("resumed" in m for m in msgs)
    # a chunk renamed to the current settings' name is still refused by its content
    with pytest.raises(ns.RunIncomplete):
        _api_run(data, tmp_path / "a", 0, max_chunks=1)
    with pytest.raises(ns.RunIncomplete):
        _api_run(data, tmp_path / "b", 1, max_chunks=1)
    (old,) = (tmp_path / "a").glob("chunk_*.npz")
    (cur,) = (tmp_path / "b").glob("chunk_*.npz")
    old.replace(cur)
    msgs.clear()
    got = _api_run(data, tmp_path / "b", 1, log=msgs.append)
    np.testing.assert_array_equal(got.ids, want.ids)
    assert "recomputed 0 damaged chunk files and 1 made with other settings" in msgs


def test_corrupt_manifest_is_named_and_rebuilt(tmp_path: Path) -> None:
    data = ns.make_synthetic(3000, 50, 16, seed=1)
    wd = tmp_path / "w"
    with pytest.raises(ns.RunIncomplete):
        _api_run(data, wd, 0, max_chunks=2)
    (wd / "manifest.json").write_bytes(b"\x00\x00garbage")
    msgs: list[str] = []
    got = _api_run(data, wd, 0, log=msgs.append)
    np.testing.assert_array_equal(got.ids, _api_run(data, tmp_path / "ref", 0).ids)
    assert any(m.startswith(f"{wd / 'manifest.json'}: unreadable") for m in msgs)
    assert "resumed 2 of 7 chunks" in " ".join(msgs)


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    data = ns.make_synthetic(3000, 50, 16, seed=1)
    wd = tmp_path / "w"
    with pytest.raises(ns.RunIncomplete):
        _api_run(data, wd, 0, max_chunks=1)
    (wd / ".chunk_x_0000000008_0000000016.abcdefgh.tmp").write_bytes(b"half a chunk")
    (wd / ".index-x.abcdefgh").mkdir()
    msgs: list[str] = []
    _api_run(data, wd, 0, log=msgs.append)
    assert f"removed 2 temporary files left in {wd} by an interrupted run" in msgs
    assert not [p for p in wd.iterdir() if p.name.startswith(".")]


def test_resumable_needs_a_fixed_seed(tmp_path: Path) -> None:
    data = ns.make_synthetic(3000, 20, 16, seed=1)
    with pytest.raises(ValueError, match="needs a fixed seed"):
        _api_run(data, tmp_path / "w", None)  # type: ignore[arg-type]
    for bad in (0, -1, 2.5, True):
        with pytest.raises((ValueError, TypeError), match="max_chunks"):
            _api_run(data, tmp_path / "w", 0, max_chunks=bad)


_HOLDER = """
import sys, time
from pathlib import Path
from negsample.pipeline.resume import work_lock
with work_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_one_run_per_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second run on the same --out fails at once (exit 4) naming the lock and the pid of
    the run holding it; --fresh is refused too and the other run's work folder survives."""
    import os
    import subprocess
    import sys

    root = write_beir(tmp_path / "beir")
    out = tmp_path / "out.jsonl"
    assert _cli(root, out, "--max-chunks", "2") == 3
    work = tmp_path / ".out.jsonl.negsample-work"
    before = sorted(p.name for p in work.iterdir())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(work)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        for extra in ((), ("--fresh", "--seed", "1")):
            assert _cli(root, out, *extra) == 4
            err = capsys.readouterr().err.strip().splitlines()
            assert err == [
                f"negsample: error: {work}.lock is held by another negsample run "
                f"(pid {holder.pid}) on the same output; wait for it to end, or write to "
                "another path"
            ]
        assert sorted(p.name for p in work.iterdir()) == before
        with pytest.raises(ns.RunLocked):
            resume.remove_work_dir(work)
        assert work.is_dir()
    finally:
        holder.communicate("\n", timeout=30)
    assert _cli(root, out) == 0
    assert "resumed 2 of 5 chunks" in capsys.readouterr().err
    assert not work.exists() and not Path(f"{work}.lock").exists()


def test_lock_is_per_thread_and_reentrant(tmp_path: Path) -> None:
    import threading

    wd = tmp_path / "w"
    errors: list[BaseException] = []
    with resume.work_lock(wd), resume.work_lock(wd):  # re-entrant in one thread

        def other() -> None:
            try:
                with resume.work_lock(wd):
                    pass
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and isinstance(errors[0], ns.RunLocked)
    assert not (tmp_path / "w.lock").exists()
    with resume.work_lock(wd):  # free again
        pass


def test_stale_output_temporaries_removed_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_beir(tmp_path / "beir")
    out = tmp_path / "out.jsonl"
    (tmp_path / ".out.jsonl.k2j4_x9a.tmp").write_text("half a file")  # a kill in the write
    (tmp_path / ".out.jsonl.x.abcdefgh.tmp").write_text("another output's: kept")
    assert _cli(root, out) == 0
    assert "removed 1 temporary files left beside" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.jsonl.x.abcdefgh.tmp",
        "beir",
        "out.jsonl",
    ]


def test_stale_hf_folder_removed_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--format hf`` writes ``save_to_disk`` into a temporary folder, then renames it: a
    kill in between leaves that folder, which the next run removes."""
    pytest.importorskip("datasets")
    root = write_beir(tmp_path / "beir")
    out = tmp_path / "out_hf"
    stale = tmp_path / ".out_hf.k2j4_x9a.tmp"
    stale.mkdir()
    (stale / "data-00000-of-00001.arrow").write_bytes(b"half a dataset")
    assert _cli(root, out, "--format", "hf") == 0
    assert "removed 1 temporary files left beside" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beir", "out_hf"]


def test_default_chunk_size_is_whole_search_blocks(tmp_path: Path) -> None:
    from negsample.pipeline.resume import default_chunk_size

    data = ns.make_synthetic(2000, 10, 8, seed=0)
    assert default_chunk_size(None) == 4096
    assert default_chunk_size(ns.NumpyIndex(data.corpus)) == 4096  # 4 blocks of 1,024
    assert default_chunk_size(ns.NumpyIndex(data.corpus, search_block=3000)) == 6000
    # a GPU-sized block: one chunk of 16,384 queries, not 4,096 that each search a block
    assert default_chunk_size(ns.NumpyIndex(data.corpus, search_block=16384)) == 16384
