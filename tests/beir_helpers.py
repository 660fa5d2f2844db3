"""A small BEIR folder written by the tests themselves, with precomputed embeddings."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

import negsample as ns


def write_beir(
    root: Path,
    n_docs: int = 400,
    n_queries: int = 24,
    dim: int = 16,
    *,
    seed: int = 0,
    gz: bool = False,
    shuffle_embedding_ids: bool = True,
) -> Path:
    """``root/{corpus,queries}.jsonl``, ``root/qrels/{train,test}.tsv`` and
    ``root/embeddings/{corpus,queries}.npy`` with id lists (in a shuffled order, so that
    loading must align them). Every document text is unique: ``doc <i> ...``."""
    data = ns.make_synthetic(n_docs, n_queries, dim, seed=seed, max_positives=3)
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    opener = (
        (lambda p: gzip.open(str(p) + ".gz", "wt", encoding="utf-8"))
        if gz
        else (lambda p: open(p, "w", encoding="utf-8"))
    )
    doc_ids = [f"d{i}" for i in range(n_docs)]
    q_ids = [f"q{i}" for i in range(n_queries)]
    with opener(root / "corpus.jsonl") as f:
        for i, d in enumerate(doc_ids):
            title = f"title {i}" if i % 3 else ""
            f.write(json.dumps({"_id": d, "title": title, "text": f"doc {i} text"}) + "\n")
    with opener(root / "queries.jsonl") as f:
        for i, q in enumerate(q_ids):
            f.write(json.dumps({"_id": q, "text": f"query {i}?"}) + "\n")
    for split, rows in (("train", range(n_queries)), ("test", range(0, n_queries, 2))):
        with opener(root / "qrels" / f"{split}.tsv") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for i in rows:
                for p in data.positives[i].tolist():
                    f.write(f"{q_ids[i]}\t{doc_ids[p]}\t1\n")
                if split == "test":  # hidden positives labelled too: protocol material
                    for h in data.hidden[i].tolist():
                        f.write(f"{q_ids[i]}\t{doc_ids[h]}\t1\n")
    emb = root / "embeddings"
    emb.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    dperm = rng.permutation(n_docs) if shuffle_embedding_ids else np.arange(n_docs)
    qperm = rng.permutation(n_queries) if shuffle_embedding_ids else np.arange(n_queries)
    np.save(emb / "corpus.npy", data.corpus[dperm])
    np.save(emb / "queries.npy", data.queries[qperm])
    (emb / "corpus_ids.txt").write_text("".join(f"{doc_ids[i]}\n" for i in dperm))
    (emb / "query_ids.txt").write_text("".join(f"{q_ids[i]}\n" for i in qperm))
    return root


def doc_index(text: str) -> int:
    """Corpus row of a document text written by :func:`write_beir`."""
    words = text.split()
    i = words.index("doc")
    return int(words[i + 1])
