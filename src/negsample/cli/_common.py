"""What several commands share: the log line, options made from the parsed arguments,
the ``--split``/``--eval-split`` rule and the embeddings of ``train`` and ``probe``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, TypeVar, cast

from ..errors import InputError

__all__ = [
    "log",
    "options_from",
    "refuse_same_split",
    "split_embeddings",
]

T = TypeVar("T")


def log(msg: str) -> None:
    """One diagnostic line on stderr: ``negsample: <msg>``."""
    print(f"negsample: {msg}", file=sys.stderr)


def options_from(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """An options dataclass (``DataOptions``, ``DenoiseOptions``...) made from the parsed
    arguments of the same names (those a command lacks keep their defaults)."""
    names = [f.name for f in dataclasses.fields(cast(Any, cls))]
    kw = {k: getattr(args, k) for k in names if k not in given and hasattr(args, k)}
    return cls(**kw, **given)


def split_embeddings(args: argparse.Namespace, ds: Any) -> Any:
    """Embeddings of ``ds`` (precomputed ``--embeddings``, else encoded with ``--model``)."""
    from ..io.embeddings import load_embeddings
    from ..io.encoding import default_cache_dir, encode_dataset

    if args.embeddings:
        return load_embeddings(
            args.embeddings,
            ds,
            model=args.model,
            spot_check=args.spot_check if args.model else 0,
            min_cosine=args.min_cosine,
            max_seq_length=args.max_seq_length,
            device=args.device,
        )
    return encode_dataset(
        ds,
        args.model,
        cache_dir=None if args.no_cache else (args.cache_dir or str(default_cache_dir())),
        max_seq_length=args.max_seq_length,
        device=args.device,
        progress=not args.quiet,
    )


def refuse_same_split(args: argparse.Namespace) -> None:
    """``--eval-split`` equal to ``--split`` scores the training queries: refused unless
    ``--allow-same-split``."""
    if args.eval_split and args.eval_split == args.split and not args.allow_same_split:
        raise InputError(
            f"--split and --eval-split are both {args.split!r}: scoring on the training "
            "queries measures memorisation (nDCG@10 near 1.0), not retrieval; use another "
            "--eval-split, or --allow-same-split to do it anyway"
        )
