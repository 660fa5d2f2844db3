"""MS MARCO-sized mining on a CPU: 8,841,823 x 384 memory-mapped float16 passages with an
approximate faiss index (issue 10, "the scaling curve extended to 8.8M passages").

One fresh worker process per step, each reporting its time and peak RSS (anonymous and
file-backed apart: the float16 corpus is memory-mapped, so pages it reads count as
file-backed RSS that the kernel can drop):

1. ``build``: ``FaissIndex(corpus, FACTORY)`` trained on a seeded sample, every row added
   in chunks from the memory map, saved to the data folder (build time, peak RSS).
2. ``exact``: the ground truth for a sample of ``--truth`` queries: ``NumpyIndex`` over the
   memory map (exact, block by block), top-``k``; time per query.
3. ``search``: the saved index loaded, recall@k against the exact top-``k`` on the sample
   for each ``nprobe``, and the time per query of one search call over ``--queries`` queries.
4. ``mine``: ``mine()`` with TopK(k=200), n=7 over ``--queries`` queries at the chosen
   ``nprobe``; time, time per query, peak RSS.

    python benchmarks/bench_large.py                 # 8,841,823 passages, IVF1024,SQ8
    python benchmarks/bench_large.py --quick         # 200,000 passages (checks the script)

The corpus (6.8 GB at full size) is written once under $NEGSAMPLE_BENCH_DATA
(/tmp/negsample-bench by default), never in the repository.
Writes benchmarks/results/bench_large{,_quick}.json and .md.
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
MSMARCO = 8_841_823


def _rss() -> dict[str, float]:
    return {
        "peak_rss_mb": C.peak_rss_mb(),
        "rss_anon_mb": C.status_mb("RssAnon"),
        "rss_file_mb": C.status_mb("RssFile"),
    }


def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    import negsample as ns

    corpus = np.load(cfg["corpus"], mmap_mode="r")
    queries = np.load(cfg["queries"], mmap_mode="r")
    step = cfg["step"]
    k = cfg["k"]
    out: dict[str, Any] = {"step": step}
    if step == "build":
        t0 = time.perf_counter()
        index = ns.FaissIndex(
            corpus, cfg["factory"], train_size=cfg["train_size"], check=False, keep_vectors=False
        )
        out["build_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        index.save(cfg["index_dir"])
        out["save_s"] = time.perf_counter() - t0
    elif step == "exact":
        index = ns.NumpyIndex(corpus, check=False)
        q = np.asarray(queries[: cfg["truth"]])
        t0 = time.perf_counter()
        res = index.search(q, k)
        out["exact_s"] = time.perf_counter() - t0
        out["exact_ms_per_query"] = 1e3 * out["exact_s"] / q.shape[0]
        np.save(cfg["truth_file"], res.ids)
    elif step == "search":
        truth = np.load(cfg["truth_file"])
        planted = np.load(cfg["positives"])
        rows = []
        index = ns.FaissIndex.load(cfg["index_dir"], device="cpu")
        for nprobe in cfg["nprobes"]:
            index.nprobe = nprobe
            got = index.search(np.asarray(queries[: truth.shape[0]]), k).ids
            recall = float(
                np.mean([len(set(a) & set(b)) / k for a, b in zip(got, truth, strict=True)])
            )
            q = np.asarray(queries[: cfg["n_queries"]])
            t0 = time.perf_counter()
            found = index.search(q, k).ids
            dt = time.perf_counter() - t0
            # the query's one planted positive (the query is a noisy copy of it) among the k
            hit = float(np.mean((found == planted[: len(q), None]).any(axis=1)))
            rows.append(
                {
                    "nprobe": nprobe,
                    "recall": recall,
                    "positive_found": hit,
                    "search_s": dt,
                    "ms_per_query": 1e3 * dt / len(q),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
        out["search"] = rows
    elif step == "mine":
        index = ns.FaissIndex.load(cfg["index_dir"], device="cpu", vectors=corpus)
        index.nprobe = cfg["nprobe"]
        q = queries[: cfg["n_queries"]]
        pos = np.load(cfg["positives"])[: cfg["n_queries"], None]
        C.reset_peak()
        t0 = time.perf_counter()
        negs = ns.mine(q, index, pos, sampler=ns.TopKSampler(k=200), n=7, seed=0)
        out["mine_s"] = time.perf_counter() - t0
        out["ms_per_query"] = 1e3 * out["mine_s"] / len(q)
        out["timings"] = negs.stats.timings
        out["short_rows"] = negs.stats.short_rows
    out.update(_rss())
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if C.worker_main(argv, worker):
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--docs", type=int, default=MSMARCO)
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--truth", type=int, default=100, help="queries with exact ground truth")
    ap.add_argument("--k", type=int, default=200)
    ap.add_argument("--factory", default="IVF1024,SQ8")
    ap.add_argument("--train-size", type=int, default=100_000)
    ap.add_argument("--nprobes", default="8,32,128")
    ap.add_argument("--mine-nprobe", type=int, default=32)
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.queries, args.truth, args.factory = 200_000, 500, 50, "IVF256,SQ8"
        args.train_size = 20_000
    info = C.machine()
    t0 = time.perf_counter()
    paths = C.synthetic(args.docs, max(args.queries, args.truth), 384, dtype="float16")
    gen_s = time.perf_counter() - t0
    folder = paths["corpus"].parent
    tag = args.factory.replace(",", "_")
    base = {
        **{k: str(v) for k, v in paths.items()},
        "k": args.k,
        "factory": args.factory,
        "train_size": args.train_size,
        "index_dir": str(folder / f"index-{tag}"),
        "truth_file": str(folder / f"truth-k{args.k}-n{args.truth}.npy"),
        "truth": args.truth,
        "n_queries": args.queries,
    }
    steps: dict[str, dict[str, Any]] = {}
    loads = [os.getloadavg()[0]]
    for step, extra in (
        ("build", {}),
        ("exact", {}),
        ("search", {"nprobes": [int(x) for x in args.nprobes.split(",")]}),
        ("mine", {"nprobe": args.mine_nprobe}),
    ):
        if step == "build" and (Path(base["index_dir"]) / "meta.json").exists():
            print("index exists: reusing it (its build figures are from the run that built it)")
            prev = C.RESULTS / ("bench_large_quick.json" if args.quick else "bench_large.json")
            if prev.exists():
                import json

                steps[step] = json.loads(prev.read_text())["steps"].get("build", {})
            continue
        if step == "exact" and Path(base["truth_file"]).exists():
            continue
        steps[step] = C.run_worker(SCRIPT, {**base, "step": step, **extra})
        loads.append(os.getloadavg()[0])
        print(step, steps[step], file=sys.stderr, flush=True)
    gb = args.docs * 384 * 2 / 2**30
    rows = []
    b = steps.get("build", {})
    nan = float("nan")
    rows = [
        [
            "build " + args.factory,
            f"{b.get('build_s', nan):.0f} s",
            f"{b.get('peak_rss_mb', nan):,.0f} (anonymous at the end {b.get('rss_anon_mb', nan):,.0f})",
            "-",
            "-",
        ]
    ]
    e = steps.get("exact")
    if e:
        rows.append(
            [
                f"exact NumpyIndex, {args.truth} queries",
                f"{e['exact_ms_per_query']:,.0f} ms/query",
                f"{e['peak_rss_mb']:,.0f} (file-backed {e['rss_file_mb']:,.0f})",
                "1.000",
                "-",
            ]
        )
    for r in steps.get("search", {}).get("search", []):
        rows.append(
            [
                f"{args.factory}, nprobe={r['nprobe']}, {args.queries:,} queries",
                f"{r['ms_per_query']:.2f} ms/query",
                f"{steps['search']['peak_rss_mb']:,.0f}",
                f"{r['recall']:.3f}",
                f"{r['positive_found']:.3f}",
            ]
        )
    m = steps.get("mine", {})
    if m:
        search_s = m["timings"].get("search", 0)
        rows.append(
            [
                f"mine() TopK(k=200), nprobe={args.mine_nprobe}, {args.queries:,} queries",
                f"{m['ms_per_query']:.2f} ms/query ({m['mine_s']:.1f} s; search {search_s:.1f} s)",
                f"{m['peak_rss_mb']:,.0f} (anonymous {m['rss_anon_mb']:,.0f}, "
                f"file-backed {m['rss_file_mb']:,.0f})",
                "-",
                "-",
            ]
        )
    md = (
        f"{args.docs:,} x 384 float16 passages memory-mapped ({gb:.1f} GB on disk, generated "
        f"in {gen_s:.0f} s), k={args.k}. {info.get('cpu', '')}, {info['affinity']} cores, "
        f"{info.get('mem_total_gb')} GB, faiss {info.get('faiss')}, {info['date']}, 1-min load "
        f"{', '.join(f'{x:.1f}' for x in loads)} across the steps. No GPU: not measured on a "
        f"GPU. recall@{args.k}: overlap with the exact top-{args.k} of {args.truth} queries; "
        f"positive in top {args.k}: share of the queries whose one planted positive (the query "
        f"is a noisy copy of it) the search returns.\n\n"
        + C.markdown_table(
            ["step", "time", "peak RSS MB", f"recall@{args.k}", f"positive in top {args.k}"],
            rows,
        )
    )
    name = "bench_large_quick" if args.quick else "bench_large"
    C.write_results(name, {"args": vars(args), "machine": info, "steps": steps, "gen_s": gen_s}, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
