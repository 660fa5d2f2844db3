"""``negsample report`` on a small BEIR folder written by the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import negsample as ns
from negsample.cli import main
from tests.beir_helpers import write_beir

pytest.importorskip("matplotlib")


def test_report_api_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    ds = ns.load_beir(root, "test")
    emb = ns.load_embeddings(root / "embeddings", ds)
    rep = ns.sampler_report(
        ds, emb, {"top": ns.TopKSampler(k=20), "rand": ns.RandomSampler()}, n=3, seeds=(0, 1)
    )
    assert [s.label for s in rep.summaries] == ["top", "rand"]
    assert rep.meta["protocol_queries"] == 12
    assert "top" in rep.table()
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
            "topk(k=20)",
            "--sampler",
            "random",
            "--n",
            "3",
            "--seeds",
            "0",
            "--out-dir",
            str(tmp_path / "r"),
            "--quiet",
        ]
    )
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "topk(k=20)" in cap.out
    out = tmp_path / "r"
    assert (out / "fn_vs_hardness.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "score_hist.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "summary.md").read_text()
    assert "Hidden-positive protocol" in md and "![score_hist](score_hist.png)" in md
    data = json.loads((out / "report.json").read_text())
    assert len(data["protocol"]) == 2 and set(data["negative_scores"]) == {"topk(k=20)", "random"}


def test_report_bad_sampler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    rc = main(
        [
            "report",
            "--data",
            str(root),
            "--embeddings",
            str(root / "embeddings"),
            "--sampler",
            "nope",
            "--out-dir",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 2 and "unknown sampler 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


class _OracleJudge:
    """FN exactly for the query's labelled positives (all of them, hidden ones included)."""

    name = "oracle"

    def __init__(self, ds: ns.BeirDataset) -> None:
        from negsample.scoring import ScoringStats

        self.by_text = {t: i for i, t in enumerate(ds.query_texts)}
        self.positives = [set(p.tolist()) for p in ds.positives]
        self.stats = ScoringStats()

    def judge(self, items):  # type: ignore[no-untyped-def]
        from tests.beir_helpers import doc_index

        self.stats.add(pairs=len(items))
        return [
            "FN" if doc_index(it.document) in self.positives[self.by_text[it.query]] else "HN"
            for it in items
        ]


def test_report_with_a_judge_gives_fn_before_and_after(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir")
    ds = ns.load_beir(root, "test")
    emb = ns.load_embeddings(root / "embeddings", ds)
    rep = ns.sampler_report(
        ds, emb, {"top": ns.TopKSampler(k=20)}, n=3, seeds=(0, 1), judge=_OracleJudge(ds)
    )
    assert [(d["label"], d["seed"]) for d in rep.denoised] == [("top", 0), ("top", 1)]
    for d, row in zip(rep.denoised, rep.protocol, strict=True):
        assert d["fn_rate_before"] == row.fn_rate  # the protocol's own figure
        assert d["fn_rate_after"] == 0.0  # the oracle removes every hidden positive
        assert d["checked_per_query"] >= 3 and d["pairs_judged"] > 0
    assert sum(d["fn_rate_before"] for d in rep.denoised) > 0  # the test has something to remove
    assert "after denoising" in rep.table()
    written = rep.write(tmp_path / "rep")
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "## After denoising" in summary and len(written) == 4
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["denoised_summary"]
