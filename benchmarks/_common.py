"""Helpers shared by the benchmark scripts: machine description, peak memory, fresh
worker subprocesses, seeded synthetic data on disk, markdown tables.

Benchmarks are not tests: they time things and write their figures to
``benchmarks/results/``, which docs/benchmarks.md quotes.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DATA_DIR = Path(
    os.environ.get("NEGSAMPLE_BENCH_DATA", Path(tempfile.gettempdir()) / "negsample-bench")
)


# -- memory ---------------------------------------------------------------------------------
def _status(field: str) -> float:
    """A ``/proc/self/status`` field in MiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def status_mb(field: str) -> float:
    """Any ``/proc/self/status`` memory field in MiB (``RssAnon``, ``RssFile``...)."""
    return _status(field)


def rss_mb() -> float:
    return _status("VmRSS")


def peak_rss_mb() -> float:
    """Peak resident set size of this process since start (or since :func:`reset_peak`)."""
    return _status("VmHWM")


def reset_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0 ``clear_refs``); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# -- machine --------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """What the figures were measured on, including the load other users put on it."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        info["mem_total_gb"] = round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
        )
    except (OSError, ValueError):
        pass
    for mod in ("faiss", "negsample", "sentence_transformers", "torch", "datasets"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # not installed, or no __version__
            pass
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["cuda"] = torch.version.cuda
    except Exception:  # a broken CUDA install: the figures say no GPU
        pass
    return info


def load_note(before: Sequence[float], after: Sequence[float]) -> str:
    return f"1-min load average {before[0]:.2f} before, {after[0]:.2f} after"


# -- workers --------------------------------------------------------------------------------
def run_worker(
    script: str | Path, config: dict[str, Any], timeout: float | None = None
) -> dict[str, Any]:
    """Run ``python script --worker JSON`` in a fresh interpreter (so its peak RSS is its
    own) and return the JSON object it prints on its last stdout line."""
    cmd = [sys.executable, str(script), "--worker", json.dumps(config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"worker failed ({proc.returncode}): {config}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def worker_main(argv: Sequence[str], fn: Callable[[dict[str, Any]], dict[str, Any]]) -> bool:
    """If ``argv`` is ``--worker JSON``, run ``fn(config)``, print its JSON and return True."""
    if len(argv) >= 2 and argv[0] == "--worker":
        out = fn(json.loads(argv[1]))
        out.setdefault("peak_rss_mb", peak_rss_mb())
        print(json.dumps(out))
        return True
    return False


@contextmanager
def timer(store: dict[str, float], key: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    store[key] = store.get(key, 0.0) + time.perf_counter() - t0


def median(xs: Sequence[float]) -> float:
    return float(np.median(np.asarray(xs, dtype=np.float64)))


# -- synthetic data -------------------------------------------------------------------------
def synthetic(
    n_docs: int,
    n_queries: int,
    dim: int = 384,
    *,
    dtype: str = "float32",
    seed: int = 0,
    noise: float = 0.8,
    block: int = 65536,
) -> dict[str, Path]:
    """A seeded synthetic corpus and queries written as ``.npy`` files under
    :data:`DATA_DIR` (reused if present), never loaded whole into memory.

    Corpus rows are L2-normalised Gaussian vectors; query ``i`` is
    ``normalize(x[p_i] + noise * eps / sqrt(dim))`` with ``p_i`` its one labelled positive
    (stored in ``positives.npy``). Everything is a function of ``seed``.
    """
    name = f"synth-n{n_docs}-q{n_queries}-d{dim}-{dtype}-s{seed}"
    folder = DATA_DIR / name
    paths = {k: folder / f"{k}.npy" for k in ("corpus", "queries", "positives")}
    if (folder / "done").exists():
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    corpus = np.lib.format.open_memmap(paths["corpus"], mode="w+", dtype=dtype, shape=(n_docs, dim))

    def fill(s: int, out: Any = corpus) -> None:  # block s: a function of (seed, s) alone
        m = min(block, n_docs - s)
        x = np.random.default_rng([seed, 0, s]).standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s : s + m] = x

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(fill, range(0, n_docs, block)))
    corpus.flush()
    rng = np.random.default_rng([seed, 1])
    pos = rng.integers(0, n_docs, size=n_queries, dtype=np.int64)
    np.save(paths["positives"], pos)
    queries = np.lib.format.open_memmap(
        paths["queries"], mode="w+", dtype="float32", shape=(n_queries, dim)
    )
    for s in range(0, n_queries, block):
        p = pos[s : s + block]
        order = np.argsort(p)  # read the memmap in increasing row order
        x = np.empty((p.size, dim), np.float32)
        x[order] = np.asarray(corpus[p[order]], dtype=np.float32)
        eps = np.random.default_rng([seed, 2, s]).standard_normal(x.shape, dtype=np.float32)
        x += noise * eps / np.sqrt(dim)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        queries[s : s + p.size] = x
    queries.flush()
    del corpus, queries
    (folder / "done").write_text("ok")
    return paths


# -- output ---------------------------------------------------------------------------------
def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict[str, Any], markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + "\n")
    print(markdown)
    print(f"\nwrote {RESULTS / name}.json and .md", file=sys.stderr)
