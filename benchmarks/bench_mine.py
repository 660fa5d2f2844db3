"""Mining overhead over the search: TopK (k=200, n=7) on a synthetic corpus (issue 2).

For each index (faiss Flat, faiss HNSW32, the exact NumpyIndex) a fresh worker process
loads the corpus (memory-mapped ``.npy``), builds or loads the index, then runs ``mine()``
``--repeats`` times. It reports the median of ``stats.timings`` (``search``, ``positives``,
``sample`` = candidate preparation + filters + sampler), the mining wall time, and memory:
peak RSS of the whole worker, RSS once the index is built, and the peak while mining.

    python benchmarks/bench_mine.py            # 200,000 x 384 corpus, 20,000 queries
    python benchmarks/bench_mine.py --quick    # 20,000 x 384, 2,000 queries

Target: filters + sampling add at most 10% to the search time.
Writes benchmarks/results/bench_mine{,_quick}.json and .md.
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
import _common as C

SCRIPT = Path(__file__).resolve()


def build_index(kind: str, corpus: Any, cache: Path | None) -> Any:
    import negsample as ns

    spec = ns.parse_index_spec(kind)
    if spec.kind != "faiss":
        return ns.build_index(corpus, spec, check=False)
    if cache is not None and cache.exists():
        return ns.load_index(cache, device="cpu", vectors=corpus)
    index = ns.build_index(corpus, spec, device="cpu", check=False)
    if cache is not None:
        index.save(cache)
    return index


def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    import negsample as ns

    corpus = np.load(cfg["corpus"], mmap_mode="r")
    queries = np.load(cfg["queries"], mmap_mode="r")
    positives = np.load(cfg["positives"])[:, None]
    t0 = time.perf_counter()
    index = build_index(cfg["index"], corpus, Path(cfg["cache"]) if cfg.get("cache") else None)
    build_s = time.perf_counter() - t0
    out: dict[str, Any] = {"build_s": build_s, "rss_index_mb": C.rss_mb()}
    out["peak_build_mb"] = C.peak_rss_mb()
    C.reset_peak()
    sampler = ns.TopKSampler(k=cfg["k"])
    runs = []
    for _ in range(cfg["repeats"]):
        t0 = time.perf_counter()
        negs = ns.mine(queries, index, positives, sampler=sampler, n=cfg["n"], seed=0)
        wall = time.perf_counter() - t0
        runs.append({"wall": wall, **negs.stats.timings})
        assert negs.ids.shape == (queries.shape[0], cfg["n"])
        assert not (negs.ids == positives).any()
    out["runs"] = runs
    out["peak_mine_mb"] = C.peak_rss_mb()
    out["peak_rss_mb"] = max(out["peak_build_mb"], out["peak_mine_mb"])
    if runs:
        out["mean_neg_score"] = float(np.nanmean(negs.scores))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if C.worker_main(argv, worker):
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="20,000 x 384 corpus, 2,000 queries")
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=200)
    ap.add_argument("--n", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--indexes", default="Flat,HNSW32,numpy")
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.queries = 20_000, 2_000
    paths = C.synthetic(args.docs, args.queries, args.dim)
    folder = paths["corpus"].parent
    info = C.machine()
    rows, results = [], []
    for kind in args.indexes.split(","):
        cache = None if kind in ("numpy", "Flat") else folder / f"index-{kind}"
        if cache is not None and not cache.exists():  # build once, outside the timed workers
            C.run_worker(
                SCRIPT,
                {
                    **{k: str(v) for k, v in paths.items()},
                    "index": kind,
                    "cache": str(cache),
                    "k": args.k,
                    "n": args.n,
                    "repeats": 0,
                },
            )
        cfg = {
            **{k: str(v) for k, v in paths.items()},
            "index": kind,
            "cache": str(cache) if cache else None,
            "k": args.k,
            "n": args.n,
            "repeats": args.repeats,
        }
        load0 = list(os.getloadavg())
        res = C.run_worker(SCRIPT, cfg)
        res["loadavg_before"], res["loadavg_after"] = load0, list(os.getloadavg())
        res["index"] = kind
        results.append(res)
        med = {
            key: C.median([r.get(key, 0.0) for r in res["runs"]])
            for key in ("wall", "search", "positives", "sample")
        }
        res["median"] = med
        res["overhead_pct"] = 100 * (med["positives"] + med["sample"]) / med["search"]
        res["overhead_wall_pct"] = 100 * (med["wall"] - med["search"]) / med["search"]
        rows.append(
            [
                {"numpy": "NumpyIndex (exact)", "Flat": "FaissIndex Flat"}.get(
                    kind, f"FaissIndex {kind}"
                ),
                med["search"],
                med["positives"],
                med["sample"],
                med["wall"],
                f"{res['overhead_pct']:.1f}%",
                f"{res['overhead_wall_pct']:.1f}%",
                res["rss_index_mb"],
                res["peak_mine_mb"],
                res["peak_rss_mb"],
                f"{res['loadavg_before'][0]:.1f} / {res['loadavg_after'][0]:.1f}",
            ]
        )
        print(rows[-1], file=sys.stderr)
    header = [
        "index",
        "search s",
        "positives s",
        "filters+sampling s",
        "mine() wall s",
        "(pos.+sampling) / search",
        "(wall - search) / search",
        "RSS after index MB",
        "peak RSS mining MB",
        "peak RSS MB",
        "load 1-min before / after",
    ]
    md = (
        f"TopK(k={args.k}), n={args.n}, synthetic corpus {args.docs:,} x {args.dim} float32 "
        f"(memory-mapped), {args.queries:,} queries, one positive each; medians of "
        f"{args.repeats} runs in one fresh process per index. {info.get('cpu', '')}, "
        f"{info['affinity']} cores, numpy {info['numpy']}, faiss {info.get('faiss')}, "
        f"{info['date']}.\n\n" + C.markdown_table(header, rows)
    )
    name = "bench_mine_quick" if args.quick else "bench_mine"
    C.write_results(name, {"args": vars(args), "machine": info, "results": results}, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
