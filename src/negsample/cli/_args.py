"""Argument types and the option groups shared by several commands."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

import numpy as np

from .._device import PRECISION_NAMES
from ._errors import EXIT_USAGE

#: what --precision accepts (the one precision vocabulary, docs/devices.md)
PRECISION_CHOICES = (*PRECISION_NAMES, "auto")

__all__ = [
    "Parser",
    "add_cross_query_args",
    "add_data_args",
    "add_denoise_args",
    "add_filter_args",
    "add_train_data_args",
    "cosine_threshold",
    "int_at_least",
    "max_steps",
    "nonnegative_float",
    "positive_float",
    "ratio",
    "ray_stages",
    "seed",
]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``negsample: error: <command>: <problem>``, exit 2."""

    def error(self, message: str) -> NoReturn:
        cmd = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(EXIT_USAGE, f"negsample: error: {cmd}{message} (see {self.prog} --help)\n")


def int_at_least(lo: int) -> Any:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v

    parse.__name__ = f"integer >= {lo}"
    return parse


def seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= v < 2**64:
        raise argparse.ArgumentTypeError(
            f"a seed is an integer in [0, 2**64), got {v} (larger seeds would alias smaller ones)"
        )
    return v


def max_steps(text: str) -> int:
    v = int_at_least(-1)(text)
    if v == 0:
        raise argparse.ArgumentTypeError("must be -1 (no limit) or >= 1, got 0")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or not np.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def at_least_one(text: str) -> float:
    v = positive_float(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 1, got {text}")
    return v


def ratio(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return v


def cosine_threshold(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be a cosine in (0, 1], got {text}")
    return v


def nonnegative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0 or not np.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def ray_stages(text: str) -> tuple[str, ...]:
    """``--ray-stages``: a comma-separated list of ``encode``, ``rescore``, ``judge``;
    returned each once, in the order of the pipeline."""
    from ..pipeline.options import RAY_STAGES

    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in RAY_STAGES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(RAY_STAGES)}, got {text!r}"
        )
    return tuple(t for t in RAY_STAGES if t in names)


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data and embeddings")
    g.add_argument(
        "--data", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)"
    )
    g.add_argument("--split", default="train", help="qrels split to read (default train)")
    g.add_argument(
        "--min-relevance",
        type=int_at_least(1),
        default=1,
        help="smallest judgement score that makes a positive (default 1; TREC-DL: 2)",
    )
    g.add_argument(
        "--model",
        default=None,
        help="sentence-transformers model folder or name (default: the bundled all-MiniLM-L6-v2)",
    )
    g.add_argument(
        "--embeddings",
        default=None,
        help="folder of precomputed embeddings (corpus.npy + corpus_ids.txt, queries.npy + "
        "query_ids.txt) instead of encoding; with --model too, a few rows are re-encoded "
        "with it to check the vectors (--spot-check)",
    )
    g.add_argument(
        "--spot-check",
        type=int_at_least(0),
        default=8,
        help="with --embeddings and --model: re-encode this many seeded rows of each side "
        "with the model and refuse vectors that do not match them (default 8; 0: none)",
    )
    g.add_argument(
        "--min-cosine",
        type=ratio,
        default=0.99,
        help="the smallest cosine accepted between a stored vector and its re-encoding "
        "(default 0.99)",
    )
    g.add_argument("--cache-dir", default=None, help="embedding cache (default ~/.cache/negsample)")
    g.add_argument("--no-cache", action="store_true", help="do not cache embeddings")
    g.add_argument(
        "--batch-size", type=int_at_least(1), default=64, help="encoding batch size (default 64)"
    )
    g.add_argument(
        "--max-seq-length", type=int_at_least(1), default=None, help="truncate inputs (tokens)"
    )
    g.add_argument("--query-prompt", default=None, help="prefix added to queries when encoding")
    g.add_argument("--document-prompt", default=None, help="prefix added to documents")
    g.add_argument("--query-prompt-name", default=None, help="a prompt of the model, for queries")
    g.add_argument(
        "--document-prompt-name", default=None, help="a prompt of the model, for documents"
    )
    g.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=None,
        help="dtype the model encodes (and a --rescore teacher scores) in: float32, float16, "
        "bfloat16 (or fp32, fp16, half, bf16); default auto: float16 on a GPU, else float32 "
        "(docs/devices.md)",
    )
    g.add_argument(
        "--batch-tokens",
        type=int_at_least(1),
        default=None,
        help="padded tokens per encoding batch (default: --batch-size x the model's maximum "
        "length, and on the CPU at most --batch-size texts a batch); batches are cut by this "
        "budget over length-sorted texts",
    )
    g.add_argument(
        "--device",
        default=None,
        help="torch device for encoding and a --rescore teacher: auto (default: every visible "
        "GPU, else MPS, else the CPU), cpu, cuda (every GPU), cuda:1...",
    )
    g.add_argument(
        "--index",
        default="exact",
        help="'exact' (numpy, default), 'torch[:DEVICE[:DTYPE]]' (exact, GPU: torch:cuda, "
        "torch:cuda:bfloat16) or a faiss factory string: Flat, HNSW32, IVF1024,Flat; or BM25 "
        "over the texts, 'bm25[:k1=1.5:b=0.75:stemmer=english|none]' (no --embeddings/--model "
        "needed), or 'hybrid[:DENSE][:k_rrf=60]' (dense + BM25 by reciprocal rank fusion)",
    )
    g.add_argument("--metric", choices=("ip", "cosine"), default="ip", help="score (default ip)")
    p.add_argument("--n", type=int_at_least(1), default=7, help="negatives per query (default 7)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_cross_query_args(p: argparse.ArgumentParser) -> None:
    """``negsample mine``'s policies across queries (docs/filters.md, docs/algorithms.md)."""
    g = p.add_argument_group(
        "across queries (see docs/filters.md)",
        "what one query's negatives may be, given the other queries of the split",
    )
    g.add_argument(
        "--exclude-other-positives",
        action="store_true",
        help="never sample a document that is a labelled positive of another query of the "
        "split (counted as removed other_positive; without it they are only counted)",
    )
    g.add_argument(
        "--max-negative-reuse",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="a document is a negative of at most N rows over the whole split; rows that "
        "lose a draw take their next (same bytes however the run is chunked or resumed)",
    )
    g.add_argument(
        "--reuse-oversample",
        type=at_least_one,
        default=2.0,
        metavar="X",
        help="draws mined per negative for --max-negative-reuse (default 2: 14 draws for "
        "--n 7, at most what the sampler can draw)",
    )
    g.add_argument(
        "--batch-safe",
        type=int_at_least(1),
        default=None,
        metavar="B",
        help="write the rows in an order where no B consecutive rows hold a row whose "
        "positive or negative is another row's labelled positive (train with that order "
        "kept and batches of B: docs/training.md); row formats only",
    )


def add_filter_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "filters (sentence-transformers' names and meanings; see docs/filters.md)"
    )
    g.add_argument(
        "--range-min",
        type=int_at_least(0),
        default=0,
        help="skip candidates ranked before this (ranks after the positives are removed)",
    )
    g.add_argument(
        "--range-max",
        type=int_at_least(1),
        default=None,
        help="keep candidates ranked before this",
    )
    g.add_argument(
        "--absolute-margin",
        type=float,
        default=None,
        help="keep s(q,d-) < s+ - M (s+: the query's least positive score)",
    )
    g.add_argument(
        "--relative-margin",
        type=float,
        default=None,
        help="keep s(q,d-) < s+ - |s+| * R; 0.05 is NV-Retriever's TopK-PercPos 95%%",
    )
    g.add_argument("--max-score", type=float, default=None, help="keep s(q,d-) < this")
    g.add_argument("--min-score", type=float, default=None, help="keep s(q,d-) > this")
    g.add_argument(
        "--near-duplicate",
        type=cosine_threshold,
        default=None,
        metavar="THRESH",
        help="remove near copies of a positive: candidates whose cosine with any of the "
        "query's positives is >= THRESH (e.g. 0.95), and documents whose normalised text "
        "(NFKC, case-folded, whitespace and punctuation collapsed) equals a positive's",
    )
    s = p.add_argument_group("faiss search settings")
    s.add_argument(
        "--nprobe",
        type=int_at_least(1),
        default=None,
        help="IVF lists probed per query (--index IVF...)",
    )
    s.add_argument(
        "--ef-search",
        type=int_at_least(1),
        default=None,
        help="HNSW efSearch (--index HNSW...; raised to at least the search depth; default 128)",
    )


def add_denoise_args(p: argparse.ArgumentParser, teacher_scores: bool = True) -> None:
    g = p.add_argument_group(
        "denoising: a teacher's margins and an LLM judge over the draws (docs/denoising.md)"
    )
    g.add_argument(
        "--rescore",
        default=None,
        metavar="KIND:PATH",
        help="teacher model: cross-encoder:PATH (a CrossEncoder) or bi-encoder:PATH",
    )
    g.add_argument(
        "--rescore-activation",
        choices=("logits", "model"),
        default="logits",
        help="cross-encoder scores: raw logits (default) or the model's activation",
    )
    g.add_argument(
        "--rescore-batch-size", type=int_at_least(1), default=64, help="teacher batch size (64)"
    )
    for name, what in (
        ("absolute-margin", "keep s- < s+ - M on teacher scores"),
        ("relative-margin", "keep s- < s+ - |s+| * R on teacher scores (0.05 = NV-Retriever 95%%)"),
        ("max-score", "keep teacher s- < this"),
        ("min-score", "keep teacher s- > this"),
    ):
        g.add_argument(f"--rescore-{name}", type=float, default=None, help=what)
    if teacher_scores:
        g.add_argument(
            "--teacher-scores",
            action="store_true",
            help="write the teacher's s(q,d+) and s(q,d-) where the format has scores "
            "(pos_scores/neg_scores, scores, score); needs --rescore",
        )
    else:
        p.set_defaults(teacher_scores=False, scores=False)
    g.add_argument(
        "--judge-url",
        default=None,
        help="OpenAI-compatible API root, e.g. http://localhost:8000/v1 (texts are sent there)",
    )
    g.add_argument("--judge-model", default=None, help="the judge model's name")
    g.add_argument(
        "--judge-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key (default OPENAI_API_KEY; unset: none)",
    )
    g.add_argument(
        "--judge-cache",
        default=None,
        help="sqlite judgement cache (default <cache dir>/judgements.sqlite)",
    )
    g.add_argument(
        "--judge-concurrency", type=int_at_least(1), default=8, help="requests in flight (8)"
    )
    g.add_argument(
        "--judge-timeout", type=positive_float, default=60.0, help="seconds per request (60)"
    )
    g.add_argument(
        "--judge-keep",
        choices=("HN,TN", "HN"),
        default="HN,TN",
        help="labels kept as negatives (default HN,TN; FN is always removed)",
    )
    g.add_argument(
        "--judge-on-failure",
        choices=("skip", "keep", "raise"),
        default="skip",
        help="a candidate the judge gave no label: skip it (default), keep it, or stop",
    )
    g.add_argument(
        "--judge-cascade-model",
        default=None,
        help="a stronger judge that re-labels what the first calls FN (RLHN's cascade)",
    )
    g.add_argument("--judge-cascade-url", default=None, help="its API root (default --judge-url)")
    g.add_argument(
        "--judge-mode",
        choices=("pointwise", "listwise"),
        default="pointwise",
        help="one request per candidate (default), or one per query judging its candidates "
        "together (RLHN / ARHN)",
    )
    g.add_argument(
        "--oversample",
        type=at_least_one,
        default=2.0,
        help="draws mined per negative wanted when denoising, >= 1 (default 2; at most what "
        "the sampler can draw)",
    )
    if not teacher_scores:  # report: the protocol counts false negatives, it writes none
        p.set_defaults(judge_fn_action="remove", judge_drop_above=8)
        return
    g.add_argument(
        "--judge-fn-action",
        choices=("remove", "relabel", "drop-query"),
        default="remove",
        help="a false negative is removed (default), relabelled as a positive of its query, "
        "or removed with its query left out above --judge-drop-above of them",
    )
    g.add_argument(
        "--judge-drop-above",
        type=int_at_least(0),
        default=8,
        help="false negatives a query may have with --judge-fn-action drop-query (default 8)",
    )


def add_train_data_args(p: argparse.ArgumentParser, eval_default: str | None) -> None:
    p.add_argument(
        "--data", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)"
    )
    p.add_argument("--split", default="train", help="training split (default train)")
    p.add_argument(
        "--eval-split",
        default=eval_default,
        required=eval_default is None,
        help=f"held-out split to score (default {eval_default})",
    )
    p.add_argument(
        "--allow-same-split",
        action="store_true",
        help="allow --eval-split to equal --split (scores the training queries: a sanity "
        "check, not an evaluation)",
    )
    p.add_argument(
        "--min-relevance",
        type=int_at_least(1),
        default=1,
        help="smallest judgement score that makes a positive (default 1)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="sentence-transformers model folder or name (default: the bundled all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--embeddings",
        default=None,
        help="precomputed embeddings of --model (corpus.npy, queries.npy + id lists); with "
        "--model given, a few rows are re-encoded to check them (--spot-check)",
    )
    p.add_argument(
        "--spot-check",
        type=int_at_least(0),
        default=8,
        help="with --embeddings and --model: re-encode this many seeded rows of each side "
        "with the model and refuse vectors that do not match them (default 8; 0: none)",
    )
    p.add_argument(
        "--min-cosine",
        type=ratio,
        default=0.99,
        help="the smallest cosine accepted between a stored vector and its re-encoding "
        "(default 0.99)",
    )
    p.add_argument("--cache-dir", default=None, help="embedding cache (default ~/.cache/negsample)")
    p.add_argument("--no-cache", action="store_true", help="do not cache embeddings")
    p.add_argument(
        "--max-seq-length", type=int_at_least(1), default=None, help="truncate inputs (tokens)"
    )
    p.add_argument(
        "--device",
        default=None,
        help="torch device: auto (default: the first GPU, else MPS, else the CPU), cpu, cuda:1...",
    )
    p.add_argument("--n", type=int_at_least(1), default=7, help="negatives per query (default 7)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
