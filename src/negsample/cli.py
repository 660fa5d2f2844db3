"""Command line: ``negsample demo`` (more subcommands join as they are built).

``main(argv) -> int``: data to stdout or files, progress and diagnostics to stderr.
Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from . import available_samplers, get_sampler, mine
    from .datasets import make_synthetic
    from .evaluation import negative_quality
    from .index import NumpyIndex

    t0 = time.perf_counter()
    data = make_synthetic(args.docs, args.queries, args.dim, seed=args.seed)
    index = NumpyIndex(data.corpus)
    print(
        f"synthetic set: {args.docs} documents, {args.queries} queries, dim {args.dim}, "
        f"3 planted unlabelled positives per query (seed {args.seed}, made in "
        f"{time.perf_counter() - t0:.1f}s)",
        file=sys.stderr,
    )
    header = (
        f"{'sampler':<48} {'FN rate':>8} {'mean s(q,d-)':>13} {'short rows':>10} {'time (s)':>9}"
    )
    print(header)
    print("-" * len(header))
    for name in available_samplers():
        sampler = get_sampler(name)
        t = time.perf_counter()
        negs = mine(data.queries, index, data.positives, sampler=sampler, n=args.n, seed=args.seed)
        dt = time.perf_counter() - t
        q = negative_quality(negs, data.hidden)
        label = repr(sampler)
        label = label if len(label) <= 48 else label[:45] + "..."
        print(f"{label:<48} {q.fn_rate:>8.2%} {q.hardness:>13.3f} {q.short_rows:>10d} {dt:>9.2f}")
    print(
        "\nFN rate: share of sampled negatives that are planted unlabelled positives. "
        "Harder negatives (higher mean s(q,d-)) come with more false negatives: compare "
        "samplers on both.",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="negsample", description="Hard-negative sampling for dense retrievers."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="mine a built-in synthetic set with every sampler and compare them"
    )
    demo.add_argument("--docs", type=int, default=20_000, help="corpus size (default 20000)")
    demo.add_argument("--queries", type=int, default=1_000, help="queries (default 1000)")
    demo.add_argument("--dim", type=int, default=64, help="vector dimension (default 64)")
    demo.add_argument("--n", type=int, default=7, help="negatives per query (default 7)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    np.set_printoptions(precision=4)
    try:
        rc: int = args.func(args)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        print(f"negsample: error: {exc}", file=sys.stderr)
        return 2
    return rc
