"""BEIR loading, precomputed embeddings, TREC runs: contents and every bad-input error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    assert ds.document_texts[0] == "doc 0 text"  # empty title: text only
    assert ds.document_texts[1] == "title 1 doc 1 text"
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
def test_bad_input(beir: Path, case: str) -> None:
    """The API error; tests/test_cli_errors.py runs the same cases through the CLI."""
    rel, text, pattern = BAD[case]
    _append(beir / rel, text)
    with pytest.raises(ns.DataError, match=pattern):
        ns.load_beir(beir, "train")


def test_missing_file(beir: Path) -> None:
    (beir / "qrels" / "train.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"train.tsv: not found \(nor train.tsv.gz\)"):
        ns.load_beir(beir, "train")


def test_missing_split_lists_the_splits(beir: Path) -> None:
    (beir / "qrels" / "dev.tsv.gz").write_bytes(b"")
    with pytest.raises(
        FileNotFoundError,
        match=r"validation.tsv: not found .*the splits in "
        r".*qrels are: dev, test, train$",
    ):
        ns.load_beir(beir, "validation")


# -- encodings, byte-order marks, lines ----------------------------------------------------


def _bad_byte_at(path: Path, lineno: int) -> None:
    """Put an invalid UTF-8 byte into line ``lineno`` (1-based) of ``path``."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines[lineno - 1] = lines[lineno - 1].replace(b"text", b"te\xffxt", 1)
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    "rel, lineno", [("corpus.jsonl", 300), ("queries.jsonl", 4), ("qrels/train.tsv", 1)]
)
def test_non_utf8_reported_on_its_line(tmp_path: Path, rel: str, lineno: int) -> None:
    root = write_beir(tmp_path / "b", n_docs=2000, n_queries=24)
    path = root / rel
    if rel.startswith("qrels"):  # a long qrels file: bad bytes on line 100
        rows = [f"q{i % 24}\td{i}\t1\n" for i in range(200)]
        path.write_text("query-id\tcorpus-id\tscore\n" + "".join(rows))
        lines = path.read_bytes().splitlines(keepends=True)
        lines[99] = lines[99].replace(b"\t1", b"\t\xff1")
        path.write_bytes(b"".join(lines))
        lineno = 100
    else:
        _bad_byte_at(path, lineno)
    with pytest.raises(ns.DataError, match=rf"{rel.split('/')[-1]}:{lineno}: not valid UTF-8"):
        ns.load_beir(root, "train")


def test_non_utf8_in_gz_and_run_files(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "b", gz=True)
    import gzip

    with gzip.open(root / "corpus.jsonl.gz", "rb") as f:
        lines = f.read().splitlines(keepends=True)
    lines[209] = lines[209].replace(b"text", b"\xc3(", 1)
    with gzip.open(root / "corpus.jsonl.gz", "wb") as f:
        f.write(b"".join(lines))
    with pytest.raises(ns.DataError, match=r"corpus.jsonl.gz:210: not valid UTF-8: byte 0xc3"):
        ns.load_beir(root, "train")
    root = write_beir(tmp_path / "c")
    ds = ns.load_beir(root, "train")
    run = _run_file(tmp_path / "run.trec", ds)
    lines = run.read_bytes().splitlines(keepends=True)
    lines[40] = lines[40].replace(b"bm25", b"bm\xff25")
    run.write_bytes(b"".join(lines))
    with pytest.raises(ns.DataError, match=r"run.trec:41: not valid UTF-8"):
        ns.read_trec_run(run, ds)


def test_byte_order_mark_is_accepted(beir: Path) -> None:
    want = ns.load_beir(beir, "train")
    for rel in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv"):
        p = beir / rel
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    got = ns.load_beir(beir, "train")
    assert got.corpus_ids == want.corpus_ids and got.query_ids == want.query_ids
    for a, b in zip(got.positives, want.positives, strict=True):
        np.testing.assert_array_equal(a, b)


def test_utf16_is_refused(beir: Path) -> None:
    p = beir / "queries.jsonl"
    p.write_bytes(p.read_text().encode("utf-16"))
    with pytest.raises(ns.DataError, match=r"queries.jsonl:1: the file is UTF-16"):
        ns.load_beir(beir, "train")


def test_plain_and_gz_both_present_is_refused(beir: Path) -> None:
    import gzip

    with gzip.open(beir / "corpus.jsonl.gz", "wb") as f:
        f.write((beir / "corpus.jsonl").read_bytes())
    with pytest.raises(ns.DataError, match=r"both corpus.jsonl and corpus.jsonl.gz are present"):
        ns.load_beir(beir, "train")
    (beir / "corpus.jsonl.gz").unlink()
    (beir / "qrels" / "train.tsv.gz").write_bytes(b"")
    with pytest.raises(ns.DataError, match=r"both train.tsv and train.tsv.gz are present"):
        ns.load_beir(beir, "train")


def test_title_only_document(beir: Path) -> None:
    _append(beir / "corpus.jsonl", '{"_id": "t1", "title": "only a title"}\n')
    _append(beir / "corpus.jsonl", '{"_id": "t2", "title": "a title", "text": ""}\n')
    ds = ns.load_beir(beir, "train")
    assert ds.corpus_ids[-2:] == ["t1", "t2"]
    assert ds.document_texts[-2:] == ["only a title", "a title"]
    _append(beir / "corpus.jsonl", '{"_id": "t3", "title": " "}\n')
    with pytest.raises(
        ns.DataError,
        match=r"corpus.jsonl:403: document 't3' has an empty "
        r"text and no title",
    ):
        ns.load_beir(beir, "train")


def test_document_texts_is_an_attribute(beir: Path) -> None:
    from collections.abc import Sequence

    from negsample.io.texts import Texts

    ds = ns.load_beir(beir, "train")
    for col in (ds.document_texts, ds.corpus_titles, ds.corpus_texts, ds.query_texts):
        assert isinstance(col, Sequence) and isinstance(col, Texts)  # compact, read-only
    assert ds.document_texts is ds.document_texts  # computed once
    with pytest.warns(DeprecationWarning, match="an attribute"):
        assert ds.document_texts() == ds.document_texts


# -- qrels forms and graded judgements ---------------------------------------------------


def test_trec_qrels_four_columns(beir: Path) -> None:
    want = ns.load_beir(beir, "train")
    rows = (beir / "qrels" / "train.tsv").read_text().splitlines()[1:]
    trec = "".join(f"{q} 0 {d} {s}\n" for q, d, s in (r.split("\t") for r in rows))
    (beir / "qrels" / "train.tsv").write_text(trec)
    got = ns.load_beir(beir, "train")
    for a, b in zip(got.positives, want.positives, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "text, line, pattern",
    [
        ("q0\td1\t1\t0\n", 54, r"expected 3 tab-separated fields .* as on line 1, got 4"),
        ("q0\td1\n", 54, r"expected 3 tab-separated fields"),
    ],
)
def test_qrels_field_count_must_match_the_first_line(
    beir: Path, text: str, line: int, pattern: str
) -> None:
    n = len((beir / "qrels" / "train.tsv").read_text().splitlines())
    _append(beir / "qrels" / "train.tsv", text)
    with pytest.raises(ns.DataError, match=rf"train.tsv:{n + 1}: {pattern}"):
        ns.load_beir(beir, "train")
    trec = beir / "qrels" / "test.tsv"
    trec.write_text("q0 0 d1 1\nq1 0 d2 1 extra\n")
    with pytest.raises(ns.DataError, match=r"test.tsv:2: expected 4 fields \(TREC"):
        ns.load_beir(beir, "test")


def test_min_relevance(beir: Path) -> None:
    # graded: q0 gets a grade-1 ("related") and a grade-2 judgement; q1 only grade 1
    (beir / "qrels" / "dev.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq0\td1\t1\nq0\td2\t2\nq1\td3\t1\nq2\td4\t3\nq3\td5\t0\n"
    )
    ds = ns.load_beir(beir, "dev")  # default: any score > 0
    assert ds.query_ids == ["q0", "q1", "q2"] and ds.positives[0].tolist() == [1, 2]
    strict = ns.load_beir(beir, "dev", min_relevance=2)
    assert strict.query_ids == ["q0", "q2"] and strict.positives[0].tolist() == [2]
    assert strict.relevance[1].tolist() == [3]
    assert strict.stats["below_min_relevance"] == 2
    assert strict.stats["queries_below_min_relevance"] == 1  # q1 lost all its positives
    assert strict.stats["queries_without_positive"] == 1  # q3: judged 0 only
    assert strict.min_relevance == 2 and "(score >= 2)" in strict.summary()
    with pytest.raises(ns.DataError, match=r"no judgement with a score >= 4"):
        ns.load_beir(beir, "dev", min_relevance=4)
    with pytest.raises(ValueError, match="min_relevance must be >= 1"):
        ns.load_beir(beir, "dev", min_relevance=0)
    with pytest.raises(TypeError, match="min_relevance must be an integer"):
        ns.load_beir(beir, "dev", min_relevance=True)


# -- precomputed embeddings: NaN / inf named by the file's row --------------------------


@pytest.mark.parametrize("shuffled", [False, True])
def test_nonfinite_embedding_names_file_row_and_id(tmp_path: Path, shuffled: bool) -> None:
    root = write_beir(tmp_path / "b", shuffle_embedding_ids=shuffled)
    emb = root / "embeddings"
    ids = (emb / "query_ids.txt").read_text().splitlines()
    r = ids.index("q8")  # in the test split (every other query), at the split's row 4
    q = np.load(emb / "queries.npy")
    q[r, 3] = np.inf
    np.save(emb / "queries.npy", q)
    ds = ns.load_beir(root, "test")
    assert ds.query_ids.index("q8") == 4
    with pytest.raises(
        ns.DataError,
        match=rf"queries.npy: row {r} \(0-based; id 'q8', line {r + 1} of query_ids.txt\) "
        r"holds inf: vectors must be finite \(1 of the 12 queries",
    ):
        ns.load_embeddings(emb, ds)
    c = np.load(emb / "corpus.npy")
    c[[250, 11], 0] = np.nan
    np.save(emb / "corpus.npy", c)
    np.save(emb / "queries.npy", np.nan_to_num(q, posinf=0.0))
    cids = (emb / "corpus_ids.txt").read_text().splitlines()
    with pytest.raises(
        ns.DataError,
        match=rf"corpus.npy: row 11 \(0-based; id '{cids[11]}'.* holds nan.*\(2 of the",
    ):
        ns.load_embeddings(emb, ds)


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


# -- number fields, NUL bytes, line ends (issue 20 item 9) -------------------------------


@pytest.mark.parametrize(
    "score, pattern",
    [
        ("99999999999999999999", r"score '99999999999999999999' is beyond the int64 range"),
        ("9223372036854775808", r"score '9223372036854775808' is beyond the int64 range"),
        ("1e20", r"score '1e20' is beyond the int64 range"),
        ("1e400", r"score '1e400' is beyond the int64 range"),
        ("-inf", r"score '-inf' is beyond the int64 range"),
        ("nan", r"score 'nan' is not an integer grade"),
        ("2.5", r"score '2.5' is not an integer grade"),
        ("\u0661", r"score '\u0661' is not a number"),  # an Arabic-Indic digit
        ("1_0", r"score '1_0' is not a number"),
        ("0x1", r"score '0x1' is not a number"),
        ("1" * 5000, r"score '1111.*\.\.\.' is beyond the int64 range"),
    ],
)
def test_qrels_grades_are_named_with_their_line(beir: Path, score: str, pattern: str) -> None:
    n = len((beir / "qrels" / "train.tsv").read_text().splitlines())
    _append(beir / "qrels" / "train.tsv", f"q0\td1\t{score}\n")
    with pytest.raises(ns.DataError, match=rf"train.tsv:{n + 1}: {pattern}"):
        ns.load_beir(beir, "train")


def test_qrels_grade_forms_accepted(beir: Path) -> None:
    _append(beir / "qrels" / "train.tsv", "q0\td390\t+2\r\nq0\td391\t2.0\r\nq0\td392\t-1\n")
    ds = ns.load_beir(beir, "train")
    rel = dict(zip(ds.positives[0].tolist(), ds.relevance[0].tolist(), strict=True))
    assert rel[390] == 2 and rel[391] == 2 and 392 not in rel
    assert ds.stats["nonpositive_judgements"] == 1
    _append(beir / "qrels" / "train.tsv", "q0\td393\t9223372036854775807\n")  # int64 max
    assert ns.load_beir(beir, "train").relevance[0].max() == 2**63 - 1


def test_nul_byte_in_a_tsv_file(beir: Path, tmp_path: Path) -> None:
    p = beir / "qrels" / "train.tsv"
    lines = p.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"\t", b"\x00\t", 1)
    p.write_bytes(b"".join(lines))
    with pytest.raises(ns.DataError, match=r"train.tsv:4: NUL byte at column \d+ \(a UTF-16"):
        ns.load_beir(beir, "train")


def test_qrels_errors_come_in_line_order(beir: Path) -> None:
    """A judgement repeated with another score on line L is named before a malformed line
    after L, and a malformed line is named before unknown ids anywhere."""
    base = (beir / "qrels" / "train.tsv").read_text()
    n = len(base.splitlines())
    (beir / "qrels" / "train.tsv").write_text(base + "q0\td399\t1\nq0\td399\t2\nq0\td1\tx\n")
    with pytest.raises(ns.DataError, match=rf"train.tsv:{n + 2}: judgement \(q0, d399\)"):
        ns.load_beir(beir, "train")
    (beir / "qrels" / "train.tsv").write_text(base + "q0\tnope\t1\nq0\td1\tx\n")
    with pytest.raises(ns.DataError, match=rf"train.tsv:{n + 2}: score 'x' is not a number"):
        ns.load_beir(beir, "train")


@pytest.mark.parametrize(
    "extra, pattern",
    [
        ("q0 Q0 d1 1 1e39 bm25\n", r"score '1e39' is beyond float32's range \(it would be inf\)"),
        ("q0 Q0 d1 1 -4e38 bm25\n", r"score '-4e38' is beyond float32's range"),
        ("q0 Q0 d1 inf 1.0 bm25\n", r"rank 'inf' is not finite"),
        ("q0 Q0 d1 nan 1.0 bm25\n", r"rank 'nan' is not finite"),
        ("q0 Q0 d1 1 \u0663 bm25\n", r"score '\u0663' is not a number"),
        ("q0 Q0 d1 1 1_0 bm25\n", r"score '1_0' is not a number"),
    ],
)
def test_run_numbers(beir: Path, tmp_path: Path, extra: str, pattern: str) -> None:
    ds = ns.load_beir(beir, "train")
    run = _run_file(tmp_path / "run.trec", ds, extra=extra)
    n = len(run.read_text().splitlines())
    with pytest.raises(ns.DataError, match=rf"run.trec:{n}: {pattern}"):
        ns.read_trec_run(run, ds)


def test_run_scores_within_float32_and_line_order(beir: Path, tmp_path: Path) -> None:
    ds = ns.load_beir(beir, "train")
    p = tmp_path / "run.trec"
    p.write_text("q0 Q0 d1 1 3.4e38 t\r\n\r\nq0 Q0 d2 2 -3.4e38 t\r\n")
    got = ns.read_trec_run(p, ds)
    assert np.isfinite(got.candidates.scores[0, :2]).all() and got.stats["lines"] == 2
    p.write_text("q0 Q0 nope 1 1.0 t\nq0 Q0 d2 x 1.0 t\n")  # unknown doc first
    with pytest.raises(ns.DataError, match=r"run.trec:1: document id 'nope'"):
        ns.read_trec_run(p, ds)
    p.write_text("q0 Q0 d2 x 1.0 t\nq0 Q0 nope 1 1.0 t\n")  # malformed line first
    with pytest.raises(ns.DataError, match=r"run.trec:1: rank 'x' is not a number"):
        ns.read_trec_run(p, ds)
    p.write_text("other Q0 nope 1 1.0 t\n")  # a query outside the split: skipped, counted
    assert ns.read_trec_run(p, ds).stats["queries_not_in_split"] == 1


def test_document_texts_follow_replaced_columns(beir: Path) -> None:
    import dataclasses

    ds = ns.load_beir(beir, "train")
    other = dataclasses.replace(ds, corpus_texts=["x"] * ds.n_corpus)
    assert other.document_texts[1] == "title 1 x" and other.document_texts[0] == "x"
    assert ds.document_texts[1] == "title 1 doc 1 text"


# -- the qrels block reader: numpy-split blocks agree with line-by-line reading -----------

_FIELD = st.sampled_from(["q0", "q1", "d1", "d2", "é", "", " d1", "query-id"])
_GRADE = st.sampled_from(["1", "0", "2", "-1", "+1", "2.0", "1e2", "x", "", "007", "9" * 19])


@st.composite
def _qrels_text(draw: st.DrawFn) -> bytes:
    lines = []
    if draw(st.booleans()):
        lines.append("query-id\tcorpus-id\tscore")
    for _ in range(draw(st.integers(0, 8))):
        fields = [draw(_FIELD), draw(_FIELD), draw(_GRADE)]
        if draw(st.integers(0, 8)) == 0:
            fields.insert(1, "0")  # a TREC line
        sep = draw(st.sampled_from(["\t", "\t", " "]))
        lines.append(sep.join(fields))
    ends = [draw(st.sampled_from(["\n", "\n", "\r\n", "\n\n"])) for _ in lines]
    return "".join(a + b for a, b in zip(lines, ends, strict=True)).encode()


def _qrels_outcome(path: Path) -> tuple[object, ...]:
    from negsample.io.data import _Qrels

    q = _Qrels(path)
    err = None if q.error is None else str(q.error)
    return (q.qids.tolist(), q.dids.tolist(), q.scores.tolist(), q.lines.tolist(), err, q.empty)


@given(data=_qrels_text(), block=st.sampled_from([None, 16]))
def test_qrels_blocks_agree_with_lines(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, block: int | None
) -> None:
    from negsample.io import _reading
    from negsample.io.data import _Qrels

    path = tmp_path_factory.mktemp("qrels") / "train.tsv"
    path.write_bytes(data)
    old = _reading.BLOCK_SIZE
    if block is not None:
        _reading.BLOCK_SIZE = block
    try:
        fast = _qrels_outcome(path)
        real = _Qrels._fast
        _Qrels._fast = lambda self, lineno, block: None  # type: ignore[method-assign]
        try:
            slow = _qrels_outcome(path)
        finally:
            _Qrels._fast = real  # type: ignore[method-assign]
    finally:
        _reading.BLOCK_SIZE = old
    assert fast == slow
