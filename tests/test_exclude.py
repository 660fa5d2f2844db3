"""``exclude=``: ids never sampled but never anchors; duplicate-text documents in BEIR data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from tests.beir_helpers import write_beir


@pytest.fixture(scope="module")
def data() -> ns.SyntheticRetrieval:
    return ns.make_synthetic(3000, 80, 16, seed=5)


def test_mine_exclude_removes_and_counts(data: ns.SyntheticRetrieval) -> None:
    index = ns.NumpyIndex(data.corpus)
    top = ns.mine(data.queries, index, data.positives, ns.TopKSampler(k=10, strategy="top"), n=3)
    exclude = [row[:2].tolist() for row in top.ids]  # the two best negatives of each query
    exclude[3] = []  # a query with nothing to exclude
    negs = ns.mine(
        data.queries,
        index,
        data.positives,
        ns.TopKSampler(k=10, strategy="top"),
        n=3,
        exclude=exclude,
    )
    for i, row in enumerate(negs.ids):
        assert not set(row.tolist()) & set(exclude[i])
    np.testing.assert_array_equal(negs.ids[3], top.ids[3])
    np.testing.assert_array_equal(negs.ids[0, 0], top.ids[0, 2])  # the next best moves up
    assert negs.stats.removed["excluded"] == sum(len(e) for e in exclude)
    # the search goes deeper by the excluded count, so it may meet more positives
    assert negs.stats.removed["positive"] >= top.stats.removed["positive"]


def test_excluded_ids_are_never_anchors(data: ns.SyntheticRetrieval) -> None:
    index = ns.NumpyIndex(data.corpus)
    exclude = [h.tolist() for h in data.hidden]
    negs = ns.mine(
        data.queries,
        index,
        data.positives,
        ns.SimANSSampler(k=50, positive_anchor="each"),
        n=3,
        exclude=exclude,
    )
    assert len(negs) == sum(len(p) for p in data.positives)  # one row per positive only
    assert set(negs.anchor_ids.tolist()) <= {int(x) for p in data.positives for x in p}
    for q, row in zip(negs.query_index, negs.ids, strict=True):
        assert not set(row.tolist()) & set(exclude[q])


def test_exclude_through_direct_sample_and_validation() -> None:
    ids = np.array([[5, 6, 7, 8]])
    sc = np.array([[0.9, 0.8, 0.7, 0.6]], dtype=np.float32)
    negs = ns.TopKSampler(k=4, strategy="top").sample(ids, sc, [[5]], n=2, exclude=[[6]])
    assert negs.ids.tolist() == [[7, 8]]
    assert negs.stats.removed == {"positive": 1, "excluded": 1}
    with pytest.raises(ValueError, match=r"exclude has 2 entries but there are 1 queries"):
        ns.TopKSampler(k=4).sample(ids, sc, [[5]], n=2, exclude=[[6], [7]])


def _with_duplicates(root: Path) -> tuple[Path, dict[str, str]]:
    """A BEIR folder where, for 6 queries, one non-positive document repeats the text (and
    the vector) of one of the query's positives under another id."""
    write_beir(root, shuffle_embedding_ids=False)
    ds = ns.load_beir(root, "train")
    corpus = [json.loads(line) for line in (root / "corpus.jsonl").read_text().splitlines()]
    vecs = np.load(root / "embeddings" / "corpus.npy")
    qvecs = np.load(root / "embeddings" / "queries.npy")  # train = every query, in order
    all_pos = {int(x) for p in ds.positives for x in p}
    free = [i for i in range(len(corpus)) if i not in all_pos]
    copies = {}
    for qi in range(6):
        pos = ds.positives[qi]
        src, dst = int(pos[np.argmax(vecs[pos] @ qvecs[qi])]), free[qi]  # the best positive
        corpus[dst]["title"], corpus[dst]["text"] = corpus[src]["title"], corpus[src]["text"]
        vecs[dst] = vecs[src]
        copies[corpus[dst]["_id"]] = ds.query_ids[qi]
    (root / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus))
    np.save(root / "embeddings" / "corpus.npy", vecs)
    return root, copies


def test_duplicate_texts(tmp_path: Path) -> None:
    root, copies = _with_duplicates(tmp_path / "beir")
    ds = ns.load_beir(root, "train")
    dups = ds.duplicate_texts()
    found = {ds.corpus_ids[d]: ds.query_ids[q] for q, row in enumerate(dups) for d in row}
    assert found == copies
    clean = ns.load_beir(write_beir(tmp_path / "clean"), "train").duplicate_texts()
    assert all(d.size == 0 for d in clean)


@pytest.mark.parametrize("keep", [False, True])
def test_cli_mine_excludes_duplicate_texts(tmp_path: Path, keep: bool) -> None:
    root, copies = _with_duplicates(tmp_path / "beir")
    out = tmp_path / "negs.jsonl"
    stats = tmp_path / "stats.json"
    argv = [
        "mine",
        "--data",
        str(root),
        "--split",
        "train",
        "--embeddings",
        str(root / "embeddings"),
        "--sampler",
        "TopKSampler(k=10, strategy='top')",
        "--n",
        "7",
        "--format",
        "tevatron",
        "--out",
        str(out),
        "--quiet",
        "--stats-json",
        str(stats),
    ]
    assert main([*argv, "--keep-duplicate-texts"] if keep else argv) == 0
    rows = {r["query_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    hits = [d for d, q in copies.items() if d in rows[q]["negative_document_ids"]]
    if keep:
        assert len(hits) == len(copies)  # identical vectors rank at the very top
    else:
        assert hits == []
        assert "excluded" in stats.read_text()
