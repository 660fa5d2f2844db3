"""``negsample mine`` end to end on a synthetic MS MARCO-sized dataset with precomputed
embeddings (issue 10): the CLI a user runs, from BEIR files to the written training file.

The dataset is built from ``_common.synthetic`` (the same seeded vectors as
``bench_torch.py --device``, 8,841,823 x 384 float16 by default): ``corpus.jsonl`` (one
short synthetic text per passage), ``queries.jsonl`` and ``qrels/train.tsv`` for the first
``--queries`` queries (one planted positive each), and an embeddings folder whose
``corpus.npy`` / ``queries.npy`` are links to the generated arrays. Then, in a fresh
process each (peak RSS its own)::

    negsample mine --data D --split train --embeddings D/embeddings --index INDEX \\
        --sampler SAMPLER --n 7 --seed 0 --format FORMAT --out OUT --quiet --stats-json S

Wall time, peak RSS (``getrusage`` of the child), the CLI's own phase timings and the
output size are recorded.

    python benchmarks/bench_cli_large.py --index torch:cuda             # on a GPU
    python benchmarks/bench_cli_large.py --docs 200000 --queries 20000 --index exact

Writes ``results/bench_cli_large[_<index>].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

ROOT = Path(__file__).resolve().parents[1]
FULL_DOCS = 8_841_823
LINES = 200_000  # lines written at a time


def build_dataset(n_docs: int, n_all: int, n_queries: int, dim: int) -> Path:
    """The BEIR folder (reused when complete) over ``synthetic(n_docs, n_all)``."""
    paths = C.synthetic(n_docs, n_all, dim, dtype="float16")
    folder = paths["corpus"].parent / f"beir-q{n_queries}"
    if (folder / "done").exists():
        return folder
    emb = folder / "embeddings"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    emb.mkdir(exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for s in range(0, n_docs, LINES):
            f.write(
                "".join(
                    f'{{"_id": "d{i}", "title": "", "text": "synthetic passage {i}"}}\n'
                    for i in range(s, min(s + LINES, n_docs))
                )
            )
    with open(emb / "corpus_ids.txt", "w") as f:
        for s in range(0, n_docs, LINES):
            f.write("".join(f"d{i}\n" for i in range(s, min(s + LINES, n_docs))))
    with open(folder / "queries.jsonl", "w") as f:
        f.write(
            "".join(f'{{"_id": "q{i}", "text": "synthetic query {i}"}}\n' for i in range(n_queries))
        )
    with open(emb / "query_ids.txt", "w") as f:
        f.write("".join(f"q{i}\n" for i in range(n_all)))
    pos = np.load(paths["positives"])[:n_queries]
    with open(folder / "qrels" / "train.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.write("".join(f"q{i}\td{p}\t1\n" for i, p in enumerate(pos.tolist())))
    for name in ("corpus", "queries"):
        link = emb / f"{name}.npy"
        link.unlink(missing_ok=True)
        link.symlink_to(paths[name])
    (folder / "done").write_text("ok")
    return folder


def run_cli(args: list[str], stats: Path) -> dict[str, Any]:
    """One ``negsample`` run in a child process: wall, peak RSS, the stats JSON."""
    cmd = [sys.executable, "-m", "negsample", *args, "--quiet", "--stats-json", str(stats)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr[-4000:]}")
    info = json.loads(stats.read_text())
    return {
        "wall_s": wall,
        # ru_maxrss of the children is a running maximum: exact for the first run, an upper
        # bound after it (each configuration runs in its own invocation of this script)
        "peak_rss_mb": peak / 1024,
        "peak_rss_is_max_of_earlier": before > 0,
        "timings": info.get("timings"),
        "write": info.get("write"),
        "mining": {k: info["mining"].get(k) for k in ("n_rows", "short_rows", "padded")},
        "stderr_tail": proc.stderr[-2000:],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--docs", type=int, default=FULL_DOCS)
    ap.add_argument("--queries", type=int, default=100_000, help="queries mined (train split)")
    ap.add_argument(
        "--all-queries",
        type=int,
        default=500_000,
        help="queries generated (the same arrays as bench_torch.py's device run)",
    )
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--index", default="torch:cuda")
    ap.add_argument("--sampler", default="resa2")
    ap.add_argument("--format", default="st-ntuple")
    args = ap.parse_args(argv)
    args.all_queries = max(args.all_queries, args.queries)
    info = C.machine()
    load0 = list(os.getloadavg())
    t0 = time.perf_counter()
    data = build_dataset(args.docs, args.all_queries, args.queries, args.dim)
    prep = time.perf_counter() - t0
    print(f"dataset ready in {prep:.1f} s: {data}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-cli-large-") as tmp:
        out = Path(tmp) / "out.jsonl"
        cli = [
            "mine",
            "--data",
            str(data),
            "--split",
            "train",
            "--embeddings",
            str(data / "embeddings"),
            "--index",
            args.index,
            "--sampler",
            args.sampler,
            "--n",
            "7",
            "--seed",
            "0",
            "--format",
            args.format,
            "--out",
            str(out),
        ]
        res = run_cli(cli, Path(tmp) / "stats.json")
        res["output_bytes"] = out.stat().st_size
    load1 = list(os.getloadavg())
    command = "negsample " + shlex.join(cli).replace(str(data), "$DATA").replace(tmp, "$TMP")
    t = res["timings"] or {}
    rows = [
        [
            f"{args.docs:,} x {args.dim} float16, {args.queries:,} queries",
            args.index,
            args.sampler,
            res["wall_s"],
            res["peak_rss_mb"],
            ", ".join(f"{k} {v:.1f}" for k, v in t.items() if k != "total"),
            f"{res['output_bytes'] / 2**20:,.0f} MB",
        ]
    ]
    header = ["dataset", "--index", "--sampler", "wall s", "peak RSS MB", "phases (s)", "output"]
    md = (
        f"`negsample mine` end to end in a fresh process, precomputed embeddings "
        f"(`corpus.npy` float16, memory-mapped), format {args.format}. "
        f"{', '.join(info.get('gpus', [])) or 'no GPU'}; {info.get('cpu', '')} "
        f"({info['affinity']} cores), torch {info.get('torch')}, {info['date']}, "
        f"{C.load_note(load0, load1)}. Dataset files written beforehand ({prep:.0f} s, not "
        f"counted).\n\nCommand: `{command}`\n\n" + C.markdown_table(header, rows)
    )
    tag = args.index.replace(":", "_")
    payload = {"args": vars(args), "machine": info, "command": command, "result": res}
    C.write_results(f"bench_cli_large_{tag}", payload, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
