"""False negatives against hardness on NFCorpus (the hidden-positive protocol).

For every NFCorpus query with two or more labelled positives (train qrels), each sampler is
shown one positive and the others are hidden; a sampled negative that is a hidden positive
is a false negative (docs/algorithms.md, "Comparing samplers"; ``negsample.hidden_positive_protocol``).
Exact search (``NumpyIndex``) over the 3,633 documents, precomputed all-MiniLM-L6-v2
embeddings (cosine: the vectors are L2-normalised).

Writes ``fn_nfcorpus.json`` (every row and the summaries), ``fn_nfcorpus.md`` (the table) and
``fn_nfcorpus.png`` (FN rate against hardness, mean over seeds with std error bars) to
``--out``.

    .venv/bin/python benchmarks/bench_fn_nfcorpus.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import negsample as ns

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ.get("NEGSAMPLE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "nfcorpus"
)
MODEL = "all-MiniLM-L6-v2"

# (label, registry name, parameters): the table's rows, in order
SAMPLERS: list[tuple[str, str, dict[str, Any]]] = [
    ("Random", "random", {}),
    ("TopK k=10", "topk", {"k": 10}),
    ("TopK k=30", "topk", {"k": 30}),
    ("TopK k=75", "topk", {"k": 75}),
    ("TopK k=200", "topk", {"k": 200}),
    ("TopK k=1000", "topk", {"k": 1000}),
    ("SimANS", "simans", {}),
    ("SimANS T=0.05", "simans", {"temperature": 0.05}),
    ("TriSampler T1", "trisampler", {"variant": "T1"}),
    ("TriSampler T2", "trisampler", {"variant": "T2"}),
    ("ReSa2", "resa2", {}),
    ("ReSa2 faithful", "resa2", {"faithful": True}),
    ("ReSa2 T=0.05", "resa2", {"temperature": 0.05}),
]


def load_nfcorpus(
    path: Path, split: str = "train"
) -> tuple[np.ndarray, np.ndarray, list[list[int]], list[str]]:
    """Queries with at least one judged-relevant document in ``qrels/{split}.tsv``, the corpus
    vectors, positives as corpus rows, and the query ids. BEIR string ids are mapped to the
    embedding rows through ``corpus_ids.txt`` / ``query_ids.txt`` (line i = row i)."""
    emb = path / "embeddings" / MODEL
    doc_row = {d: i for i, d in enumerate((emb / "corpus_ids.txt").read_text().split("\n")) if d}
    q_row = {q: i for i, q in enumerate((emb / "query_ids.txt").read_text().split("\n")) if q}
    pos: dict[str, list[int]] = {}
    missing = 0
    with open(path / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:2] != ["query-id", "corpus-id"]:
            raise ValueError(f"unexpected qrels header {header}")
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) <= 0:
                continue
            if qid not in q_row or did not in doc_row:
                missing += 1
                continue
            rows = pos.setdefault(qid, [])
            if doc_row[did] not in rows:
                rows.append(doc_row[did])
    if missing:
        print(f"warning: {missing} judgements name unknown ids, skipped", file=sys.stderr)
    qids = sorted(pos, key=lambda q: q_row[q])
    queries = np.load(emb / "queries.npy")[[q_row[q] for q in qids]]
    corpus = np.load(emb / "corpus.npy")
    return queries, corpus, [pos[q] for q in qids], qids


def hidden_positive_geometry(
    queries: np.ndarray, corpus: np.ndarray, positives: list[list[int]], seed: int, k: int = 1000
) -> dict[str, float]:
    """Where the hidden positives sit among the top-``k`` candidates of the query (the shown
    positive removed): mean ``s(q, .)`` and ``s(d+, .)`` of hidden positives and of the other
    candidates, and the share of hidden positives in the top 75 of those candidates ranked by
    ``s(q, .)`` and by ``s(d+, .)`` (the shown positive's vector)."""
    split = ns.hide_positives(positives, seed)
    acc: dict[str, list[float]] = {}
    for start in range(0, split.query_rows.size, 256):
        rows = split.query_rows[start : start + 256]
        shown = split.shown[start : start + 256]
        sq = queries[rows] @ corpus.T
        sp = corpus[shown] @ corpus.T
        sq[np.arange(rows.size), shown] = -np.inf
        top = np.argsort(-sq, axis=1, kind="stable")[:, :k]
        for i in range(rows.size):
            hid = np.isin(top[i], split.hidden[start + i])
            a, b = sq[i, top[i]], sp[i, top[i]]
            for key, val in (
                ("s(q, hidden)", a[hid]),
                ("s(q, other)", a[~hid]),
                ("s(d+, hidden)", b[hid]),
                ("s(d+, other)", b[~hid]),
            ):
                acc.setdefault(key, []).extend(val.tolist())
            acc.setdefault("hidden share, top 75 by s(q, .)", []).append(hid[:75].mean())
            by_p = np.argsort(-b, kind="stable")[:75]
            acc.setdefault("hidden share, top 75 by s(d+, .)", []).append(hid[by_p].mean())
    return {key: float(np.mean(v)) for key, v in acc.items()}


def build_samplers(partial: bool) -> dict[str, Any]:
    out = {}
    have = set(ns.available_samplers())
    for label, name, params in SAMPLERS:
        if name not in have:
            if partial:
                print(f"skipping {label}: sampler {name!r} is not registered", file=sys.stderr)
                continue
            raise SystemExit(f"sampler {name!r} is not registered (use --partial to skip it)")
        out[label] = ns.get_sampler(name, **params)
    return out


def plot(summaries: list[ns.ProtocolSummary], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 6))
    topk = [s for s in summaries if s.label.startswith("TopK")]
    if topk:
        ax.plot(
            [s.hardness_mean for s in topk],
            [100 * s.fn_rate_mean for s in topk],
            "-",
            color="0.7",
            zorder=1,
            label="TopK, k = 10 ... 1000",
        )
    markers = {"Random": "s", "TopK": "o", "SimANS": "^", "TriSampler": "D", "ReSa2": "*"}
    colors = iter(plt.get_cmap("tab10").colors)
    for s in summaries:
        family = s.label.split()[0]
        is_topk = family == "TopK"
        ax.errorbar(
            s.hardness_mean,
            100 * s.fn_rate_mean,
            xerr=s.hardness_std,
            yerr=100 * s.fn_rate_std,
            fmt=markers.get(family, "x"),
            color="0.35" if is_topk else next(colors),
            markersize=12 if family == "ReSa2" else 7,
            capsize=3,
            zorder=2,
            alpha=0.9,
            label=None if is_topk else s.label,
        )
        if is_topk:  # the TopK points are named on the plot, the others in the legend
            ax.annotate(
                s.label.split()[1],
                (s.hardness_mean, 100 * s.fn_rate_mean),
                fontsize=8,
                xytext=(6, -10),
                textcoords="offset points",
            )
    ax.set_xlabel("hardness: mean s(q, d-) of the sampled negatives (cosine)")
    ax.set_ylabel("false-negative rate (% of sampled negatives that are hidden positives)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--split", default="train")
    ap.add_argument("-n", type=int, default=7)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--partial", action="store_true", help="skip samplers not yet registered")
    args = ap.parse_args(argv)

    if not (args.data / "embeddings" / MODEL / "corpus.npy").is_file():
        print(f"NFCorpus embeddings not found under {args.data}", file=sys.stderr)
        return 2
    queries, corpus, positives, _ = load_nfcorpus(args.data, args.split)
    index = ns.NumpyIndex(corpus)
    samplers = build_samplers(args.partial)
    n_multi = sum(len(p) >= 2 for p in positives)
    print(
        f"NFCorpus {args.split}: {len(positives)} queries with positives, {n_multi} with two or "
        f"more; corpus {corpus.shape}; samplers {len(samplers)}; seeds {args.seeds}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    rows: list[ns.ProtocolRow] = []
    for label, sampler in samplers.items():  # one at a time, for progress on stderr
        part = ns.hidden_positive_protocol(
            queries, index, positives, {label: sampler}, n=args.n, seeds=args.seeds
        )
        rows.extend(part)
        fn = np.mean([r.fn_rate for r in part])
        print(
            f"  {label:16s} FN {100 * fn:6.2f}%  {sum(r.seconds for r in part):6.1f}s",
            file=sys.stderr,
        )
    wall = time.perf_counter() - t0
    summaries = ns.summarize(rows)
    by = {s.label: s for s in summaries}

    # the paper's TopK baseline is random-of-top-200; top-75 matches ReSa2's region size
    claims = {}
    for ref in ("TopK k=200", "TopK k=75"):
        base = by[ref].fn_rate_mean if ref in by else 0.0
        for lab in ("ReSa2", "ReSa2 faithful", "ReSa2 T=0.05"):
            if lab in by and base > 0:
                claims[f"{lab} vs {ref}: relative FN reduction"] = 1 - by[lab].fn_rate_mean / base

    # the frontier: TopK's FN rate at the same hardness (linear between TopK points)
    topk = sorted(
        (s for s in summaries if s.label.startswith("TopK")), key=lambda s: s.hardness_mean
    )
    at_equal_hardness = {}
    for s in summaries:
        if s.label.startswith("TopK") or len(topk) < 2:
            continue
        h = s.hardness_mean
        if topk[0].hardness_mean <= h <= topk[-1].hardness_mean:
            ref = float(
                np.interp(h, [t.hardness_mean for t in topk], [t.fn_rate_mean for t in topk])
            )
            at_equal_hardness[s.label] = {
                "hardness": h,
                "fn_rate": s.fn_rate_mean,
                "topk_fn_rate_at_same_hardness": ref,
                "ratio": s.fn_rate_mean / ref,
            }

    geometry = {
        key: float(np.mean([g[key] for g in geos]))
        for geos in [
            [hidden_positive_geometry(queries, corpus, positives, sd) for sd in args.seeds]
        ]
        for key in geos[0]
    }

    command = "python benchmarks/bench_fn_nfcorpus.py " + " ".join(argv or sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": command.strip(),
        "dataset": f"NFCorpus ({args.split} qrels), {MODEL} embeddings",
        "n_queries_evaluated": rows[0].n_queries if rows else 0,
        "n_queries_with_positives": len(positives),
        "corpus": list(corpus.shape),
        "index": "NumpyIndex (exact, inner product on L2-normalised vectors)",
        "n": args.n,
        "seeds": args.seeds,
        "negsample": ns.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
        "wall_seconds": round(wall, 1),
    }
    result = {
        "meta": meta,
        "summaries": [s.as_dict() for s in summaries],
        "rows": [r.as_dict() for r in rows],
        "claims": claims,
        "vs_topk_frontier": at_equal_hardness,
        "hidden_positive_geometry_top1000": geometry,
    }
    (args.out / "fn_nfcorpus.json").write_text(json.dumps(result, indent=2) + "\n")

    table = ns.summary_table(summaries)
    sampler_lines = "\n".join(f"- {s.label}: `{s.sampler}`" for s in summaries)
    claim_lines = "\n".join(f"- {k}: {100 * v:.1f}%" for k, v in claims.items())
    geo_lines = "\n".join(f"- {k}: {v:.3f}" for k, v in geometry.items())
    frontier = "\n".join(
        [
            "| sampler | hardness | FN rate (%) | TopK FN rate at that hardness (%) | ratio |",
            "|---|---:|---:|---:|---:|",
        ]
        + [
            f"| {k} | {v['hardness']:.4f} | {100 * v['fn_rate']:.2f} "
            f"| {100 * v['topk_fn_rate_at_same_hardness']:.2f} | {v['ratio']:.2f} |"
            for k, v in at_equal_hardness.items()
        ]
    )
    md = (
        f"Hidden-positive protocol on {meta['dataset']}: {meta['n_queries_evaluated']} queries "
        f"with two or more positives, n = {args.n}, seeds {args.seeds} (mean ± std over "
        f"seeds), exact search over {corpus.shape[0]} documents.\n\n{table}\n\n"
        f"{claim_lines}\n\nAgainst the TopK frontier (TopK's FN rate interpolated linearly "
        f"between its k values at the sampler's hardness; ratio < 1 is better than TopK):\n\n"
        f"{frontier}\n\nWhere the hidden positives sit among the top-1000 candidates "
        f"(mean over seeds):\n\n{geo_lines}\n\nSamplers:\n\n{sampler_lines}\n\n"
        f"Command: `{meta['command']}` ({meta['wall_seconds']} s on {meta['machine']}).\n"
    )
    (args.out / "fn_nfcorpus.md").write_text(md)
    plot(
        summaries,
        args.out / "fn_nfcorpus.png",
        f"NFCorpus hidden-positive protocol: {meta['n_queries_evaluated']} queries, n={args.n}, "
        f"seeds {args.seeds}",
    )
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
