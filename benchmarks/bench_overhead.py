"""Overhead of every registered sampler over the search (issue 6, part 2).

For each sampler in ``negsample.available_samplers()`` at its default parameters (so its
default search depth ``k``), ``mine()`` is run ``--repeats`` times and the overhead is
``(mine wall time - search time) / search time`` (``stats.timings["search"]``), with the
split of the rest into ``positives`` (exact ``s(q, d+)``) and ``sample`` (candidate
preparation, filters, the sampler). One fresh worker per index loads the index once and
runs every sampler. RandomSampler searches nothing, so it has no ratio (its time is shown).

    python benchmarks/bench_overhead.py           # synthetic 200,000 x 384, 4,000 queries, Flat + HNSW32
    python benchmarks/bench_overhead.py --quick   # 20,000 x 384, 1,000 queries

Goals: at most 10% for TopK and SimANS, at most 50% for TriSampler and ReSa2.
Writes benchmarks/results/bench_overhead{,_quick}.json and .md.
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
from bench_mine import build_index

SCRIPT = Path(__file__).resolve()
GOALS = {"topk": 10.0, "simans": 10.0, "trisampler": 50.0, "resa2": 50.0}


def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    import negsample as ns

    corpus = np.load(cfg["corpus"], mmap_mode="r")
    queries = np.asarray(np.load(cfg["queries"], mmap_mode="r")[: cfg["n_queries"]])
    positives = np.load(cfg["positives"])[: cfg["n_queries"], None]
    index = build_index(cfg["index"], corpus, Path(cfg["cache"]) if cfg.get("cache") else None)
    out: dict[str, Any] = {}
    for name in cfg["samplers"]:
        sampler = ns.get_sampler(name)
        runs = []
        for _ in range(cfg["repeats"]):
            t0 = time.perf_counter()
            negs = ns.mine(queries, index, positives, sampler=sampler, n=7, seed=0)
            runs.append({"wall": time.perf_counter() - t0, **negs.stats.timings})
        out[name] = {
            "repr": repr(sampler),
            "depth": sampler.depth,
            "runs": runs,
            "short_rows": negs.stats.short_rows,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if C.worker_main(argv, worker):
        return 0
    import negsample as ns

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=4_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--indexes", default="Flat,HNSW32")
    ap.add_argument("--samplers", default=",".join(ns.available_samplers()))
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.queries = 20_000, 1_000
    # the query set of bench_mine (20,000 queries when it exists), of which the first --queries
    paths = C.synthetic(
        args.docs, max(args.queries, 20_000 if args.docs == 200_000 else 2_000), 384
    )
    folder = paths["corpus"].parent
    info = C.machine()
    rows, results = [], []
    for kind in args.indexes.split(","):
        cache = None if kind in ("numpy", "Flat") else folder / f"index-{kind}"
        if cache is not None and not cache.exists():
            build_index(kind, np.load(paths["corpus"], mmap_mode="r"), cache)
        load0 = os.getloadavg()[0]
        res = C.run_worker(
            SCRIPT,
            {
                **{k: str(v) for k, v in paths.items()},
                "index": kind,
                "cache": str(cache) if cache else None,
                "n_queries": args.queries,
                "repeats": args.repeats,
                "samplers": args.samplers.split(","),
            },
        )
        load1 = os.getloadavg()[0]
        for name in args.samplers.split(","):
            r = res[name]
            med = {
                key: C.median([x.get(key, 0.0) for x in r["runs"]])
                for key in ("wall", "search", "positives", "sample")
            }
            pct = 100 * (med["wall"] - med["search"]) / med["search"] if r["depth"] else None
            goal = GOALS.get(name)
            verdict = "-" if goal is None or pct is None else ("met" if pct <= goal else "MISSED")
            results.append(
                {
                    "index": kind,
                    "sampler": name,
                    **r,
                    "median": med,
                    "overhead_pct": pct,
                    "goal_pct": goal,
                    "load": [load0, load1],
                }
            )
            rows.append(
                [
                    kind,
                    r["repr"].split("(")[0],
                    r["depth"],
                    med["search"],
                    med["positives"],
                    med["sample"],
                    med["wall"],
                    "-" if pct is None else f"{pct:.1f}%",
                    "-" if goal is None else f"<= {goal:.0f}%",
                    verdict,
                    f"{load0:.1f} / {load1:.1f}",
                ]
            )
            print(rows[-1], file=sys.stderr)
    header = [
        "index",
        "sampler",
        "default k",
        "search s",
        "positives s",
        "sample s",
        "mine() wall s",
        "(wall - search) / search",
        "goal",
        "",
        "load 1-min before / after",
    ]
    md = (
        f"Every registered sampler at its default parameters, n=7, synthetic corpus "
        f"{args.docs:,} x 384 float32, first {args.queries:,} queries of the bench_mine set; "
        f"medians of {args.repeats} runs in one fresh process per index. {info.get('cpu', '')}, "
        f"{info['affinity']} cores, faiss {info.get('faiss')}, {info['date']}.\n\n"
        + C.markdown_table(header, rows)
    )
    name = "bench_overhead_quick" if args.quick else "bench_overhead"
    C.write_results(name, {"args": vars(args), "machine": info, "results": results}, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
