"""Distributed mining on a local Ray cluster against single-process ``mine()`` (issue 11).

On this machine: a Ray node started with ``ray start`` (loopback only, its own temp
folder, stopped by process id), then for the same queries, index spec and sampler:

- ``mine()`` in a fresh process with 1 and with 2 BLAS threads (the baselines);
- ``mine_distributed`` by query shards with 1 and 2 workers of 1 CPU each (each worker
  holds the whole exact index, memory-mapped from the same ``.npy``), and by 2 corpus
  shards;

timed as medians of ``--repeats`` runs: the mining (workers already started) and the
workers' start (process, imports, opening the index). The overhead is the distributed
mining time against ``mine()`` at equal cores (2 workers x 1 thread against 2 threads;
1 worker against 1 thread). Each distributed result is compared with the baselines' ids.

    flock /tmp/negsample-bench.lock python benchmarks/bench_distributed.py --quick   # 20,000 x 384, 8,000 queries
    flock /tmp/negsample-bench.lock python benchmarks/bench_distributed.py   # 200,000 x 384, 20,000 queries

Goal: under 15% overhead at 200,000 passages and 20,000 queries.
Writes benchmarks/results/bench_distributed{,_quick}.json and .md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.ray_cluster
import _common as C

SCRIPT = Path(__file__).resolve()
GOAL_PCT = 15.0


def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """Single-process baseline: ``mine()`` with ``threads`` BLAS threads, ``repeats`` runs
    (the index is built before the clock starts)."""
    from threadpoolctl import threadpool_limits

    import negsample as ns

    threadpool_limits(cfg["threads"])
    corpus = np.load(cfg["corpus"], mmap_mode="r")
    queries = np.load(cfg["queries"], mmap_mode="r")
    positives = np.load(cfg["positives"])[:, None]
    t0 = time.perf_counter()
    index = ns.build_index(corpus, cfg["index"])
    t_index = time.perf_counter() - t0
    sampler = ns.sampler_from_string(cfg["sampler"])
    runs = []
    for _ in range(cfg["repeats"]):
        t0 = time.perf_counter()
        negs = ns.mine(queries, index, positives, sampler, n=7, seed=0)
        runs.append(time.perf_counter() - t0)
    np.save(cfg["out"], negs.ids)
    return {"runs": runs, "index_s": t_index, "timings": negs.stats.timings}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if C.worker_main(argv, worker):
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="20,000 x 384, 8,000 queries")
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--index", default="exact", help="index spec (default exact)")
    ap.add_argument("--sampler", default="TopKSampler()", help="sampler spec (default topk)")
    ap.add_argument(
        "--chunk-size",
        type=int,
        default=2048,
        help="queries per chunk (default 2048, two of the exact index's search blocks: "
        "20,000 queries make 10 chunks, 5 per worker)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.queries = 20_000, 8_000
    paths = C.synthetic(args.docs, args.queries, 384)
    info = C.machine()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dist-"))

    os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"})
    import ray
    from tests.ray_cluster import LocalCluster

    import negsample as ns
    from negsample.distributed import ReplicatedIndex, ShardedIndex, connect, mine_distributed

    def single(threads: int, r: int) -> tuple[float, float, dict[str, float], np.ndarray]:
        out = tmp / f"single{threads}-{r}.npy"
        res = C.run_worker(
            SCRIPT,
            {
                **{k: str(v) for k, v in paths.items()},
                "threads": threads,
                "repeats": 1,
                "index": args.index,
                "sampler": args.sampler,
                "out": str(out),
            },
        )
        return res["runs"][0], res["index_s"], res["timings"], np.load(out)

    def distributed(make: Any, r: int) -> tuple[float, float, dict[str, float], np.ndarray]:
        t0 = time.perf_counter()
        held = make()
        start = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            negs = mine_distributed(
                str(paths["queries"]),
                held,
                positives,
                sampler,
                n=7,
                seed=0,
                chunk_size=args.chunk_size,
                work_dir=tmp / f"work-{len(os.listdir(tmp))}",
            )
            return time.perf_counter() - t0, start, negs.stats.timings, negs.ids
        finally:
            held.close()

    corpus = str(paths["corpus"])
    configs: list[tuple[str, int, Any]] = [
        ("mine() 1 thread", 1, lambda r: single(1, r)),
        ("mine() 2 threads", 2, lambda r: single(2, r)),
        (
            "query sharding, 1 worker",
            1,
            lambda r: distributed(lambda: ReplicatedIndex(args.index, corpus=corpus, workers=1), r),
        ),
        (
            "query sharding, 2 workers",
            2,
            lambda r: distributed(lambda: ReplicatedIndex(args.index, corpus=corpus, workers=2), r),
        ),
        (
            "corpus sharding, 2 shards",
            2,
            lambda r: distributed(lambda: ShardedIndex(args.index, corpus=corpus, shards=2), r),
        ),
    ]
    results: dict[str, Any] = {
        key: {"cores": cores, "runs": [], "starts": [], "loads": []} for key, cores, _ in configs
    }
    ids: dict[str, np.ndarray] = {}
    sampler = ns.sampler_from_string(args.sampler)
    positives = np.load(paths["positives"])[:, None]
    cluster = LocalCluster(nodes=1, cpus=2).start()
    try:
        connect(cluster.address)
        for r in range(args.repeats):  # configurations interleaved: load drifts hit all alike
            for key, _cores, run in configs:
                load = os.getloadavg()[0]
                wall, start, timings, got = run(r)
                res = results[key]
                res["runs"].append(wall)
                res["starts"].append(start)
                res["loads"].append(load)
                res["timings"] = timings
                ids[key] = got
                print(f"{key}: {wall:.2f}s (start {start:.2f}s, load {load:.1f})", file=sys.stderr)
    finally:
        ray.shutdown()
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    for res in results.values():
        res["mine_s"] = C.median(res["runs"])
        res["start_s"] = C.median(res["starts"])

    base = {1: results["mine() 1 thread"]["mine_s"], 2: results["mine() 2 threads"]["mine_s"]}
    rows = []
    for key, r in results.items():
        r["queries_per_s"] = args.queries / r["mine_s"]
        r["overhead_pct"] = 100 * (r["mine_s"] / base[r["cores"]] - 1)
        r["rows_differing_from"] = {
            k: int((ids[k] != ids[key]).any(axis=1).sum()) for k in ids if k.startswith("mine()")
        }
        rows.append(
            [
                key,
                r["cores"],
                r["mine_s"],
                r["start_s"],
                r["queries_per_s"],
                f"{r['overhead_pct']:+.1f}%",
                " / ".join(str(v) for v in r["rows_differing_from"].values()),
            ]
        )
    header = [
        "run",
        "cores",
        "mining s (median)",
        "start s (workers / index)",
        "queries / s",
        "against mine() at equal cores",
        "rows whose ids differ from mine() at 1 / 2 threads",
    ]
    two = results["query sharding, 2 workers"]["overhead_pct"]
    verdict = "met" if two < GOAL_PCT else "MISSED"
    md = (
        f"{args.sampler}, n=7, index {args.index!r}, synthetic corpus {args.docs:,} x 384 "
        f"float32, {args.queries:,} queries, chunks of {args.chunk_size:,}; medians of "
        f"{args.repeats} runs. Ray {ray.__version__}, one local node of 2 CPUs; "
        f"{info.get('cpu', '')}, {info['affinity']} cores shared with other users; "
        f"{C.load_note(load_before, load_after)}; {info['date']}.\n\n"
        + C.markdown_table(header, rows)
        + f"\n\nGoal: query sharding on 2 workers within {GOAL_PCT:.0f}% of mine() on 2 "
        f"threads: {two:+.1f}% ({verdict})."
    )
    name = "bench_distributed_quick" if args.quick else "bench_distributed"
    C.write_results(
        name,
        {
            "args": vars(args),
            "machine": info,
            "load": [list(load_before), list(load_after)],
            "results": results,
        },
        md,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
