"""Every CLI failure ends in one line ``negsample: error: ...`` naming the problem and where
it is, with a meaningful exit code, no traceback, and nothing left on disk."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from negsample.cli import main
from tests.beir_helpers import write_beir
from tests.test_data import BAD, _append

# -- helpers -------------------------------------------------------------------------------


def _one_error(err: str) -> str:
    """The single error line of ``err``: the last line, the only ``negsample: error:``."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    errors = [x for x in lines if x.startswith("negsample: error:")]
    assert len(errors) == 1, err
    assert lines[-1] == errors[0], err
    return errors[0]


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _run_file(path: Path, root: Path, k: int = 30) -> Path:
    """A TREC run with ``k`` candidates for each of the 24 train queries of write_beir."""
    rng = np.random.default_rng(0)
    lines = []
    for q in range(24):
        for r, d in enumerate(rng.choice(400, k, replace=False).tolist(), start=1):
            lines.append(f"q{q} Q0 d{d} {r} {100.0 - r:.1f} bm25\n")
    path.write_text("".join(lines))
    return path


def _bad_byte(path: Path, lineno: int, old: bytes = b"text") -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    assert old in lines[lineno - 1]
    lines[lineno - 1] = lines[lineno - 1].replace(old, b"t\xffext", 1)
    path.write_bytes(b"".join(lines))


def _set_row(root: Path, name: str, row_id: str, value: float) -> int:
    emb = root / "embeddings"
    ids = (emb / f"{'query' if name == 'queries' else 'corpus'}_ids.txt").read_text().split()
    r = ids.index(row_id)
    a = np.load(emb / f"{name}.npy")
    a[r, 2] = value
    np.save(emb / f"{name}.npy", a)
    return r


# -- the malformed-input table -------------------------------------------------------------

Case = Callable[[Path, Path], "list[str] | str"]


def _bad_json_case(rel: str, text: str, pattern: str) -> tuple[Case, str]:
    def setup(root: Path, tmp: Path) -> list[str]:
        _append(root / rel, text)
        return []

    return setup, pattern


def _non_utf8(rel: str, lineno: int) -> tuple[Case, str]:
    def setup(root: Path, tmp: Path) -> list[str]:
        if rel.startswith("qrels"):
            rows = "".join(f"q{i % 24}\td{i}\t1\n" for i in range(60))
            (root / rel).write_text("query-id\tcorpus-id\tscore\n" + rows)
            _bad_byte(root / rel, lineno, b"\t1")
        else:
            _bad_byte(root / rel, lineno)
        return []

    name = rel.split("/")[-1]
    return setup, rf"{name}:{lineno}: not valid UTF-8: byte 0xff"


def _utf16(root: Path, tmp: Path) -> list[str]:
    p = root / "queries.jsonl"
    p.write_bytes(p.read_text().encode("utf-16"))
    return []


def _extra_column(root: Path, tmp: Path) -> list[str]:
    _append(root / "qrels" / "train.tsv", "q0\td1\t1\tx\n")
    return []


def _both_gz(root: Path, tmp: Path) -> list[str]:
    with gzip.open(root / "queries.jsonl.gz", "wb") as f:
        f.write((root / "queries.jsonl").read_bytes())
    return []


def _missing_split(root: Path, tmp: Path) -> list[str]:
    return ["--split", "dev"]


def _nan_corpus(root: Path, tmp: Path) -> str:
    r = _set_row(root, "corpus", "d17", np.nan)
    return rf"corpus.npy: row {r} \(0-based; id 'd17', line {r + 1} of corpus_ids.txt\) holds nan"


def _inf_queries(root: Path, tmp: Path) -> str:
    r = _set_row(root, "queries", "q7", np.inf)
    return rf"queries.npy: row {r} \(0-based; id 'q7', line {r + 1} of query_ids.txt\) holds inf"


def _missing_embedding(root: Path, tmp: Path) -> list[str]:
    p = root / "embeddings" / "corpus_ids.txt"
    p.write_text(p.read_text().replace("d7\n", "zz\n"))
    return []


def _run_case(extra: str, lineno: int | None = None) -> Case:
    def setup(root: Path, tmp: Path) -> list[str]:
        run = _run_file(tmp / "run.trec", root)
        if lineno is None:
            _append(run, extra)
        else:
            _bad_byte(run, lineno, b"bm25")
        return ["--run", str(run)]

    return setup


CASES: dict[str, tuple[Case, str]] = {
    **{f"beir {k}": _bad_json_case(*v) for k, v in BAD.items()},
    "non-utf8 corpus line 300": _non_utf8("corpus.jsonl", 300),
    "non-utf8 queries line 4": _non_utf8("queries.jsonl", 4),
    "non-utf8 qrels line 40": _non_utf8("qrels/train.tsv", 40),
    "utf-16 queries": (_utf16, r"queries.jsonl:1: the file is UTF-16"),
    "qrels extra column": (
        _extra_column,
        r"train.tsv:54: expected 3 tab-separated fields \(query-id corpus-id score\) as on "
        r"line 1, got 4",
    ),
    "plain and gz": (_both_gz, r"beir: both queries.jsonl and queries.jsonl.gz are present"),
    "missing split": (
        _missing_split,
        r"qrels/dev.tsv: not found \(nor dev.tsv.gz\); the splits in .*qrels are: test, train",
    ),
    "nan in corpus.npy": (_nan_corpus, ""),
    "inf in queries.npy": (_inf_queries, ""),
    "embedding id missing": (
        _missing_embedding,
        r"corpus_ids.txt: no embedding for 1 documents: 'd7'",
    ),
    "run fields": (_run_case("q0 Q0 d1 1 2.0\n"), r"run.trec:721: expected 6 fields"),
    "run unknown doc": (
        _run_case("q0 Q0 nope 1 2.0 bm25\n"),
        r"run.trec:721: document id 'nope' \(query 'q0'\) is not in the corpus",
    ),
    "run non-utf8 line 41": (_run_case("", 41), r"run.trec:41: not valid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_input(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    setup, pattern = CASES[case]
    extra = setup(root, tmp_path)
    if isinstance(extra, str):
        pattern, extra = extra, []
    if "--run" not in extra:
        extra = ["--embeddings", str(root / "embeddings"), *extra]
    out_dir = tmp_path / "out"
    rc = main(
        [
            "mine",
            "--data",
            str(root),
            *extra,
            "--sampler",
            "topk(k=20)",
            "--out",
            str(out_dir / "neg.jsonl"),
            "--stats-json",
            str(out_dir / "stats.json"),
            "--quiet",
        ]
    )
    line = _one_error(capsys.readouterr().err)
    assert rc == 2, line
    assert re.search(pattern, line), (pattern, line)
    assert str(tmp_path) in line  # the file is named with its path
    assert not out_dir.exists()  # no output, work folder, lock or temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) in (["beir"], ["beir", "run.trec"])


# -- argparse-level validation -------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["mine", "--max-chunks", "-1"], r"mine: argument --max-chunks: must be >= 1, got -1"),
        (["mine", "--n", "0"], r"mine: argument --n: must be >= 1, got 0"),
        (["mine", "--chunk-size", "0"], r"argument --chunk-size: must be >= 1, got 0"),
        (["mine", "--batch-size", "-8"], r"argument --batch-size: must be >= 1, got -8"),
        (["mine", "--min-relevance", "0"], r"argument --min-relevance: must be >= 1"),
        (
            ["mine", "--seed", str(2**64)],
            r"argument --seed: a seed is an integer in \[0, 2\*\*64\)",
        ),
        (["mine", "--seed", "-1"], r"argument --seed: a seed is an integer in \[0, 2\*\*64\)"),
        (["mine", "--n", "2.5"], r"argument --n: expected an integer, got '2.5'"),
        (["demo", "--dim", "0"], r"demo: argument --dim: must be >= 1, got 0"),
        (["demo", "--queries", "0"], r"demo: argument --queries: must be >= 1, got 0"),
        (["report", "--seeds", "1", "-2"], r"argument --seeds: a seed is an integer"),
        (["probe", "--epochs", "0"], r"probe: argument --epochs: must be >= 1"),
        (["train", "--max-steps", "0"], r"argument --max-steps: must be -1 \(no limit\) or >= 1"),
        (["train", "--lr", "nan"], r"argument --lr: must be a finite number > 0"),
        (["train", "--warmup-ratio", "2"], r"argument --warmup-ratio: must be in \[0, 1\]"),
    ],
)
def test_argument_validation(
    tmp_path: Path, argv: list[str], pattern: str, capsys: pytest.CaptureFixture[str]
) -> None:
    need = {
        "mine": ["--data", str(tmp_path), "--out", str(tmp_path / "o.jsonl")],
        "report": ["--data", str(tmp_path), "--sampler", "topk", "--out-dir", str(tmp_path)],
        "probe": ["--data", str(tmp_path), "--sampler", "topk"],
        "train": ["--data", str(tmp_path)],
        "demo": [],
    }[argv[0]]
    assert main([*argv, *need]) == 2
    line = _one_error(capsys.readouterr().err)
    assert re.search(pattern, line), line
    assert line.endswith(f"(see negsample {argv[0]} --help)")
    assert list(tmp_path.iterdir()) == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import negsample as ns

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"negsample {ns.__version__}"


def test_demo_too_few_docs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--docs", "10", "--queries", "5"]) == 2
    assert "n_docs=10 is too small" in _one_error(capsys.readouterr().err)


# -- no output is an input -----------------------------------------------------------------


def _mine_argv(root: Path, *extra: str) -> list[str]:
    return [
        "mine",
        "--data",
        str(root),
        "--embeddings",
        str(root / "embeddings"),
        "--sampler",
        "topk(k=20)",
        "--quiet",
        *extra,
    ]


def _as_input(kind: str, root: Path, tmp: Path) -> list[str]:
    emb = root / "embeddings"
    if kind == "out corpus":
        return _mine_argv(root, "--out", str(root / "corpus.jsonl"))
    if kind == "out symlink to queries":
        (tmp / "link.jsonl").symlink_to(root / "queries.jsonl")
        return _mine_argv(root, "--out", str(tmp / "link.jsonl"))
    if kind == "out relative qrels":
        rel = os.path.relpath(root / "qrels" / ".." / "qrels" / "train.tsv")
        return _mine_argv(root, "--out", rel)
    if kind == "stats-json corpus.npy":
        return _mine_argv(
            root, "--out", str(tmp / "o.jsonl"), "--stats-json", str(emb / "corpus.npy")
        )
    if kind == "stats-json = out":
        o = str(tmp / "o.jsonl")
        return _mine_argv(root, "--out", o, "--stats-json", o)
    if kind == "out run file":
        run = _run_file(tmp / "run.trec", root)
        return ["mine", "--data", str(root), "--run", str(run), "--out", str(run), "--quiet"]
    if kind == "probe json ids":
        return [
            "probe", "--data", str(root), "--embeddings", str(emb), "--sampler", "topk",
            "--json", str(emb / "query_ids.txt"),
        ]  # fmt: skip
    if kind == "report out-dir file is an input":
        d = tmp / "rep"
        d.mkdir()
        (d / "summary.md").symlink_to(root / "corpus.jsonl")
        return [
            "report", "--data", str(root), "--embeddings", str(emb), "--sampler", "topk",
            "--out-dir", str(d),
        ]  # fmt: skip
    if kind == "train metrics-json qrels":
        return ["train", "--data", str(root), "--metrics-json", str(root / "qrels" / "test.tsv")]
    if kind == "train out data folder":
        return ["train", "--data", str(root), "--out", str(root)]
    if kind == "train out model folder":
        model = tmp / "model"
        model.mkdir()
        (model / "config.json").write_text("{}")
        return ["train", "--data", str(root), "--model", str(model), "--out", str(model)]
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "out corpus",
        "out symlink to queries",
        "out relative qrels",
        "stats-json corpus.npy",
        "stats-json = out",
        "out run file",
        "probe json ids",
        "report out-dir file is an input",
        "train metrics-json qrels",
        "train out data folder",
        "train out model folder",
    ],
)
def test_no_output_is_an_input(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_beir(tmp_path / "beir")
    monkeypatch.chdir(tmp_path)
    argv = _as_input(kind, root, tmp_path)
    before = _digest(tmp_path)
    assert main(argv) == 2
    line = _one_error(capsys.readouterr().err)
    assert re.search(r"refusing to (overwrite an input|write into it)|are the same file", line)
    assert _digest(tmp_path) == before  # nothing overwritten, nothing written
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# -- output paths that cannot be written ---------------------------------------------------


def test_output_path_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_beir(tmp_path / "beir")
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (["--out", str(afile / "neg.jsonl")], r"afile is a file, so no folder can be made"),
        (["--out", str(tmp_path)], r"is a folder; give a file name"),
        (
            ["--out", str(tmp_path / "o.jsonl"), "--stats-json", str(afile / "s" / "x.json")],
            r"--stats-json .*afile is a file",
        ),
    ]
    for extra, pattern in cases:
        assert main(_mine_argv(root, *extra)) == 2
        assert re.search(pattern, _one_error(capsys.readouterr().err))
    emb = str(root / "embeddings")
    rep = ["report", "--data", str(root), "--embeddings", emb, "--sampler", "topk"]
    assert main([*rep, "--out-dir", str(afile)]) == 2
    assert re.search(r"afile is a file", _one_error(capsys.readouterr().err))
    # a read-only folder (simulated: the tests may run as root, who can write anywhere)
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode)
    )
    probe = ["probe", "--data", str(root), "--embeddings", emb, "--sampler", "topk"]
    for argv in (
        _mine_argv(root, "--out", str(ro / "o.jsonl")),
        _mine_argv(root, "--out", str(tmp_path / "o.jsonl"), "--stats-json", str(ro / "s.json")),
        [*probe, "--json", str(ro / "p.json")],
        [*rep, "--out-dir", str(ro / "rep")],
    ):
        assert main(argv) == 2
        assert re.search(
            rf"cannot write in {ro} \(permission denied\)", _one_error(capsys.readouterr().err)
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "beir", "ro"]
    assert list(ro.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_really_read_only_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(_mine_argv(root, "--out", str(ro / "o.jsonl"))) == 2
        assert "permission denied" in _one_error(capsys.readouterr().err)
    finally:
        ro.chmod(0o755)


def test_disk_full_during_the_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC in the final write: exit 1, one line, no temporary file, the chunks kept, and
    the rerun gives the file an uninterrupted run gives."""
    from negsample.io import writers

    root = write_beir(tmp_path / "beir")
    ref = tmp_path / "ref.jsonl"
    assert main(_mine_argv(root, "--out", str(ref), "--chunk-size", "5")) == 0
    real = writers._line
    calls = {"n": 0}

    def full(f: object, obj: dict[str, object]) -> None:
        calls["n"] += 1
        if calls["n"] > 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, obj)  # type: ignore[arg-type]

    monkeypatch.setattr(writers, "_line", full)
    out = tmp_path / "out.jsonl"
    capsys.readouterr()
    assert main(_mine_argv(root, "--out", str(out), "--chunk-size", "5")) == 1
    line = _one_error(capsys.readouterr().err)
    assert "No space left on device (disk full: free some space and rerun)" in line
    assert "the mined chunks are kept in" in line
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl.*.tmp"))
    work = tmp_path / ".out.jsonl.negsample-work"
    assert len(list(work.glob("chunk_*.npz"))) == 5
    assert not Path(f"{work}.lock").exists()
    monkeypatch.setattr(writers, "_line", real)
    assert main(_mine_argv(root, "--out", str(out), "--chunk-size", "5")) == 0
    assert "resumed 5 of 5 chunks" in capsys.readouterr().err
    assert out.read_bytes() == ref.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beir", "out.jsonl", "ref.jsonl"]


# -- runs that would write nothing ---------------------------------------------------------


def test_ivf_with_more_lists_than_passages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("faiss")
    root = write_beir(tmp_path / "beir")
    out = tmp_path / "o" / "neg.jsonl"
    assert main(_mine_argv(root, "--out", str(out), "--index", "IVF1024,Flat")) == 2
    line = _one_error(capsys.readouterr().err)
    assert "IVF1024 needs at least 1024 training vectors, the corpus has 400" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beir"]


def test_zero_rows_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    run = _run_file(tmp_path / "run.trec", root, k=4)  # 4 candidates, n=7: every row short
    out = tmp_path / "neg.jsonl"
    out.write_text("an earlier file\n")
    argv = ["mine", "--data", str(root), "--run", str(run), "--out", str(out), "--quiet"]
    assert main(argv) == 2
    line = _one_error(capsys.readouterr().err)
    assert "no row to write (24 short rows skipped" in line
    assert "every one of the 24 rows has fewer than n=7 negatives" in line
    assert "the run file gives too few candidates per query" in line
    assert out.read_text() == "an earlier file\n"  # left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beir", "neg.jsonl", "run.trec"]
    # an IVF searching one list: the hint says so
    pytest.importorskip("faiss")
    out.unlink()
    argv = _mine_argv(
        root, "--out", str(out), "--index", "IVF32,Flat", "--n", "40", "--sampler", "topk"
    )
    assert main(argv) == 2
    line = _one_error(capsys.readouterr().err)
    assert "try --index Flat (or exact), or an IVF with fewer lists" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beir", "run.trec"]


def test_on_short_error_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    run = _run_file(tmp_path / "run.trec", root, k=6)  # 6 candidates, n=7: short rows
    out = tmp_path / "neg.jsonl"
    argv = ["mine", "--data", str(root), "--run", str(run), "--out", str(out), "--quiet"]
    assert main([*argv, "--on-short", "error", "--chunk-size", "5"]) == 2
    assert "on_short='error' writes nothing" in _one_error(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beir", "run.trec"]


# -- seeds, splits, graded qrels -------------------------------------------------------------


def test_largest_seed_is_used_and_recorded(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir")
    big = 2**64 - 1
    files = {}
    for seed in (0, big):
        out, stats = tmp_path / f"{seed}.jsonl", tmp_path / f"{seed}.json"
        argv = _mine_argv(root, "--out", str(out), "--stats-json", str(stats), "--seed", str(seed))
        assert main(argv) == 0
        info = json.loads(stats.read_text())
        assert info["seed"] == info["mining"]["seed"] == seed
        files[seed] = out.read_bytes()
    assert files[0] != files[big]


def test_same_split_for_training_and_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_beir(tmp_path / "beir")
    emb = str(root / "embeddings")
    probe = ["probe", "--data", str(root), "--embeddings", emb, "--sampler", "topk(k=20)"]
    probe += ["--split", "test", "--eval-split", "test", "--seeds", "0", "--epochs", "1"]
    for argv in (probe, ["train", "--data", str(root), "--split", "test", "--eval-split", "test"]):
        assert main(argv) == 2
        line = _one_error(capsys.readouterr().err)
        assert "--split and --eval-split are both 'test'" in line
        assert "--allow-same-split" in line
    assert main([*probe, "--allow-same-split", "--n", "3"]) == 0


def test_min_relevance_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    qrels = root / "qrels" / "train.tsv"
    rows = qrels.read_text().splitlines()
    graded = [rows[0]] + [r[:-1] + ("1" if i % 2 else "2") for i, r in enumerate(rows[1:])]
    qrels.write_text("\n".join(graded) + "\n")
    stats = tmp_path / "s.json"
    out = tmp_path / "o.jsonl"
    argv = _mine_argv(root, "--out", str(out), "--stats-json", str(stats), "--min-relevance", "2")
    assert main(argv) == 0
    err = capsys.readouterr().err
    info = json.loads(stats.read_text())
    assert info["min_relevance"] == 2
    ds = info["dataset"]
    assert ds["below_min_relevance"] == sum(1 for i in range(len(rows) - 1) if i % 2)
    assert "below min relevance" in err
    assert ds["n_queries"] + ds["queries_below_min_relevance"] == 24
