"""What several commands share: the log line, the inputs a command reads (and the check
that no output is one of them), the dataset, its embeddings, and the teacher and judge
the denoising options ask for."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "RESCORE_KINDS",
    "check_denoise_args",
    "check_outputs",
    "data_files",
    "dataset_embeddings",
    "file_stat",
    "input_paths",
    "load_inputs",
    "log",
    "log_left_out",
    "make_scorer",
    "refuse_same_split",
    "scoring_setup",
    "split_embeddings",
]


def log(msg: str) -> None:
    print(f"negsample: {msg}", file=sys.stderr)


def file_stat(path: Path) -> list[Any]:
    return [str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns]


def data_files(args: argparse.Namespace, splits: Sequence[str]) -> list[Path]:
    """The BEIR files a command reads (corpus, queries, the splits' qrels)."""
    from ..io.data import qrels_file, resolve_file

    root = Path(args.data)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory (expected a BEIR dataset folder)")
    files = [resolve_file(root, "corpus.jsonl"), resolve_file(root, "queries.jsonl")]
    return files + [qrels_file(root, s) for s in dict.fromkeys(splits)]


def input_paths(args: argparse.Namespace, splits: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """Every input file of a command, and its input folders (a local model folder)."""
    files = data_files(args, splits)
    emb = getattr(args, "embeddings", None)
    if emb:
        d = Path(emb)
        files += [d / n for n in ("corpus.npy", "corpus_ids.txt", "queries.npy", "query_ids.txt")]
    if getattr(args, "run", None):
        files.append(Path(args.run))
    dirs = []
    model = getattr(args, "model", None)
    if model and Path(model).is_dir():
        dirs.append(Path(model))
    return files, dirs


def check_outputs(
    args: argparse.Namespace,
    splits: Sequence[str],
    files: dict[str, Path],
    dirs: dict[str, Path] | None = None,
) -> None:
    """Before any work: every output is writable and none is an input (exit 2). Output
    folders (``dirs``) may not be an input folder either (the data, its qrels, the
    embeddings)."""
    from ..pipeline.outputs import check_output_dir, check_output_file, refuse_inputs

    dirs = dirs or {}
    for opt, p in files.items():
        check_output_file(p, opt.split()[0])
    for opt, p in dirs.items():
        check_output_dir(p, opt)
    inputs, input_dirs = input_paths(args, splits)
    if dirs:
        inputs += [Path(args.data), Path(args.data) / "qrels"]
        if getattr(args, "embeddings", None):
            inputs.append(Path(args.embeddings))
    refuse_inputs({**files, **dirs}, inputs, input_dirs)


def load_inputs(args: argparse.Namespace) -> tuple[Any, dict[str, float], dict[str, Any]]:
    """The dataset, the seconds spent loading it, and the settings that identify it."""
    from ..io.data import load_beir

    t = time.perf_counter()
    ds = load_beir(args.data, args.split, min_relevance=args.min_relevance)
    dt = time.perf_counter() - t
    log(f"{ds.summary()} (read in {dt:.1f}s)")
    log_left_out(ds)
    files = data_files(args, [args.split])
    settings = {
        "data": [file_stat(f) for f in files],
        "split": args.split,
        "min_relevance": args.min_relevance,
    }
    return ds, {"load": dt}, settings


def log_left_out(ds: Any) -> None:
    left = {k: v for k, v in ds.stats.items() if k != "judgements" and v}
    if left:
        log("left out: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in left.items()))


def dataset_embeddings(args: argparse.Namespace, ds: Any, timings: dict[str, float]) -> Any:
    from ..io.encoding import encode_dataset, load_embeddings

    t = time.perf_counter()
    if args.embeddings:
        emb = load_embeddings(args.embeddings, ds)
        log(f"precomputed embeddings from {args.embeddings}: dim {emb.corpus.shape[1]}")
    else:
        cache = None if args.no_cache else (args.cache_dir or None)
        if cache is None and not args.no_cache:
            from ..io.encoding import default_cache_dir

            cache = str(default_cache_dir())
        emb = encode_dataset(
            ds,
            args.model,
            cache_dir=cache,
            batch_size=args.batch_size,
            max_seq_length=args.max_seq_length,
            query_prompt=args.query_prompt,
            document_prompt=args.document_prompt,
            query_prompt_name=args.query_prompt_name,
            document_prompt_name=args.document_prompt_name,
            precision=args.precision,
            device=args.device,
            progress=not args.quiet,
        )
    timings["encode"] = time.perf_counter() - t
    return emb


def split_embeddings(args: argparse.Namespace, ds: Any) -> Any:
    """Embeddings of ``ds`` (precomputed ``--embeddings``, else encoded with ``--model``)."""
    from ..io.encoding import default_cache_dir, encode_dataset, load_embeddings

    if args.embeddings:
        return load_embeddings(args.embeddings, ds)
    return encode_dataset(
        ds,
        args.model,
        cache_dir=None if args.no_cache else (args.cache_dir or str(default_cache_dir())),
        max_seq_length=args.max_seq_length,
        device=args.device,
        progress=not args.quiet,
    )


def refuse_same_split(args: argparse.Namespace) -> None:
    if args.eval_split and args.eval_split == args.split and not args.allow_same_split:
        raise ValueError(
            f"--split and --eval-split are both {args.split!r}: scoring on the training "
            "queries measures memorisation (nDCG@10 near 1.0), not retrieval; use another "
            "--eval-split, or --allow-same-split to do it anyway"
        )


RESCORE_KINDS = ("cross-encoder", "bi-encoder")


def check_denoise_args(args: argparse.Namespace) -> None:
    """Refuse inconsistent denoising options before any work (exit 2)."""
    if args.rescore is not None:
        kind, _, path = args.rescore.partition(":")
        if kind not in RESCORE_KINDS or not path:
            raise ValueError(
                f"--rescore must be cross-encoder:PATH or bi-encoder:PATH, got {args.rescore!r}"
            )
    margins = [
        name
        for name in ("absolute_margin", "relative_margin", "max_score", "min_score")
        if getattr(args, f"rescore_{name}") is not None
    ]
    if margins and args.rescore is None:
        raise ValueError(f"--rescore-{margins[0].replace('_', '-')} needs --rescore")
    if args.teacher_scores and args.rescore is None:
        raise ValueError("--teacher-scores needs --rescore (the teacher that gives the scores)")
    if args.teacher_scores and args.scores:
        raise ValueError("give --scores (the miner's scores) or --teacher-scores, not both")
    if bool(args.judge_url) != bool(args.judge_model):
        raise ValueError("--judge-url and --judge-model go together")
    if args.judge_cascade_model and not args.judge_url:
        raise ValueError("--judge-cascade-model needs --judge-url and --judge-model")
    if args.rescore and not margins and not args.teacher_scores:
        raise ValueError("--rescore does nothing without a --rescore-* margin or --teacher-scores")


def scoring_setup(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The teacher scorer, the judge and the margins the options ask for (or ``None``)."""
    from ..scoring import CascadeJudge, LLMJudge, Margins

    scorer: Any = None
    judge: Any = None
    margins = None
    if args.rescore:
        kind, _, path = args.rescore.partition(":")
        scorer = make_scorer(kind, path, args)
        margins = Margins(
            absolute_margin=args.rescore_absolute_margin,
            relative_margin=args.rescore_relative_margin,
            max_score=args.rescore_max_score,
            min_score=args.rescore_min_score,
        )
        log(f"rescoring with {scorer!r}; {margins!r}")
    if args.judge_url:
        cache = args.judge_cache
        if cache is None:
            from ..io.encoding import default_cache_dir

            cache = str(default_cache_dir() / "judgements.sqlite")

        def make(model: str, url: str) -> LLMJudge:
            return LLMJudge(
                base_url=url,
                model=model,
                api_key_env=args.judge_key_env,
                cache=cache,
                max_concurrency=args.judge_concurrency,
                timeout=args.judge_timeout,
            )

        judge = make(args.judge_model, args.judge_url)
        if args.judge_cascade_model:
            strong = make(args.judge_cascade_model, args.judge_cascade_url or args.judge_url)
            judge = CascadeJudge(judge, strong)
        log(f"judging with {judge!r} (texts are sent to {args.judge_url}); cache {cache}")
    return scorer, judge, margins


def make_scorer(kind: str, path: str, args: argparse.Namespace) -> Any:
    from ..scoring import CrossEncoderScorer, EmbeddingScorer

    if kind == "cross-encoder":
        return CrossEncoderScorer(
            path,
            batch_size=args.rescore_batch_size,
            device=args.device,
            activation=args.rescore_activation,
            max_length=args.max_seq_length,
            show_progress=not args.quiet,
        )
    return EmbeddingScorer(
        path,
        batch_size=args.rescore_batch_size,
        device=args.device,
        query_prompt=args.query_prompt,
        show_progress=not args.quiet,
    )
