"""``negsample mine``: the filter options, the faiss search options, and the labeled, hf
and Tevatron-corpus outputs, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from negsample.cli import main
from tests.beir_helpers import doc_index, write_beir


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("cli") / "beir", n_docs=600, n_queries=24)


def _mine(beir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "mine",
        "--data",
        str(beir),
        "--embeddings",
        str(beir / "embeddings"),
        "--sampler",
        "topk(k=40)",
        "--n",
        "4",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def test_filter_options_reach_the_miner(beir: Path, tmp_path: Path) -> None:
    stats = tmp_path / "s.json"
    argv = _mine(beir, tmp_path / "o.jsonl", "--stats-json", str(stats))
    assert main(argv) == 0
    base = json.loads(stats.read_text())["mining"]["removed"]
    assert set(base) <= {"positive", "excluded"}
    flags = ["--range-min", "2", "--range-max", "30", "--relative-margin", "0.05"]
    flags += ["--max-score", "0.9", "--min-score", "-0.5", "--absolute-margin", "0.01"]
    assert main([*argv, *flags]) == 0
    removed = json.loads(stats.read_text())["mining"]["removed"]
    assert removed["rank_window"] > 0
    assert {"max_score", "min_score", "absolute_margin", "relative_margin"} <= set(removed)


def test_a_filter_that_removes_everything_is_reported(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # NV-Retriever's p written where sentence-transformers' margin is meant, and a cap
    # that no candidate passes
    argv = _mine(beir, tmp_path / "o.jsonl", "--relative-margin", "0.95", "--max-score", "-5")
    assert main(argv) == 2  # nothing to write
    err = capsys.readouterr().err
    assert "relative_margin=0.05" in err  # the convention hint
    assert "removed every candidate of 24 of 24 queries" in err
    assert "left without any candidate by the filters: max_score 24" in err
    assert "the filters left 24 queries without any candidate (max_score 24)" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_bad_filter_values_exit_2(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_mine(beir, tmp_path / "o.jsonl", "--relative-margin", "1.5")) == 2
    assert "relative_margin must be in [0, 1]" in capsys.readouterr().err
    assert main(_mine(beir, tmp_path / "o.jsonl", "--range-min", "5", "--range-max", "5")) == 2
    assert not (tmp_path / "o.jsonl").exists()


def test_nprobe_and_ef_search(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("faiss")
    for index, flags in (("IVF16,Flat", ["--nprobe", "4"]), ("HNSW32", ["--ef-search", "64"])):
        stats = tmp_path / "s.json"
        out = tmp_path / f"{index}.jsonl"
        argv = _mine(beir, out, "--index", index, *flags, "--stats-json", str(stats))
        assert main(argv) == 0, capsys.readouterr().err
        assert json.loads(stats.read_text())["write"]["rows"] > 0
    assert main(_mine(beir, tmp_path / "x.jsonl", "--nprobe", "4")) == 2
    assert "nprobe applies to a faiss IVF index spec" in capsys.readouterr().err
    assert main(_mine(beir, tmp_path / "x.jsonl", "--index", "HNSW32", "--nprobe", "4")) == 2
    assert main(_mine(beir, tmp_path / "x.jsonl", "--index", "HNSW32", "--ef-search", "0")) == 2
    assert "--ef-search" in capsys.readouterr().err


def test_hf_folder_and_labeled_formats(beir: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "hf"
    assert main(_mine(beir, out, "--format", "hf", "--scores")) == 0
    d = datasets.load_from_disk(str(out))
    assert d.column_names[:3] == ["anchor", "positive", "negative_1"]
    assert d.column_names[-1] == "scores" and len(d[0]["scores"]) == 5
    # rerun onto the same folder: replaced, in another layout
    assert main(_mine(beir, out, "--format", "hf", "--hf-layout", "labeled-list")) == 0
    d = datasets.load_from_disk(str(out))
    assert d.column_names == ["query", "passages", "labels"]
    assert all(r["labels"] == [1, 0, 0, 0, 0] for r in d)
    lp = tmp_path / "lp.jsonl"
    assert main(_mine(beir, lp, "--format", "labeled-pair")) == 0
    rows = [json.loads(x) for x in lp.read_text().splitlines()]
    assert {r["label"] for r in rows} == {0, 1}
    assert all(doc_index(r["passage"]) >= 0 for r in rows)


def test_tevatron_writes_its_corpus_beside(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tev.jsonl"
    assert main(_mine(beir, out, "--format", "tevatron")) == 0
    corpus = tmp_path / "tev.corpus.jsonl"
    assert f"and the corpus to {corpus}" in capsys.readouterr().err
    lines = [json.loads(x) for x in corpus.read_text().splitlines()]
    assert len(lines) == 600 and set(lines[0]) == {"docid", "title", "text"}
