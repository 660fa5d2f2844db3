"""SIGTERM (Slurm, Kubernetes, ``kill``) is handled as Ctrl-C is (issue 20 item 10): one
line, exit code 143, the finished chunks kept, and a rerun gives the bytes of an
uninterrupted run. On a real process, and on a real Ray cluster (slow)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import negsample as ns
from negsample.cli import EXIT_TERMINATED, main
from negsample.pipeline.store import RunStore
from tests.beir_helpers import write_beir

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = (
    "negsample: terminated (SIGTERM); rerun the same command to resume (finished chunks are kept)"
)


def _argv(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "mine", "--data", str(root), "--embeddings", str(root / "embeddings"),
        "--sampler", "topk(k=30)", "--n", "4", "--seed", "3", "--scores",
        "--out", str(out), "--quiet", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def _terminate_after(proc: subprocess.Popen[str], work: Path, chunks: int, timeout: float) -> int:
    """Send SIGTERM once ``work`` holds ``chunks`` finished chunks; the chunks there then."""
    deadline = time.monotonic() + timeout
    while len(list(work.glob("chunk_*.npz"))) < chunks:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(
                f"the run ended (exit {proc.returncode}) before it could be terminated:\n{err}"
            )
        assert time.monotonic() < deadline, "no chunk was finished in time"
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    return chunks


def test_sigterm_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM arriving while the third chunk is saved: the same path as Ctrl-C; a second
    SIGTERM during the cleanup is ignored; the handler is put back afterwards."""
    root = write_beir(tmp_path / "beir")
    ref = tmp_path / "ref.jsonl"
    assert main(_argv(root, ref, "--chunk-size", "5")) == 0
    real = RunStore.save_chunk
    calls = {"n": 0, "cleaned": 0}

    def save(self: RunStore, h: str, a: int, b: int, part: ns.Negatives) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)  # the handler raises here (the sleep is cut short)
            finally:  # a second SIGTERM while the first unwinds: ignored
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                calls["cleaned"] += 1
        real(self, h, a, b, part)

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(RunStore, "save_chunk", save)
    out = tmp_path / "out.jsonl"
    capsys.readouterr()
    assert main(_argv(root, out, "--chunk-size", "5")) == EXIT_TERMINATED == 143
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == MESSAGE and "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) is before
    assert calls["cleaned"] == 1  # the cleanup ran to its end
    work = tmp_path / ".out.jsonl.negsample-work"
    assert len(list(work.glob("chunk_*.npz"))) == 2
    assert not out.exists() and not Path(f"{work}.lock").exists()
    assert not list(work.glob(".*")) and not list(tmp_path.glob(".out.jsonl.*.tmp"))
    monkeypatch.setattr(RunStore, "save_chunk", real)
    assert main(_argv(root, out, "--chunk-size", "5")) == 0
    assert "resumed 2 of 5 chunks" in capsys.readouterr().err
    assert out.read_bytes() == ref.read_bytes()
    # other commands: the line without the resume hint
    emb = str(root / "embeddings")
    from negsample import probe as probe_module

    def terminated(*a: object, **k: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)

    monkeypatch.setattr(probe_module, "probe", terminated)
    probe = ["probe", "--data", str(root), "--embeddings", emb, "--sampler", "topk(k=20)"]
    assert main([*probe, "--seeds", "0", "--n", "3"]) == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == "negsample: terminated (SIGTERM)"


def test_sigterm_a_real_run(tmp_path: Path) -> None:
    """``kill -TERM`` on a running ``negsample mine``: exit 143, one line, the finished
    chunks kept; the rerun resumes them and writes the uninterrupted run's bytes."""
    root = write_beir(tmp_path / "beir", n_docs=600, n_queries=40)
    ref = tmp_path / "ref.jsonl"
    assert main(_argv(root, ref)) == 0  # one chunk: the bytes do not depend on the split
    out = tmp_path / "out.jsonl"
    work = tmp_path / ".out.jsonl.negsample-work"
    cmd = [sys.executable, "-m", "negsample", *_argv(root, out, "--chunk-size", "1")]
    proc = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _terminate_after(proc, work, 2, timeout=120)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == MESSAGE and "Traceback" not in err
    kept = len(list(work.glob("chunk_*.npz")))
    assert 2 <= kept < 40 and not out.exists()
    assert not Path(f"{work}.lock").exists() and not list(work.glob(".*"))
    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resumed {kept} of 40 chunks" in again.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beir", "out.jsonl", "ref.jsonl"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs Ray")
def test_sigterm_a_ray_run(tmp_path: Path) -> None:
    """With ``--ray``: the driver cancels its work on the cluster, shuts Ray down and
    ends with the same one line (no C++ stack); the rerun resumes to the same bytes."""
    from tests.ray_cluster import DRIVER_ENV, LocalCluster

    # a Ray run rounds chunks up to the index's search block (1,024 queries): 5 chunks
    root = write_beir(tmp_path / "beir", n_docs=60_000, n_queries=4200)
    ref = tmp_path / "ref.jsonl"
    assert main(_argv(root, ref)) == 0
    cluster = LocalCluster(nodes=1, cpus=2)
    cluster.start()
    try:
        env = {**_env(), **DRIVER_ENV}
        out = tmp_path / "out.jsonl"
        work = tmp_path / ".out.jsonl.negsample-work"
        ray = ["--ray", cluster.address, "--workers", "1", "--worker-cpus", "0.5"]
        cmd = [sys.executable, "-m", "negsample", *_argv(root, out, "--chunk-size", "1024"), *ray]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            _terminate_after(proc, work, 1, timeout=240)
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 143, err
        assert err.strip().splitlines()[-1] == MESSAGE, err
        for trace in ("Traceback", "*** SIGTERM received", "PC: @", "Stack trace"):
            assert trace not in err, err
        kept = len(list(work.glob("chunk_*.npz")))
        assert 1 <= kept < 5 and not out.exists() and not Path(f"{work}.lock").exists()
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        assert f"resumed {kept} of 5 chunks" in again.stderr
        assert out.read_bytes() == ref.read_bytes()
    finally:
        cluster.stop()
