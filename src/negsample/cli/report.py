"""``negsample report``: compare samplers on a labelled split (hidden-positive protocol,
score plots), optionally before and after denoising."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._args import add_data_args, add_denoise_args, seed
from ._common import log, options_from

__all__ = ["add_parser", "run"]

#: The files ``report`` writes into ``--out-dir``.
FILES = ("fn_vs_hardness.png", "score_hist.png", "report.json", "summary.md")


def run(args: argparse.Namespace) -> int:
    from ..errors import RunFailed
    from ..pipeline.inputs import dataset_embeddings, load_dataset, parse_sampler, read_places
    from ..pipeline.options import DataOptions, DenoiseOptions, open_scoring
    from ..pipeline.outputs import Place, check_places
    from ..pipeline.report import sampler_report
    from ..scoring import JudgeError

    # every option and path checked before any work
    samplers = {spec: parse_sampler(spec) for spec in args.sampler}
    data = options_from(DataOptions, args)
    from ..errors import InputError
    from ..index.registry import get_index_kind, parse_index_spec

    kind = get_index_kind(parse_index_spec(data.index).kind)
    if kind.source is not None:  # bm25, hybrid: candidates from texts, not a vector search
        raise InputError(
            f"report: --index {data.index!r} gives candidates from texts; the hidden-positive "
            "protocol searches a vector index: use exact, torch or a faiss spec"
        )
    denoise = options_from(DenoiseOptions, args)
    progress = not args.quiet
    teacher, judge, margins = (
        denoise.teacher(data, progress=progress),
        denoise.judge(),
        denoise.margins(),
    )
    d = Path(args.out_dir)
    places = [Place("--out-dir", d / n, "output", part_of="--out-dir") for n in FILES]
    places.append(Place("--out-dir", d, "output", folder=True))
    encoding = not data.embeddings
    places += read_places(
        data, [data.split], model=encoding, cache=encoding, teacher=teacher, judge=judge
    )
    check_places(places)
    ds, timings, _settings = load_dataset(data, log=log)
    emb = dataset_embeddings(data, ds, timings, progress=progress, log=log)
    with open_scoring(teacher, judge, margins, log=log) as (scorer, made_judge):
        try:
            rep = sampler_report(
                ds,
                emb,
                samplers,
                n=args.n,
                seeds=args.seeds,
                index=args.index,
                metric=args.metric,
                scorer=scorer,
                judge=made_judge,
                margins=margins,
                judge_keep=tuple(args.judge_keep.split(",")),
                on_judge_failure=args.judge_on_failure,
                oversample=args.oversample,
            )
        except JudgeError as exc:
            raise RunFailed(f"{exc} (rerun to resume: answers received are cached)") from exc
    print(rep.table())
    paths = rep.write(args.out_dir)
    for p in paths:
        log(f"wrote {p}")
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``report`` command to the subparsers ``sub``."""
    rep = sub.add_parser(
        "report",
        help="compare samplers on a labelled split (hidden-positive protocol, score plots)",
    )
    add_data_args(rep)
    rep.add_argument(
        "--sampler",
        action="append",
        required=True,
        help="sampler spec; repeat the option to compare several",
    )
    rep.add_argument(
        "--seeds", type=seed, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)"
    )
    rep.add_argument(
        "--out-dir", required=True, help="folder for summary.md, report.json and the PNG plots"
    )
    add_denoise_args(rep, teacher_scores=False)
    rep.set_defaults(func=run)
