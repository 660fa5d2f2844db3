"""``format="pylate-kd"``: the folder read back as PyLate reads it.

pylate cannot be installed beside this project's dependencies (pylate 1.6.0 pins
sentence-transformers==5.3.0 and pulls a CUDA torch), so the layout is checked against
PyLate's loader as its source has it: :func:`_kd_join` is ``KDProcessing.__init__`` and
``KDProcessing.transform`` of lightonai/pylate ``pylate/utils/processing.py`` at commit
347718e09f66eb4914154d8ad6871bf7dd3d27f1 (the same file ships in the pylate 1.6.0 wheel,
sha256 32f48af48e2cf6925d2874bf779f063a624963e6da7a4bcdafb8fa95cf50e4aa), and
:func:`_collate_labels` is the label step of ``ColBERTCollator.__call__``
(``pylate/utils/collator.py``: ``torch.tensor([row["scores"] for row in features])``,
which needs rows of one length). Where ``pylate`` is importable, the real classes are run
too, through one ``Distillation`` loss step on a tiny ColBERT.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from negsample.io.writers import EmptyOutput
from tests.beir_helpers import doc_index, write_beir

datasets = pytest.importorskip("datasets")
pytest.importorskip("pyarrow")

N = 5


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> tuple[ns.BeirDataset, ns.MinedDataset]:
    root = write_beir(tmp_path_factory.mktemp("kd") / "beir")
    ds = ns.load_beir(root, "train")
    emb = ns.load_embeddings(root / "embeddings", ds)
    return ds, ns.mine_dataset(ds, ns.TopKSampler(k=30), embeddings=emb, n=N, seed=0)


def _load(folder: Path, cache: Path) -> dict[str, Any]:
    """The three subsets as PyLate's examples load them: ``load_dataset(path, name)``."""
    return {
        name: datasets.load_dataset(str(folder), name, split="train", cache_dir=str(cache))
        for name in ("train", "queries", "documents")
    }


def _kd_join(examples: dict[str, list[Any]], queries: Any, documents: Any, n_ways: int = 32):  # type: ignore[no-untyped-def]
    """KDProcessing(queries, documents, n_ways).transform(examples), as pylate has it
    (commit 347718e, see the module docstring); a missing document becomes "" there (with a
    warning), which the tests below rule out."""
    queries_index = {query_id: i for i, query_id in enumerate(queries["query_id"])}
    documents_index = {document_id: i for i, document_id in enumerate(documents["document_id"])}
    examples = dict(examples)
    if isinstance(examples["scores"][0], str):
        examples["scores"] = [ast.literal_eval(s) for s in examples["scores"]]
    examples["scores"] = [score[:n_ways] for score in examples["scores"]]
    if isinstance(examples["document_ids"][0], str):
        examples["document_ids"] = [ast.literal_eval(d) for d in examples["document_ids"]]
    examples["document_ids"] = [ids[:n_ways] for ids in examples["document_ids"]]
    examples["query"] = [queries[queries_index[q]]["text"] for q in examples["query_id"]]
    examples["documents"] = []
    for document_ids in examples["document_ids"]:
        docs = []
        for document_id in document_ids:
            try:
                docs.append(documents[documents_index[document_id]]["text"])
            except KeyError:
                docs.append("")
        examples["documents"].append(docs)
    return examples


def _collate_labels(features: list[dict[str, Any]]) -> np.ndarray:
    """ColBERTCollator's label: one (batch, n_ways) array of the rows' scores."""
    labels = np.asarray([row["scores"] for row in features], dtype=np.float32)
    assert labels.ndim == 2, "rows of different lengths cannot be stacked"
    return labels


def _write(ds, res, path: Path, negatives=None, **kw):  # type: ignore[no-untyped-def]
    neg = res.negatives if negatives is None else negatives
    kw.setdefault("positive_scores", res.positive_scores)
    return ns.write_negatives(neg, ds, path, "pylate-kd", **kw)


def test_layout_columns_and_dtypes(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    out = tmp_path / "kd"
    rep = _write(ds, res, out, scores=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "documents.parquet",
        "queries.parquet",
        "train.parquet",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["kd"]  # no temporary folder left
    sub = _load(out, tmp_path / "cache")
    string, floats = datasets.Value("string"), datasets.Value("float32")
    assert sub["train"].features == datasets.Features(
        {
            "query_id": string,
            "document_ids": datasets.List(string),
            "scores": datasets.List(floats),
        }
    )
    assert sub["queries"].features == datasets.Features({"query_id": string, "text": string})
    assert sub["documents"].features == datasets.Features({"document_id": string, "text": string})
    # one row per (query, positive), every row n + 1 documents long
    assert len(sub["train"]) == rep.rows == sum(p.size for p in ds.positives)
    assert {len(r) for r in sub["train"]["document_ids"]} == {N + 1}
    assert {len(r) for r in sub["train"]["scores"]} == {N + 1}
    assert rep.summary().startswith(f"wrote {rep.rows} rows (pylate-kd) to {out}")


def test_ids_resolve_positive_first_scores_aligned(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    out = tmp_path / "kd"
    _write(ds, res, out)
    sub = _load(out, tmp_path / "cache")
    train, queries, documents = sub["train"], sub["queries"], sub["documents"]
    # queries: those written, once, in dataset order; documents: every one named, once
    assert queries["query_id"] == [q for q in ds.query_ids if q in set(train["query_id"])]
    assert queries["text"] == [ds.query_texts[ds.query_ids.index(q)] for q in queries["query_id"]]
    named = {d for ids in train["document_ids"] for d in ids}
    assert len(documents["document_id"]) == len(set(documents["document_id"])) == len(named)
    assert set(documents["document_id"]) == named
    row_of = {c: i for i, c in enumerate(ds.corpus_ids)}
    rows = [row_of[d] for d in documents["document_id"]]
    assert rows == sorted(rows)  # corpus order
    assert documents["text"] == [ds.document_texts[r] for r in rows]
    # each row: the positive, then that query's negatives, scores in the same order
    q_of = {q: i for i, q in enumerate(ds.query_ids)}
    neg = res.negatives
    expect = []
    for r in range(len(neg)):
        q = int(neg.query_index[r])
        for j, p in enumerate(ds.positives[q].tolist()):
            ids = [ds.corpus_ids[p], *(ds.corpus_ids[d] for d in neg.ids[r].tolist())]
            sc = np.concatenate([[res.positive_scores[q][j]], neg.scores[r]]).astype(np.float32)
            expect.append((ds.query_ids[q], ids, sc))
    assert len(train) == len(expect)
    for row, (qid, ids, sc) in zip(train, expect, strict=True):
        assert row["query_id"] == qid and row["document_ids"] == ids
        np.testing.assert_array_equal(np.asarray(row["scores"], np.float32), sc)
        q = q_of[qid]
        positives = set(ds.positives[q].tolist())
        assert row_of[ids[0]] in positives
        assert not {row_of[d] for d in ids[1:]} & positives
        assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("n_ways", [32, 3])
def test_pylate_join_resolves_every_id(mined, tmp_path: Path, n_ways: int) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    out = tmp_path / "kd"
    _write(ds, res, out)
    sub = _load(out, tmp_path / "cache")
    train = sub["train"]
    # as PyLate's examples do: set_transform, then batches of rows
    train.set_transform(lambda b: _kd_join(b, sub["queries"], sub["documents"], n_ways))
    batch = train[:8]
    assert list(batch) == ["query_id", "document_ids", "scores", "query", "documents"]
    width = min(n_ways, N + 1)
    q_of = {q: i for i, q in enumerate(ds.query_ids)}
    features = []
    for i in range(len(batch["query_id"])):
        q = q_of[batch["query_id"][i]]
        assert batch["query"][i] == ds.query_texts[q]
        docs = batch["documents"][i]
        assert len(docs) == len(batch["scores"][i]) == width and "" not in docs
        assert doc_index(docs[0]) in ds.positives[q].tolist()  # the positive survives the cut
        features.append({k: batch[k][i] for k in batch})
    assert _collate_labels(features).shape == (8, width)


def _tokenize(texts: list[str], is_query: bool = False, pad: bool = True, task: Any = None):  # type: ignore[no-untyped-def]
    """A word-level tokenizer for ColBERTCollator's ``tokenize_fn`` (ids from the letters)."""
    import torch

    ids = [[1 + sum(map(ord, w)) % 97 for w in t.split()] for t in texts]
    width = max(len(x) for x in ids)
    return {
        "input_ids": torch.tensor([x + [0] * (width - len(x)) for x in ids]),
        "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
    }


def test_the_real_pylate_reads_it(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """PyLate's own KDProcessing, ColBERTCollator and Distillation loss, where pylate
    imports (it cannot be installed with this project's sentence-transformers). The loss
    runs on a stub token encoder: pylate 1.6.0's ColBERT model does not build on
    sentence-transformers 6, and what is under test is the data, not the model."""
    pytest.importorskip("pylate")
    torch = pytest.importorskip("torch")
    from pylate import losses, utils

    ds, res = mined
    out = tmp_path / "kd"
    _write(ds, res, out)
    sub = _load(out, tmp_path / "cache")
    train = sub["train"]
    ref = _kd_join(train[:6], sub["queries"], sub["documents"], N + 1)
    kd = utils.KDProcessing(queries=sub["queries"], documents=sub["documents"], n_ways=N + 1)
    train.set_transform(kd.transform)
    got = train[:6]
    assert list(got) == list(ref)
    for key in ("query_id", "document_ids", "query", "documents"):
        assert got[key] == ref[key]
    np.testing.assert_allclose(got["scores"], ref["scores"])

    class Stub(torch.nn.Module):  # what Distillation uses of a ColBERT model
        def __init__(self) -> None:
            super().__init__()
            self.skiplist: list[int] = []
            self.do_query_expansion = False
            torch.manual_seed(0)
            self.emb = torch.nn.Embedding(100, 8)

        def forward(self, f: dict[str, Any]) -> dict[str, Any]:
            return {"token_embeddings": self.emb(f["input_ids"])}

    batch = utils.ColBERTCollator(tokenize_fn=_tokenize)([train[i] for i in range(4)])
    assert tuple(batch["label"].shape) == (4, N + 1)
    assert batch["documents_input_ids"].shape[0] == 4 * (N + 1)
    features = [
        {k: batch[f"{c}_{k}"] for k in ("input_ids", "attention_mask")}
        for c in ("query", "documents")
    ]
    loss = losses.Distillation(model=Stub())(sentence_features=features, labels=batch["label"])
    assert torch.isfinite(loss) and loss.item() >= 0


def test_several_rows_per_query_pair_with_their_own_positive(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    n = res.negatives
    pairs = [(q, p) for q in range(ds.n_queries) for p in ds.positives[q].tolist()]
    qi = np.array([q for q, _ in pairs])
    each = ns.Negatives(n.ids[qi], n.scores[qi], qi, np.array([p for _, p in pairs]), n.stats)
    out = tmp_path / "kd"
    assert _write(ds, res, out, negatives=each).rows == len(pairs)
    train = _load(out, tmp_path / "cache")["train"]
    got = [(r["query_id"], r["document_ids"][0]) for r in train]
    assert got == [(ds.query_ids[q], ds.corpus_ids[p]) for q, p in pairs]


def _short(res: ns.MinedDataset) -> ns.Negatives:
    n = res.negatives
    ids, sc = n.ids.copy(), n.scores.copy()
    ids[0, 3:], sc[0, 3:] = -1, np.nan  # row 0 short
    ids[1, :], sc[1, :] = -1, np.nan  # row 1 empty
    return ns.Negatives(ids, sc, n.query_index, n.anchor_ids, n.stats)


def test_short_and_empty_rows_are_skipped_and_counted(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    out = tmp_path / "kd"
    rep = _write(ds, res, out, negatives=_short(res))
    assert rep.short_rows_skipped == 1 and rep.empty_rows == 1 and rep.padded_slots == 2 + N
    n_pairs = sum(p.size for p in ds.positives)
    assert rep.rows == n_pairs - ds.positives[0].size - ds.positives[1].size
    sub = _load(out, tmp_path / "cache")
    assert ds.query_ids[0] not in sub["queries"]["query_id"]
    assert ds.query_ids[1] not in sub["train"]["query_id"]
    assert all(len(r) == N + 1 for r in sub["train"]["document_ids"])
    with pytest.raises(ValueError, match="rows have fewer than n=5"):
        _write(ds, res, tmp_path / "refused", negatives=_short(res), on_short="error")
    assert not (tmp_path / "refused").exists()


def test_a_missing_score_leaves_the_row_out(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    pos = [p.copy() for p in res.positive_scores]
    pos[2][0] = np.nan  # e.g. a positive that a --run did not retrieve
    n = res.negatives
    sc = n.scores.copy()
    sc[3, 1] = np.inf
    negs = ns.Negatives(n.ids, sc, n.query_index, n.anchor_ids, n.stats)
    out = tmp_path / "kd"
    rep = _write(ds, res, out, negatives=negs, positive_scores=pos)
    assert rep.unscored_rows == 1 + ds.positives[3].size
    assert rep.rows == sum(p.size for p in ds.positives) - rep.unscored_rows
    assert f"{rep.unscored_rows} rows with a missing score skipped" in rep.summary()
    sub = _load(out, tmp_path / "cache")
    train = sub["train"]
    assert all(np.isfinite(s).all() for s in train["scores"])
    assert ds.query_ids[3] not in sub["queries"]["query_id"]
    # the documents are those the written rows name: no document of a left-out row only
    assert set(sub["documents"]["document_id"]) == {d for r in train["document_ids"] for d in r}
    key = (ds.query_ids[2], ds.corpus_ids[int(ds.positives[2][0])])
    assert key not in {(r["query_id"], r["document_ids"][0]) for r in train}


def test_nothing_to_write_writes_nothing(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    pos = [np.full(p.size, np.nan) for p in res.positive_scores]
    with pytest.raises(EmptyOutput, match=r"rows with a missing score\); nothing written"):
        _write(ds, res, tmp_path / "kd", positive_scores=pos)
    n = res.negatives
    short = ns.Negatives(np.where(np.arange(N) < 2, n.ids, -1), n.scores, n.query_index,
                         n.anchor_ids, n.stats)  # fmt: skip
    with pytest.raises(EmptyOutput, match=rf"{ds.n_queries} short rows skipped"):
        _write(ds, res, tmp_path / "kd", negatives=short)
    with pytest.raises(ValueError, match="writes every score: give positive_scores"):
        _write(ds, res, tmp_path / "kd", positive_scores=None)
    assert list(tmp_path.iterdir()) == []


def test_a_previous_output_is_replaced_anything_else_refused(mined, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, res = mined
    out = tmp_path / "kd"
    _write(ds, res, out)
    before = (out / "README.md").read_text()
    _write(ds, res, out, negatives=_short(res))  # a previous pylate-kd folder: replaced
    assert (out / "README.md").read_text() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kd"]
    # a failed write leaves it as it was
    with pytest.raises(ValueError, match="rows have fewer"):
        _write(ds, res, out, negatives=_short(res), on_short="error")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kd"]
    # a folder that is not one (a stray file in it, or another folder) is never replaced
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing to replace it"):
        _write(ds, res, out)
    assert (out / "notes.txt").read_text() == "keep me"
    other = tmp_path / "other"
    other.mkdir()
    for name in ("README.md", "train.parquet", "queries.parquet", "documents.parquet"):
        (other / name).write_text("mine")
    with pytest.raises(ValueError, match="refusing to replace it"):
        _write(ds, res, other)
    assert (other / "README.md").read_text() == "mine"


def _mine_argv(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "mine",
        "--data",
        str(root),
        "--embeddings",
        str(root / "embeddings"),
        "--sampler",
        "topk(k=30)",
        "--n",
        "4",
        "--quiet",
        "--format",
        "pylate-kd",
        "--out",
        str(out),
        *extra,
    ]


def test_cli_writes_the_miners_scores(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir", n_docs=300, n_queries=12)
    out, stats = tmp_path / "kd", tmp_path / "stats.json"
    assert main(_mine_argv(root, out, "--scores", "--stats-json", str(stats))) == 0
    info = json.loads(stats.read_text())
    ds = ns.load_beir(root, "train")
    assert info["write"]["rows"] == sum(p.size for p in ds.positives)
    assert info["write"]["format"] == "pylate-kd" and info["write"]["unscored_rows"] == 0
    sub = _load(out, tmp_path / "cache")
    emb = ns.load_embeddings(root / "embeddings", ds)
    q_of = {q: i for i, q in enumerate(ds.query_ids)}
    d_of = {d: i for i, d in enumerate(ds.corpus_ids)}
    for row in sub["train"]:
        q = q_of[row["query_id"]]
        rows = [d_of[d] for d in row["document_ids"]]
        # the miner's own s(q, d): the inner product of the embeddings
        np.testing.assert_allclose(row["scores"], emb.corpus[rows] @ emb.queries[q], atol=1e-5)
    assert "Load it in PyLate" in (out / "README.md").read_text()
    assert not any(p.name.endswith("negsample-work") for p in tmp_path.iterdir())
    # a rerun to the same --out replaces the folder (the command treats it as a folder)
    before = (out / "train.parquet").read_bytes()
    assert main(_mine_argv(root, out, "--scores", "--seed", "1")) == 0
    assert (out / "train.parquet").read_bytes() != before


def test_cli_writes_the_teachers_scores(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from negsample.scoring import CrossEncoderScorer
    from tests.test_scoring_models import _tiny_bert

    tiny = _tiny_bert(tmp_path / "tiny")
    root = write_beir(tmp_path / "beir", n_docs=300, n_queries=12)
    out = tmp_path / "kd"
    extra = ["--rescore", f"cross-encoder:{tiny}", "--teacher-scores", "--device", "cpu"]
    assert main(_mine_argv(root, out, *extra)) == 0
    sub = _load(out, tmp_path / "cache")
    train = sub["train"]
    train.set_transform(lambda b: _kd_join(b, sub["queries"], sub["documents"]))
    ce = CrossEncoderScorer(tiny, device="cpu")
    batch = train[:6]
    for query, docs, scores in zip(
        batch["query"], batch["documents"], batch["scores"], strict=True
    ):
        want = ce.score([(query, d) for d in docs])
        np.testing.assert_allclose(scores, want, atol=1e-4)
    assert np.ptp([s for r in batch["scores"] for s in r]) > 1e-3  # not all one value
