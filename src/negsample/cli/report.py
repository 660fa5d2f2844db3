"""``negsample report``: compare samplers on a labelled split (hidden-positive protocol,
score plots), optionally before and after denoising."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._args import add_data_args, add_denoise_args, seed
from ._common import (
    check_denoise_args,
    check_outputs,
    dataset_embeddings,
    load_inputs,
    log,
    scoring_setup,
)
from ._errors import Failure

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from .. import sampler_from_string
    from ..pipeline.report import sampler_report
    from ..scoring import JudgeError

    samplers = {spec: sampler_from_string(spec) for spec in args.sampler}
    d = Path(args.out_dir)
    names = ("fn_vs_hardness.png", "score_hist.png", "report.json", "summary.md")
    check_outputs(args, [args.split], {f"--out-dir {n}": d / n for n in names})
    from ..pipeline.outputs import check_output_dir

    check_output_dir(d, "--out-dir")
    check_denoise_args(args)
    ds, timings, _settings = load_inputs(args)
    emb = dataset_embeddings(args, ds, timings)
    scorer, judge, margins = scoring_setup(args)
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
            judge=judge,
            margins=margins,
            judge_keep=tuple(args.judge_keep.split(",")),
            on_judge_failure=args.judge_on_failure,
            oversample=args.oversample,
        )
    except JudgeError as exc:
        raise Failure(f"{exc} (rerun to resume: answers received are cached)") from exc
    finally:
        if scorer is not None:
            scorer.close()
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
