"""TorchIndex (issue 10): exact torch search against NumpyIndex and faiss Flat on the CPU,
and on a GPU the full-size run (TopK and ReSa2 ``mine()`` against the bare search).

CPU comparison (default): the same synthetic corpus and queries (``_common.synthetic``,
memory-mapped), each index built once, then ``--repeats`` searches of every query at depth
``--k`` (one call; each index blocks internally). Records build time, median search time,
and how many ids agree with NumpyIndex (the exact oracle).

    python benchmarks/bench_torch.py --quick        # 20,000 x 384, 2,000 queries
    python benchmarks/bench_torch.py                # 200,000 x 384, 10,000 queries

Device run (``--device cuda``; also ``--device cpu`` to check the script on a CPU): a
memory-mapped float16 corpus (full size: 8,841,823 x 384, MS MARCO's passage count, and
500,000 queries), a TorchIndex on the device (float16 by default), then

- the bare search of every query at each sampler's depth (``search_block`` queries per
  call, as ``mine()`` searches), for TopK (k=200) and ReSa2 (k1=1000);
- ``mine()`` with TopK and with ReSa2 (n=7), and the ratio to the bare search;
- ``score()`` of 500 ids per query (ReSa2's stage 2 primitive);
- on CUDA, the cost of float32 scores: one block multiplied into float16 (``torch.mm``) and
  its top-k, against the same block multiplied into float32 (``out_dtype``) and its top-k.

    python benchmarks/bench_torch.py --device cuda              # full size (~7 GB of data)
    python benchmarks/bench_torch.py --device cuda --quick      # 200,000 x 384, 20,000 queries

Top-k sweep (issue 17, ``--topk``; in the device run ``--sweep``): the exact top-k paths
side by side in one run, each against the matrix-product floor measured in the same run
(the same ``torch.mm`` calls over the same corpus blocks into the same buffer, then a
device synchronisation, no top-k): the grouped top-k for each group size ``g``, and the
former lazy merge. Repeats are interleaved, medians reported, and every path's ids and
scores are checked equal to the first path's.

    python benchmarks/bench_torch.py --topk --quick   # CPU: 200,000 x 384, 256 queries
    python benchmarks/bench_torch.py --topk           # CPU: 1,000,000 x 384, 256 queries
    python benchmarks/bench_torch.py --topk --threads 1   # one torch thread (a loaded host)

The device run never imports faiss (the GPU image has none). Writes
benchmarks/results/bench_torch{_quick,_cuda,_cuda_quick}.json and .md, and
bench_torch_topk_cpu{,_quick,_1thread}.json and .md (``--topk``) and
bench_torch_sweep_{cuda,...}{,_quick}.json and .md (the device run's ``--sweep``).
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

FULL_DOCS = 8_841_823
#: The issue's anchor: a naive blocked fp16 matmul + topk on one H100 (torch 2.11), 100,000
#: queries against 8,841,823 x 384 in 9.0 s at k=200: 0.090 s per 1,000 queries.
ANCHOR_S_PER_1000 = 0.090


def _search_all(index: Any, queries: Any, k: int, block: int) -> float:
    """Seconds to search every query at depth ``k``, ``block`` queries per call."""
    t0 = time.perf_counter()
    for s in range(0, queries.shape[0], block):
        index.search(np.asarray(queries[s : s + block]), k)
    return time.perf_counter() - t0


# -- top-k sweep ------------------------------------------------------------------------------
SWEEP_GROUPS = (8, 16, 32, 64, 128)


def _sync(index: Any) -> None:
    import torch

    for dev in index.devices:
        if dev.startswith("cuda"):
            torch.cuda.synchronize(dev)


def _products(index: Any, queries: np.ndarray) -> float:
    """Seconds for the bare products of ``index.search(queries, k)``: the same ``torch.mm``
    calls (``TorchIndex._mm``) over the same corpus blocks into the same buffer, no top-k."""
    import torch

    t0 = time.perf_counter()
    with torch.inference_mode():
        for shard in index._shards:
            rows = min(queries.shape[0], index.search_block)
            buf = None
            if index.dtype == "float32" or not shard.fp32_out:
                size = rows * min(index.block_rows, shard.n)
                buf = torch.empty(size, dtype=torch.float32, device=shard.device)
            for qs in range(0, queries.shape[0], index.search_block):
                qt = torch.from_numpy(np.array(queries[qs : qs + index.search_block]))
                qt = qt.to(shard.device, dtype=shard.data.dtype, copy=True)
                for cs in range(0, shard.n, index.block_rows):
                    block = shard.data[cs : cs + index.block_rows]
                    m = block.shape[0]
                    out = None if buf is None else buf[: qt.shape[0] * m].view(qt.shape[0], m)
                    index._mm(qt, block, shard.fp32_out, out)
    _sync(index)
    return time.perf_counter() - t0


def topk_sweep(
    index: Any, queries: np.ndarray, ks: tuple[int, ...], groups: tuple[int, ...], repeats: int
) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """Every (k, path) timed ``repeats`` times, interleaved with the bare products; a path
    that raises is recorded with its error (and the rest still run)."""
    from negsample.index import _torch_topk as topk

    default = (topk.PATH, topk.GROUP)
    configs = [("grouped", g) for g in groups] + [("lazy", None)]
    results: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    n = queries.shape[0]
    try:
        for k in ks:
            times: dict[str, list[float]] = {"product": []}
            info: dict[str, dict[str, Any]] = {}
            ref = None
            for _ in range(repeats):
                times["product"].append(_products(index, queries))
                for path, g in configs:
                    name = path if g is None else f"{path} g={g}"
                    if info.get(name, {}).get("error"):
                        continue
                    topk.PATH, topk.GROUP = path, g or default[1]
                    t0 = time.perf_counter()
                    try:
                        res = index.search(queries, k)
                    except Exception as exc:  # recorded: one failing path must not end the run
                        info[name] = {"error": f"{type(exc).__name__}: {exc}"}
                        print(f"k={k} {name}: {info[name]['error']}", file=sys.stderr)
                        continue
                    times.setdefault(name, []).append(time.perf_counter() - t0)
                    if ref is None:
                        ref = res
                    same = bool(
                        np.array_equal(res.ids, ref.ids) and np.array_equal(res.scores, ref.scores)
                    )
                    entry = info.setdefault(name, {"equal": True})
                    entry["equal"] &= same
                    entry["stats"] = getattr(index, "_last_topk_stats", {}) if g else {}
            floor = C.median(times["product"])
            results.append({"k": k, "seconds": times, "info": info})
            rows.append([k, "product (floor)", 1e6 * floor / n, "1.00", "", ""])
            for name, entry in info.items():
                if "error" in entry:
                    rows.append([k, name, "error", "", entry["error"][:60], ""])
                    continue
                med = C.median(times[name])
                st = entry.get("stats") or {}
                blocks = (
                    f"{st['pruned']}/{st['grouped']}/{st['rescored']}/{st['blocks']}" if st else ""
                )
                eq = "yes" if entry["equal"] else "NO"
                rows.append([k, name, 1e6 * med / n, f"{med / floor:.2f}", blocks, eq])
            print(rows[-len(info) - 1 :], file=sys.stderr)
    finally:
        topk.PATH, topk.GROUP = default
    return results, rows


SWEEP_HEADER = [
    "k",
    "path",
    "ms per 1,000 queries",
    "/ product",
    "blocks pruned / by groups / rescored / all",
    "ids and scores equal",
]


def sweep_run(args: argparse.Namespace) -> int:
    """CPU: the top-k sweep on a float32 TorchIndex over a memory-mapped synthetic corpus."""
    import torch

    import negsample as ns

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = C.synthetic(args.docs, args.queries, args.dim)
    corpus = np.load(paths["corpus"], mmap_mode="r")
    queries = np.load(paths["queries"])
    info = C.machine()
    load0 = list(os.getloadavg())
    index = ns.TorchIndex(
        corpus,
        device=args.device or "cpu",
        dtype=args.dtype,
        search_block=args.search_block or 256,
        memory_budget_mb=args.budget_mb or 64,
        check=False,
    )
    index.search(queries[:8], 8)  # warm-up
    results, rows = topk_sweep(index, queries, tuple(args.ks), tuple(args.groups), args.repeats)
    load1 = list(os.getloadavg())
    dev = index.devices[0].split(":")[0]
    md = (
        f"Exact top-k paths of {index!r} side by side, block_rows {index.block_rows}, "
        f"search_block {index.search_block}: {args.queries:,} queries against a synthetic "
        f"corpus {args.docs:,} x {args.dim} (random order), each path's time against the bare "
        f"matrix products of the same blocks in the same run; medians of {args.repeats} "
        f"interleaved runs. {info.get('cpu', '')}, {info['affinity']} cores, torch "
        f"{info.get('torch')} ({torch.get_num_threads()} threads), {info['date']}, "
        f"{C.load_note(load0, load1)}."
        + (" CPU only: not measured on a GPU." if dev == "cpu" else "")
        + "\n\n"
        + C.markdown_table(SWEEP_HEADER, rows)
    )
    name = f"bench_torch_topk_{dev}" + ("_quick" if args.quick else "")
    name += f"_{args.threads}thread" if args.threads else ""
    payload = {"args": vars(args), "machine": info, "load": [load0, load1], "results": results}
    C.write_results(name, payload, md)
    return 0


# -- CPU comparison ---------------------------------------------------------------------------
def compare(args: argparse.Namespace) -> int:
    import negsample as ns

    paths = C.synthetic(args.docs, args.queries, args.dim)
    corpus = np.load(paths["corpus"], mmap_mode="r")
    queries = np.load(paths["queries"])
    info = C.machine()
    load0 = list(os.getloadavg())
    makers = {
        "TorchIndex (cpu, float32)": lambda: ns.TorchIndex(
            corpus, device="cpu", dtype="float32", check=False
        ),
        "NumpyIndex": lambda: ns.NumpyIndex(corpus, check=False),
        "FaissIndex Flat": lambda: ns.FaissIndex(corpus, "Flat", device="cpu", check=False),
    }
    results, rows, ref = [], [], None
    for name in ("NumpyIndex", "TorchIndex (cpu, float32)", "FaissIndex Flat"):
        t0 = time.perf_counter()
        index = makers[name]()
        build = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = index.search(queries, args.k)
            times.append(time.perf_counter() - t0)
        if ref is None:
            ref = res.ids
        agree = float((res.ids == ref).mean())
        med = C.median(times)
        results.append({"index": name, "build_s": build, "search_s": times, "agree": agree})
        rows.append([name, build, med, 1e3 * med / args.queries, f"{100 * agree:.2f}%"])
        print(rows[-1], file=sys.stderr)
        del index
    load1 = list(os.getloadavg())
    header = ["index", "build s", "search s (median)", "ms / query", "ids equal to NumpyIndex"]
    md = (
        f"Exact search of {args.queries:,} queries at k={args.k}, one call, synthetic corpus "
        f"{args.docs:,} x {args.dim} float32 (memory-mapped); medians of {args.repeats} runs in "
        f"one process. {info.get('cpu', '')}, {info['affinity']} cores, torch "
        f"{info.get('torch')}, faiss {info.get('faiss')}, {info['date']}, "
        f"{C.load_note(load0, load1)}. CPU only: not measured on a GPU.\n\n"
        + C.markdown_table(header, rows)
    )
    name = "bench_torch_quick" if args.quick else "bench_torch"
    payload = {"args": vars(args), "machine": info, "load": [load0, load1], "results": results}
    C.write_results(name, payload, md)
    return 0


# -- device run -------------------------------------------------------------------------------
def _precision_cost(index: Any, queries: Any, k: int, repeats: int = 5) -> dict[str, float]:
    """One block: float16 product + top-k against the float32-output product + top-k."""
    import torch

    shard = index._shards[0]
    dev = shard.device
    q = torch.from_numpy(np.array(queries[: index.search_block], dtype=np.float32))
    q = q.to(dev).to(shard.data.dtype)
    block = shard.data[: index.block_rows]

    def timed(fn: Any) -> float:
        fn()
        torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize(dev)
        return (time.perf_counter() - t0) / repeats

    out: dict[str, float] = {
        "mm_half_out_s": timed(lambda: torch.mm(q, block.t())),
        "mm_half_out_topk_s": timed(lambda: torch.topk(torch.mm(q, block.t()), k, dim=1)),
    }
    if shard.fp32_out:
        out["mm_fp32_out_s"] = timed(lambda: torch.mm(q, block.t(), out_dtype=torch.float32))
        out["mm_fp32_out_topk_s"] = timed(
            lambda: torch.topk(torch.mm(q, block.t(), out_dtype=torch.float32), k, dim=1)
        )
    out["mm_upcast_fp32_s"] = timed(lambda: torch.mm(q.float(), block.float().t()))
    out["block_shape"] = [int(q.shape[0]), int(block.shape[0])]  # type: ignore[assignment]
    return out


def device_run(args: argparse.Namespace) -> int:
    sys.modules["faiss"] = None  # type: ignore[assignment]  # the GPU image has no faiss
    import negsample as ns

    paths = C.synthetic(args.docs, args.queries, args.dim, dtype="float16")
    corpus = np.load(paths["corpus"], mmap_mode="r")
    queries = np.load(paths["queries"], mmap_mode="r")
    positives = np.load(paths["positives"])[:, None]
    info = C.machine()
    load0 = list(os.getloadavg())
    t0 = time.perf_counter()
    index = ns.TorchIndex(
        corpus,
        device=args.device,
        dtype=args.dtype,
        memory_budget_mb=args.budget_mb,
        search_block=args.search_block,
        check=False,
    )
    build = time.perf_counter() - t0
    print(f"built {index!r} in {build:.1f} s, block_rows {index.block_rows}", file=sys.stderr)
    out: dict[str, Any] = {"build_s": build, "index": repr(index), "block_rows": index.block_rows}
    # warm-up (CUDA context, cuBLAS handles) and, with --max-seconds, the query count that
    # fits: the four timed passes (two bare searches, two mine() calls) cost about 4.6 times
    # one bare search at k=201 (ReSa2 searches 1001 deep)
    from negsample.index import _torch_topk as topk

    probe_n = min(queries.shape[0], 2 * index.search_block)
    try:  # the warm-up and the probe on the default path
        index.search(np.asarray(queries[:1]), 201)
        probe_s = _search_all(index, queries[:probe_n], 201, index.search_block)
    except Exception as exc:  # the default path failing on this device: keep the run going
        print(f"{topk.PATH} path failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        out["path_fallback"] = f"lazy ({topk.PATH}: {type(exc).__name__}: {exc})"
        topk.PATH = "lazy"
        index.search(np.asarray(queries[:1]), 201)
        probe_s = _search_all(index, queries[:probe_n], 201, index.search_block)
    out["probe"] = {"queries": probe_n, "seconds": probe_s}
    print(f"probe: {probe_n} queries at k=201 in {probe_s:.2f} s", file=sys.stderr)
    sweep_rows: list[list[Any]] = []
    if args.sweep:  # the top-k paths side by side on one block of queries, against the products
        m = min(queries.shape[0], index.search_block)
        q_sweep = np.asarray(queries[:m], dtype=np.float32)
        res, sweep_rows = topk_sweep(index, q_sweep, (201, 1001), tuple(args.groups), 2)
        out["topk_sweep"] = {"queries": m, "results": res}
        dev = "cuda" if args.device.startswith("cuda") else args.device
        C.write_results(  # written now: the sweep survives a run cut short later
            f"bench_torch_sweep_{dev}" + ("_quick" if args.quick else ""),
            {"args": vars(args), "machine": info, "queries": m, "results": res},
            f"Exact top-k paths of {index!r} side by side, block_rows {index.block_rows}, on "
            f"one block of {m:,} queries against a synthetic float16 corpus {args.docs:,} x "
            f"{args.dim} (random order), each against the bare matrix products of the same "
            f"blocks in the same run; medians of 2 interleaved runs. "
            f"{', '.join(info.get('gpus', [])) or 'no GPU'}, torch {info.get('torch')}, "
            f"{info['date']}.\n\n" + C.markdown_table(SWEEP_HEADER, sweep_rows),
        )
        broken = [name for r in res for name, entry in r["info"].items() if entry.get("error")]
        if f"{topk.PATH} g={topk.GROUP}" in broken:  # the default failed: keep the run going
            out["path_fallback"] = f"lazy ({topk.PATH} g={topk.GROUP} failed in the sweep)"
            topk.PATH = "lazy"
    if args.max_seconds:
        fit = int(args.max_seconds / (4.6 * probe_s / probe_n))
        fit = max(index.search_block, fit // index.search_block * index.search_block)
        if fit < queries.shape[0]:
            print(
                f"--max-seconds {args.max_seconds}: {fit} of {queries.shape[0]} queries",
                file=sys.stderr,
            )
            queries, positives = queries[:fit], positives[:fit]
    n_q = int(queries.shape[0])
    out["queries"] = n_q
    samplers = {"TopK": ns.TopKSampler(k=200), "ReSa2": ns.ReSa2Sampler()}
    rows = []
    for name, sampler in samplers.items():
        k = sampler.depth + 1  # mine() searches depth + (positives rounded up to a power of 2)
        bare = _search_all(index, queries, k, index.search_block)
        t0 = time.perf_counter()
        negs = ns.mine(queries, index, positives, sampler=sampler, n=args.n, seed=0)
        wall = time.perf_counter() - t0
        assert negs.ids.shape[0] == queries.shape[0] and not (negs.ids == positives).any()
        out[name] = {"k": k, "bare_search_s": bare, "mine_s": wall, "timings": negs.stats.timings}
        anchor = ANCHOR_S_PER_1000 * n_q / 1000
        rows.append(
            [name, k, bare, wall, f"{wall / bare:.2f}", 1e6 * wall / n_q, f"{wall / anchor:.2f}"]
        )
        print(rows[-1], negs.stats.timings, file=sys.stderr)
    ids = np.random.default_rng(0).integers(0, index.ntotal, (min(100_000, n_q), 500))
    q = np.ascontiguousarray(queries[: ids.shape[0]], dtype=np.float32)
    t0 = time.perf_counter()
    index.score(q, ids)
    out["score_500_s"] = time.perf_counter() - t0
    out["score_500_queries"] = int(ids.shape[0])
    if index.devices[0].startswith("cuda") and index.dtype != "float32":
        out["precision"] = _precision_cost(index, queries, 200)
        print(out["precision"], file=sys.stderr)
    load1 = list(os.getloadavg())
    header = [
        "sampler",
        "search depth k",
        "bare search s",
        "mine() s",
        "mine() / bare",
        "mine() ms per 1,000 queries",
        "mine() / issue anchor",
    ]
    prec = out.get("precision", {})
    extra = ""
    if prec:
        extra = (
            f"\n\nOne block {prec['block_shape']}: float16 product {prec['mm_half_out_s']:.4f} s "
            f"(+ top-200 {prec['mm_half_out_topk_s']:.4f} s)"
            + (
                f", float32-output product {prec['mm_fp32_out_s']:.4f} s (+ top-200 "
                f"{prec['mm_fp32_out_topk_s']:.4f} s)"
                if "mm_fp32_out_s" in prec
                else ""
            )
            + f", upcast float32 product {prec['mm_upcast_fp32_s']:.4f} s."
        )
    md = (
        f"{index!r}, block_rows {index.block_rows}, exact top-k path "
        f"{topk.PATH}{f' g={topk.GROUP}' if topk.PATH == 'grouped' else ''}, built in "
        f"{build:.1f} s from a memory-mapped float16 corpus {args.docs:,} x {args.dim}; "
        f"{n_q:,} queries"
        + (
            f" (of {args.queries:,}: the count that fits --max-seconds {args.max_seconds})"
            if n_q < args.queries
            else ""
        )
        + ", one positive "
        f"each, n={args.n}. score() of 500 ids for {out['score_500_queries']:,} queries: "
        f"{out['score_500_s']:.2f} s. {', '.join(info.get('gpus', [])) or 'no GPU'}, "
        f"{info.get('cpu', '')} ({info['affinity']} cores), torch {info.get('torch')}, "
        f"{info['date']}, {C.load_note(load0, load1)}. Issue anchor: "
        f"{1e3 * ANCHOR_S_PER_1000:.0f} ms per 1,000 queries (a naive blocked float16 matrix "
        "product and top-k on one H100, issue 10), another card: a guide, not a side-by-side "
        "ratio.\n\n" + C.markdown_table(header, rows) + extra
    )
    if sweep_rows:
        md += (
            f"\n\nExact top-k paths side by side on one block of "
            f"{out['topk_sweep']['queries']:,} queries (median of 2, interleaved), each against "
            "the bare matrix products of the same corpus blocks in the same run: the grouped "
            "top-k (the default) for each group size g, and the former lazy merge."
            + (
                f" The default path failed, the passes above used {out['path_fallback']}."
                if "path_fallback" in out
                else ""
            )
            + "\n\n"
            + C.markdown_table(SWEEP_HEADER, sweep_rows)
        )
    dev = "cuda" if args.device.startswith("cuda") else args.device
    name = f"bench_torch_{dev}" + ("_quick" if args.quick else "")
    C.write_results(name, {"args": vars(args), "machine": info, "results": out}, md)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="a small run (see above)")
    ap.add_argument("--device", default=None, help="the device run: cuda, cuda:1, cpu, mps")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=200, help="search depth of the CPU comparison")
    ap.add_argument("--n", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default=None, help="TorchIndex dtype in the device run")
    ap.add_argument("--budget-mb", type=float, default=None, help="TorchIndex memory_budget_mb")
    ap.add_argument("--search-block", type=int, default=None, help="TorchIndex search_block")
    ap.add_argument(
        "--topk",
        action="store_true",
        help="the top-k sweep alone (CPU unless --device): paths and group sizes side by side",
    )
    ap.add_argument(
        "--sweep",
        "--compare-merge",  # its former name (the merge paths side by side), still accepted
        dest="sweep",
        action="store_true",
        help="device run: the top-k sweep on one block of queries before the timed passes",
    )
    ap.add_argument("--ks", type=int, nargs="+", default=[201, 1001], help="--topk depths")
    ap.add_argument("--threads", type=int, default=None, help="--topk: torch CPU threads")
    ap.add_argument(
        "--groups", type=int, nargs="+", default=list(SWEEP_GROUPS), help="group sizes swept"
    )
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="device run: fewer queries (whole search blocks) if the timed passes would "
        "take longer (estimated from a first search, which is also the warm-up)",
    )
    args = ap.parse_args(argv)
    if args.topk:
        sizes = (200_000, 256) if args.quick else (1_000_000, 256)
        args.docs = args.docs or sizes[0]
        args.queries = args.queries or sizes[1]
        return sweep_run(args)
    if args.device is None:
        sizes = (20_000, 2_000) if args.quick else (200_000, 10_000)
    else:
        sizes = (200_000, 20_000) if args.quick else (FULL_DOCS, 500_000)
    args.docs = args.docs or sizes[0]
    args.queries = args.queries or sizes[1]
    return compare(args) if args.device is None else device_run(args)


if __name__ == "__main__":
    raise SystemExit(main())
