"""A quick sampler probe: which sampler's negatives train a better query map, in seconds.

On frozen embeddings, each sampler mines negatives; a linear map on the query side
(``q -> q W``, ``W`` started at the identity) is trained with InfoNCE on those negatives plus
the in-batch positives, for a few seeds; the samplers are ranked by held-out nDCG@10.
Needs numpy only: the gradient of the loss in ``W`` is written out, and Adam is a few lines.

How well the probe's ranking agrees with real fine-tuning is measured in
``benchmarks/bench_train.py`` and reported in ``docs/benchmarks.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ._validate import as_matrix, pad_positives
from .errors import InputError, InputTypeError
from .index.base import Index
from .index.numpy_index import NumpyIndex
from .mining import mine
from .samplers.base import BaseSampler

__all__ = ["ProbeResult", "ProbeRow", "probe", "retrieval_metrics"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: the label under which :func:`probe` reports training with in-batch negatives only
IN_BATCH = "in-batch only"
#: the label of the untrained map (``W`` = identity)
UNTRAINED = "untrained"


def retrieval_metrics(
    ranked: Any, positives: Any, *, k_ndcg: int = 10, k_mrr: int = 10, k_recall: int = 100
) -> dict[str, float]:
    """nDCG@10, MRR@10 and Recall@100 of ranked lists against binary relevance.

    Parameters
    ----------
    ranked : int ``(n_queries, K)`` corpus rows, best first (``-1`` = empty slot);
        ``K >= max(k_ndcg, k_mrr, k_recall)`` for exact figures.
    positives : the relevant corpus rows per query (ragged, or ``-1``-padded).

    Returns
    -------
    dict with ``"ndcg@10"``, ``"mrr@10"``, ``"recall@100"`` (keys follow the ``k`` given),
    each the mean over queries. The definitions are those of sentence-transformers'
    ``InformationRetrievalEvaluator`` (nDCG with ``1/log2(rank+1)`` gains and an ideal DCG
    over ``min(#relevant, k)``; Recall over all relevant documents).

    Examples
    --------
    >>> m = retrieval_metrics([[3, 1, 2]], [[1]], k_recall=3)
    >>> round(m["mrr@10"], 3), round(m["ndcg@10"], 3), m["recall@3"]
    (0.5, 0.631, 1.0)
    """
    ids = np.asarray(ranked, dtype=np.int64)
    if ids.ndim != 2:
        raise InputError(f"ranked must be (n_queries, K), got shape {ids.shape}")
    n_q = ids.shape[0]
    pos = pad_positives(positives, n_q, None)
    hit = (ids[:, :, None] == pos[:, None, :]) & (pos[:, None, :] >= 0) & (ids[:, :, None] >= 0)
    rel = hit.any(axis=2)  # (n_q, K)
    n_rel = (pos >= 0).sum(axis=1)
    if (n_rel == 0).any():
        raise InputError("every query needs at least one relevant document")
    out: dict[str, float] = {}
    disc = 1.0 / np.log2(np.arange(2, k_ndcg + 2))
    dcg = (rel[:, :k_ndcg] * disc[: rel[:, :k_ndcg].shape[1]]).sum(axis=1)
    ideal = np.array([disc[: min(int(r), k_ndcg)].sum() for r in n_rel])
    out[f"ndcg@{k_ndcg}"] = float(np.mean(dcg / ideal))
    top = rel[:, :k_mrr]
    first = np.where(top.any(axis=1), top.argmax(axis=1) + 1, 0)
    out[f"mrr@{k_mrr}"] = float(np.mean(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)))
    out[f"recall@{k_recall}"] = float(np.mean(rel[:, :k_recall].sum(axis=1) / n_rel))
    return out


@dataclass(frozen=True)
class ProbeRow:
    """One sampler's probe result: held-out metrics per seed and their mean and spread."""

    label: str
    sampler: str
    per_seed: list[dict[str, float]]
    mean: dict[str, float]
    std: dict[str, float]


@dataclass(frozen=True)
class ProbeResult:
    """What :func:`probe` returns.

    Attributes
    ----------
    rows : one :class:`ProbeRow` per sampler, plus ``"in-batch only"`` and ``"untrained"``.
    ranking : sampler labels (not the two references) by mean held-out nDCG@10, best first.
    settings : the probe's parameters, for the record.
    seconds : wall time.
    """

    rows: list[ProbeRow]
    ranking: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def table(self, metric: str = "ndcg@10") -> str:
        """A plain-text table, best first, mean +- std over seeds."""
        rows = sorted(self.rows, key=lambda r: -r.mean[metric])
        width = max(len(r.label) for r in rows)
        lines = [f"{'sampler':<{width}}  {metric:>16}", "-" * (width + 18)]
        for r in rows:
            lines.append(f"{r.label:<{width}}  {r.mean[metric]:>8.4f} +- {r.std[metric]:.4f}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.__dict__ for r in self.rows],
            "ranking": self.ranking,
            "settings": self.settings,
            "seconds": self.seconds,
        }


def _pairs(pos: IntArray) -> tuple[IntArray, IntArray]:
    """(query row, positive id) for every labelled positive."""
    q, j = np.nonzero(pos >= 0)
    return q.astype(np.int64), pos[q, j]


def _train_map(
    q: FloatArray,
    corpus: FloatArray,
    pos: IntArray,
    pair_q: IntArray,
    pair_pos: IntArray,
    negs: IntArray | None,
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    scale: float,
    weight_decay: float,
) -> FloatArray:
    """InfoNCE as sentence-transformers' ``MultipleNegativesRankingLoss``: each query of a
    batch scores ``scale * (q W) . d`` against every positive and every mined negative of the
    batch (a query's own other positives masked); Adam."""
    dim = q.shape[1]
    eye = np.eye(dim, dtype=np.float64)
    w = eye.copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    rng = np.random.default_rng(seed)
    b1, b2, eps = 0.9, 0.999, 1e-8
    t = 0
    n_pairs = pair_q.size
    for _ in range(epochs):
        order = rng.permutation(n_pairs)
        for start in range(0, n_pairs, batch_size):
            rows = order[start : start + batch_size]
            b = rows.size
            qb = q[pair_q[rows]].astype(np.float64)  # (B, d)
            u = qb @ w
            cand_ids = pair_pos[rows]
            if negs is not None:
                cand_ids = np.concatenate([cand_ids, negs[rows].ravel()])
            cand = corpus[np.maximum(cand_ids, 0)].astype(np.float64)  # (C, d)
            logits = scale * (u @ cand.T)  # (B, C)
            # not negatives: padding, and the labelled positives of the row's own query
            qrow = pair_q[rows]
            pos_of = pos[qrow]  # (B, P)
            bad = (cand_ids[None, :] < 0) | (
                (cand_ids[None, :, None] == pos_of[:, None, :]).any(axis=2)
            )
            bad[np.arange(b), np.arange(b)] = False
            logits = np.where(bad, -np.inf, logits)
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(b), np.arange(b)] -= 1.0  # softmax - onehot
            grad = scale * (qb.T @ (p @ cand)) / b + weight_decay * (w - eye)
            t += 1
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad * grad
            w -= lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w.astype(np.float32)


def _evaluate(
    w: FloatArray | None, q_eval: FloatArray, index: Index, pos_eval: IntArray, depth: int
) -> dict[str, float]:
    u = q_eval if w is None else q_eval @ w
    # the ranking of one query does not depend on the norm of its vector: normalise so the
    # index (inner product or cosine) ranks the same way
    u = np.ascontiguousarray(u / np.linalg.norm(u, axis=1, keepdims=True), dtype=np.float32)
    res = index.search(u, min(depth, index.ntotal))
    return retrieval_metrics(res.ids, pos_eval)


def probe(
    samplers: Mapping[str, BaseSampler] | Sequence[BaseSampler],
    query_embeddings: Any,
    corpus_embeddings: Any,
    positives: Any,
    eval_query_embeddings: Any,
    eval_positives: Any,
    *,
    n: int = 7,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    scale: float = 20.0,
    weight_decay: float = 0.0,
    index: Index | None = None,
    in_batch_only: bool = True,
) -> ProbeResult:
    """Rank samplers by how well their negatives train a linear query map on frozen embeddings.

    For each sampler and seed: mine ``n`` negatives per training query on the frozen
    embeddings (seeded), train ``W`` (``d x d``, from the identity) to minimise InfoNCE over
    the in-batch positives and the mined negatives (``scale`` = 1 / temperature, as
    sentence-transformers' ``MultipleNegativesRankingLoss``), then retrieve the held-out
    queries (``q W`` against the unchanged corpus) and score nDCG@10, MRR@10 and Recall@100.
    The same seed gives the same negatives, batch order and result.

    Parameters
    ----------
    samplers : ``{label: sampler}``, or a sequence (labelled by ``repr``).
    query_embeddings : ``(n_train, d)`` training queries; corpus_embeddings : ``(n_corpus, d)``.
    positives : training positives per query (ragged, or ``-1``-padded), corpus rows.
    eval_query_embeddings, eval_positives : the held-out split, same corpus.
    n : negatives mined per query. seeds : one training run per seed.
    epochs, batch_size, lr, scale, weight_decay : the map's training (Adam; ``weight_decay``
        pulls ``W`` towards the identity).
    index : an index over ``corpus_embeddings`` for mining and evaluation; by default an
        exact :class:`~negsample.NumpyIndex` (cosine).
    in_batch_only : also train with in-batch negatives only (label ``"in-batch only"``).

    Returns
    -------
    ProbeResult
        per-sampler rows (with ``"untrained"`` and ``"in-batch only"`` for reference) and the
        samplers' ranking by mean nDCG@10.

    Examples
    --------
    >>> import negsample as ns
    >>> data = ns.make_synthetic(5000, 300, 32, seed=0)
    >>> res = probe({"topk": ns.TopKSampler(k=50), "random": ns.RandomSampler()},
    ...                data.queries[:200], data.corpus, data.positives[:200],
    ...                data.queries[200:], data.positives[200:], seeds=(0,), epochs=1)
    >>> sorted(res.ranking)
    ['random', 'topk']
    """
    import time

    t0 = time.perf_counter()
    if not isinstance(samplers, Mapping):
        samplers = {repr(s): s for s in samplers}
    if not samplers:
        raise InputError("give at least one sampler")
    for label, s in samplers.items():
        if not isinstance(s, BaseSampler):
            raise InputTypeError(f"samplers[{label!r}] is not a negsample sampler")
    if not seeds:
        raise InputError("give at least one seed")
    corpus = as_matrix(corpus_embeddings, "corpus_embeddings")
    q = as_matrix(query_embeddings, "query_embeddings", dim=corpus.shape[1])
    q_eval = as_matrix(eval_query_embeddings, "eval_query_embeddings", dim=corpus.shape[1])
    pos = pad_positives(positives, q.shape[0], corpus.shape[0])
    pos_eval = pad_positives(eval_positives, q_eval.shape[0], corpus.shape[0])
    for name, val in (("epochs", epochs), ("batch_size", batch_size)):
        if val < 1:
            raise InputError(f"{name} must be >= 1, got {val}")
    if index is None:
        index = NumpyIndex(corpus, metric="cosine")
    pair_q, pair_pos = _pairs(pos)
    train_kw = dict(
        epochs=epochs, batch_size=batch_size, lr=lr, scale=scale, weight_decay=weight_decay
    )
    depth = 100
    rows: list[ProbeRow] = []

    def summarise(label: str, spec: str, runs: list[dict[str, float]]) -> ProbeRow:
        keys = runs[0].keys()
        return ProbeRow(
            label,
            spec,
            runs,
            {k: float(np.mean([r[k] for r in runs])) for k in keys},
            {
                k: float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0
                for k in keys
            },
        )

    base = _evaluate(None, q_eval, index, pos_eval, depth)
    rows.append(summarise(UNTRAINED, "W = identity", [base]))
    configs: list[tuple[str, BaseSampler | None]] = list(samplers.items())
    if in_batch_only:
        configs.append((IN_BATCH, None))
    for label, sampler in configs:
        runs = []
        for seed in seeds:
            negs = None
            if sampler is not None:
                mined = mine(q, index, pos, sampler=sampler, n=n, seed=int(seed))
                # one training row per (query, positive): the row's negatives are those of
                # its query (the first row mined for it when the sampler expands per positive)
                first = np.full(q.shape[0], -1, np.int64)
                first[mined.query_index[::-1]] = np.arange(len(mined))[::-1]
                negs = np.full((pair_q.size, n), -1, np.int64)
                has = first[pair_q] >= 0
                negs[has] = mined.ids[first[pair_q[has]]]
            w = _train_map(q, corpus, pos, pair_q, pair_pos, negs, seed=int(seed), **train_kw)  # type: ignore[arg-type]
            runs.append(_evaluate(w, q_eval, index, pos_eval, depth))
        rows.append(summarise(label, "in-batch" if sampler is None else repr(sampler), runs))
    ranking = [
        r.label for r in sorted(rows, key=lambda r: -r.mean["ndcg@10"]) if r.label in samplers
    ]
    settings = dict(train_kw, n=n, seeds=[int(s) for s in seeds], index=repr(index))
    return ProbeResult(rows, ranking, settings, time.perf_counter() - t0)
