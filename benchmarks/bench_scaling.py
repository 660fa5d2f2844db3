"""Scaling of ``mine()`` with the corpus size and with the number of queries (issue 6, part 3).

TopK(k=200), n=7, synthetic corpora (384 dims, memory-mapped float32 ``.npy`` in
``$NEGSAMPLE_BENCH_DATA`` or /tmp/negsample-bench, never in the repository). Each point is
one fresh worker process, which reports the index build time, RSS once the index is
built, mining time (and its search part) and the peak RSS while mining.

1. Corpus size: 10,000 to 2,000,000 passages, faiss Flat (and HNSW32 up to ``--hnsw-max``),
   ``--size-queries`` queries at every size (2,000 by default: 100,000 queries against 2M
   passages is ~77 TFLOP of exact search, hours on 2 cores).
2. Number of queries: a fixed corpus (``--fixed-docs``, 50,000) and 1,000 to 100,000
   queries, faiss Flat: the mining working set (peak RSS while mining minus RSS once the
   index is built) must not grow with the number of queries.

    python benchmarks/bench_scaling.py           # full settings above
    python benchmarks/bench_scaling.py --quick   # sizes 10k/50k, queries 500/2,000

Writes benchmarks/results/bench_scaling{,_quick}.json, .md and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
from bench_mine import build_index

SCRIPT = Path(__file__).resolve()


def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    import negsample as ns

    corpus = np.load(cfg["corpus"], mmap_mode="r")
    queries = np.load(cfg["queries"], mmap_mode="r")[: cfg["n_queries"]]
    positives = np.load(cfg["positives"])[: cfg["n_queries"], None]
    t0 = time.perf_counter()
    index = build_index(cfg["index"], corpus, Path(cfg["cache"]) if cfg.get("cache") else None)
    out: dict[str, Any] = {
        "build_s": time.perf_counter() - t0,
        "rss_index_mb": C.rss_mb(),
        "peak_build_mb": C.peak_rss_mb(),
    }
    C.reset_peak()
    t0 = time.perf_counter()
    negs = ns.mine(queries, index, positives, sampler=ns.TopKSampler(k=200), n=7, seed=0)
    out["mine_s"] = time.perf_counter() - t0
    out["search_s"] = negs.stats.timings["search"]
    out["peak_mine_mb"] = C.peak_rss_mb()
    out["working_set_mb"] = out["peak_mine_mb"] - out["rss_index_mb"]
    out["peak_rss_mb"] = max(out["peak_build_mb"], out["peak_mine_mb"])
    # at the end: how much of the RSS is file-backed (memory-mapped inputs, reclaimable)
    out["rss_file_end_mb"] = C.status_mb("RssFile")
    out["rss_anon_end_mb"] = C.status_mb("RssAnon")
    out["output_mb"] = (
        negs.ids.nbytes + negs.scores.nbytes + negs.query_index.nbytes + negs.anchor_ids.nbytes
    ) / 2**20
    return out


def point(docs: int, n_queries: int, gen_queries: int, kind: str) -> dict[str, Any]:
    paths = C.synthetic(docs, gen_queries, 384)
    cache = None
    if kind != "Flat":
        cache = paths["corpus"].parent / f"index-{kind}"
        if not cache.exists():  # HNSW is built once and cached; its build time is reported
            t0 = time.perf_counter()
            C.run_worker(
                SCRIPT,
                {
                    **{k: str(v) for k, v in paths.items()},
                    "index": kind,
                    "cache": str(cache),
                    "n_queries": 1,
                },
            )
            (cache.parent / f"{cache.name}.build_s").write_text(str(time.perf_counter() - t0))
    load0 = os.getloadavg()[0]
    res = C.run_worker(
        SCRIPT,
        {
            **{k: str(v) for k, v in paths.items()},
            "index": kind,
            "cache": str(cache) if cache else None,
            "n_queries": n_queries,
        },
    )
    if cache is not None:
        f = cache.parent / f"{cache.name}.build_s"
        res["build_s"] = float(f.read_text()) if f.exists() else None
    res.update(docs=docs, n_queries=n_queries, index=kind, load=[load0, os.getloadavg()[0]])
    print(res, file=sys.stderr)
    return res


def plot(sizes: list[dict[str, Any]], queries: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for kind in sorted({r["index"] for r in sizes}):
        rs = [r for r in sizes if r["index"] == kind]
        x = [r["docs"] for r in rs]
        ax[0].plot(x, [r["mine_s"] for r in rs], "o-", label=f"{kind}: mine()")
        ax[0].plot(x, [r["search_s"] for r in rs], "x--", label=f"{kind}: search part")
        ax[1].plot(x, [r["peak_rss_mb"] for r in rs], "o-", label=f"{kind}: peak RSS")
        ax[1].plot(x, [r["rss_index_mb"] for r in rs], "x--", label=f"{kind}: RSS with index built")
    nq = sizes[0]["n_queries"] if sizes else 0
    for a, title in ((ax[0], f"time, {nq:,} queries"), (ax[1], f"memory, {nq:,} queries")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("corpus passages (384-d)")
        a.set_title(title)
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    ax[0].set_ylabel("seconds")
    ax[1].set_ylabel("MiB")
    if queries:
        x = [r["n_queries"] for r in queries]
        ax[2].plot(x, [r["peak_mine_mb"] for r in queries], "o-", label="peak RSS while mining")
        ax[2].plot(x, [r["rss_index_mb"] for r in queries], "x--", label="RSS with index built")
        ax[2].plot(
            x, [r["working_set_mb"] for r in queries], "s-", label="difference (working set)"
        )
        ax[2].set_xscale("log")
        ax[2].set_xlabel("queries")
        ax[2].set_ylabel("MiB")
        ax[2].set_title(f"memory vs queries, Flat, {queries[0]['docs']:,} passages")
        ax[2].legend(fontsize=8)
        ax[2].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if C.worker_main(argv, worker):
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default="10000,50000,200000,500000,1000000,2000000")
    ap.add_argument("--size-queries", type=int, default=2_000)
    ap.add_argument(
        "--hnsw-max",
        type=int,
        default=200_000,
        help="largest corpus indexed with HNSW32 (its build is the slow part)",
    )
    ap.add_argument("--fixed-docs", type=int, default=50_000)
    ap.add_argument("--query-counts", default="1000,10000,100000")
    ap.add_argument(
        "--part",
        choices=("both", "sizes", "queries"),
        default="both",
        help="rerun one part only; the other is kept from the existing results file",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.size_queries, args.hnsw_max = "10000,50000", 500, 10_000
        args.fixed_docs, args.query_counts = 20_000, "500,2000"
    info = C.machine()
    sizes = [int(s) for s in args.sizes.split(",")]
    gen_q = 20_000  # the query file of bench_mine/bench_overhead, so the HNSW cache is shared
    name = "bench_scaling_quick" if args.quick else "bench_scaling"
    old = C.RESULTS / f"{name}.json"
    previous = json.loads(old.read_text()) if old.exists() and args.part != "both" else {}
    by_size = [] if args.part != "queries" else previous["by_size"]
    for kind in ("Flat", "HNSW32") if args.part != "queries" else ():
        for n in sizes:
            if kind == "HNSW32" and n > args.hnsw_max:
                continue
            by_size.append(
                point(n, min(args.size_queries, gen_q), max(gen_q, args.size_queries), kind)
            )
    counts = [int(x) for x in args.query_counts.split(",")]
    if args.part == "sizes":
        by_queries = previous["by_queries"]
    else:
        by_queries = [point(args.fixed_docs, q, max(counts), "Flat") for q in counts]
    rows = [
        [
            r["index"],
            r["docs"],
            r["n_queries"],
            r["build_s"],
            r["search_s"],
            r["mine_s"],
            1000 * r["mine_s"] / r["n_queries"],
            r["rss_index_mb"],
            r["peak_mine_mb"],
            r["working_set_mb"],
            f"{r['load'][0]:.1f} / {r['load'][1]:.1f}",
        ]
        for r in by_size
    ]
    rows_q = [
        [
            r["docs"],
            r["n_queries"],
            r["search_s"],
            r["mine_s"],
            r["rss_index_mb"],
            r["peak_mine_mb"],
            r["working_set_mb"],
            r["output_mb"],
            r.get("rss_file_end_mb", "-"),
            f"{r['load'][0]:.1f} / {r['load'][1]:.1f}",
        ]
        for r in by_queries
    ]
    plot(by_size, by_queries, C.RESULTS / f"{name}.png")
    md = (
        f"TopK(k=200), n=7, synthetic 384-d float32 corpora memory-mapped from disk; one fresh "
        f"process per point, one run each. {info.get('cpu', '')}, {info['affinity']} cores, "
        f"faiss {info.get('faiss')}, {info['date']}. HNSW32 build times are those of the cached "
        f"index (built once, then loaded).\n\n**Corpus size** ({args.size_queries:,} queries):\n\n"
        + C.markdown_table(
            [
                "index",
                "passages",
                "queries",
                "build s",
                "search s",
                "mine() s",
                "ms / query",
                "RSS with index MB",
                "peak RSS mining MB",
                "working set MB",
                "load 1-min",
            ],
            rows,
        )
        + f"\n\n**Number of queries** (Flat, {args.fixed_docs:,} passages):\n\n"
        + C.markdown_table(
            [
                "passages",
                "queries",
                "search s",
                "mine() s",
                "RSS with index MB",
                "peak RSS mining MB",
                "working set MB",
                "output arrays MB",
                "file-backed RSS at the end MB",
                "load 1-min",
            ],
            rows_q,
        )
        + f"\n\n![scaling]({name}.png)"
    )
    C.write_results(
        name,
        {"args": vars(args), "machine": info, "by_size": by_size, "by_queries": by_queries},
        md,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
