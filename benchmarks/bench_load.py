"""``load_beir`` against the bare JSON readers on the same ``corpus.jsonl`` (issue 17).

A seeded synthetic BEIR folder with MS MARCO-like passages (lognormal lengths around 56
words, about 340 bytes a line, some non-ASCII words and escapes; empty titles as in MS
MARCO, or a title on every other document with ``--titles``), ``queries.jsonl`` with one
query per 16 documents and one judgement each. In ONE process, alternating, medians of
``--repeats``:

- ``orjson``: a bare loop, ``[orjson.loads(line) for line in file]`` over corpus.jsonl;
- ``msgspec``: ``msgspec.json.Decoder().decode_lines(file.read())``;
- ``polars``: ``polars.read_ndjson(corpus.jsonl)`` (2 threads here);
- ``pyarrow.json``: ``pyarrow.json.read_json(corpus.jsonl)``;
- ``load_beir, line by line``: the reference reader alone (``fast=False``; what a numpy-
  only install runs), the whole dataset (corpus, queries, qrels);
- ``load_beir``: the whole dataset, fast path (pyarrow) included.

The bare readers read the corpus only and check nothing; ``load_beir`` also reads the
queries and the qrels and checks every rule. Peak memory is measured in a fresh
subprocess per reader: the peak RSS above the RSS after the imports and a first read of a
2,000-line folder (one-time costs: thread pools, allocator arenas), against the size of
corpus.jsonl.

    python benchmarks/bench_load.py            # 200,000 and 1,000,000 lines
    python benchmarks/bench_load.py --quick    # 200,000 lines, 1 repeat of memory

Goals: ``load_beir`` within 1.5x of the orjson loop at 200k lines; its peak RSS within 2x
of the corpus file. Writes benchmarks/results/bench_load{,_quick}.json and .md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

GOAL_TIME = 1.5
GOAL_RSS = 2.0
_WORDS = (
    "the of and a to in is for that was on with as by it are be or from at this an which "
    "have not has but were can their they one all also been more when its into other "
    "café naïve über 東京 Zürich résumé"
).split()


def build(n_docs: int, *, titles: bool, seed: int = 0) -> Path:
    """The BEIR folder (reused when complete): ``n_docs`` passages, ``n_docs // 16``
    queries with one positive each."""
    name = f"beir-n{n_docs}-{'titles' if titles else 'notitles'}-s{seed}"
    root = C.DATA_DIR / name
    if (root / "done").exists():
        return root
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, n_docs])
    vocab = np.array(_WORDS + [f"w{i}" for i in range(5000)] + ['q"uote', "tab\tx"], object)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for s in range(0, n_docs, 10_000):
            m = min(10_000, n_docs - s)
            lengths = np.clip(rng.lognormal(np.log(52), 0.45, m).astype(int), 3, 400)
            words = vocab[rng.integers(0, vocab.size, int(lengths.sum()))]
            cut = np.concatenate([[0], np.cumsum(lengths)])
            for j in range(m):
                i = s + j
                text = " ".join(words[cut[j] : cut[j + 1]])
                title = " ".join(words[cut[j] : cut[j] + 4]).title() if titles and i % 2 else ""
                rec = {"_id": str(i), "title": title, "text": text}
                f.write(json.dumps(rec, ensure_ascii=bool(i % 3)) + "\n")
    n_q = max(1, n_docs // 16)
    pos = rng.integers(0, n_docs, n_q)
    with open(root / "queries.jsonl", "w", encoding="utf-8") as f:
        for i in range(n_q):
            f.write(json.dumps({"_id": f"q{i}", "text": f"what is {vocab[i % 40]} {i}?"}) + "\n")
    with open(root / "qrels" / "train.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"q{i}\t{p}\t1\n" for i, p in enumerate(pos.tolist()))
    (root / "done").write_text("ok")
    return root


# -- the readers ---------------------------------------------------------------------------
def _orjson(root: Path) -> int:
    import orjson

    with open(root / "corpus.jsonl", "rb") as f:
        rows = [orjson.loads(line) for line in f]
    return len(rows)


def _msgspec(root: Path) -> int:
    import msgspec

    with open(root / "corpus.jsonl", "rb") as f:
        return len(msgspec.json.Decoder().decode_lines(f.read()))


def _polars(root: Path) -> int:
    import polars

    return int(polars.read_ndjson(root / "corpus.jsonl").height)


def _pyarrow(root: Path) -> int:
    import pyarrow.json as pj

    return int(pj.read_json(root / "corpus.jsonl").num_rows)


def _load(root: Path, fast: bool) -> int:
    from negsample.io import data

    ds = data._load(
        root,
        "train",
        1,
        root / "corpus.jsonl",
        root / "queries.jsonl",
        root / "qrels" / "train.tsv",
        fast=fast,
    )
    return ds.n_corpus


def _load_beir(root: Path) -> int:
    import negsample as ns

    return ns.load_beir(root, "train").n_corpus


def build_embeddings(root: Path, n_docs: int, dim: int = 384) -> Path:
    """``root/embeddings``: seeded unit vectors for every document and query, ids in the
    dataset's order (reused when complete)."""
    emb = root / "embeddings"
    if (emb / "done").exists():
        return emb
    emb.mkdir(exist_ok=True)
    n_q = max(1, n_docs // 16)
    for name, n, prefix in (("corpus", n_docs, ""), ("queries", n_q, "q")):
        arr = np.lib.format.open_memmap(emb / f"{name}.npy", "w+", np.float32, (n, dim))
        for s in range(0, n, 65536):
            m = min(65536, n - s)
            x = np.random.default_rng([n, s]).standard_normal((m, dim), dtype=np.float32)
            arr[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        arr.flush()
        del arr
        ids = "corpus_ids.txt" if name == "corpus" else "query_ids.txt"
        (emb / ids).write_text("".join(f"{prefix}{i}\n" for i in range(n)))
    (emb / "done").write_text("ok")
    return emb


def _bare_check(emb: Path) -> float:
    """The floor: the corpus vectors read once in 64 MiB blocks, ``np.isfinite().all()``."""
    arr = np.load(emb / "corpus.npy", mmap_mode="r")
    step = (64 << 20) // (4 * arr.shape[1])
    t0 = time.perf_counter()
    for s in range(0, arr.shape[0], step):
        if not np.isfinite(arr[s : s + step]).all():
            raise RuntimeError("not finite")
    return time.perf_counter() - t0


def _load_embeddings(emb: Path, ds: Any) -> float:
    import negsample as ns

    t0 = time.perf_counter()
    got = ns.load_embeddings(emb, ds)
    dt = time.perf_counter() - t0
    if got.corpus.shape[0] != ds.n_corpus:
        raise RuntimeError("wrong rows")
    return dt


READERS: dict[str, Callable[[Path], int]] = {
    "orjson": _orjson,
    "msgspec": _msgspec,
    "polars": _polars,
    "pyarrow.json": _pyarrow,
    "load_beir, line by line": lambda root: _load(root, fast=False),
    "load_beir": _load_beir,
}


def worker(config: dict[str, Any]) -> dict[str, Any]:
    """One reader in a fresh process: the peak RSS above the RSS after its imports."""
    import msgspec  # noqa: F401
    import orjson  # noqa: F401
    import polars  # noqa: F401
    import pyarrow.compute
    import pyarrow.json  # noqa: F401

    import negsample  # noqa: F401
    from negsample.io import _jsonl, data  # noqa: F401

    root = Path(config["root"])
    # one-time costs (thread pools, allocator arenas, first calls) are not the corpus's:
    # every reader first reads a 2,000-line folder
    READERS[config["reader"]](Path(config["warmup"]))
    gc.collect()
    base = C.rss_mb()
    reset = C.reset_peak()
    t0 = time.perf_counter()
    n = READERS[config["reader"]](root)
    dt = time.perf_counter() - t0
    return {"rows": n, "seconds": dt, "base_rss_mb": base, "peak_reset": reset}


def main(argv: list[str] | None = None) -> int:
    if C.worker_main(sys.argv[1:] if argv is None else argv, worker):
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default="200000,1000000")
    ap.add_argument("--titles", action="store_true", help="a title on every other document")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes = "200000"
    info = C.machine()
    load0 = os.getloadavg()
    results, rows = [], []
    emb_rows: list[list[Any]] = []
    emb_results: list[dict[str, Any]] = []
    warmup = build(2000, titles=args.titles)
    for n in [int(x) for x in args.sizes.split(",")]:
        root = build(n, titles=args.titles)
        size_mb = (root / "corpus.jsonl").stat().st_size / 2**20
        times: dict[str, list[float]] = {k: [] for k in READERS}
        cpu: dict[str, list[float]] = {k: [] for k in READERS}
        for _ in range(args.repeats):  # alternate the readers, in one process
            for name, fn in READERS.items():
                gc.collect()
                c0, t0 = time.process_time(), time.perf_counter()
                got = fn(root)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                if got != n:
                    raise RuntimeError(f"{name} read {got} rows, expected {n}")
        med = {k: C.median(v) for k, v in times.items()}
        cpu_med = {k: C.median(v) for k, v in cpu.items()}
        # precomputed embeddings for the same dataset: ids and the finiteness check
        import negsample as ns

        emb = build_embeddings(root, n)
        ds = ns.load_beir(root, "train")
        gb = (emb / "corpus.npy").stat().st_size / 2**30
        e_times: dict[str, list[float]] = {"bare": [], "load_embeddings": []}
        for _ in range(args.repeats):
            e_times["bare"].append(_bare_check(emb))
            e_times["load_embeddings"].append(_load_embeddings(emb, ds))
        e_med = {k: C.median(v) for k, v in e_times.items()}
        emb_rows.append(
            [
                f"{n:,}",
                f"{gb:.2f}",
                e_med["bare"],
                e_med["load_embeddings"],
                e_med["load_embeddings"] / e_med["bare"],
            ]
        )
        emb_results.append({"n": n, "corpus_npy_gb": gb, "seconds": e_times, "median_s": e_med})
        del ds
        memory = {
            k: C.run_worker(
                __file__, {"root": str(root), "warmup": str(warmup), "reader": k}, timeout=1800
            )
            for k in READERS
        }
        for name in READERS:
            peak = memory[name]["peak_rss_mb"] - memory[name]["base_rss_mb"]
            ratio = med[name] / med["orjson"]
            rss_ratio = peak / size_mb
            goal = ""
            if name == "load_beir":
                ok = (n > 200_000 or ratio <= GOAL_TIME) and rss_ratio <= GOAL_RSS
                goal = "met" if ok else "MISSED"
            cpu_ratio = cpu_med[name] / cpu_med["orjson"]
            rows.append(
                [f"{n:,}", name, med[name], ratio, cpu_med[name], cpu_ratio, peak, rss_ratio, goal]
            )
            results.append(
                {
                    "n": n,
                    "reader": name,
                    "seconds": times[name],
                    "median_s": med[name],
                    "ratio_to_orjson": ratio,
                    "cpu_seconds": cpu[name],
                    "median_cpu_s": cpu_med[name],
                    "cpu_ratio_to_orjson": cpu_ratio,
                    "corpus_mb": size_mb,
                    "peak_rss_above_imports_mb": peak,
                    "rss_ratio_to_file": rss_ratio,
                    "worker": memory[name],
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    load1 = os.getloadavg()
    header = [
        "lines",
        "reader",
        "median s",
        "/ orjson",
        "CPU s (all threads)",
        "CPU / orjson",
        "peak RSS MB",
        "RSS / file",
        f"goal (<= {GOAL_TIME}x at 200k, <= {GOAL_RSS}x RSS)",
    ]
    sizes = ", ".join(
        f"{r['n']:,} lines = {r['corpus_mb']:.0f} MB" for r in results if r["reader"] == "orjson"
    )
    md = (
        f"Reading a synthetic MS MARCO-like BEIR corpus ({sizes}; "
        f"{'a title on every other document' if args.titles else 'empty titles'}), medians "
        f"of {args.repeats} alternating runs in one process; peak RSS above the imports in a "
        f"fresh process per reader, after a warm-up read of 2,000 lines; CPU time is the "
        f"process's, all threads (pyarrow and polars parse on 2 threads, orjson and msgspec on "
        f"one), which a loaded machine inflates less than wall time. `load_beir` reads corpus, "
        f"queries and qrels and checks "
        f"them; the others read corpus.jsonl only. {info.get('cpu', '')}, "
        f"{info['affinity']} cores, {info['date']}, {C.load_note(load0, load1)}. "
        "Not measured on a GPU machine (CPU work only).\n\n"
        "    python benchmarks/bench_load.py"
        + (" --quick" if args.quick else "")
        + "\n\n"
        + C.markdown_table(header, rows)
        + "\n\n`load_embeddings` on the same datasets (corpus.npy: n x 384 float32 unit vectors, "
        "ids in the dataset's order; queries n / 16): the id files read and compared, every "
        "row checked finite in float32, against the floor of reading corpus.npy once in "
        "64 MiB blocks with `np.isfinite().all()`; medians, pages cached.\n\n"
        + C.markdown_table(
            ["lines", "corpus.npy GB", "bare isfinite s", "load_embeddings s", "/ bare"],
            emb_rows,
        )
    )
    name = "bench_load" + ("_titles" if args.titles else "") + ("_quick" if args.quick else "")
    C.write_results(
        name,
        {
            "args": vars(args),
            "machine": info,
            "load": [load0, load1],
            "results": results,
            "embeddings": emb_results,
        },
        md,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
