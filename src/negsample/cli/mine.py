"""``negsample mine``: mine hard negatives for a BEIR split and write a training file
(resumable; optionally denoised by a teacher and an LLM judge; optionally on Ray).

The options are parsed into a :class:`~negsample.pipeline.command.MineOptions` and
:func:`~negsample.pipeline.command.run_mine` does the work."""

from __future__ import annotations

import argparse
from typing import Any

from ._args import (
    add_cross_query_args,
    add_data_args,
    add_denoise_args,
    add_filter_args,
    int_at_least,
    nonnegative_float,
    positive_float,
    ray_stages,
    seed,
)
from ._common import log, options_from
from ._errors import EXIT_INCOMPLETE, EXIT_OK

__all__ = ["add_parser", "options", "run"]


def options(args: argparse.Namespace) -> Any:
    """The :class:`~negsample.pipeline.command.MineOptions` of the parsed arguments
    (options that do not go together are refused here)."""
    from ..filters import Filters
    from ..pipeline.command import MineOptions
    from ..pipeline.inputs import parse_sampler
    from ..pipeline.options import DataOptions, DenoiseOptions, RayOptions

    sampler = parse_sampler(args.sampler)
    data = options_from(DataOptions, args)
    filters = options_from(Filters, args)
    return options_from(
        MineOptions,
        args,
        data=data,
        sampler=sampler,
        filters=None if filters.is_noop else filters,
        denoise=options_from(DenoiseOptions, args),
        ray=options_from(RayOptions, args, address=args.ray, stages=args.ray_stages),
        progress=not args.quiet,
    )


def run(args: argparse.Namespace) -> int:
    from ..pipeline.command import run_mine
    from ..pipeline.resume import RunIncomplete

    opts = options(args)
    try:
        run_mine(opts, log=log)
    except RunIncomplete as exc:
        log(str(exc))
        return EXIT_INCOMPLETE
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Add the ``mine`` command to the subparsers ``sub``."""
    pos = int_at_least(1)
    from ..io.writers import FORMATS, HF_LAYOUTS

    mine = sub.add_parser(
        "mine",
        help="mine hard negatives for a BEIR split and write a training file",
        description="Mine hard negatives for a BEIR split and write a training file. "
        "Resumable: rerun an interrupted command to continue from its last finished chunk.",
    )
    add_data_args(mine)
    mine.add_argument(
        "--run",
        default=None,
        help="TREC run file (qid Q0 docid rank score tag) as the candidates, e.g. BM25, "
        "instead of a dense search (samplers that need only scores)",
    )
    mine.add_argument(
        "--sampler", default="topk", help='sampler spec, e.g. "ReSa2Sampler(k2=75)" (default topk)'
    )
    mine.add_argument(
        "--seed", type=seed, default=0, help="random seed, 0 <= seed < 2**64 (default 0)"
    )
    mine.add_argument("--out", required=True, help="output file (written atomically)")
    mine.add_argument(
        "--format", choices=FORMATS, default="st-ntuple", help="output format (default st-ntuple)"
    )
    mine.add_argument(
        "--hf-layout",
        choices=HF_LAYOUTS,
        default="st-ntuple",
        help="rows of a --format hf folder (default st-ntuple)",
    )
    mine.add_argument(
        "--scores",
        action="store_true",
        help="add the miner's own s(q,d+) and s(q,d-) (not teacher scores) where the format "
        "has them",
    )
    mine.add_argument(
        "--on-short",
        choices=("skip", "error"),
        default="skip",
        help="rows with fewer than n negatives: skip/shorten and count them (default), or fail",
    )
    mine.add_argument(
        "--chunk-size",
        type=pos,
        default=None,
        help="queries per saved chunk (default 4096, or the index's search block when larger: "
        "16384 for --index torch on a GPU)",
    )
    mine.add_argument(
        "--max-chunks",
        type=pos,
        default=None,
        help="compute at most this many new chunks, then stop (exit 3); rerun to continue",
    )
    mine.add_argument(
        "--fresh",
        action="store_true",
        help="discard the saved chunks of an earlier run on this --out (refused while "
        "another run holds it)",
    )
    mine.add_argument(
        "--keep-duplicate-texts",
        action="store_true",
        help="allow negatives whose text is identical to one of the query's positives under "
        "another id (by default they are excluded and counted)",
    )
    mine.add_argument("--stats-json", default=None, help="also write the diagnostics as JSON")
    add_filter_args(mine)
    add_cross_query_args(mine)
    add_denoise_args(mine)
    ray = mine.add_argument_group(
        "cluster (Ray)", "mine on a Ray cluster: same output, resumable (see docs/distributed.md)"
    )
    ray.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        default=None,
        help="run on a Ray cluster: 'auto' (the cluster started on this machine), HOST:PORT "
        "of its head node, or 'local' (a private Ray instance)",
    )
    ray.add_argument(
        "--workers",
        type=pos,
        default=None,
        help="query sharding: workers that each hold the whole index (default: as many as "
        "the cluster's CPUs allow)",
    )
    ray.add_argument(
        "--corpus-shards",
        type=pos,
        default=None,
        help="corpus sharding instead: workers that each hold a shard of the corpus",
    )
    ray.add_argument(
        "--worker-cpus", type=positive_float, default=None, help="CPUs per worker (default 1)"
    )
    ray.add_argument(
        "--worker-gpus",
        type=nonnegative_float,
        default=None,
        help="GPUs per worker (default 0); use --index torch on GPU workers",
    )
    ray.add_argument(
        "--ray-stages",
        type=ray_stages,
        default=(),
        metavar="encode,rescore,judge",
        help="also run these as Ray Data stages on the cluster (actor pools of up to "
        "--workers actors of --worker-cpus/--worker-gpus each): encode (with --model), "
        "rescore (with --rescore), judge (with --judge-url); the same caches and output "
        "as without",
    )
    mine.set_defaults(func=run)
