"""A stand-in for a SentenceTransformer (and a CrossEncoder) that returns fixed vectors by
text, so sentence-transformers' own ``mine_hard_negatives`` and negsample's drop-in can run
on the same inputs in milliseconds. Similarities are sentence-transformers' own functions."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np


class StubModel:
    """``encode_query`` / ``encode_document`` look the texts up in ``vectors``."""

    def __init__(self, vectors: dict[str, np.ndarray], name: str | None = "stub") -> None:
        import torch

        self.vectors = vectors
        self.dim = len(next(iter(vectors.values())))
        self.device = torch.device("cpu")
        self.model_card_data = SimpleNamespace(base_model=name)
        self.calls = 0

    def get_embedding_dimension(self) -> int:
        return self.dim

    def _encode(self, texts: list[str], normalize_embeddings: bool = False, **kw: Any) -> Any:
        self.calls += 1
        v = np.stack([self.vectors[t] for t in texts]).astype(np.float32)
        if normalize_embeddings:
            v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v

    encode_query = _encode
    encode_document = _encode

    def similarity(self, a: Any, b: Any) -> Any:
        from sentence_transformers.util import cos_sim

        return cos_sim(a, b)

    def similarity_pairwise(self, a: Any, b: Any) -> Any:
        from sentence_transformers.util import pairwise_cos_sim

        return pairwise_cos_sim(a, b)


class StubCrossEncoder:
    """``predict`` scores a (query, document) pair by a fixed bilinear form of the texts'
    vectors: deterministic, and ordered differently from the bi-encoder. ``scale`` divides
    the form before the ``tanh``: a large one keeps the scores off the flat ends (no ties)."""

    def __init__(self, vectors: dict[str, np.ndarray], seed: int = 7, scale: float = 4.0) -> None:
        self.vectors = vectors
        self.scale = scale
        dim = len(next(iter(vectors.values())))
        self.w = np.random.default_rng(seed).standard_normal((dim, dim)).astype(np.float32)
        self.calls = 0

    def predict(
        self, pairs: list[tuple[str, str]], convert_to_tensor: bool = False, **kw: Any
    ) -> Any:
        self.calls += 1
        a = np.stack([self.vectors[q] for q, _ in pairs]).astype(np.float32)
        b = np.stack([self.vectors[d] for _, d in pairs]).astype(np.float32)
        s = np.tanh(np.einsum("ij,jk,ik->i", a, self.w, b) / self.scale).astype(np.float32)
        if convert_to_tensor:
            import torch

            return torch.from_numpy(s)
        return s


def make_pairs(
    n_queries: int = 40,
    n_docs: int = 300,
    dim: int = 16,
    *,
    max_positives: int = 1,
    near: int = 2,
    seed: int = 0,
) -> tuple[dict[str, list[str]], list[str], dict[str, np.ndarray]]:
    """(query, positive) pairs, a corpus and the vectors of every text. Each query sits close
    to its positives and has ``near`` extra documents almost as close (for the margins);
    query ``i`` has ``1 + i % max_positives`` positives."""
    rng = np.random.default_rng(seed)
    docs = [f"passage {i}" for i in range(n_docs)]
    vecs = {t: rng.standard_normal(dim) for t in docs}
    pairs: dict[str, list[str]] = {"query": [], "answer": []}
    used = 0
    for i in range(n_queries):
        q = f"question {i}?"
        k = 1 + i % max_positives
        pos = docs[used : used + k]
        used += k
        center = np.mean([vecs[p] for p in pos], axis=0)
        vecs[q] = center + 0.3 * rng.standard_normal(dim)
        for j in range(near):
            d = docs[n_docs - 1 - (i * near + j) % n_docs]
            vecs[d] = vecs[q] + (0.4 + 0.3 * j) * rng.standard_normal(dim)
        for p in pos:
            pairs["query"].append(q)
            pairs["answer"].append(p)
    return pairs, docs, vecs
