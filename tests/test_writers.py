"""Each output format is read back by what reads it for real; ids are valid, no positive
is written as a negative, and short rows follow the documented policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from tests.beir_helpers import doc_index, write_beir

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> tuple[ns.BeirDataset, ns.MinedDataset]:
    root = write_beir(tmp_path_factory.mktemp("w") / "beir")
    ds = ns.load_beir(root, "train")
    emb = ns.load_embeddings(root / "embeddings", ds)
    res = ns.mine_dataset(ds, ns.TopKSampler(k=30), embeddings=emb, n=5, seed=0)
    return ds, res


def _no_positive(ds: ns.BeirDataset, q: int, docs: list[int]) -> None:
    assert all(0 <= d < ds.n_corpus for d in docs)
    assert not set(docs) & set(ds.positives[q].tolist())


def test_st_ntuple_roundtrip(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    path = tmp_path / "st.jsonl"
    rep = ns.write_negatives(
        res.negatives, ds, path, "st-ntuple", scores=True, positive_scores=res.positive_scores
    )
    d = datasets.Dataset.from_json(str(path))
    assert d.column_names == [
        "anchor",
        "positive",
        *[f"negative_{i}" for i in range(1, 6)],
        "scores",
    ]
    # one row per (query, positive)
    assert len(d) == rep.rows == sum(p.size for p in ds.positives)
    q_of = {t: i for i, t in enumerate(ds.query_texts)}
    for row in d:
        q = q_of[row["anchor"]]
        assert doc_index(row["positive"]) in ds.positives[q].tolist()
        negs = [doc_index(row[f"negative_{i}"]) for i in range(1, 6)]
        _no_positive(ds, q, negs)
        assert len(set(negs)) == 5 and len(row["scores"]) == 6


def test_st_triplet_roundtrip(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    path = tmp_path / "tri.jsonl"
    rep = ns.write_negatives(res.negatives, ds, path, "st-triplet")
    d = datasets.Dataset.from_json(str(path))
    assert d.column_names == ["anchor", "positive", "negative"]
    assert len(d) == rep.rows == 5 * sum(p.size for p in ds.positives)
    q_of = {t: i for i, t in enumerate(ds.query_texts)}
    for row in d:
        _no_positive(ds, q_of[row["anchor"]], [doc_index(row["negative"])])


def test_flagembedding_roundtrip(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    path = tmp_path / "flag.jsonl"
    ns.write_negatives(
        res.negatives, ds, path, "flagembedding", scores=True, positive_scores=res.positive_scores
    )
    # FlagEmbedding reads its training files with datasets.load_dataset("json", ...)
    d = datasets.load_dataset("json", data_files=str(path), split="train")
    assert set(d.column_names) == {"query", "pos", "neg", "pos_scores", "neg_scores"}
    assert len(d) == ds.n_queries
    for q, row in enumerate(d):
        assert row["query"] == ds.query_texts[q]
        assert sorted(doc_index(t) for t in row["pos"]) == sorted(ds.positives[q].tolist())
        _no_positive(ds, q, [doc_index(t) for t in row["neg"]])
        assert len(row["neg"]) == len(row["neg_scores"]) == 5
        assert len(row["pos_scores"]) == len(row["pos"])
        np.testing.assert_allclose(row["neg_scores"], res.negatives.scores[q], atol=1e-5)


def test_tevatron_roundtrip(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    path = tmp_path / "tev.jsonl"
    ns.write_negatives(res.negatives, ds, path, "tevatron")
    d = datasets.load_dataset("json", data_files=str(path), split="train")
    assert set(d.column_names) == {
        "query_id",
        "query_text",
        "positive_document_ids",
        "negative_document_ids",
    }
    row_of = {c: i for i, c in enumerate(ds.corpus_ids)}
    for q, row in enumerate(d):
        assert row["query_id"] == ds.query_ids[q] and row["query_text"] == ds.query_texts[q]
        negs = [row_of[x] for x in row["negative_document_ids"]]
        _no_positive(ds, q, negs)
        assert negs == res.negatives.ids[q].tolist()


def test_parquet_roundtrip(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pq = pytest.importorskip("pyarrow.parquet")
    ds, res = mined
    path = tmp_path / "neg.parquet"
    ns.write_negatives(res.negatives, ds, path, "parquet")
    t = pq.read_table(path).to_pylist()
    assert len(t) == ds.n_queries
    row_of = {c: i for i, c in enumerate(ds.corpus_ids)}
    for q, row in enumerate(t):
        assert row["query_id"] == ds.query_ids[q]
        negs = [row_of[x] for x in row["negative_ids"]]
        _no_positive(ds, q, negs)
        np.testing.assert_allclose(row["negative_scores"], res.negatives.scores[q], rtol=1e-6)


def test_labeled_pair_roundtrip(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    path = tmp_path / "lp.jsonl"
    rep = ns.write_negatives(res.negatives, ds, path, "labeled-pair")
    d = datasets.load_dataset("json", data_files=str(path), split="train")
    assert d.column_names == ["query", "passage", "label"]
    assert d.features["label"].dtype == "int64"
    n_pos = sum(p.size for p in ds.positives)
    assert len(d) == rep.rows == n_pos + 5 * ds.n_queries
    q_of = {t: i for i, t in enumerate(ds.query_texts)}
    seen: list[int] = []
    for row in d:
        q = q_of[row["query"]]
        is_pos = doc_index(row["passage"]) in ds.positives[q].tolist()
        assert row["label"] == int(is_pos)
        seen.append(q)
    assert seen == sorted(seen)  # grouped by query: positives, then negatives
    scored = tmp_path / "lp_scores.jsonl"
    ns.write_negatives(
        res.negatives, ds, scored, "labeled-pair", scores=True, positive_scores=res.positive_scores
    )
    d2 = datasets.load_dataset("json", data_files=str(scored), split="train")
    assert d2.column_names == ["query", "passage", "score"]  # the miner's own s(q, d)
    first = d2[0]
    assert first["score"] == pytest.approx(float(res.positive_scores[0][0]), abs=1e-5)


def test_labeled_list_roundtrip(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    path = tmp_path / "ll.jsonl"
    rep = ns.write_negatives(res.negatives, ds, path, "labeled-list")
    d = datasets.load_dataset("json", data_files=str(path), split="train")
    assert d.column_names == ["query", "passages", "labels"]
    assert len(d) == rep.rows == sum(p.size for p in ds.positives)
    q_of = {t: i for i, t in enumerate(ds.query_texts)}
    for row in d:
        q = q_of[row["query"]]
        docs = [doc_index(t) for t in row["passages"]]
        assert docs[0] in ds.positives[q].tolist()
        _no_positive(ds, q, docs[1:])
        assert row["labels"] == [1, 0, 0, 0, 0, 0]
    scored = tmp_path / "ll_scores.jsonl"
    ns.write_negatives(
        res.negatives, ds, scored, "labeled-list", scores=True, positive_scores=res.positive_scores
    )
    d2 = datasets.load_dataset("json", data_files=str(scored), split="train")
    assert d2.column_names == ["query", "passages", "scores"]
    np.testing.assert_allclose(d2[0]["scores"][1:], res.negatives.scores[0], atol=1e-5)


@pytest.mark.parametrize("layout", ["st-ntuple", "st-triplet", "labeled-pair", "labeled-list"])
def test_hf_folder_roundtrip(mined, tmp_path: Path, layout: str) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    path = tmp_path / "hf"
    rep = ns.write_negatives(
        res.negatives, ds, path, "hf", hf_layout=layout, scores=layout.startswith("st"),
        positive_scores=res.positive_scores,
    )  # fmt: skip
    d = datasets.load_from_disk(str(path))
    jsonl = tmp_path / "same.jsonl"
    ns.write_negatives(
        res.negatives, ds, jsonl, layout, scores=layout.startswith("st"),
        positive_scores=res.positive_scores,
    )  # fmt: skip
    ref = datasets.load_dataset("json", data_files=str(jsonl), split="train")
    assert d.column_names == ref.column_names and len(d) == rep.rows == len(ref)
    assert d.to_list() == ref.to_list()
    assert rep.layout == layout and f"{layout} layout" in rep.summary()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_hf_folder_is_replaced_atomically_and_only_if_it_is_one(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    path = tmp_path / "hf"
    ns.write_negatives(res.negatives, ds, path, "hf")
    first = datasets.load_from_disk(str(path)).to_list()
    ns.write_negatives(res.negatives, ds, path, "hf", hf_layout="labeled-list")
    assert datasets.load_from_disk(str(path)).column_names == ["query", "passages", "labels"]
    assert first and sorted(p.name for p in tmp_path.iterdir()) == ["hf"]
    # a folder that is not a datasets folder (or a file) is never replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing to replace it"):
        ns.write_negatives(res.negatives, ds, other, "hf")
    assert (other / "notes.txt").read_text() == "keep me"
    # a failed write leaves the previous folder as it was and no temporary folder
    with pytest.raises(ValueError, match="rows have fewer"):
        ns.write_negatives(_short(res), ds, path, "hf", on_short="error")
    assert datasets.load_from_disk(str(path)).column_names == ["query", "passages", "labels"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "mine"]


def test_tevatron_corpus_file_beside_the_training_file(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    path = tmp_path / "train.jsonl"
    rep = ns.write_negatives(res.negatives, ds, path, "tevatron")
    corpus = tmp_path / "train.corpus.jsonl"
    assert rep.corpus_path == str(corpus) and str(corpus) in rep.summary()
    c = datasets.load_dataset("json", data_files=str(corpus), split="train")
    assert c.column_names == ["docid", "title", "text"]
    assert c["docid"] == ds.corpus_ids and c["text"] == ds.corpus_texts
    assert c["title"] == ds.corpus_titles
    train = [json.loads(x) for x in path.read_text().splitlines()]
    ids = set(c["docid"])
    assert all(set(r["negative_document_ids"]) <= ids for r in train)


# -- short rows: -1 is never written; the policy is counted or refused --------------------


def _short(res: ns.MinedDataset) -> ns.Negatives:
    n = res.negatives
    ids, sc = n.ids.copy(), n.scores.copy()
    ids[0, 3:] = -1  # row 0 short
    sc[0, 3:] = np.nan
    ids[1, :] = -1  # row 1 empty
    sc[1, :] = np.nan
    return ns.Negatives(ids, sc, n.query_index, n.anchor_ids, n.stats)


@pytest.mark.parametrize(
    "fmt",
    [
        "st-ntuple",
        "st-triplet",
        "labeled-pair",
        "labeled-list",
        "flagembedding",
        "tevatron",
        "parquet",
    ],
)
def test_short_rows_policy(mined, tmp_path: Path, fmt: str) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    negs = _short(res)
    path = tmp_path / "out"
    rep = ns.write_negatives(negs, ds, path, fmt)
    n0, n1 = ds.positives[0].size, ds.positives[1].size
    n_pairs = sum(p.size for p in ds.positives)
    if fmt == "st-ntuple":
        assert rep.short_rows_skipped == 1 and rep.empty_rows == 1
        assert rep.rows == n_pairs - n0 - n1
    elif fmt == "st-triplet":
        assert rep.short_rows_written == 1 and rep.empty_rows == 1
        assert rep.rows == 5 * n_pairs - 2 * n0 - 5 * n1
    elif fmt == "labeled-list":
        assert rep.short_rows_written == 1 and rep.empty_rows == 1
        assert rep.rows == n_pairs - n1
    elif fmt == "labeled-pair":
        assert rep.short_rows_written == 1 and rep.empty_rows == 1
        assert rep.rows == n_pairs - n1 + 5 * (ds.n_queries - 2) + 3
    else:
        assert rep.short_rows_written == 1 and rep.empty_rows == 1
        assert rep.rows == ds.n_queries - 1
    assert rep.padded_slots == 2 + 5
    assert "-1" not in path.read_bytes().decode("utf-8", "replace").split('"')  # never an id


def test_on_short_error_writes_nothing(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    with pytest.raises(ValueError, match="rows have fewer than n=5 negatives"):
        ns.write_negatives(_short(res), ds, path, "tevatron", on_short="error")
    assert path.read_text() == "old\n"  # the previous file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left


@pytest.mark.parametrize("fmt", ["st-ntuple", "tevatron", "parquet", "pylate-kd"])
def test_zero_rows_writes_nothing(mined, tmp_path: Path, fmt: str) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    n = res.negatives
    short = ns.Negatives(np.where(np.arange(5) < 2, n.ids, -1), n.scores, n.query_index,
                         n.anchor_ids, n.stats)  # fmt: skip
    path = tmp_path / "out"
    path.write_text("old\n")
    if fmt in ("st-ntuple", "pylate-kd"):  # every row short: nothing to write
        match = rf"no row to write \({ds.n_queries} short rows skipped \({fmt} needs n\)\)"
    else:  # every row empty
        short = ns.Negatives(np.full_like(n.ids, -1), n.scores, n.query_index, n.anchor_ids,
                             n.stats)  # fmt: skip
        match = rf"no row to write \({ds.n_queries} rows without any negative\); nothing written"
    with pytest.raises(ns.io.writers.EmptyOutput, match=match):
        ns.write_negatives(short, ds, path, fmt, positive_scores=res.positive_scores)
    assert path.read_text() == "old\n"  # left as it was
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_positive_as_negative_is_refused(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    n = res.negatives
    ids = n.ids.copy()
    ids[2, 0] = ds.positives[2][0]
    bad = ns.Negatives(ids, n.scores, n.query_index, n.anchor_ids, n.stats)
    with pytest.raises(ValueError, match="is one of its labelled positives"):
        ns.write_negatives(bad, ds, tmp_path / "x.jsonl", "st-ntuple")
    assert not (tmp_path / "x.jsonl").exists()


def test_each_anchor_rows_pair_with_their_positive(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir")
    ds = ns.load_beir(root, "train")
    emb = ns.load_embeddings(root / "embeddings", ds)
    each = ns.TopKSampler(k=30)  # TopK has no anchor: build 'each' rows by hand
    res = ns.mine_dataset(ds, each, embeddings=emb, n=3, seed=0)
    n = res.negatives
    rows = [(q, p) for q in range(ds.n_queries) for p in ds.positives[q].tolist()]
    qi = np.array([q for q, _ in rows])
    negs = ns.Negatives(n.ids[qi], n.scores[qi], qi, np.array([p for _, p in rows]), n.stats)
    path = tmp_path / "st.jsonl"
    rep = ns.write_negatives(negs, ds, path, "st-ntuple")
    assert rep.rows == len(rows)
    got = [
        (json.loads(x)["anchor"], doc_index(json.loads(x)["positive"]))
        for x in path.read_text().splitlines()
    ]
    assert got == [(ds.query_texts[q], p) for q, p in rows]
    flag = tmp_path / "flag.jsonl"
    assert ns.write_negatives(negs, ds, flag, "flagembedding").rows == ds.n_queries


def test_cli_formats_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    for fmt in (
        "st-ntuple",
        "st-triplet",
        "flagembedding",
        "tevatron",
        "parquet",
        "pylate-kd",
    ):  # hf, labeled: test_cli
        out = tmp_path / f"out.{fmt}"
        stats = tmp_path / f"{fmt}.json"
        rc = main(
            [
                "mine",
                "--data",
                str(root),
                "--embeddings",
                str(root / "embeddings"),
                "--sampler",
                "TopKSampler(k=40)",
                "--n",
                "4",
                "--index",
                "HNSW32",
                "--format",
                fmt,
                "--scores",
                "--out",
                str(out),
                "--quiet",
                "--stats-json",
                str(stats),
            ]
        )
        assert rc == 0, capsys.readouterr().err
        info = json.loads(stats.read_text())
        assert info["mining"]["n_rows"] == 24 and info["write"]["rows"] > 0
        assert not any(p.name.endswith("negsample-work") for p in tmp_path.iterdir())
    err = capsys.readouterr().err
    assert "wrote" in err and "seconds:" in err
