"""``negsample mine`` and ``negsample report`` on NFCorpus with its precomputed embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import negsample as ns
from negsample.cli import main
from tests.conftest import shared_dataset

pytestmark = pytest.mark.realdata


def test_mine_nfcorpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = shared_dataset("nfcorpus")
    emb = root / "embeddings" / "all-MiniLM-L6-v2"
    out = tmp_path / "tev.jsonl"
    rc = main(
        [
            "mine",
            "--data",
            str(root),
            "--split",
            "train",
            "--embeddings",
            str(emb),
            "--sampler",
            "topk(k=100)",
            "--n",
            "7",
            "--index",
            "Flat",
            "--format",
            "tevatron",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    ds = ns.load_beir(root, "train")
    corpus = set(ds.corpus_ids)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == ds.n_queries == 2590
    for r in rows:
        negs = r["negative_document_ids"]
        assert len(negs) == 7 and len(set(negs)) == 7
        assert set(negs) <= corpus
        assert not set(negs) & set(r["positive_document_ids"])


def test_report_nfcorpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = shared_dataset("nfcorpus")
    emb = root / "embeddings" / "all-MiniLM-L6-v2"
    rc = main(
        [
            "report",
            "--data",
            str(root),
            "--split",
            "test",
            "--embeddings",
            str(emb),
            "--sampler",
            "topk",
            "--sampler",
            "random",
            "--seeds",
            "0",
            "1",
            "--out-dir",
            str(tmp_path / "rep"),
            "--quiet",
        ]
    )
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "FN rate" in cap.out and "random" in cap.out
    names = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert names == ["fn_vs_hardness.png", "report.json", "score_hist.png", "summary.md"]
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    by = {s["label"]: s for s in rep["summaries"]}
    # hard negatives carry more false negatives than random ones, and are harder
    assert by["topk"]["fn_rate_mean"] > by["random"]["fn_rate_mean"]
    assert by["topk"]["hardness_mean"] > by["random"]["hardness_mean"]
