"""BM25 candidates (``--index bm25`` / ``hybrid``): speed against a bare bm25s, and false
negatives of TopK over BM25, dense and hybrid candidates.

1. Speed, side by side in one process (medians of ``--repeats`` interleaved runs): the
   build of :class:`negsample.BM25Index` against what a user would run instead (bm25s'
   README: ``bm25s.tokenize`` with English stop words and PyStemmer, ``BM25().index``),
   and queries per second at depth 200 (``BM25Index.search`` against ``bm25s.tokenize`` +
   ``BM25.retrieve(k=200)``), with the share of queries whose 200 scores agree exactly.
   On NFCorpus and SciFact (``../shared/data``, read in place) and on a seeded synthetic
   corpus of ``--synthetic-docs`` documents (Zipf-distributed words).
2. The hidden-positive protocol on NFCorpus (train qrels, precomputed all-MiniLM-L6-v2
   embeddings, ``negsample.hide_positives`` / ``negative_quality``): TopK (and SimANS on
   BM25 scores) over BM25, dense (exact) and hybrid (RRF, k_rrf = 60) candidates; the
   hardness is the mean dense ``s(q, d-)`` (cosine) of the negatives for every row, so the
   rows are comparable, and the mean BM25 score beside it.
3. The spread of a query's top-200 BM25 scores on NFCorpus (the scale SimANS' kernel sees).

    python benchmarks/bench_bm25.py            # a few minutes
    python benchmarks/bench_bm25.py --quick    # NFCorpus only, fewer queries and repeats

Writes ``results/bench_bm25.json`` and ``.md`` (``bench_bm25_quick`` with ``--quick``).
CPU only (not measured on a GPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_note, machine, markdown_table, median, write_results

import negsample as ns
from negsample._ragged import Ragged
from negsample.samplers.base import sample_candidates
from negsample.sources import BM25Source, HybridSource

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEGSAMPLE_SHARED_DATA", ROOT.parent / "shared" / "data"))
MODEL = "all-MiniLM-L6-v2"
DEPTH = 200


# -- speed ----------------------------------------------------------------------------------
def synthetic_texts(n_docs: int, n_queries: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Seeded texts: 50,000 made-up words drawn Zipf-like (rank^-1.1), documents of 30-90
    words, queries of 3-8 words; a function of ``seed`` alone."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"t{i:05d}w" for i in range(50_000)])
    p = 1.0 / np.arange(1, vocab.size + 1) ** 1.1
    p /= p.sum()
    docs = [" ".join(rng.choice(vocab, int(rng.integers(30, 91)), p=p)) for _ in range(n_docs)]
    queries = [" ".join(rng.choice(vocab, int(rng.integers(3, 9)), p=p)) for _ in range(n_queries)]
    return docs, queries


def bare_bm25s(docs: list[str], queries: list[str]) -> tuple[float, float, Any]:
    """What a user runs instead (bm25s' README): seconds to build, seconds to retrieve the
    top 200 of every query, and the results."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    t0 = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    t1 = time.perf_counter()
    qt = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False)
    res = retriever.retrieve(qt, k=min(DEPTH, len(docs)), show_progress=False)
    return t1 - t0, time.perf_counter() - t1, res


def ours(docs: list[str], queries: list[str]) -> tuple[float, float, ns.Candidates]:
    t0 = time.perf_counter()
    index = ns.BM25Index(docs)
    t1 = time.perf_counter()
    got = index.search(queries, DEPTH)
    return t1 - t0, time.perf_counter() - t1, got


def agreement(got: ns.Candidates, bare: Any) -> float:
    """Share of queries whose positive top-200 scores are the same numbers in both (bm25s
    also returns zero-score documents, in any order; negsample does not)."""
    same = 0
    for q in range(got.ids.shape[0]):
        a = got.scores[q][got.ids[q] >= 0]
        b = np.sort(bare.scores[q][bare.scores[q] > 0])[::-1]
        same += a.size == b.size and bool(np.array_equal(a, b))
    return same / max(1, got.ids.shape[0])


def speed(name: str, docs: list[str], queries: list[str], repeats: int) -> dict[str, Any]:
    runs: dict[str, list[float]] = {
        "ours_build": [],
        "ours_search": [],
        "bare_build": [],
        "bare_search": [],
    }
    agree = float("nan")
    for r in range(repeats):  # interleaved, so the machine's load hits both alike
        order = [ours, bare_bm25s] if r % 2 == 0 else [bare_bm25s, ours]
        for fn in order:
            build, search, res = fn(docs, queries)
            key = "ours" if fn is ours else "bare"
            runs[f"{key}_build"].append(build)
            runs[f"{key}_search"].append(search)
            if key == "ours":
                got = res
            else:
                bare = res
        agree = agreement(got, bare)
    m = {k: median(v) for k, v in runs.items()}
    out = {
        "dataset": name,
        "n_docs": len(docs),
        "n_queries": len(queries),
        "depth": DEPTH,
        "repeats": repeats,
        "seconds": runs,
        "build_s": m["ours_build"],
        "bare_build_s": m["bare_build"],
        "qps": len(queries) / m["ours_search"],
        "bare_qps": len(queries) / m["bare_search"],
        "build_ratio": m["ours_build"] / m["bare_build"],
        "search_ratio": m["ours_search"] / m["bare_search"],
        "same_scores": agree,
    }
    print(
        f"{name}: build {out['build_s']:.2f}s (bare {out['bare_build_s']:.2f}s), "
        f"{out['qps']:.0f} q/s (bare {out['bare_qps']:.0f}), same scores {agree:.3f}",
        file=sys.stderr,
    )
    return out


def beir_texts(name: str, split: str, limit: int | None) -> tuple[list[str], list[str]] | None:
    path = SHARED / name
    if not (path / "corpus.jsonl").is_file():
        print(f"{name}: {path} not found, skipped", file=sys.stderr)
        return None
    ds = ns.load_beir(path, split)
    queries = list(ds.query_texts)
    return list(ds.document_texts), queries[:limit] if limit else queries


# -- the hidden-positive protocol ------------------------------------------------------------
def protocol(seeds: list[int], n: int) -> dict[str, Any]:
    """TopK / SimANS over dense, BM25 and hybrid candidates on NFCorpus, train qrels."""
    path = SHARED / "nfcorpus"
    ds = ns.load_beir(path, "train")
    emb = ns.load_embeddings(path / "embeddings" / MODEL, ds)
    index = ns.NumpyIndex(emb.corpus)
    split0 = ns.hide_positives(ds.positives, seeds[0], ds.n_corpus)
    rows = split0.query_rows
    texts = [ds.query_texts[int(r)] for r in rows]
    q = np.ascontiguousarray(emb.queries[rows], dtype=np.float32)
    bm25 = BM25Source(ds.document_texts, texts)
    sources = {
        "BM25": bm25,
        "hybrid": HybridSource(ds.document_texts, texts, dense=index, query_vectors=q),
    }
    samplers = {
        "TopK k=200": (ns.TopKSampler(k=200), ("dense", "BM25", "hybrid")),
        "TopK k=30": (ns.TopKSampler(k=30), ("dense", "BM25", "hybrid")),
        "SimANS T=1": (ns.SimANSSampler(k=200), ("BM25",)),
        "SimANS T=3": (ns.SimANSSampler(k=200, temperature=3.0), ("BM25",)),
        "SimANS T=0.05": (ns.SimANSSampler(k=200, temperature=0.05), ("dense", "hybrid")),
    }
    m = rows.size
    out: list[dict[str, Any]] = []
    check: dict[str, float] = {}
    for label, (sampler, kinds) in samplers.items():
        for kind in kinds:
            per_seed = []
            for seed in seeds:
                split = ns.hide_positives(ds.positives, seed, ds.n_corpus)
                assert (split.query_rows == rows).all()
                shown = Ragged(np.arange(m + 1, dtype=np.int64), split.shown.astype(np.int64))
                t0 = time.perf_counter()
                if kind == "dense":
                    negs = ns.mine(q, index, split.shown[:, None], sampler=sampler, n=n, seed=seed)
                else:
                    src = sources[kind]
                    got = src.chunk(0, m, depth=sampler.depth, positives=shown, exclude=None)
                    dense_scores = src.scores == "dense"
                    negs = sample_candidates(
                        sampler,
                        got.ids,
                        got.scores,
                        shown,
                        n=n,
                        seed=seed,
                        positive_scores=None
                        if got.positive_scores is None
                        else [got.positive_scores[i : i + 1] for i in range(m)],
                        queries=q if dense_scores else None,
                        index=index if dense_scores else None,
                    )
                seconds = time.perf_counter() - t0
                qual = ns.negative_quality(negs, split.hidden)
                valid = negs.ids >= 0
                cos = index.score(q[negs.query_index], negs.ids)
                bm = bm25.index.score([texts[i] for i in negs.query_index], negs.ids)
                per_seed.append(
                    {
                        "seed": seed,
                        "fn_rate": qual.fn_rate,
                        "hardness_cosine": float(np.mean(cos[valid])),
                        "mean_bm25": float(np.mean(bm[valid])),
                        "short_rows": qual.short_rows,
                        "seconds": seconds,
                    }
                )
            row = {
                "sampler": label,
                "candidates": kind,
                "spec": repr(sampler),
                "per_seed": per_seed,
                **{
                    k: float(np.mean([s[k] for s in per_seed]))
                    for k in ("fn_rate", "hardness_cosine", "mean_bm25", "short_rows")
                },
                "fn_rate_std": float(np.std([s["fn_rate"] for s in per_seed], ddof=1))
                if len(per_seed) > 1
                else float("nan"),
            }
            out.append(row)
            print(
                f"  {label:14s} {kind:7s} FN {100 * row['fn_rate']:5.2f}%  "
                f"cos {row['hardness_cosine']:.3f}  bm25 {row['mean_bm25']:.2f}",
                file=sys.stderr,
            )
            if kind == "dense" and label.startswith("TopK"):  # the library's own protocol
                ref = ns.hidden_positive_protocol(
                    emb.queries, index, ds.positives, {label: sampler}, n=n, seeds=seeds
                )
                check[label] = abs(np.mean([r.fn_rate for r in ref]) - row["fn_rate"])
    assert all(v < 1e-12 for v in check.values()), check  # the same protocol, the same FN
    return {"n_queries": int(m), "seeds": seeds, "n": n, "rows": out}


def pipeline(repeats: int) -> dict[str, Any]:
    """``mine_dataset(index="bm25")`` end to end on NFCorpus train (TopK k=200, n=7: the
    BM25 build, candidates at depth 200 + positives, sampling, the positives' BM25 scores),
    against the bare ``BM25Index`` build and search at depth 200 of the same queries."""
    ds = ns.load_beir(SHARED / "nfcorpus", "train")
    mine_s, bare_s = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ns.mine_dataset(ds, ns.TopKSampler(k=200), index="bm25", n=7, seed=0)
        t1 = time.perf_counter()
        ns.BM25Index(ds.document_texts).search(ds.query_texts, DEPTH)
        t2 = time.perf_counter()
        mine_s.append(t1 - t0)
        bare_s.append(t2 - t1)
    out = {
        "n_queries": ds.n_queries,
        "mine_dataset_s": median(mine_s),
        "build_and_search_s": median(bare_s),
        "seconds": {"mine_dataset": mine_s, "build_and_search": bare_s},
    }
    print(
        f"pipeline: mine_dataset {out['mine_dataset_s']:.2f}s, BM25 build+search "
        f"{out['build_and_search_s']:.2f}s",
        file=sys.stderr,
    )
    return out


def bm25_spread(limit: int | None) -> dict[str, float]:
    """NFCorpus (train): per query, the top-200 BM25 scores' range and standard deviation,
    and the best positive's score minus the mean of the top 200 (medians over queries)."""
    ds = ns.load_beir(SHARED / "nfcorpus", "train")
    index = ns.BM25Index(ds.document_texts)
    texts = list(ds.query_texts)[:limit] if limit else list(ds.query_texts)
    got = index.search(texts, DEPTH)
    pos = [ds.positives[i] for i in range(len(texts))]
    indptr = np.r_[0, np.cumsum([p.size for p in pos])].astype(np.int64)
    ps = index.score(texts, Ragged(indptr, np.concatenate(pos).astype(np.int64)).to_padded())
    rng_, std, gap = [], [], []
    for i in range(len(texts)):
        s = got.scores[i][got.ids[i] >= 0]
        if s.size < 2:
            continue
        rng_.append(float(s[0] - s[-1]))
        std.append(float(s.std()))
        gap.append(float(np.nanmax(ps[i]) - s.mean()))
    return {
        "queries": len(std),
        "median_top200_range": median(rng_),
        "median_top200_std": median(std),
        "median_best_positive_minus_mean": median(gap),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="NFCorpus only, fewer queries/repeats")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--synthetic-docs", type=int, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    args = ap.parse_args(argv)
    quick = args.quick
    repeats = args.repeats or 3
    n_synth = (
        args.synthetic_docs if args.synthetic_docs is not None else (20_000 if quick else 100_000)
    )
    seeds = args.seeds or ([0] if quick else [0, 1, 2])
    before = os.getloadavg()
    t_all = time.perf_counter()

    speeds = []
    for name, split in [("nfcorpus", "train")] + ([] if quick else [("scifact", "train")]):
        texts = beir_texts(name, split, 1000 if quick else None)
        if texts is not None:
            speeds.append(speed(name, *texts, repeats))
    if n_synth:
        speeds.append(
            speed(
                f"synthetic {n_synth:,}",
                *synthetic_texts(n_synth, 1000 if quick else 2000),
                repeats,
            )
        )
    have_nf = (SHARED / "nfcorpus" / "embeddings" / MODEL / "corpus.npy").is_file()
    pipe = pipeline(repeats) if have_nf else None
    prot = protocol(seeds, 7) if have_nf else None
    spread = bm25_spread(None) if have_nf else None
    after = os.getloadavg()
    wall = time.perf_counter() - t_all

    import bm25s

    cmd = "python benchmarks/bench_bm25.py " + " ".join(argv if argv is not None else sys.argv[1:])
    payload = {
        "command": cmd.strip(),
        "machine": machine(),
        "load": load_note(before, after),
        "bm25s": bm25s.__version__,
        "wall_seconds": wall,
        "speed": speeds,
        "pipeline_nfcorpus": pipe,
        "protocol": prot,
        "bm25_spread_nfcorpus": spread,
    }
    md = [
        f"BM25 candidates. `{payload['command']}`; {payload['machine'].get('cpu', '')} "
        f"{payload['machine']['affinity']} CPUs, {payload['load']}; bm25s {bm25s.__version__}; "
        f"{wall:.0f} s. CPU only, not measured on a GPU.",
        "",
        f"Speed at depth {DEPTH} (medians of {repeats} interleaved runs; bare = bm25s' README "
        "pipeline: `bm25s.tokenize` + `BM25().index` / `retrieve(k=200)`, tokenization "
        "included on both sides):",
        "",
        markdown_table(
            [
                "corpus",
                "docs",
                "queries",
                "build s",
                "bare build s",
                "queries/s",
                "bare queries/s",
                "search time ratio",
                "same scores",
            ],
            [
                [
                    s["dataset"],
                    s["n_docs"],
                    s["n_queries"],
                    s["build_s"],
                    s["bare_build_s"],
                    s["qps"],
                    s["bare_qps"],
                    s["search_ratio"],
                    s["same_scores"],
                ]
                for s in speeds
            ],
        ),
    ]
    if pipe is not None:
        md += [
            "",
            f'`mine_dataset(index="bm25")` on NFCorpus train ({pipe["n_queries"]} queries, '
            f"TopK k=200, n=7, end to end): {pipe['mine_dataset_s']:.2f} s; the BM25 build and "
            f"search at depth 200 alone: {pipe['build_and_search_s']:.2f} s (medians).",
        ]
    if prot is not None:
        md += [
            "",
            f"Hidden-positive protocol, NFCorpus train, {prot['n_queries']} queries with two or "
            f"more positives, n = 7, seeds {seeds} (mean; FN std over seeds); hardness = mean "
            f"dense cosine s(q, d-) of the negatives (all-MiniLM-L6-v2), mean BM25 beside it:",
            "",
            markdown_table(
                [
                    "sampler",
                    "candidates",
                    "FN rate %",
                    "FN std",
                    "hardness (cosine)",
                    "mean BM25",
                    "short rows",
                ],
                [
                    [
                        r["sampler"],
                        r["candidates"],
                        100 * r["fn_rate"],
                        100 * r["fn_rate_std"],
                        r["hardness_cosine"],
                        r["mean_bm25"],
                        r["short_rows"],
                    ]
                    for r in prot["rows"]
                ],
            ),
        ]
    if spread is not None:
        md += [
            "",
            "NFCorpus train, BM25 top-200 of each query (median over "
            f"{spread['queries']} queries): score range {spread['median_top200_range']:.2f}, "
            f"std {spread['median_top200_std']:.2f}; best positive minus the top-200 mean "
            f"{spread['median_best_positive_minus_mean']:.2f}.",
        ]
    write_results("bench_bm25_quick" if quick else "bench_bm25", payload, "\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
