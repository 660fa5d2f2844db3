"""A built-in, seeded synthetic retrieval set with planted unlabelled positives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import InputError

__all__ = ["SyntheticRetrieval", "make_synthetic"]


@dataclass(frozen=True)
class SyntheticRetrieval:
    """Corpus and queries (float32, L2-normalised), labelled positives, and the planted
    *unlabelled* positives (``hidden``): documents drawn from exactly the same distribution
    as the labelled ones but missing from the labels, as false negatives are in real data."""

    corpus: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]
    positives: list[npt.NDArray[np.int64]]
    hidden: list[npt.NDArray[np.int64]]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_synthetic(
    n_docs: int = 20_000,
    n_queries: int = 1_000,
    dim: int = 64,
    *,
    max_positives: int = 3,
    n_hidden: int = 3,
    n_distractors: int = 8,
    seed: int = 0,
) -> SyntheticRetrieval:
    """Generate a retrieval set.

    Each query gets 1..``max_positives`` labelled positives and ``n_hidden`` unlabelled
    ones, all ``normalize(q + sigma * eps)`` with ``sigma`` in [0.5, 1.1] (cosine to the query
    about 0.67-0.9), plus ``n_distractors`` related but non-relevant documents (``sigma`` in
    [1.2, 2.0]); the rest of the corpus is random. Rows are shuffled, so ids carry no
    information. The same ``seed`` gives the same data.
    """
    per_query = max_positives + n_hidden + n_distractors
    if n_docs < n_queries * per_query:
        raise InputError(
            f"n_docs={n_docs} is too small: {n_queries} queries x {per_query} planted documents"
        )
    rng = np.random.default_rng(seed)
    q = _unit(rng.standard_normal((n_queries, dim)))
    n_pos = rng.integers(1, max_positives + 1, size=n_queries)

    def around(count: int, lo: float, hi: float) -> np.ndarray:
        sigma = rng.uniform(lo, hi, size=(n_queries, count, 1))
        eps = rng.standard_normal((n_queries, count, dim)) / np.sqrt(dim)
        return _unit(q[:, None, :] + sigma * eps)

    rel = around(max_positives + n_hidden, 0.5, 1.1)
    dis = around(n_distractors, 1.2, 2.0)
    background = _unit(rng.standard_normal((n_docs - n_queries * per_query, dim)))
    planted = np.concatenate([rel, dis], axis=1).reshape(-1, dim)
    docs = np.concatenate([planted, background])
    perm = rng.permutation(n_docs)  # new row of old row i is where[i]
    where = np.empty(n_docs, np.int64)
    where[perm] = np.arange(n_docs)
    corpus = np.ascontiguousarray(docs[perm])
    old = np.arange(n_queries)[:, None] * per_query + np.arange(max_positives + n_hidden)[None, :]
    new = where[old]
    positives = [new[i, : n_pos[i]].copy() for i in range(n_queries)]
    hidden = [new[i, max_positives : max_positives + n_hidden].copy() for i in range(n_queries)]
    return SyntheticRetrieval(corpus=corpus, queries=q, positives=positives, hidden=hidden)
