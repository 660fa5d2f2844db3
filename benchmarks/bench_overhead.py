"""``mine()`` against what a user would run instead: ONE bare faiss flat search over all
queries at the same depth (issue 10).

For each registered sampler at its default parameters, in one process and side by side
(the runs alternate, medians of ``--repeats``):

- ``bare``: ``faiss.IndexFlatIP.search(all_queries, k)`` with faiss's default settings,
  ``k`` = the sampler's depth + 1 (each synthetic query has one positive);
- ``bare, BLAS from 20``: the same call with ``faiss.cvar.distance_compute_blas_threshold
  = 20`` (what ``FaissIndex`` sets for its own calls);
- ``mine()`` with ``FaissIndex("Flat")`` at default settings and at
  ``memory_budget_mb=64``; and with ``NumpyIndex`` (exact, numpy only) for reference;
- the cost of exactness (issue 9): ``mine()`` with the same flat index presented as
  approximate (``exact=False``), so its queries are searched in unpadded groups instead of
  calls of exactly ``search_block`` rows (what chunk-invariant output costs).

The ratio is ``mine() wall time / bare`` (whole call, everything included: search in fixed
blocks, positive removal, s(q, d+), the sampler, output scores).

    python benchmarks/bench_overhead.py           # 100,000 x 384, 5,000 queries (issue 10)
    python benchmarks/bench_overhead.py --quick   # 20,000 x 384, 2,000 queries

Goals: TopK and SimANS within 1.10x of the bare search, TriSampler and ReSa2 within 1.20x.
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

GOALS = {"topk": 1.10, "simans": 1.10, "trisampler": 1.20, "resa2": 1.20}


def main(argv: list[str] | None = None) -> int:
    import faiss

    import negsample as ns

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=5_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samplers", default=",".join(ns.available_samplers()))
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.queries = 20_000, 2_000
    paths = C.synthetic(args.docs, args.queries, 384)
    corpus = np.load(paths["corpus"])
    queries = np.load(paths["queries"])
    positives = np.load(paths["positives"])[:, None]
    bare = faiss.IndexFlatIP(corpus.shape[1])
    bare.add(corpus)
    flat = ns.FaissIndex(corpus, "Flat", check=False)
    exact = ns.NumpyIndex(corpus, check=False)
    info = C.machine()
    default_threshold = faiss.cvar.distance_compute_blas_threshold

    def bare_search(k: int, threshold: int) -> float:
        faiss.cvar.distance_compute_blas_threshold = threshold
        try:
            t0 = time.perf_counter()
            bare.search(queries, k)
            return time.perf_counter() - t0
        finally:
            faiss.cvar.distance_compute_blas_threshold = default_threshold

    class Unpadded:
        """The flat index presented as approximate: no padded, fixed-shape calls."""

        exact = False

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.metric, self.ntotal, self.dim = inner.metric, inner.ntotal, inner.dim
            self.search_block = inner.search_block

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    unpadded = Unpadded(flat)

    def run_mine(sampler: Any, index: Any, **kw: Any) -> tuple[float, Any]:
        t0 = time.perf_counter()
        negs = ns.mine(queries, index, positives, sampler=sampler, n=7, seed=0, **kw)
        return time.perf_counter() - t0, negs

    rows, results = [], []
    load0 = os.getloadavg()[0]
    for name in args.samplers.split(","):
        sampler = ns.get_sampler(name)
        k = sampler.depth + 1
        times: dict[str, list[float]] = {}
        stats: dict[str, Any] = {}
        for _ in range(args.repeats):
            if sampler.depth:
                times.setdefault("bare", []).append(bare_search(k, default_threshold))
                times.setdefault("bare20", []).append(bare_search(k, 20))
            dt, negs = run_mine(sampler, flat)
            times.setdefault("mine", []).append(dt)
            stats = negs.stats.timings
            times.setdefault("mine64", []).append(run_mine(sampler, flat, memory_budget_mb=64)[0])
            times.setdefault("numpy", []).append(run_mine(sampler, exact)[0])
            times.setdefault("unpadded", []).append(run_mine(sampler, unpadded)[0])
        med = {key: C.median(v) for key, v in times.items()}
        ratio = med["mine"] / med["bare"] if sampler.depth else None
        ratio64 = med["mine64"] / med["bare"] if sampler.depth else None
        goal = GOALS.get(name)
        verdict = (
            "-"
            if goal is None or ratio is None or ratio64 is None
            else ("met" if max(ratio, ratio64) <= goal else "MISSED")
        )
        results.append(
            {
                "sampler": name,
                "repr": repr(sampler),
                "k": k,
                "times": times,
                "median": med,
                "ratio": ratio,
                "ratio_64mb": ratio64,
                "goal": goal,
                "mine_timings": stats,
            }
        )
        fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        rows.append(
            [
                repr(sampler).split("(")[0],
                k if sampler.depth else "-",
                fmt(med.get("bare")),
                fmt(med.get("bare20")),
                fmt(med["mine"]),
                fmt(med["mine64"]),
                fmt(med["numpy"]),
                fmt(med["unpadded"]),
                fmt(ratio),
                fmt(ratio64),
                "-" if goal is None else f"<= {goal:.2f}",
                verdict,
            ]
        )
        print(rows[-1], file=sys.stderr, flush=True)
    load1 = os.getloadavg()[0]
    header = [
        "sampler",
        "k",
        "bare faiss s",
        "bare, BLAS from 20 s",
        "mine() s",
        "mine(), 64 MB s",
        "mine(), NumpyIndex s",
        "mine(), unpadded (not exact) s",
        "mine / bare",
        "mine 64 MB / bare",
        "goal",
        "",
    ]
    md = (
        f"`mine()` (FaissIndex Flat, n=7, every sampler at its defaults) against one bare "
        f"`faiss.IndexFlatIP.search` over all {args.queries:,} queries at the same depth, "
        f"synthetic corpus {args.docs:,} x 384 float32; medians of {args.repeats} alternating "
        f"runs in one process. {info.get('cpu', '')}, {info['affinity']} cores, faiss "
        f"{info.get('faiss')}, {info['date']}, {C.load_note([load0], [load1])}.\n\n"
        + C.markdown_table(header, rows)
    )
    name = "bench_overhead_quick" if args.quick else "bench_overhead"
    C.write_results(
        name, {"args": vars(args), "machine": info, "load": [load0, load1], "results": results}, md
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
