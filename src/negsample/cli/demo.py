"""``negsample demo``: mine a built-in synthetic set with every sampler and compare them."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ._args import int_at_least, seed

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from .. import available_samplers, get_sampler, mine
    from ..datasets import make_synthetic
    from ..evaluation import negative_quality
    from ..index import NumpyIndex

    t0 = time.perf_counter()
    data = make_synthetic(args.docs, args.queries, args.dim, seed=args.seed)
    index = NumpyIndex(data.corpus)
    print(
        f"synthetic set: {args.docs} documents, {args.queries} queries, dim {args.dim}, "
        f"3 planted unlabelled positives per query (seed {args.seed}, made in "
        f"{time.perf_counter() - t0:.1f}s)",
        file=sys.stderr,
    )
    header = f"{'FN rate':>8} {'mean s(q,d-)':>13} {'short rows':>10} {'time (s)':>9}  sampler"
    print(header)
    print("-" * (len(header) + 40))
    for name in available_samplers():
        sampler = get_sampler(name)
        t = time.perf_counter()
        negs = mine(data.queries, index, data.positives, sampler=sampler, n=args.n, seed=args.seed)
        dt = time.perf_counter() - t
        q = negative_quality(negs, data.hidden)
        print(f"{q.fn_rate:>8.2%} {q.hardness:>13.3f} {q.short_rows:>10d} {dt:>9.2f}  {sampler!r}")
    print(
        "\nFN rate: share of sampled negatives that are planted unlabelled positives. "
        "Harder negatives (higher mean s(q,d-)) come with more false negatives: compare "
        "samplers on both.",
        file=sys.stderr,
    )
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``demo`` command to the subparsers ``sub``."""
    demo = sub.add_parser(
        "demo", help="mine a built-in synthetic set with every sampler and compare them"
    )
    pos = int_at_least(1)
    demo.add_argument("--docs", type=pos, default=20_000, help="corpus size (default 20000)")
    demo.add_argument("--queries", type=pos, default=1_000, help="queries (default 1000)")
    demo.add_argument("--dim", type=pos, default=64, help="vector dimension (default 64)")
    demo.add_argument("--n", type=pos, default=7, help="negatives per query (default 7)")
    demo.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    demo.set_defaults(func=run)
