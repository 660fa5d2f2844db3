"""`negsample mine` on NFCorpus (train split, 7 negatives): wall time, peak memory, and how
the time splits between loading, encoding, index, search, sampling and writing.

Each configuration runs the real command in a fresh process under ``/usr/bin/time -v``
(peak resident memory of the whole process) and reads the phase timings from
``--stats-json``. Configurations with precomputed embeddings are repeated (median
reported); encoding with the default model runs once into an empty cache (a few minutes on
2 CPU cores), then once more from the cache.

    python benchmarks/bench_cli_nfcorpus.py [--data ../shared/data/nfcorpus] [--repeats 3]

Writes benchmarks/results/cli_nfcorpus.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
DEFAULT_DATA = (
    Path(os.environ.get("NEGSAMPLE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "nfcorpus"
)


def run_once(args: list[str], work: Path) -> dict[str, object]:
    stats = work / "stats.json"
    stats.unlink(missing_ok=True)
    cmd = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "negsample",
        *args,
        "--quiet",
        "--stats-json",
        str(stats),
    ]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    info = json.loads(stats.read_text())
    out = Path(args[args.index("--out") + 1])
    size = out.stat().st_size
    out.unlink()
    return {
        "wall_s": wall,
        "peak_rss_mb": int(m.group(1)) / 1024 if m else None,
        "timings": info["timings"],
        "output_bytes": size,
        "write": info["write"],
        "mining": {k: info["mining"][k] for k in ("n_rows", "short_rows", "padded")},
        "loadavg_1min_before": load,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--skip-encode",
        action="store_true",
        help="leave out the model runs (about 10 minutes); their rows from the previous "
        "results file are kept, each with the commit it was measured at",
    )
    a = ap.parse_args()
    if not (a.data / "corpus.jsonl").is_file():
        raise SystemExit(f"{a.data} not found (set NEGSAMPLE_SHARED_DATA or pass --data)")
    emb = a.data / "embeddings" / "all-MiniLM-L6-v2"
    results = []
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        work = Path(tmp)
        base = ["mine", "--data", str(a.data), "--split", "train", "--n", "7", "--seed", "0"]
        configs = [
            (
                "precomputed, topk, exact, parquet",
                [
                    "--embeddings",
                    str(emb),
                    "--sampler",
                    "topk",
                    "--index",
                    "exact",
                    "--format",
                    "parquet",
                    "--out",
                    str(work / "o.parquet"),
                ],
                a.repeats,
            ),
            (
                "precomputed, ReSa2Sampler(k2=75), HNSW32, parquet",
                [
                    "--embeddings",
                    str(emb),
                    "--sampler",
                    "ReSa2Sampler(k2=75)",
                    "--index",
                    "HNSW32",
                    "--format",
                    "parquet",
                    "--out",
                    str(work / "o.parquet"),
                ],
                a.repeats,
            ),
            (
                "precomputed, topk, exact, st-ntuple --scores",
                [
                    "--embeddings",
                    str(emb),
                    "--sampler",
                    "topk",
                    "--index",
                    "exact",
                    "--format",
                    "st-ntuple",
                    "--scores",
                    "--out",
                    str(work / "o.jsonl"),
                ],
                a.repeats,
            ),
        ]
        if not a.skip_encode:
            cache = str(work / "cache")
            configs += [
                (
                    "default model (encode, empty cache), topk, exact, parquet",
                    [
                        "--cache-dir",
                        cache,
                        "--sampler",
                        "topk",
                        "--index",
                        "exact",
                        "--format",
                        "parquet",
                        "--out",
                        str(work / "o.parquet"),
                    ],
                    1,
                ),
                (
                    "default model (from the cache), topk, exact, parquet",
                    [
                        "--cache-dir",
                        cache,
                        "--sampler",
                        "topk",
                        "--index",
                        "exact",
                        "--format",
                        "parquet",
                        "--out",
                        str(work / "o.parquet"),
                    ],
                    a.repeats,
                ),
            ]
        for label, extra, reps in configs:
            runs = [run_once(base + extra, work) for _ in range(reps)]
            walls = [r["wall_s"] for r in runs]
            med = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
            cmd = "negsample " + shlex.join(base + extra).replace(str(work), "$TMP")
            row = {
                "config": label,
                "commit": commit,
                "command": cmd.replace(str(a.data), "../shared/data/nfcorpus"),
                "repeats": reps,
                "wall_s_median": statistics.median(walls),
                "wall_s_all": walls,
                "peak_rss_mb_max": max(r["peak_rss_mb"] or 0 for r in runs),
                "median_run": med,
            }
            results.append(row)
            print(
                f"{label}: {row['wall_s_median']:.1f}s, {row['peak_rss_mb_max']:.0f} MB, "
                f"{json.dumps({k: round(v, 2) for k, v in med['timings'].items()})}",
                file=sys.stderr,
            )
    out = HERE / "results" / "cli_nfcorpus.json"
    out.parent.mkdir(exist_ok=True)
    if a.skip_encode and out.is_file():
        kept = [
            r for r in json.loads(out.read_text())["results"] if r["config"].startswith("default")
        ]
        for r in kept:
            r.setdefault("commit", "f6beeb9")  # the first results file did not record it
        results += kept
    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": next(
            (
                ln.split(":", 1)[1].strip()
                for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")
            ),
            platform.processor(),
        ),
    }
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    os.replace(tmp_out, out)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
