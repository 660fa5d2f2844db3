"""Every path a command names is checked against every other before any work (issue 20
items 2 and 8): outputs, caches, the run's own lock file and work folder, inputs; and
every option (the judge URL and cache, the teacher's path, the run file) is checked
before the data is read. Each refusal is exit 2 and one line naming both options and
both paths; nothing is written or changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from negsample.cli import main
from negsample.pipeline.outputs import Place, check_places
from tests.beir_helpers import write_beir
from tests.test_cli_errors import _one_error, _run_file

JUDGE = ["--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "m"]  # never contacted


def _state(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (with the files' digests)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _mine(root: Path, *extra: str, emb: bool = True) -> list[str]:
    vectors = ["--embeddings", str(root / "embeddings")] if emb else []
    return ["mine", "--data", str(root), *vectors, "--sampler", "topk(k=20)", "--quiet", *extra]


def _refused(argv: list[str], tmp: Path, capsys: pytest.CaptureFixture[str], *names: str) -> str:
    """``argv`` exits 2 before any work with one line naming each of ``names``; nothing
    under ``tmp`` changed."""
    before = _state(tmp)
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    line = _one_error(err)
    for name in names:
        assert name in line, (name, line)
    assert "documents" not in err  # the data was not read
    assert _state(tmp) == before
    return line


@pytest.fixture
def beir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEGSAMPLE_CACHE", str(tmp_path / "cache"))
    return write_beir(tmp_path / "beir")


def test_judge_cache_is_the_output(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("a training file from an earlier run\n")
    link = tmp_path / "link.sqlite"
    link.symlink_to(out)
    for cache in (str(out), "out.jsonl", str(link)):  # as given, relative, a symlink
        line = _refused(
            _mine(beir, "--out", str(out), *JUDGE, "--judge-cache", cache),
            tmp_path,
            capsys,
            "--out",
            "--judge-cache",
        )
        assert f"--out {out} and --judge-cache {cache} are the same file" in line
    assert out.read_text() == "a training file from an earlier run\n"


def test_stats_json_onto_the_runs_lock_or_work_folder(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.jsonl"
    lock = tmp_path / ".o.jsonl.negsample-work.lock"
    work = tmp_path / ".o.jsonl.negsample-work"
    line = _refused(
        _mine(beir, "--out", str(out), "--stats-json", str(lock)),
        tmp_path,
        capsys,
        "--stats-json",
    )
    assert f"the run's lock file {lock}" in line and "are the same file" in line
    line = _refused(
        _mine(beir, "--out", "o.jsonl", "--stats-json", ".o.jsonl.negsample-work/s.json"),
        tmp_path,
        capsys,
    )
    assert f"is inside the run's work folder {Path('.o.jsonl.negsample-work')}" in line
    assert "which the run removes when it ends" in line
    # an input there would be removed at the end too
    work.mkdir()
    run = _run_file(work / "run.trec", beir)
    line = _refused(
        ["mine", "--data", str(beir), "--run", str(run), "--out", str(out), "--quiet"],
        tmp_path,
        capsys,
        "--run",
        "the run's work folder",
    )
    assert "holds --run's file" in line
    # named like a temporary of an interrupted write of --out (removed by the run)
    line = _refused(
        _mine(beir, "--out", str(out), "--stats-json", str(tmp_path / ".o.jsonl.abcd1234.tmp")),
        tmp_path,
        capsys,
        "--stats-json",
        "--out",
    )
    assert "named like a temporary file of an interrupted write of --out" in line


def test_no_output_or_cache_in_the_data(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emb = beir / "embeddings"
    cases = [
        (["--out", str(beir / "corpus.jsonl.gz")], "is inside --data's folder"),  # new file
        (["--out", str(beir / "qrels" / "neg.jsonl")], "is inside --data's folder"),
        (["--out", str(emb / "neg.jsonl")], "is inside --embeddings's folder"),
        (["--out", "o.jsonl", "--stats-json", "beir/s.json"], "is inside --data's folder"),
        (["--out", "o.jsonl", *JUDGE, "--judge-cache", str(beir / "j.sqlite")], "--data"),
        (["--out", "o.jsonl", *JUDGE, "--judge-cache", str(beir / "corpus.jsonl")], "overwrite"),
        (["--out", str(tmp_path), "--format", "hf"], "holds --data's folder"),
    ]
    for extra, text in cases:
        line = _refused(_mine(beir, *extra), tmp_path, capsys)
        assert text in line and "refusing to" in line, line


def test_embedding_cache_against_outputs_and_inputs(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    cases = [
        (["--cache-dir", str(beir)], "--cache-dir", "is --data's folder"),
        (["--cache-dir", str(beir / "qrels")], "--cache-dir", "is inside --data's folder"),
        (["--cache-dir", str(cache), "--stats-json", str(cache / "s.json")], "--cache-dir", ""),
        (["--out", str(cache / "o.jsonl")], "is inside --cache-dir", ""),  # the default cache
    ]
    for extra, a, b in cases:
        argv = _mine(beir, "--out", str(tmp_path / "o.jsonl"), *extra, emb=False)
        line = _refused(argv, tmp_path, capsys, a, b)
        assert "refusing to" in line or "may not overlap" in line
    # the default judge cache lies in the default embedding cache: allowed
    check_places(
        [
            Place("--cache-dir", cache, "cache", folder=True),
            Place("--judge-cache", cache / "judgements.sqlite", "cache"),
        ]
    )


def test_report_out_dir_and_the_data(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emb = beir / "embeddings"
    rep = ["report", "--data", str(beir), "--embeddings", str(emb), "--sampler", "topk"]
    for d, text in (
        (beir, "is --data's folder"),
        (beir / "plots", "is inside --data's folder"),
        (emb, "is --embeddings's folder"),
        (tmp_path, "holds --data's folder"),
        (Path("."), "holds --data's folder"),
    ):
        line = _refused([*rep, "--out-dir", str(d)], tmp_path, capsys, "--out-dir")
        assert text in line, line
    # a cache inside the report folder
    cached = ["report", "--data", str(beir), "--sampler", "topk", "--out-dir", "rep"]
    line = _refused(
        [*cached, "--cache-dir", "rep/cache"],
        tmp_path,
        capsys,
        "--cache-dir",
        "--out-dir",
    )
    assert "may not overlap" in line


def test_train_and_probe_outputs(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tr = ["train", "--data", str(beir)]
    line = _refused([*tr, "--out", str(tmp_path)], tmp_path, capsys, "--out", "--data")
    assert "holds --data's folder" in line
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    line = _refused(
        [*tr, "--model", str(model), "--metrics-json", str(model / "m.json")],
        tmp_path,
        capsys,
        "--metrics-json",
        "--model",
    )
    assert "is inside --model's folder" in line
    line = _refused(
        [*tr, "--out", "m", "--metrics-json", "m/metrics.json"], tmp_path, capsys, "--out"
    )
    assert "may not overlap" in line
    probe = ["probe", "--data", str(beir), "--embeddings", str(beir / "embeddings")]
    line = _refused(
        [*probe, "--sampler", "topk", "--json", str(beir / "p.json")], tmp_path, capsys, "--json"
    )
    assert "is inside --data's folder" in line


# -- every option checked before any work (item 8) ------------------------------------------


def test_options_checked_before_any_work(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path / "o.jsonl")]
    url = ["--judge-model", "m", "--judge-url"]
    (tmp_path / "afolder").mkdir()
    cases = [
        ([*url, "ftp://127.0.0.1/v1"], "--judge-url 'ftp://127.0.0.1/v1': must start with http"),
        ([*url, "http:///v1"], "--judge-url 'http:///v1': no host"),
        ([*url, "http://127.0.0.1:port/v1"], "--judge-url 'http://127.0.0.1:port/v1': not a valid"),
        (
            [*JUDGE, "--judge-cascade-model", "big", "--judge-cascade-url", "localhost:8000"],
            "--judge-cascade-url 'localhost:8000'",
        ),
        ([*JUDGE, "--judge-cache", str(tmp_path / "afolder")], "is a folder; give a file name"),
        (
            ["--rescore", "cross-encoder:/no/such/model", "--rescore-max-score", "1"],
            "--rescore /no/such/model: no such model folder",
        ),
        (
            ["--rescore", "cross-encoder:x", "--rescore-max-score", "nan"],
            "--rescore-max-score must be",  # finite
        ),
        (["--sampler", "topk(k=3)", "--n", "5"], "holds 3 candidates, fewer than the n=5"),
    ]
    for extra, text in cases:
        line = _refused(_mine(beir, *out, *extra), tmp_path, capsys)
        assert text in line, (extra, line)
    line = _refused(
        ["mine", "--data", str(beir), "--model", "./no/such/model", *out, "--quiet"],
        tmp_path,
        capsys,
    )
    assert "--model ./no/such/model: no such model folder" in line
    run = ["mine", "--data", str(beir), *out, "--quiet", "--run"]
    line = _refused([*run, str(tmp_path / "missing.trec")], tmp_path, capsys)
    assert "missing.trec: No such file or directory" in line
    line = _refused([*run, str(tmp_path / "afolder")], tmp_path, capsys)
    assert "afolder: Is a directory" in line
    if os.geteuid() != 0:
        unreadable = _run_file(tmp_path / "r.trec", beir)
        unreadable.chmod(0)
        line = _refused([*run, str(unreadable)], tmp_path, capsys)
        assert "Permission denied" in line
