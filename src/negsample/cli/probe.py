"""``negsample probe``: rank samplers in seconds with a linear query map trained on frozen
embeddings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ._args import add_train_data_args, int_at_least, positive_float, seed
from ._common import check_outputs, log, log_left_out, refuse_same_split, split_embeddings

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from .. import sampler_from_string
    from ..io.data import load_beir
    from ..probe import probe

    refuse_same_split(args)
    files = {"--json": Path(args.json)} if args.json else {}
    check_outputs(args, [args.split, args.eval_split], files)
    train_ds = load_beir(args.data, args.split, min_relevance=args.min_relevance)
    eval_ds = load_beir(args.data, args.eval_split, min_relevance=args.min_relevance)
    log(f"{train_ds.summary()}; held out: {eval_ds.n_queries} queries ({args.eval_split})")
    log_left_out(train_ds)
    samplers = {spec: sampler_from_string(spec) for spec in args.sampler}
    emb_train = split_embeddings(args, train_ds)
    emb_eval = split_embeddings(args, eval_ds)
    res = probe(
        samplers,
        emb_train.queries,
        emb_train.corpus,
        train_ds.positives,
        emb_eval.queries,
        eval_ds.positives,
        n=args.n,
        seeds=args.seeds,
        epochs=args.epochs,
        lr=args.lr,
    )
    print(res.table())
    log(f"probe: {len(samplers)} samplers x {len(args.seeds)} seeds in {res.seconds:.1f}s")
    if args.json:
        from ..io.writers import atomic_path

        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(res.as_dict(), indent=1))
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``probe`` command to the subparsers ``sub``."""
    pos = int_at_least(1)
    pr = sub.add_parser(
        "probe",
        help="rank samplers in seconds: a linear query map trained on frozen embeddings",
        description="For each sampler and seed, train a linear map on the query embeddings "
        "with the sampler's negatives (InfoNCE) and score the held-out split; samplers "
        "ranked by nDCG@10.",
    )
    add_train_data_args(pr, "test")
    pr.add_argument(
        "--sampler", action="append", required=True, help="sampler spec; repeat to compare"
    )
    pr.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2], help="seeds (0 1 2)")
    pr.add_argument("--epochs", type=pos, default=3, help="epochs of the map (default 3)")
    pr.add_argument(
        "--lr", type=positive_float, default=1e-3, help="Adam learning rate (default 1e-3)"
    )
    pr.add_argument("--json", default=None, help="write every figure as JSON")
    pr.set_defaults(func=run)
