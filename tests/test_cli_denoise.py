"""``negsample mine`` with --judge-url/--judge-model, --rescore cross-encoder:PATH and
--teacher-scores, against a local judge server and a tiny random cross-encoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from tests.beir_helpers import doc_index, write_beir
from tests.test_scoring_llm import Reply, Server

pytest.importorskip("sentence_transformers")


def _fn(doc: int) -> bool:
    return doc % 3 == 0


def _plan(doc: str, attempt: int, req: dict[str, Any]) -> Reply:
    return 200, {}, "FN" if _fn(doc_index(doc)) else "HN", 0.0


@pytest.fixture
def judge_server() -> Any:
    s = Server(_plan)
    yield s
    s.close()


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "mine",
        "--data",
        str(root),
        "--embeddings",
        str(root / "embeddings"),
        "--out",
        str(out),
        "--sampler",
        "topk(k=30)",
        "--n",
        "4",
        "--quiet",
        *extra,
    ]


def test_judge_removes_fn_and_rerun_uses_the_cache(tmp_path: Path, judge_server: Server) -> None:
    root = write_beir(tmp_path / "beir", n_docs=300, n_queries=12)
    out = tmp_path / "out.jsonl"
    stats = tmp_path / "stats.json"
    judge = [
        "--judge-url",
        judge_server.url,
        "--judge-model",
        "m",
        "--judge-cache",
        str(tmp_path / "judge.sqlite"),
        "--stats-json",
        str(stats),
        "--format",
        "flagembedding",
    ]
    assert main(_args(root, out, *judge)) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    negs = [doc_index(t) for r in rows for t in r["neg"]]
    assert negs and not any(_fn(d) for d in negs)
    info = json.loads(stats.read_text())
    den = info["denoise"]
    assert den["removed"]["judge_fn"] > 0
    assert den["pairs_judged"] == len(judge_server.requests)
    assert den["judge"]["requests"] == len(judge_server.requests)
    # the same command again: every judgement comes from the cache
    before = len(judge_server.requests)
    assert main(_args(root, out, *judge)) == 0
    assert len(judge_server.requests) == before
    assert json.loads(stats.read_text())["denoise"]["judge"]["cache_hits"] == den["pairs_judged"]
    # without a judge, the plain run samples some of the FN-labelled documents
    plain = tmp_path / "plain.jsonl"
    assert main(_args(root, plain, "--format", "flagembedding")) == 0
    plain_negs = [
        doc_index(t) for x in plain.read_text().splitlines() for t in json.loads(x)["neg"]
    ]
    assert any(_fn(d) for d in plain_negs)


def test_rescore_teacher_scores(tmp_path: Path) -> None:
    from negsample.scoring import CrossEncoderScorer
    from tests.test_scoring_models import _tiny_bert

    tiny = _tiny_bert(tmp_path / "tiny")
    root = write_beir(tmp_path / "beir", n_docs=300, n_queries=12)
    out = tmp_path / "teacher.jsonl"
    common = ["--rescore", f"cross-encoder:{tiny}", "--format", "flagembedding", "--device", "cpu"]
    assert main(_args(root, out, *common, "--teacher-scores")) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == ns.load_beir(root, "train").n_queries
    ce = CrossEncoderScorer(tiny, device="cpu")
    for r in rows[:4]:
        pos = ce.score([(r["query"], t) for t in r["pos"]])
        neg = ce.score([(r["query"], t) for t in r["neg"]])
        np.testing.assert_allclose(r["pos_scores"], pos, atol=1e-4)
        np.testing.assert_allclose(r["neg_scores"], neg, atol=1e-4)
    # a cap on the teacher's score: no written negative reaches it, and some were removed
    written = [s for r in rows for s in r["neg_scores"]]
    assert max(written) - min(written) > 1e-3
    cap = (max(written) + min(written)) / 2
    capped = tmp_path / "capped.jsonl"
    stats = tmp_path / "stats.json"
    extra = ["--teacher-scores", "--rescore-max-score", str(cap), "--stats-json", str(stats)]
    assert main(_args(root, capped, *common, *extra)) == 0
    kept = [s for x in capped.read_text().splitlines() for s in json.loads(x)["neg_scores"]]
    assert kept and max(kept) < cap + 1e-6  # the file rounds scores to 6 decimals
    assert json.loads(stats.read_text())["denoise"]["removed"]["max_score"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--teacher-scores"], "--teacher-scores needs --rescore"),
        (["--rescore", "reranker:x"], "--rescore must be cross-encoder:PATH"),
        (["--rescore-relative-margin", "0.05"], "--rescore-relative-margin needs --rescore"),
        (["--judge-url", "http://127.0.0.1:9/v1"], "--judge-url and --judge-model go together"),
        (["--rescore", "cross-encoder:x"], "does nothing without"),
        (["--rescore", "cross-encoder:x", "--teacher-scores", "--scores"], "not both"),
    ],
)
def test_denoise_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    root = write_beir(tmp_path / "beir", n_docs=120, n_queries=6)
    assert main(_args(root, tmp_path / "o.jsonl", *extra)) == 2
    assert message in capsys.readouterr().err


def test_judge_refusing_stops_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = Server(lambda doc, attempt, req: (401, {}, "bad key", 0.0))
    try:
        root = write_beir(tmp_path / "beir", n_docs=120, n_queries=6)
        rc = main(
            _args(
                root,
                tmp_path / "o.jsonl",
                "--judge-url",
                server.url,
                "--judge-model",
                "m",
                "--judge-cache",
                str(tmp_path / "c.sqlite"),
            )
        )
    finally:
        server.close()
    assert rc == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "answers received are cached" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_report_shows_fn_before_and_after_a_judge(
    tmp_path: Path, judge_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    root = write_beir(tmp_path / "beir", n_docs=300, n_queries=12)
    rc = main(
        [
            "report",
            "--data",
            str(root),
            "--split",
            "test",
            "--embeddings",
            str(root / "embeddings"),
            "--sampler",
            "topk(k=30)",
            "--n",
            "3",
            "--seeds",
            "0",
            "--out-dir",
            str(tmp_path / "rep"),
            "--judge-url",
            judge_server.url,
            "--judge-model",
            "m",
            "--judge-cache",
            str(tmp_path / "judge.sqlite"),
            "--quiet",
        ]
    )
    assert rc == 0
    assert "after denoising" in capsys.readouterr().out
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    (d,) = rep["denoised"]
    assert d["pairs_judged"] == len(judge_server.requests) > 0
    assert d["labels"]["FN"] == d["removed"]["judge_fn"] > 0
