"""BEIR loading, precomputed embeddings, TREC runs: contents and every bad-input error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from tests.beir_helpers import write_beir


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "beir")


@pytest.mark.parametrize("gz", [False, True])
def test_load_beir(tmp_path: Path, gz: bool) -> None:
    root = write_beir(tmp_path / "b", gz=gz)
    ds = ns.load_beir(root, "train")
    data = ns.make_synthetic(400, 24, 16, seed=0, max_positives=3)
    assert ds.n_corpus == 400 and ds.n_queries == 24
    assert ds.corpus_ids[5] == "d5" and ds.query_ids == [f"q{i}" for i in range(24)]
    for got, want in zip(ds.positives, data.positives, strict=True):
        np.testing.assert_array_equal(got, want)
    assert ds.document_texts()[0] == "doc 0 text"  # empty title: text only
    assert ds.document_texts()[1] == "title 1 doc 1 text"
    test = ns.load_beir(root, "test")
    assert test.n_queries == 12 and test.stats["queries_not_in_split"] == 12


def test_nonpositive_and_duplicate_judgements_are_counted(beir: Path) -> None:
    with open(beir / "qrels" / "train.tsv", "a") as f:
        f.write("q0\td399\t0\n")  # a negative judgement: not a positive
        f.write("q0\td399\t0\n")  # repeated, same score
    ds = ns.load_beir(beir, "train")
    assert ds.stats["nonpositive_judgements"] == 1
    assert ds.stats["duplicate_judgements"] == 1
    assert 399 not in ds.positives[0].tolist()


def test_precomputed_embeddings_are_aligned(beir: Path) -> None:
    ds = ns.load_beir(beir, "test")
    emb = ns.load_embeddings(beir / "embeddings", ds)
    data = ns.make_synthetic(400, 24, 16, seed=0, max_positives=3)
    np.testing.assert_array_equal(emb.corpus, data.corpus)
    np.testing.assert_array_equal(emb.queries, data.queries[::2])


def test_precomputed_embeddings_missing_id(beir: Path) -> None:
    ids = (beir / "embeddings" / "corpus_ids.txt").read_text().splitlines()
    ids = [("zz" if i == "d7" else i) for i in ids]
    (beir / "embeddings" / "corpus_ids.txt").write_text("\n".join(ids) + "\n")
    ds = ns.load_beir(beir, "train")
    with pytest.raises(ns.DataError, match=r"corpus_ids.txt: no embedding for 1 documents: 'd7'"):
        ns.load_embeddings(beir / "embeddings", ds)


# -- bad input: each case gives its error, with file and line, and writes nothing ----------


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


BAD = {
    "malformed json": (
        "corpus.jsonl",
        '{"_id": "x", "text": \n',
        r"corpus.jsonl:401: malformed JSON",
    ),
    "not an object": ("queries.jsonl", "[1, 2]\n", r"queries.jsonl:25: expected a JSON object"),
    "missing _id": ("corpus.jsonl", '{"text": "t"}\n', r"corpus.jsonl:401: missing field '_id'"),
    "duplicate doc": (
        "corpus.jsonl",
        '{"_id": "d3", "text": "again"}\n',
        r"corpus.jsonl:401: duplicate document id 'd3' \(first on line 4\)",
    ),
    "duplicate query": (
        "queries.jsonl",
        '{"_id": "q1", "text": "again"}\n',
        r"queries.jsonl:25: duplicate query id 'q1' \(first on line 2\)",
    ),
    "empty doc": (
        "corpus.jsonl",
        '{"_id": "dx", "title": "", "text": "  "}\n',
        r"corpus.jsonl:401: document 'dx' has an empty text",
    ),
    "empty query": (
        "queries.jsonl",
        '{"_id": "qx", "text": ""}\n',
        r"queries.jsonl:25: query 'qx' has an empty text",
    ),
    "unknown doc": (
        "qrels/train.tsv",
        "q0\tnope\t1\nq1\tnope2\t1\n",
        r"train.tsv:\d+: 2 judgements name corpus ids not in corpus: 'nope' \(line \d+\), 'nope2'",
    ),
    "unknown query": (
        "qrels/train.tsv",
        "qq\td1\t1\n",
        r"train.tsv:\d+: 1 judgements name query ids not in queries: 'qq'",
    ),
    "qrels columns": (
        "qrels/train.tsv",
        "q0 d1\n",
        r"train.tsv:\d+: expected 3 tab-separated fields",
    ),
    "qrels score": (
        "qrels/train.tsv",
        "q0\td1\thigh\n",
        r"train.tsv:\d+: score 'high' is not a number",
    ),
    "conflicting judgement": (
        "qrels/train.tsv",
        "q0\td399\t1\nq0\td399\t2\n",
        r"train.tsv:\d+: judgement \(q0, d399\) has score 2 but line \d+ gives 1",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input(
    beir: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rel, text, pattern = BAD[case]
    _append(beir / rel, text)
    with pytest.raises(ns.DataError, match=pattern):
        ns.load_beir(beir, "train")
    out = tmp_path / "out" / "neg.jsonl"
    rc = main(
        [
            "mine",
            "--data",
            str(beir),
            "--embeddings",
            str(beir / "embeddings"),
            "--out",
            str(out),
            "--sampler",
            "topk(k=20)",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "negsample: error: " in err and str(beir) in err
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no work folder left


def test_missing_file(beir: Path) -> None:
    (beir / "qrels" / "train.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"train.tsv: not found \(nor train.tsv.gz\)"):
        ns.load_beir(beir, "train")


# -- TREC runs ---------------------------------------------------------------------------


def _run_file(path: Path, ds: ns.BeirDataset, k: int = 30, extra: str = "") -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for q in [*ds.query_ids, "other-split-query"]:
        docs = rng.choice(ds.n_corpus, k, replace=False)
        for r, d in enumerate(docs.tolist(), start=1):
            lines.append(f"{q} Q0 d{d} {r} {100.0 - r:.1f} bm25")
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_read_trec_run(beir: Path, tmp_path: Path) -> None:
    ds = ns.load_beir(beir, "train")
    run = ns.read_trec_run(_run_file(tmp_path / "run.trec", ds), ds, depth=25)
    c = run.candidates
    assert c.ids.shape == (24, 25)
    assert np.all(np.diff(c.scores, axis=1) < 0)  # best first
    assert run.stats["queries_not_in_split"] == 1 and run.stats["truncated"] == 24 * 5


@pytest.mark.parametrize(
    "extra, pattern",
    [
        ("q0 Q0 d1 1 2.0\n", r"run.trec:\d+: expected 6 fields"),
        ("q0 Q0 d1 1 high bm25\n", r"run.trec:\d+: score 'high' is not a number"),
        (
            "q0 Q0 nope 1 2.0 bm25\n",
            r"run.trec:\d+: document id 'nope' \(query 'q0'\) is not in the corpus",
        ),
    ],
)
def test_bad_run(beir: Path, tmp_path: Path, extra: str, pattern: str) -> None:
    ds = ns.load_beir(beir, "train")
    with pytest.raises(ns.DataError, match=pattern):
        ns.read_trec_run(_run_file(tmp_path / "run.trec", ds, extra=extra), ds)


def test_run_duplicate_doc(beir: Path, tmp_path: Path) -> None:
    ds = ns.load_beir(beir, "train")
    p = tmp_path / "run.trec"
    p.write_text("q0 Q0 d1 1 2.0 t\nq0 Q0 d2 2 1.5 t\nq0 Q0 d1 3 1.0 t\n")
    with pytest.raises(ns.DataError, match=r"run.trec:3: document 'd1' listed twice .*line 1"):
        ns.read_trec_run(p, ds)


def test_cli_mine_from_run(beir: Path, tmp_path: Path) -> None:
    ds = ns.load_beir(beir, "train")
    run = _run_file(tmp_path / "run.trec", ds)
    out = tmp_path / "tev.jsonl"
    rc = main(
        [
            "mine",
            "--data",
            str(beir),
            "--run",
            str(run),
            "--sampler",
            "topk(k=20)",
            "--format",
            "tevatron",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 24
    run_docs: dict[str, set[str]] = {}
    for line in run.read_text().splitlines():
        q, _, d, *_ = line.split()
        run_docs.setdefault(q, set()).add(d)
    for r in rows:
        assert len(r["negative_document_ids"]) == 7
        assert set(r["negative_document_ids"]) <= run_docs[r["query_id"]]
        assert not set(r["negative_document_ids"]) & set(r["positive_document_ids"])


def test_cli_run_refuses_vector_samplers(
    beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import dataclass

    from negsample.samplers import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.register("needsvec")
    @dataclass(frozen=True, kw_only=True)
    class NeedsVec(ns.TopKSampler):
        name = "needsvec"
        needs_vectors = True

    ds = ns.load_beir(beir, "train")
    out = tmp_path / "x.jsonl"
    rc = main(
        [
            "mine",
            "--data",
            str(beir),
            "--run",
            str(_run_file(tmp_path / "r.trec", ds)),
            "--sampler",
            "needsvec",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 2 and not out.exists()
    assert "NeedsVec needs corpus vectors (needs_vectors=True)" in capsys.readouterr().err
