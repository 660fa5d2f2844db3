"""The encoding stage on Ray Data against ``negsample.encode`` in one process (issue 19,
item 8), side by side on the same texts.

On this machine: a Ray node of 2 CPUs started with ``ray start`` (loopback only, its own
temp folder and auth token, stopped by process id), then, for the same texts and model:

- ``negsample.encode`` in this process with torch at 1 and at 2 threads (the model
  loaded before the clock starts, as a long-running process has it);
- ``encode_ray`` with a fixed pool of 1 and of 2 actors of 1 CPU each (Ray gives each
  one torch thread), every run a new Ray Data execution: its time includes starting the
  actors and loading the model in each, as every call of the stage pays;
- the stage's fixed cost alone: ``encode_ray`` of one shard of 16 texts on 1 actor.

Texts: synthetic passages (words of a fixed English vocabulary, lengths log-normal
around 24 words, 5 to 90), seeded; model: the bundled all-MiniLM-L6-v2, max_seq_length
128, batch 64, float32, no cache; 8 shards (so that two actors share the work). Medians
of ``--repeats`` rounds, the variants interleaved in each round. The vectors of each
stage run are compared with ``encode``'s.

On a 2-core machine shared with other users the point is the stage's overhead, not a
speed-up: two actors have the cores one process with two threads has.

    flock /tmp/negsample-bench.lock python benchmarks/bench_ray_stages.py --quick  # ~2 min
    flock /tmp/negsample-bench.lock python benchmarks/bench_ray_stages.py          # ~5 min

Writes benchmarks/results/bench_ray_stages{,_quick}.json and .md. Not measured on a GPU.
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.ray_cluster
import _common as C
from bench_encode import WORDS


def passages(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(24), 0.45, n).astype(int), 5, 90)
    vocab = np.array(WORDS)
    return [" ".join(vocab[rng.integers(0, vocab.size, k)]) for k in lengths]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--texts", type=int, default=1600)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="400 texts, 1 round")
    ap.add_argument("--model", default=None, help="model folder (default: bundled MiniLM)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.texts, args.repeats = 400, 1
    from tests.ray_cluster import DRIVER_ENV, LocalCluster

    os.environ.update(DRIVER_ENV)  # before Ray is imported: the driver keeps 127.0.0.1
    import ray
    import torch

    import negsample as ns
    from negsample.distributed import connect, encode_ray
    from negsample.io.encoding import _model_path

    model = _model_path(args.model)
    texts = passages(args.texts)
    shard = -(-args.texts // 8)
    common: dict[str, Any] = {"batch_size": 64, "max_seq_length": 128, "progress": False}
    info = C.machine()
    load_before = os.getloadavg()
    threads_before = torch.get_num_threads()

    def local(threads: int) -> Any:
        torch.set_num_threads(threads)
        try:
            return ns.encode(texts, model, device="cpu", shard_size=shard, **common)
        finally:
            torch.set_num_threads(threads_before)

    def staged(actors: int, which: list[str] = texts, size: int = shard) -> Any:
        return encode_ray(
            which,
            model,
            workers=actors,
            min_workers=actors,
            cpus_per_worker=1.0,
            shard_size=size,
            **common,
        )

    configs = [
        ("negsample.encode, 1 thread", 1, lambda: local(1)),
        ("negsample.encode, 2 threads", 2, lambda: local(2)),
        ("encode_ray, 1 actor x 1 CPU", 1, lambda: staged(1)),
        ("encode_ray, 2 actors x 1 CPU", 2, lambda: staged(2)),
    ]
    results: dict[str, Any] = {k: {"cores": c, "runs": [], "loads": []} for k, c, _ in configs}
    fixed: list[float] = []
    vectors: dict[str, Any] = {}
    local(2)  # warm-up: the model loaded and cached in this process
    cluster = LocalCluster(nodes=1, cpus=2).start()
    try:
        connect(cluster.address)
        staged(1, texts[:16], 16)  # warm-up: Ray Data imported, the workers' files read
        for r in range(args.repeats):
            for key, _cores, run in configs:
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                vectors[key] = np.asarray(run())
                wall = time.perf_counter() - t0
                results[key]["runs"].append(wall)
                results[key]["loads"].append(load)
                print(f"round {r}: {key}: {wall:.2f}s (load {load:.1f})", file=sys.stderr)
            t0 = time.perf_counter()
            staged(1, texts[:16], 16)
            fixed.append(time.perf_counter() - t0)
            print(f"round {r}: 16 texts on 1 actor: {fixed[-1]:.2f}s", file=sys.stderr)
    finally:
        ray.shutdown()
        cluster.stop()
    load_after = os.getloadavg()
    ref = vectors["negsample.encode, 1 thread"]
    base = {
        1: C.median(results[configs[0][0]]["runs"]),
        2: C.median(results[configs[1][0]]["runs"]),
    }
    rows = []
    fixed_s = C.median(fixed)
    for key, res in results.items():
        res["median_s"] = C.median(res["runs"])
        res["texts_per_s"] = args.texts / res["median_s"]
        res["vs_encode_pct"] = 100 * (res["median_s"] / base[res["cores"]] - 1)
        res["max_abs_diff"] = float(np.abs(vectors[key] - ref).max())
        rows.append(
            [
                key,
                res["cores"],
                res["median_s"],
                res["texts_per_s"],
                f"{res['vs_encode_pct']:+.1f}%",
                f"{res['max_abs_diff']:.1e}",
            ]
        )
    header = [
        "run",
        "cores",
        "median s",
        "texts / s",
        "against encode at equal cores",
        "max abs diff vs encode, 1 thread",
    ]
    md = (
        f"Encoding {args.texts:,} synthetic passages (mean "
        f"{np.mean([len(t.split()) for t in texts]):.0f} words) with all-MiniLM-L6-v2, "
        f"max_seq_length 128, batch 64, float32 on the CPU, {args.texts // shard + bool(args.texts % shard)} "
        f"shards of {shard}; medians of {args.repeats} rounds. Ray {ray.__version__}, one "
        f"local node of 2 CPUs; {info.get('cpu', '')}, {info['affinity']} cores shared with "
        f"other users; torch {torch.__version__}; {C.load_note(load_before, load_after)}; "
        f"{info['date']}. Each encode_ray run is a new Ray Data execution: its actors start "
        "and load the model within the time shown. Not measured on a GPU.\n\n"
        + C.markdown_table(header, rows)
        + f"\n\nThe stage's fixed cost (16 texts, one shard, 1 actor: start, load, encode, "
        f"stop): {fixed_s:.2f} s (median of {len(fixed)})."
    )
    name = "bench_ray_stages_quick" if args.quick else "bench_ray_stages"
    C.write_results(
        name,
        {
            "args": vars(args),
            "machine": info,
            "load": [list(load_before), list(load_after)],
            "results": results,
            "fixed_cost_s": fixed,
        },
        md,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
