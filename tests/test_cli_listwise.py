"""``negsample mine --judge-mode listwise --judge-fn-action ...`` end to end against the
listwise stub on 127.0.0.1: relabelled false negatives are written as positives, a query
over ``--judge-drop-above`` false negatives is left out, and the options are refused
without a judge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from negsample.cli import main
from tests.beir_helpers import doc_index, write_beir
from tests.test_scoring_listwise import Stub


def _fn(doc: int) -> bool:
    return doc % 4 == 0


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_beir(tmp_path_factory.mktemp("lw") / "beir", n_docs=300, n_queries=16)
    corpus = root / "corpus.jsonl"
    rows = [json.loads(x) for x in corpus.read_text().splitlines()]
    for r in rows:  # what the stub labels: every fourth document is a false negative
        r["text"] += "=>FN" if _fn(doc_index(r["text"])) else "=>HN"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.close()


def _argv(beir: Path, out: Path, url: str, *extra: str) -> list[str]:
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
        "--judge-url",
        url,
        "--judge-model",
        "stub",
        "--judge-cache",
        str(out.parent / "judge.sqlite"),
        "--judge-mode",
        "listwise",
        "--out",
        str(out),
        *extra,
    ]


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_relabel_writes_false_negatives_as_positives(
    beir: Path, stub: Stub, tmp_path: Path
) -> None:
    base, relab = tmp_path / "base.jsonl", tmp_path / "relabel.jsonl"
    fmt = ["--format", "labeled-pair"]
    assert main(_argv(beir, base, stub.url, *fmt)) == 0
    assert stub.lists and not stub.points  # one request per query's draws, never per draw
    assert main(_argv(beir, relab, stub.url, *fmt, "--judge-fn-action", "relabel")) == 0
    for path in (base, relab):
        negs = [r for r in _rows(path) if r["label"] == 0]
        assert negs and not any(_fn(doc_index(str(r["passage"]))) for r in negs)
    pos_base = [r for r in _rows(base) if r["label"] == 1]
    pos_new = [r for r in _rows(relab) if r["label"] == 1]
    added = len(pos_new) - len(pos_base)
    assert added > 0  # relabelled false negatives are positives of their query
    assert sum(_fn(doc_index(str(r["passage"]))) for r in pos_new) >= added


def test_drop_query_leaves_out_queries_over_the_count(
    beir: Path, stub: Stub, tmp_path: Path
) -> None:
    keep, drop = tmp_path / "keep.jsonl", tmp_path / "drop.jsonl"
    stats = tmp_path / "stats.json"
    fmt = ["--format", "flagembedding"]  # one row per query, short rows written too
    assert main(_argv(beir, keep, stub.url, *fmt)) == 0
    argv = _argv(beir, drop, stub.url, *fmt, "--judge-fn-action", "drop-query")
    assert main([*argv, "--judge-drop-above", "0", "--stats-json", str(stats)]) == 0
    kept = {r["query"] for r in _rows(keep)}
    left = {r["query"] for r in _rows(drop)}
    assert len(kept) == 16
    assert left < kept  # some queries had a false negative among their draws: left out
    assert json.loads(stats.read_text())["denoise"]["dropped_queries"] == len(kept - left)


def test_judge_fn_options_need_a_judge(
    beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["mine", "--data", str(beir), "--embeddings", str(beir / "embeddings")]
    base += ["--out", str(tmp_path / "o.jsonl"), "--quiet"]
    assert main([*base, "--judge-fn-action", "relabel"]) == 2
    assert "--judge-fn-action needs --judge-url" in capsys.readouterr().err
    assert main([*base, "--judge-mode", "listwise"]) == 2
    assert "--judge-mode needs --judge-url" in capsys.readouterr().err
    argv = [*base, "--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "m"]
    assert main([*argv, "--judge-drop-above", "3"]) == 2
    assert "drop-query" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
