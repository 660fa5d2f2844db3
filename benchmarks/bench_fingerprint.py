"""What fingerprinting the inputs of a resumable run costs (issue 20): cold and cached.

Side by side in one process, medians of ``--repeats``:

- a 1 GB file (a data or embeddings file): ``identify_file`` (the function the command
  line calls for its input files) with an empty digest cache (``cold``: every byte
  hashed), then again with the cache written by the first call (``cached``: a ``stat``
  and a lookup), as a rerun in a new process finds it;
- an 8.8M x 384 float16 corpus (MS MARCO's size at MiniLM's width, 6.8 GB), the index of
  a run: ``index_fingerprint(NumpyIndex(corpus))`` over the ``.npy`` memory-mapped (what
  ``load_embeddings`` and the encoding cache give: cold, then cached) and over the same
  array in memory (no file to key a cache on: hashed on every run), with 1 hashing
  thread and with the default (up to 8).

"Cold" means not in negsample's digest cache; the file's pages may be in the OS page
cache (the script does not drop it: the figures are hashing speed, not disk speed).

    python benchmarks/bench_fingerprint.py           # 1 GB file, 8.8M x 384 float16
    python benchmarks/bench_fingerprint.py --quick   # 128 MB file, 400,000 x 384

Writes benchmarks/results/bench_fingerprint{,_quick}.json and .md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C


def _fresh_cache(folder: Path) -> None:
    from negsample import _digest

    for f in folder.glob("fingerprints.json*"):
        f.unlink()
    _digest._DEFAULT.clear()


def _new_process_cache() -> None:
    from negsample import _digest

    _digest._DEFAULT.clear()  # the next lookup reads the cache file, as a new process would


def _timed(fn: Callable[[], Any], before: Callable[[], None], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        before()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return C.median(times), out


def _write_file(path: Path, size: int) -> None:
    """Seeded random bytes (what they are does not change the hashing speed)."""
    if path.is_file() and path.stat().st_size == size:
        return
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        for off in range(0, size, 8 << 20):
            n = min(8 << 20, size - off)
            f.write(rng.integers(0, 256, size=n, dtype=np.uint8).tobytes())
    time.sleep(0.1)  # out of the window in which a fresh file's digest is not cached


def main(argv: list[str] | None = None) -> int:
    import negsample as ns
    from negsample import _digest
    from negsample.pipeline.settings import identify_file, index_fingerprint

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--file-mb", type=int, default=1024)
    ap.add_argument("--docs", type=int, default=8_841_823)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if args.quick:
        args.file_mb, args.docs = 128, 400_000
    load0 = os.getloadavg()
    cache_dir = Path(tempfile.mkdtemp(prefix="negsample-fp-cache-"))
    os.environ["NEGSAMPLE_CACHE"] = str(cache_dir)
    threads = _digest._threads(None)
    rows: list[list[Any]] = []
    payload: dict[str, Any] = {"machine": C.machine(), "threads_default": threads, "cases": []}

    def record(what: str, size_gb: float, mode: str, n_threads: int, secs: float) -> None:
        gbs = size_gb / secs if mode != "cached" else None  # (a lookup reads no content)
        rows.append([what, mode, n_threads, round(secs, 4), "-" if gbs is None else round(gbs, 2)])
        payload["cases"].append(
            {
                "input": what,
                "mode": mode,
                "threads": n_threads,
                "seconds": secs,
                "gb": size_gb,
                "gb_per_s": gbs,
            }
        )

    # -- a file ------------------------------------------------------------------------------
    C.DATA_DIR.mkdir(parents=True, exist_ok=True)
    big = C.DATA_DIR / f"fingerprint-{args.file_mb}mb.bin"
    _write_file(big, args.file_mb << 20)
    gb = big.stat().st_size / 1e9
    what = f"file {args.file_mb:,} MiB"
    for n_threads in sorted({1, threads}):
        os.environ["NEGSAMPLE_DIGEST_THREADS"] = str(n_threads)
        secs, cold = _timed(
            lambda: identify_file(big), lambda: _fresh_cache(cache_dir), args.repeats
        )
        record(what, gb, "cold", n_threads, secs)
    secs, hit = _timed(lambda: identify_file(big), _new_process_cache, args.repeats)
    assert hit == cold and _digest.default_cache().hits == 1
    record(what, gb, "cached", threads, secs)

    # -- an index ------------------------------------------------------------------------
    paths = C.synthetic(args.docs, 1000, args.dim, dtype="float16")
    time.sleep(0.1)
    mm = np.load(paths["corpus"], mmap_mode="r")
    gb = mm.nbytes / 1e9
    what = f"index {args.docs:,} x {args.dim} float16"
    for n_threads in sorted({1, threads}):
        os.environ["NEGSAMPLE_DIGEST_THREADS"] = str(n_threads)
        secs, cold = _timed(
            lambda: index_fingerprint(ns.NumpyIndex(mm, check=False)),
            lambda: _fresh_cache(cache_dir),
            args.repeats,
        )
        record(what + " (.npy mapped)", gb, "cold", n_threads, secs)
    secs, hit = _timed(
        lambda: index_fingerprint(ns.NumpyIndex(mm, check=False)), _new_process_cache, args.repeats
    )
    assert hit == cold
    record(what + " (.npy mapped)", gb, "cached", threads, secs)
    in_memory = ns.NumpyIndex(np.array(mm), check=False)  # hashed on every run
    for n_threads in sorted({1, threads}):
        os.environ["NEGSAMPLE_DIGEST_THREADS"] = str(n_threads)
        secs, got = _timed(lambda: index_fingerprint(in_memory), lambda: None, args.repeats)
        assert got == cold  # the same digest as the mapped file's
        record(what + " (in memory)", gb, "every run", n_threads, secs)
    os.environ.pop("NEGSAMPLE_DIGEST_THREADS", None)
    load1 = os.getloadavg()
    payload["load"] = C.load_note(load0, load1)
    m = payload["machine"]
    md = (
        f"# Fingerprinting the inputs of a resumable run\n\n"
        f"`python benchmarks/bench_fingerprint.py{' --quick' if args.quick else ''}`; "
        f"BLAKE2b over 8 MiB leaves, medians of {args.repeats}. {m.get('cpu', '?')}, "
        f"{m['affinity']} cores, {m['date']}, {payload['load']}. CPU only (not measured on "
        'a GPU). "cold": not in negsample\'s digest cache (the OS page cache may hold the '
        'file); "cached": a new process finding the digest cached.\n\n'
        + C.markdown_table(["input", "mode", "threads", "seconds", "GB/s"], rows)
    )
    C.write_results("bench_fingerprint" + ("_quick" if args.quick else ""), payload, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
