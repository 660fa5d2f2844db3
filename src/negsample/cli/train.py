"""``negsample train``: fine-tune a sentence-transformers model with a sampler's negatives
and score the held-out split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ._args import add_train_data_args, int_at_least, max_steps, positive_float, ratio, seed
from ._common import check_outputs, log, log_left_out, refuse_same_split, split_embeddings

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from .. import sampler_from_string
    from ..io.data import load_beir

    refuse_same_split(args)
    splits = [args.split] + ([args.eval_split] if args.eval_split else [])
    files = {"--metrics-json": Path(args.metrics_json)} if args.metrics_json else {}
    dirs = {"--out": Path(args.out)} if args.out else {}
    check_outputs(args, splits, files, dirs)
    if args.out:
        _refuse_model_folder(args)
    from ..integrations.sentence_transformers import TrainingData, train

    train_ds = load_beir(args.data, args.split, min_relevance=args.min_relevance)
    log(train_ds.summary())
    log_left_out(train_ds)
    eval_ds = (
        load_beir(args.data, args.eval_split, min_relevance=args.min_relevance)
        if args.eval_split
        else None
    )
    if eval_ds is not None:
        log(eval_ds.summary())
    sampler = None if args.sampler.lower() == "none" else sampler_from_string(args.sampler)
    corpus_emb = query_emb = None
    if args.embeddings and sampler is not None:
        emb = split_embeddings(args, train_ds)
        corpus_emb, query_emb = emb.corpus, emb.queries
        log(f"initial mining with the precomputed embeddings in {args.embeddings}")
    log(f"training with {sampler!r}" if sampler else "training with in-batch negatives only")
    result = train(
        args.model,
        TrainingData.from_beir(train_ds),
        sampler,
        n=args.n,
        eval_data=None if eval_ds is None else TrainingData.from_beir(eval_ds),
        epochs=args.epochs,
        batch_size=args.train_batch_size,
        learning_rate=args.lr,
        warmup_ratio=args.warmup_ratio,
        max_seq_length=args.max_seq_length,
        loss=args.loss,
        mini_batch_size=args.mini_batch_size,
        seed=args.seed,
        remine_every=args.remine_every,
        corpus_embeddings=corpus_emb,
        query_embeddings=query_emb,
        max_steps=args.max_steps,
        evaluate_before=args.evaluate_before and eval_ds is not None,
        device=args.device,
        progress=not args.quiet,
    )
    log(f"trained in {result.seconds:.1f}s")
    if args.out:
        from ..index.base import write_dir_atomic

        # written into a temporary folder, then moved into place: never half a model
        write_dir_atomic(args.out, lambda tmp: result.model.save(str(tmp)))
        log(f"model saved to {args.out}")
    report: dict[str, Any] = {
        "sampler": repr(sampler) if sampler else None,
        "metrics_before": result.metrics_before,
        "metrics": result.metrics,
        "seconds": result.seconds,
    }
    for key in ("metrics_before", "metrics"):
        vals = report[key]
        if vals:
            print(
                f"{key.replace('_', ' '):<15} nDCG@10 {vals['ndcg@10']:.4f}  "
                f"MRR@10 {vals['mrr@10']:.4f}  Recall@100 {vals['recall@100']:.4f}"
            )
    if args.metrics_json:
        from ..io.writers import atomic_path

        with atomic_path(args.metrics_json) as tmp:
            tmp.write_text(json.dumps(report, indent=1))
    return 0


def _refuse_model_folder(args: argparse.Namespace) -> None:
    """``train --out`` must not be (or hold) the starting model's folder."""
    from ..io.encoding import _model_path
    from ..pipeline.outputs import refuse_inputs

    try:
        start = Path(_model_path(args.model))
    except ImportError:
        return
    if start.is_dir():
        refuse_inputs({"--out": Path(args.out)}, [], [start])


def add_parser(sub: Any) -> None:
    """Add the ``train`` command to the subparsers ``sub``."""
    pos = int_at_least(1)
    tr = sub.add_parser(
        "train",
        help="fine-tune a sentence-transformers model with a sampler's negatives",
        description="Mine negatives with the model as it is, fine-tune with "
        "MultipleNegativesRankingLoss, score the held-out split (nDCG@10, MRR@10, Recall@100).",
    )
    add_train_data_args(tr, "test")
    tr.add_argument(
        "--sampler", default="topk", help='sampler spec, or "none" for in-batch negatives only'
    )
    tr.add_argument("--epochs", type=pos, default=1, help="epochs (default 1)")
    tr.add_argument(
        "--max-steps", type=max_steps, default=-1, help="stop after this many steps (-1: none)"
    )
    tr.add_argument("--train-batch-size", type=pos, default=32, help="batch size (default 32)")
    tr.add_argument("--lr", type=positive_float, default=2e-5, help="learning rate (default 2e-5)")
    tr.add_argument("--warmup-ratio", type=ratio, default=0.1, help="warm-up share (0.1)")
    tr.add_argument("--loss", choices=("mnrl", "cached_mnrl"), default="mnrl", help="loss")
    tr.add_argument(
        "--mini-batch-size", type=pos, default=32, help="cached_mnrl mini-batch (default 32)"
    )
    tr.add_argument(
        "--remine-every",
        type=pos,
        default=None,
        help="re-mine with the current model every K epochs",
    )
    tr.add_argument("--evaluate-before", action="store_true", help="also score the start model")
    tr.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    tr.add_argument("--out", default=None, help="folder to save the trained model")
    tr.add_argument("--metrics-json", default=None, help="write the metrics as JSON")
    tr.set_defaults(func=run)
