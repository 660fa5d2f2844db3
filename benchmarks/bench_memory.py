"""Peak memory of ``negsample mine`` end to end, against the number of queries and the
largest positive count (issue 9, item 7; issue 10, "peak RSS = the index + a fixed budget").

A synthetic BEIR folder with precomputed embeddings (50,000 passages x 384, float32) is
written under $NEGSAMPLE_BENCH_DATA (/tmp/negsample-bench by default); each point runs
``negsample mine --embeddings ... --index exact`` (TopK, n=7, st-ntuple) in a fresh process
and reads its peak RSS (``ru_maxrss`` of the child).

1. Queries: 1,000 / 3,000 / 10,000 / 30,000 queries with one positive each.
2. Positives: 3,000 queries, one of which has 20,000 positives (the case that used to add
   608 MB: positives padded to the widest row), against the same 3,000 with one each.
3. RandomSampler and ``memory_budget_mb`` (issue 20, item 4): ``mine()`` in a fresh
   process over the same 50,000 x 384 corpus (``NumpyIndex``), peak RSS above the loaded
   data: n=20,000 for 512 queries, and n=7 for 3,000 queries one of which has 20,000
   positives, each at budgets of 64 and 256 MB; the output's own size (ids + scores) and a
   digest of the ids (the same at every budget) beside it.

    python benchmarks/bench_memory.py
    python benchmarks/bench_memory.py --quick    # 1,000 / 3,000 queries only
    python benchmarks/bench_memory.py --only random

Writes benchmarks/results/bench_memory{,_quick}.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

N_DOCS = 50_000
DIM = 384
RANDOM_HEADER = [
    "RandomSampler",
    "memory_budget_mb",
    "mine s",
    "peak above data MB",
    "output MB",
    "ids digest",
    "load",
]


def make_folder(n_queries: int, big: int, seed: int = 0) -> Path:
    """BEIR folder + embeddings; query 0 gets ``big`` positives when ``big`` > 1."""
    folder = C.DATA_DIR / f"beir-mem-d{N_DOCS}-q{n_queries}-p{big}-s{seed}"
    if (folder / "done").exists():
        return folder
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "emb").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    corpus = rng.standard_normal((N_DOCS, DIM), dtype=np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    pos = rng.integers(0, N_DOCS, n_queries)
    queries = corpus[pos] + 0.8 * rng.standard_normal((n_queries, DIM), dtype=np.float32) / 20
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for i in range(N_DOCS):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": f"passage number {i}"}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for i in range(n_queries):
            f.write(json.dumps({"_id": f"q{i}", "text": f"query number {i}"}) + "\n")
    with open(folder / "qrels" / "train.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for i, p in enumerate(pos.tolist()):
            if i == 0 and big > 1:
                for d in rng.choice(N_DOCS, big, replace=False).tolist():
                    f.write(f"q0\td{d}\t1\n")
            else:
                f.write(f"q{i}\td{p}\t1\n")
    np.save(folder / "emb" / "corpus.npy", corpus)
    np.save(folder / "emb" / "queries.npy", queries.astype(np.float32))
    (folder / "emb" / "corpus_ids.txt").write_text("".join(f"d{i}\n" for i in range(N_DOCS)))
    (folder / "emb" / "query_ids.txt").write_text("".join(f"q{i}\n" for i in range(n_queries)))
    (folder / "done").write_text("ok")
    return folder


def run_point(folder: Path, out: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "negsample",
        "mine",
        "--data",
        str(folder),
        "--embeddings",
        str(folder / "emb"),
        "--index",
        "exact",
        "--out",
        str(out),
        "--quiet",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise RuntimeError(f"negsample mine failed ({proc.returncode})")
    out.unlink(missing_ok=True)
    # ru_maxrss of the children is the largest so far: run the points smallest first
    return {"wall_s": wall, "peak_rss_mb": peak / 1024, "peak_before_mb": before / 1024}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("cli", "random"), default=None)
    args = ap.parse_args(argv)
    sizes = [1_000, 3_000] if args.quick else [1_000, 3_000, 10_000, 30_000]
    info = C.machine()
    out = C.DATA_DIR / "bench-memory-out.jsonl"
    rows, results = [], []
    points = [(f"{n:,} queries, 1 positive each", n, 1) for n in sizes] + [
        ("3,000 queries, one with 20,000 positives", 3_000, 20_000)
    ]
    # one fresh wrapper per point: ru_maxrss of a process's children only grows, so each
    # point's negsample process is the only child of its own wrapper
    for label, n_q, big in points if args.only != "random" else []:
        folder = make_folder(n_q, big)
        load0 = os.getloadavg()[0]
        res = C.run_worker(Path(__file__), {"folder": str(folder), "out": str(out)})
        res.update(label=label, n_queries=n_q, largest_positive_count=big, load=load0)
        results.append(res)
        rows.append([label, f"{res['wall_s']:.1f}", f"{res['peak_rss_mb']:,.0f}", f"{load0:.1f}"])
        print(rows[-1], file=sys.stderr, flush=True)
    md = ""
    if rows:
        md = (
            f"`negsample mine --embeddings ... --index exact` (TopK, n=7, st-ntuple) on a "
            f"synthetic BEIR folder, {N_DOCS:,} x {DIM} float32 precomputed embeddings; peak "
            f"RSS of the `negsample` process. {info.get('cpu', '')}, {info['affinity']} cores, "
            f"{info['date']}.\n\n"
            + C.markdown_table(["run", "wall s", "peak RSS MB", "load"], rows)
        )
    random_rows, random_results = [], []
    if args.only != "cli":
        paths = C.synthetic(N_DOCS, 3_000, DIM, seed=0)
        for label, n, n_q, big in [
            ("n=20,000, 512 queries", 20_000, 512, 1),
            ("n=7, 3,000 queries, one with 20,000 positives", 7, 3_000, 20_000),
        ]:
            for budget in (64, 256):
                cfg = {"random": True, "n": n, "n_queries": n_q, "big": big, "budget": budget}
                cfg.update({k: str(v) for k, v in paths.items()})
                load0 = os.getloadavg()[0]
                res = C.run_worker(Path(__file__), cfg)
                res.update(label=label, budget_mb=budget, load=load0)
                random_results.append(res)
                random_rows.append([
                    label, f"{budget}", f"{res['sample_s']:.1f}", f"{res['above_data_mb']:,.0f}",
                    f"{res['output_mb']:,.0f}", res["digest"], f"{load0:.1f}",
                ])  # fmt: skip
                print(random_rows[-1], file=sys.stderr, flush=True)
        md += (
            f"\n\n`mine()` with `RandomSampler` over {N_DOCS:,} x {DIM} float32 (NumpyIndex), "
            "in a fresh process per row: peak RSS above the loaded data while mining, beside "
            "the output's own size (ids int64 + scores float32; `mine()` holds its chunks and "
            "their concatenation at the end). The digest of the ids is the same at every "
            f"budget. {info.get('cpu', '')}, {info['affinity']} cores, {info['date']}; "
            "not measured on a GPU.\n\n" + C.markdown_table(RANDOM_HEADER, random_rows)
        )
    name = "bench_memory_quick" if args.quick else "bench_memory"
    if args.only:
        name += f"_{args.only}"
    payload = {"args": vars(args), "machine": info, "results": results}
    payload["random_sampler"] = random_results
    C.write_results(name, payload, md.strip() + "\n")
    return 0


def random_point(cfg: dict[str, Any]) -> dict[str, Any]:
    """``mine()`` with RandomSampler at one budget, peak RSS above the loaded data."""
    import hashlib

    import negsample as ns

    corpus = np.load(cfg["corpus"])
    queries = np.load(cfg["queries"])[: cfg["n_queries"]]
    positives: list[list[int]] = [[int(p)] for p in np.load(cfg["positives"])[: cfg["n_queries"]]]
    if cfg["big"] > 1:
        positives[0] = np.random.default_rng(1).choice(N_DOCS, cfg["big"], replace=False).tolist()
    index = ns.NumpyIndex(corpus, check=False)
    index.sq_norms(np.arange(1))  # anything cached on first use is part of the data
    C.reset_peak()
    base = C.rss_mb()
    t0 = time.perf_counter()
    negs = ns.mine(queries, index, positives, sampler=ns.RandomSampler(), n=cfg["n"], seed=0,
                   memory_budget_mb=cfg["budget"])  # fmt: skip
    return {
        "sample_s": time.perf_counter() - t0,
        "above_data_mb": C.peak_rss_mb() - base,
        "output_mb": (negs.ids.nbytes + negs.scores.nbytes) / 2**20,
        "digest": hashlib.sha256(negs.ids.tobytes()).hexdigest()[:12],
    }


def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    if cfg.get("random"):
        return random_point(cfg)
    # the negsample child's own peak (this wrapper's children are that one process)
    return run_point(Path(cfg["folder"]), Path(cfg["out"]))


if __name__ == "__main__":
    if C.worker_main(sys.argv[1:], worker):
        raise SystemExit(0)
    raise SystemExit(main())
