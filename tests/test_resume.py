"""Resumable mining: an interrupted run continues and gives the same file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from negsample.pipeline import resume
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
    # other settings: refused, not mixed
    with pytest.raises(ValueError, match="holds a run with other settings"):
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
    real = resume._save_chunk
    calls = {"n": 0}

    def dying(path: Path, part: ns.Negatives) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(path, part)

    monkeypatch.setattr(resume, "_save_chunk", dying)
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        _cli(root, out)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.jsonl.*.tmp"))  # no half-written output
    monkeypatch.setattr(resume, "_save_chunk", real)
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
