"""A small BEIR folder with real-looking texts (for BM25): queries share words with their
positives, and some documents are exact or reordered copies of others (BM25 ties)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.beir_helpers import write_beir

#: 120 made-up words (no stop word, no stem collisions among them).
WORDS = [f"{a}{b}{c}x" for a in "bcdfgh" for b in "aeiou" for c in "klmn"]


def write_text_beir(
    root: Path, n_docs: int = 400, n_queries: int = 24, dim: int = 16, *, seed: int = 0
) -> Path:
    """:func:`tests.beir_helpers.write_beir` (ids, qrels, shuffled embeddings), then texts:
    every query is 4 words, each of its positives (and hidden positives) holds 2 of them
    among 10 random words; every 10th unlabelled document is a reordered copy of the one
    before (the same BM25 score for every query: ties on purpose), and three unlabelled
    documents are exact copies of positives; no titles."""
    write_beir(root, n_docs, n_queries, dim, seed=seed)
    rng = np.random.default_rng(seed + 1)
    q_words = [list(rng.choice(WORDS, 4, replace=False)) for _ in range(n_queries)]
    docs = [list(rng.choice(WORDS, 10)) for _ in range(n_docs)]
    labelled: dict[int, int] = {}
    for split in ("train", "test"):
        for line in (root / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
            q, d, _ = line.split("\t")
            qi, di = int(q[1:]), int(d[1:])
            docs[di][:2] = list(rng.choice(q_words[qi], 2, replace=False))
            labelled[di] = qi
    for i in range(9, n_docs, 10):
        if i not in labelled:
            docs[i] = list(rng.permutation(docs[i - 1]))
    # three unlabelled documents are exact copies of a positive (excluded by default)
    free = [i for i in range(n_docs - 1, -1, -1) if i not in labelled and i % 10 != 9][:3]
    for i, pos in zip(free, sorted(labelled)[:3], strict=True):
        docs[i] = list(docs[pos])
    rows = [json.loads(x) for x in (root / "corpus.jsonl").read_text().splitlines()]
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for r, words in zip(rows, docs, strict=True):
            r["title"] = ""
            r["text"] = " ".join(words)
            f.write(json.dumps(r) + "\n")
    rows = [json.loads(x) for x in (root / "queries.jsonl").read_text().splitlines()]
    with open(root / "queries.jsonl", "w", encoding="utf-8") as f:
        for r, words in zip(rows, q_words, strict=True):
            r["text"] = " ".join(words) + "?"
            f.write(json.dumps(r) + "\n")
    return root
