"""The cost of the cross-query reuse cap (``max_negative_reuse``, issue 19).

On a seeded synthetic set (L2-normalised Gaussian corpus, one positive per query, exact
faiss ``Flat`` search, ``TopKSampler(k=100)``, ``n=7``), side by side in one process, the
kinds interleaved, medians of ``--repeats``:

- ``mine``: ``mine(n=7)``, no cap;
- ``mine + cap``: ``mine(n=7, max_negative_reuse=N)``: 14 draws per row (the spare draws,
  ``reuse_oversample=2``), then the cap pass over all rows (its own time is the run's
  ``timings["reuse"]``); ``N`` is the 90th percentile of the rows per document without
  the cap (the 10% most used documents are capped);
- ``cap pass alone``: :func:`negsample.crossquery.cap_negative_reuse` on the same
  ``queries x 14`` draws, for ``N`` at the 99th, 90th and 50th percentiles.

    python benchmarks/bench_reuse.py           # 1,000,000 queries x 14 draws, 20,000 x 32 corpus
    python benchmarks/bench_reuse.py --quick   # 100,000 queries

The corpus is small, so the search is cheap: the pass's share of a real run (millions of
passages) is far smaller than the ratios here; its seconds are the figure to carry.
Writes benchmarks/results/bench_reuse{,_quick}.json and .md. CPU only (the cap pass is
numpy on the host; not measured on a GPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

HEADER = ["run", "seconds", "vs mine", "most rows per doc", "draws refused", "rows short", "rounds"]


def main(argv: list[str] | None = None) -> int:
    import negsample as ns
    from negsample.crossquery import cap_negative_reuse, reuse_cap

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=None, help="default 2 (3 with --quick)")
    args = ap.parse_args(argv)
    if args.quick:
        args.queries = 100_000
    if args.repeats is None:
        args.repeats = 3 if args.quick else 2
    load0 = list(__import__("os").getloadavg())
    paths = C.synthetic(args.docs, args.queries, args.dim)
    corpus = np.load(paths["corpus"])
    queries = np.load(paths["queries"])
    positives = np.load(paths["positives"])[:, None]
    index = ns.FaissIndex(corpus, "Flat")
    sampler = ns.TopKSampler(k=100)
    n = 7
    kw: dict[str, Any] = dict(n=n, seed=0)
    times: dict[str, list[float]] = {"mine": [], "mine + cap": [], "cap pass in mine": []}
    t = time.perf_counter()
    plain = ns.mine(queries, index, positives, sampler, **kw)
    times["mine"].append(time.perf_counter() - t)
    used = np.bincount(plain.ids[plain.ids >= 0])
    used = used[used > 0]
    quantiles = (0.99, 0.9, 0.5)
    caps = [max(1, int(np.quantile(used, q))) for q in quantiles]
    cap_n = caps[1]
    stats: dict[str, Any] = {}
    for i in range(args.repeats):
        if i:
            t = time.perf_counter()
            plain = ns.mine(queries, index, positives, sampler, **kw)
            times["mine"].append(time.perf_counter() - t)
        t = time.perf_counter()
        capped = ns.mine(queries, index, positives, sampler, max_negative_reuse=cap_n, **kw)
        times["mine + cap"].append(time.perf_counter() - t)
        times["cap pass in mine"].append(capped.stats.timings["reuse"])
    assert capped.stats.reuse is not None
    stats["mine + cap"] = capped.stats.reuse.__dict__
    uses = np.bincount(plain.ids[plain.ids >= 0])
    stats["mine"] = {"max_reuse": int(uses.max()), "documents_used": int((uses > 0).sum())}

    # the cap pass alone on the same draws
    plan, draw_sampler = reuse_cap(sampler, n, cap_n, n_corpus=index.ntotal)
    draws = ns.mine(queries, index, positives, draw_sampler, n=plan.draws, seed=0)
    alone: dict[int, list[float]] = {c: [] for c in caps}
    for _ in range(args.repeats):
        for c in caps:
            t = time.perf_counter()
            out = cap_negative_reuse(draws, n=n, max_reuse=c, seed=0)
            alone[c].append(time.perf_counter() - t)
            assert out.stats.reuse is not None
            stats[f"cap {c}"] = out.stats.reuse.__dict__
    load1 = list(__import__("os").getloadavg())

    med = {k: C.median(v) for k, v in times.items()}
    rows = [
        ["mine (no cap)", med["mine"], "", stats["mine"]["max_reuse"], "", "", ""],
        [
            f"mine + cap N={cap_n}",
            med["mine + cap"],
            f"{med['mine + cap'] / med['mine']:.2f}x",
            stats["mine + cap"]["max_after"],
            stats["mine + cap"]["removed"],
            stats["mine + cap"]["rows_short"],
            stats["mine + cap"]["rounds"],
        ],
        ["  of which the cap pass", med["cap pass in mine"], "", "", "", "", ""],
    ]
    for q, c in zip(quantiles, caps, strict=True):
        s = stats[f"cap {c}"]
        m = C.median(alone[c])
        rows.append(
            [
                f"cap pass alone, N={c} (p{round(100 * q)})",
                m,
                f"{m / med['mine']:.3f}x",
                s["max_after"],
                s["removed"],
                s["rows_short"],
                s["rounds"],
            ]
        )
    name = "bench_reuse_quick" if args.quick else "bench_reuse"
    md = [
        f"# The reuse cap: {args.queries:,} queries x {plan.draws} draws "
        f"({args.docs:,} x {args.dim} corpus, TopKSampler(k=100), n={n})",
        "",
        f"Seconds, medians of {args.repeats} (the kinds interleaved); ratio to `mine` without "
        f"the cap. Rows per document without the cap: at most {stats['mine']['max_reuse']}, "
        f"percentiles 99/90/50: {'/'.join(map(str, caps))} "
        f"({stats['mine']['documents_used']:,} documents used). CPU only, not measured on a "
        f"GPU; {C.load_note(load0, load1)}.",
        "",
        C.markdown_table(HEADER, rows),
        "",
        f"`python benchmarks/bench_reuse.py{' --quick' if args.quick else ''}`",
    ]
    payload = {
        "machine": C.machine(),
        "config": vars(args),
        "caps": dict(zip(map(str, quantiles), caps, strict=True)),
        "seconds": {k: v for k, v in times.items()},
        "cap_alone_seconds": {str(c): v for c, v in alone.items()},
        "stats": stats,
        "load_before": load0,
        "load_after": load1,
    }
    C.write_results(name, payload, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
