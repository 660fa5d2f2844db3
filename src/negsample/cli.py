"""Command line: ``negsample demo``, ``negsample mine``, ``negsample report``,
``negsample train``, ``negsample probe``.

``main(argv) -> int``: data to stdout or files, progress and diagnostics to stderr.
Exit codes: 0 success, 1 runtime failure (disk full, a missing optional dependency, an
unexpected error), 2 bad usage or bad input, 3 a run stopped by ``--max-chunks`` before
its end (rerun the same command to continue), 4 another run holds the lock on this
output, 130 interrupted (Ctrl-C; ``mine`` resumes from its finished chunks).
Every failure ends in one line ``negsample: error: ...`` on stderr, never a traceback
(``NEGSAMPLE_DEBUG=1`` shows it for unexpected errors).
The subcommands only call the Python API (``load_beir``, ``encode_dataset``,
``mine_dataset``, ``write_negatives``, ``sampler_report``...).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

__all__ = ["main"]

#: Exit codes (docs/cli.md has the table).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_LOCKED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


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


def _log(msg: str) -> None:
    print(f"negsample: {msg}", file=sys.stderr)


def _file_stat(path: Path) -> list[Any]:
    return [str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns]


def _data_files(args: argparse.Namespace, splits: Sequence[str]) -> list[Path]:
    """The BEIR files a command reads (corpus, queries, the splits' qrels)."""
    from .io.data import qrels_file, resolve_file

    root = Path(args.data)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory (expected a BEIR dataset folder)")
    files = [resolve_file(root, "corpus.jsonl"), resolve_file(root, "queries.jsonl")]
    return files + [qrels_file(root, s) for s in dict.fromkeys(splits)]


def _input_paths(args: argparse.Namespace, splits: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """Every input file of a command, and its input folders (a local model folder)."""
    files = _data_files(args, splits)
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


def _check_outputs(
    args: argparse.Namespace,
    splits: Sequence[str],
    files: dict[str, Path],
    dirs: dict[str, Path] | None = None,
) -> None:
    """Before any work: every output is writable and none is an input (exit 2). Output
    folders (``dirs``) may not be an input folder either (the data, its qrels, the
    embeddings)."""
    from .pipeline.outputs import check_output_dir, check_output_file, refuse_inputs

    dirs = dirs or {}
    for opt, p in files.items():
        check_output_file(p, opt.split()[0])
    for opt, p in dirs.items():
        check_output_dir(p, opt)
    inputs, input_dirs = _input_paths(args, splits)
    if dirs:
        inputs += [Path(args.data), Path(args.data) / "qrels"]
        if getattr(args, "embeddings", None):
            inputs.append(Path(args.embeddings))
    refuse_inputs({**files, **dirs}, inputs, input_dirs)


def _load_inputs(args: argparse.Namespace) -> tuple[Any, dict[str, float], dict[str, Any]]:
    """The dataset, the seconds spent loading it, and the settings that identify it."""
    from .io.data import load_beir

    t = time.perf_counter()
    ds = load_beir(args.data, args.split, min_relevance=args.min_relevance)
    dt = time.perf_counter() - t
    _log(f"{ds.summary()} (read in {dt:.1f}s)")
    _log_left_out(ds)
    files = _data_files(args, [args.split])
    settings = {
        "data": [_file_stat(f) for f in files],
        "split": args.split,
        "min_relevance": args.min_relevance,
    }
    return ds, {"load": dt}, settings


def _log_left_out(ds: Any) -> None:
    left = {k: v for k, v in ds.stats.items() if k != "judgements" and v}
    if left:
        _log("left out: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in left.items()))


def _embeddings(args: argparse.Namespace, ds: Any, timings: dict[str, float]) -> Any:
    from .io.encoding import encode_dataset, load_embeddings

    t = time.perf_counter()
    if args.embeddings:
        emb = load_embeddings(args.embeddings, ds)
        _log(f"precomputed embeddings from {args.embeddings}: dim {emb.corpus.shape[1]}")
    else:
        cache = None if args.no_cache else (args.cache_dir or None)
        if cache is None and not args.no_cache:
            from .io.encoding import default_cache_dir

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


def _work_dir(out: Path) -> Path:
    return out.with_name(f".{out.name}.negsample-work")


def _mine(args: argparse.Namespace) -> int:
    from . import sampler_from_string
    from .pipeline.outputs import made_parents
    from .pipeline.resume import work_lock

    sampler = sampler_from_string(args.sampler)
    filters = _filters(args)
    _check_denoise_args(args)
    out = Path(args.out)
    if args.run and (args.embeddings or args.model):
        raise ValueError("--run gives the candidates: leave out --embeddings and --model")
    if args.run and sampler.needs_vectors:
        raise ValueError(
            f"{type(sampler).__name__} needs corpus vectors (needs_vectors=True), but a run "
            "file gives only scores; use a sampler that needs only scores (topk, simans), "
            "or mine with --embeddings / --model instead of --run"
        )
    if args.model and args.embeddings:
        raise ValueError("give --model or --embeddings, not both")
    _check_ray_args(args)
    outputs = {"--out": out}
    out_dirs: dict[str, Path] = {}
    if args.format == "hf":  # --out names a datasets folder
        out_dirs = {"--out": outputs.pop("--out")}
    elif args.format == "tevatron":  # and its corpus file beside it
        from .io.writers import tevatron_corpus_path

        outputs["--out (its Tevatron corpus file)"] = tevatron_corpus_path(out)
    if args.stats_json:
        outputs["--stats-json"] = Path(args.stats_json)
    _check_outputs(args, [args.split], outputs, out_dirs)
    work = _work_dir(out)
    # one run per output: the lock is held from here to the end (a second run on the same
    # --out fails at once, and never touches this run's work folder)
    with made_parents(out.parent), work_lock(work):
        return _mine_locked(args, sampler, out, work, filters)


def _mine_locked(
    args: argparse.Namespace, sampler: Any, out: Path, work: Path, filters: Any = None
) -> int:
    from .io.writers import EmptyOutput, atomic_path, write_negatives
    from .pipeline.dataset import mine_dataset
    from .pipeline.outputs import remove_stale_tmp
    from .pipeline.resume import RunIncomplete, remove_work_dir

    t_all = time.perf_counter()
    stale = remove_stale_tmp(out) + (remove_stale_tmp(args.stats_json) if args.stats_json else 0)
    if stale:
        _log(f"removed {stale} temporary files left beside {out} by an interrupted write")
    if args.fresh:
        remove_work_dir(work)
    ds, timings, settings = _load_inputs(args)
    emb = cands = None
    if args.run:
        from .io.runs import read_trec_run

        t = time.perf_counter()
        depth = sampler.depth + max(p.size for p in ds.positives) if sampler.depth else None
        run = read_trec_run(args.run, ds, depth=depth)
        timings["read_run"] = time.perf_counter() - t
        cands = run.candidates
        settings["run"] = _file_stat(Path(args.run))
        rs = run.stats
        _log(
            f"run {args.run}: {rs['lines']} lines, {cands.ids.shape[1]} candidates per query "
            f"at most; {rs['queries_not_in_split']} run queries not in the split (skipped), "
            f"{rs['queries_without_candidates']} split queries without candidates, "
            f"{rs['truncated']} candidates beyond depth {depth} (dropped)"
        )
    else:
        emb = _embeddings(args, ds, timings)
    denoising = bool(args.rescore or args.judge_url)
    n_mine, mine_sampler = args.n, sampler
    if denoising:
        n_mine, mine_sampler = _draws(args, sampler, ds.n_corpus)
        _log(f"denoising: {n_mine} draws per row mined, the first {args.n} that pass are kept")
    _log(f"mining with {sampler!r}, n={args.n}, seed={args.seed}, index={args.index}")
    if filters is not None:
        _log(f"filters: {filters!r}")
    had_work = work.is_dir()
    mine_fn = mine_dataset if args.ray is None else _ray_runner(args)
    try:
        res = mine_fn(
            ds,
            mine_sampler,
            embeddings=emb,
            candidates=cands,
            n=n_mine,
            seed=args.seed,
            index=args.index,
            metric=args.metric,
            work_dir=work,
            chunk_size=args.chunk_size,
            max_chunks=args.max_chunks,
            settings=settings,
            progress=not args.quiet,
            log=_log,
            exclude_duplicate_texts=not args.keep_duplicate_texts,
            filters=filters,
            nprobe=args.nprobe,
            ef_search=args.ef_search,
        )
    except RunIncomplete as exc:
        _log(str(exc))
        return EXIT_INCOMPLETE
    except (ValueError, TypeError):  # bad input or settings: leave no work folder of ours
        if not had_work:
            remove_work_dir(work)
        raise
    except BaseException:  # interrupted or failed: finished chunks are kept for a rerun
        if not had_work and not any(work.glob("chunk_*.npz")):
            remove_work_dir(work)
        raise
    timings.update(res.timings)
    st = res.negatives.stats
    removed = ", ".join(f"{k} {v}" for k, v in st.removed.items()) or "none"
    _log(
        f"mined {st.n_rows} rows for {st.n_queries} queries; candidates seen "
        f"{st.candidates_seen}, removed: {removed}; short rows {st.short_rows}, "
        f"filled {st.filled}, padded slots {st.padded}, dropped rows {st.dropped_rows}"
    )
    if st.emptied:
        _log(
            "queries left without any candidate by the filters: "
            + ", ".join(f"{k} {v}" for k, v in st.emptied.items())
        )
    negatives, positive_scores, den = res.negatives, res.positive_scores, None
    if denoising:
        t = time.perf_counter()
        den = _denoise(args, sampler, ds, res.negatives)
        timings["denoise"] = time.perf_counter() - t
        negatives = den.negatives
        if args.teacher_scores:
            assert den.teacher is not None
            negatives, positive_scores = den.teacher_negatives(), den.teacher.positive
    t = time.perf_counter()
    try:
        report = write_negatives(
            negatives,
            ds,
            out,
            args.format,
            scores=args.scores or args.teacher_scores,
            positive_scores=positive_scores,
            on_short=args.on_short,
            hf_layout=args.hf_layout,
        )
    except EmptyOutput as exc:
        remove_work_dir(work)  # a refused write (exit 2) leaves nothing of the run
        raise ValueError(f"{exc}: {_empty_hint(args, negatives.stats)}") from None
    except ValueError:
        remove_work_dir(work)
        raise
    except OSError as exc:  # disk full...: the temporary file is gone, the chunks are kept
        raise _Failure(f"{_os_message(exc)}{_enospc(exc)}; {_kept(work)}") from exc
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    _log(report.summary())
    _log("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    if args.stats_json:
        info = {
            "command": "mine",
            "sampler": repr(sampler),
            "n": args.n,
            "seed": st.seed,
            "index": args.index,
            "min_relevance": args.min_relevance,
            "dataset": {"n_corpus": ds.n_corpus, "n_queries": ds.n_queries, **ds.stats},
            "mining": st.as_dict(),
            "denoise": None if den is None else den.stats.as_dict(),
            "write": report.as_dict(),
            "timings": timings,
        }
        try:
            with atomic_path(args.stats_json) as tmp:
                tmp.write_text(json.dumps(info, indent=1))
        except OSError as exc:
            raise _Failure(
                f"{_os_message(exc)}{_enospc(exc)}; {out} was written, {_kept(work)}"
            ) from exc
    remove_work_dir(work)
    return EXIT_OK


class _Failure(Exception):
    """A runtime failure (exit 1) whose message is ready for the user."""


# -- denoising (issue 12): --rescore, --judge-url / --judge-model, --teacher-scores -----------

_RESCORE_KINDS = ("cross-encoder", "bi-encoder")


def _check_denoise_args(args: argparse.Namespace) -> None:
    """Refuse inconsistent denoising options before any work (exit 2)."""
    if args.rescore is not None:
        kind, _, path = args.rescore.partition(":")
        if kind not in _RESCORE_KINDS or not path:
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


def _draws(args: argparse.Namespace, sampler: Any, n_corpus: int) -> tuple[int, Any]:
    """Draws to mine per row (``--oversample`` x n, at most what the sampler can draw),
    and the sampler to mine them with (``on_shortfall="drop"`` is applied after denoising,
    so the draws are mined with ``"pad"``)."""
    import dataclasses
    import math

    cap = sampler.max_n if sampler.max_n is not None else 32 * args.n
    n_mine = int(min(cap, n_corpus - 1, max(args.n, math.ceil(args.oversample * args.n))))
    if sampler.on_shortfall == "drop":
        sampler = dataclasses.replace(sampler, on_shortfall="pad")
    return n_mine, sampler


def _scoring_setup(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The teacher scorer, the judge and the margins the options ask for (or ``None``)."""
    from .scoring import CascadeJudge, LLMJudge, Margins

    scorer: Any = None
    judge: Any = None
    margins = None
    if args.rescore:
        kind, _, path = args.rescore.partition(":")
        scorer = _scorer(kind, path, args)
        margins = Margins(
            absolute_margin=args.rescore_absolute_margin,
            relative_margin=args.rescore_relative_margin,
            max_score=args.rescore_max_score,
            min_score=args.rescore_min_score,
        )
        _log(f"rescoring with {scorer!r}; {margins!r}")
    if args.judge_url:
        cache = args.judge_cache
        if cache is None:
            from .io.encoding import default_cache_dir

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
        _log(f"judging with {judge!r} (texts are sent to {args.judge_url}); cache {cache}")
    return scorer, judge, margins


def _denoise(args: argparse.Namespace, sampler: Any, ds: Any, negatives: Any) -> Any:
    """Teacher margins and/or an LLM judge over the mined draws (``negsample.scoring``)."""
    from .scoring import JudgeError, denoise

    scorer, judge, margins = _scoring_setup(args)
    try:
        den = denoise(
            negatives,
            query_texts=ds.query_texts,
            document_texts=ds.document_texts,
            positives=ds.positives,
            n=args.n,
            scorer=scorer,
            judge=judge,
            margins=margins,
            judge_keep=tuple(args.judge_keep.split(",")),
            on_judge_failure=args.judge_on_failure,
            teacher_scores=args.teacher_scores,
            on_short="drop" if sampler.on_shortfall == "drop" else "pad",
            progress=not args.quiet,
        )
    except JudgeError as exc:
        raise _Failure(f"{exc} (rerun to resume: answers received are cached)") from exc
    except RuntimeError as exc:  # on_judge_failure='raise'
        raise _Failure(str(exc)) from exc
    finally:
        if scorer is not None:
            scorer.close()
    st = den.stats
    _log(
        f"denoised {st.rows} rows: {st.candidates_checked} candidates checked "
        f"({st.pairs_per_query:.2f} per query), removed: "
        + (", ".join(f"{k} {v}" for k, v in st.removed.items()) or "none")
        + (f"; judge labels {st.labels}" if st.labels else "")
        + f"; short rows {st.short_rows} (a larger --oversample draws more), dropped rows "
        f"{st.dropped_rows}"
    )
    for who, s in (("scorer", st.scorer), ("judge", st.judge)):
        if s is not None:
            _log(
                f"{who}: {s.pairs} pairs, {s.requests} requests, {s.cache_hits} cache hits, "
                f"{s.retries} retries, {s.timeouts} timeouts, {s.malformed} malformed, "
                f"{s.failures} failures, {s.seconds:.1f}s"
            )
    return den


def _scorer(kind: str, path: str, args: argparse.Namespace) -> Any:
    from .scoring import CrossEncoderScorer, EmbeddingScorer

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


def _add_denoise_args(p: argparse.ArgumentParser, teacher_scores: bool = True) -> None:
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
        "--rescore-batch-size", type=_int_at_least(1), default=64, help="teacher batch size (64)"
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
        "--judge-concurrency", type=_int_at_least(1), default=8, help="requests in flight (8)"
    )
    g.add_argument(
        "--judge-timeout", type=_positive_float, default=60.0, help="seconds per request (60)"
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
        "--oversample",
        type=_positive_float,
        default=2.0,
        help="draws mined per negative wanted when denoising (default 2; at most what the "
        "sampler can draw)",
    )


def _kept(work: Path) -> str:
    return (
        f"the mined chunks are kept in {work}: rerun the same command to write without mining again"
    )


def _enospc(exc: OSError) -> str:
    return " (disk full: free some space and rerun)" if exc.errno == errno.ENOSPC else ""


def _empty_hint(args: argparse.Namespace, st: Any) -> str:
    """Why a run wrote nothing, and what to try."""
    if st.n_rows and st.short_rows == st.n_rows:
        what = f"every one of the {st.n_rows} rows has fewer than n={args.n} negatives"
    else:
        what = f"{st.n_rows} rows mined, {st.short_rows} of them short"
    emptied = sum(getattr(st, "emptied", {}).values())
    if emptied:
        by = ", ".join(f"{k} {v}" for k, v in st.emptied.items())
        tip = (
            f"the filters left {emptied} queries without any candidate ({by}): loosen them "
            "(--relative-margin 0.05 is NV-Retriever's 95%)"
        )
    elif args.run:
        tip = "the run file gives too few candidates per query: use a deeper run or a smaller --n"
    elif "IVF" in args.index.upper():
        tip = (
            f"the index {args.index!r} returned too few candidates (an IVF searches one "
            "list by default): try --index Flat (or exact), or an IVF with fewer lists"
        )
    else:
        tip = "try a smaller --n, a sampler with a wider window, or --format st-triplet"
    return f"{what}; {tip}"


_RAY_FLAGS = ("workers", "corpus_shards", "worker_cpus", "worker_gpus")


def _check_ray_args(args: argparse.Namespace) -> None:
    given = [f"--{k.replace('_', '-')}" for k in _RAY_FLAGS if getattr(args, k) is not None]
    if args.ray is None:
        if given:
            raise ValueError(f"{', '.join(given)} need --ray (auto, local or HOST:PORT)")
        return
    if args.run:
        raise ValueError("--ray distributes the dense search; with --run there is none: drop --ray")
    if args.max_chunks is not None:
        raise ValueError(
            "--max-chunks is not available with --ray: stop a cluster run with Ctrl-C and "
            "run the same command again to continue"
        )
    if args.workers is not None and args.corpus_shards is not None:
        raise ValueError("give --workers (query sharding) or --corpus-shards, not both")


def _nonnegative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0 or not np.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def _ray_runner(args: argparse.Namespace) -> Any:
    """``mine_dataset_distributed`` with the cluster flags, called like ``mine_dataset``."""
    from .distributed import mine_dataset_distributed

    def run(*a: Any, candidates: Any, max_chunks: Any, **kw: Any) -> Any:
        return mine_dataset_distributed(
            *a,
            address=args.ray,
            workers=args.workers,
            corpus_shards=args.corpus_shards,
            cpus_per_worker=1.0 if args.worker_cpus is None else args.worker_cpus,
            gpus_per_worker=0.0 if args.worker_gpus is None else args.worker_gpus,
            **kw,
        )

    return run


def _filters(args: argparse.Namespace) -> Any:
    """The ``Filters`` the filter options ask for (``None`` when none is given)."""
    from .filters import Filters

    f = Filters(
        range_min=args.range_min,
        range_max=args.range_max,
        absolute_margin=args.absolute_margin,
        relative_margin=args.relative_margin,
        max_score=args.max_score,
        min_score=args.min_score,
    )
    return None if f.is_noop else f


def _add_filter_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "filters (sentence-transformers' names and meanings; see docs/filters.md)"
    )
    g.add_argument(
        "--range-min",
        type=_int_at_least(0),
        default=0,
        help="skip candidates ranked before this (ranks after the positives are removed)",
    )
    g.add_argument(
        "--range-max",
        type=_int_at_least(1),
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
    s = p.add_argument_group("faiss search settings")
    s.add_argument(
        "--nprobe",
        type=_int_at_least(1),
        default=None,
        help="IVF lists probed per query (--index IVF...)",
    )
    s.add_argument(
        "--ef-search",
        type=_int_at_least(1),
        default=None,
        help="HNSW efSearch (--index HNSW...; raised to at least the search depth; default 128)",
    )


def _report(args: argparse.Namespace) -> int:
    from . import sampler_from_string
    from .pipeline.report import sampler_report
    from .scoring import JudgeError

    samplers = {spec: sampler_from_string(spec) for spec in args.sampler}
    d = Path(args.out_dir)
    names = ("fn_vs_hardness.png", "score_hist.png", "report.json", "summary.md")
    _check_outputs(args, [args.split], {f"--out-dir {n}": d / n for n in names})
    from .pipeline.outputs import check_output_dir

    check_output_dir(d, "--out-dir")
    _check_denoise_args(args)
    ds, timings, _settings = _load_inputs(args)
    emb = _embeddings(args, ds, timings)
    scorer, judge, margins = _scoring_setup(args)
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
        raise _Failure(f"{exc} (rerun to resume: answers received are cached)") from exc
    finally:
        if scorer is not None:
            scorer.close()
    print(rep.table())
    paths = rep.write(args.out_dir)
    for p in paths:
        _log(f"wrote {p}")
    return 0


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data and embeddings")
    g.add_argument(
        "--data", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)"
    )
    g.add_argument("--split", default="train", help="qrels split to read (default train)")
    g.add_argument(
        "--min-relevance",
        type=_int_at_least(1),
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
        "query_ids.txt) instead of a model",
    )
    g.add_argument("--cache-dir", default=None, help="embedding cache (default ~/.cache/negsample)")
    g.add_argument("--no-cache", action="store_true", help="do not cache embeddings")
    g.add_argument(
        "--batch-size", type=_int_at_least(1), default=64, help="encoding batch size (default 64)"
    )
    g.add_argument(
        "--max-seq-length", type=_int_at_least(1), default=None, help="truncate inputs (tokens)"
    )
    g.add_argument("--query-prompt", default=None, help="prefix added to queries when encoding")
    g.add_argument("--document-prompt", default=None, help="prefix added to documents")
    g.add_argument("--query-prompt-name", default=None, help="a prompt of the model, for queries")
    g.add_argument(
        "--document-prompt-name", default=None, help="a prompt of the model, for documents"
    )
    g.add_argument(
        "--precision",
        choices=("float32", "float16", "bfloat16"),
        default=None,
        help="dtype the model encodes in (default: float16 on a CUDA GPU, else float32)",
    )
    g.add_argument(
        "--device", default=None, help="torch device for encoding (default: auto, every GPU)"
    )
    g.add_argument(
        "--index",
        default="exact",
        help="'exact' (numpy, default), 'torch[:DEVICE[:DTYPE]]' (exact, GPU: torch:cuda, "
        "torch:cuda:bfloat16) or a faiss factory string: Flat, HNSW32, IVF1024,Flat",
    )
    g.add_argument("--metric", choices=("ip", "cosine"), default="ip", help="score (default ip)")
    p.add_argument("--n", type=_int_at_least(1), default=7, help="negatives per query (default 7)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


# -- train and probe (issue 5) ------------------------------------------------------------------


def _split_embeddings(args: argparse.Namespace, ds: Any) -> Any:
    """Embeddings of ``ds`` (precomputed ``--embeddings``, else encoded with ``--model``)."""
    from .io.encoding import default_cache_dir, encode_dataset, load_embeddings

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


def _refuse_same_split(args: argparse.Namespace) -> None:
    if args.eval_split and args.eval_split == args.split and not args.allow_same_split:
        raise ValueError(
            f"--split and --eval-split are both {args.split!r}: scoring on the training "
            "queries measures memorisation (nDCG@10 near 1.0), not retrieval; use another "
            "--eval-split, or --allow-same-split to do it anyway"
        )


def _train(args: argparse.Namespace) -> int:
    from . import sampler_from_string
    from .io.data import load_beir

    _refuse_same_split(args)
    splits = [args.split] + ([args.eval_split] if args.eval_split else [])
    files = {"--metrics-json": Path(args.metrics_json)} if args.metrics_json else {}
    dirs = {"--out": Path(args.out)} if args.out else {}
    _check_outputs(args, splits, files, dirs)
    if args.out:
        _refuse_model_folder(args)
    from .integrations.sentence_transformers import TrainingData, train

    train_ds = load_beir(args.data, args.split, min_relevance=args.min_relevance)
    _log(train_ds.summary())
    _log_left_out(train_ds)
    eval_ds = (
        load_beir(args.data, args.eval_split, min_relevance=args.min_relevance)
        if args.eval_split
        else None
    )
    if eval_ds is not None:
        _log(eval_ds.summary())
    sampler = None if args.sampler.lower() == "none" else sampler_from_string(args.sampler)
    corpus_emb = query_emb = None
    if args.embeddings and sampler is not None:
        emb = _split_embeddings(args, train_ds)
        corpus_emb, query_emb = emb.corpus, emb.queries
        _log(f"initial mining with the precomputed embeddings in {args.embeddings}")
    _log(f"training with {sampler!r}" if sampler else "training with in-batch negatives only")
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
    _log(f"trained in {result.seconds:.1f}s")
    if args.out:
        from .index.base import write_dir_atomic

        # written into a temporary folder, then moved into place: never half a model
        write_dir_atomic(args.out, lambda tmp: result.model.save(str(tmp)))
        _log(f"model saved to {args.out}")
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
        from .io.writers import atomic_path

        with atomic_path(args.metrics_json) as tmp:
            tmp.write_text(json.dumps(report, indent=1))
    return 0


def _refuse_model_folder(args: argparse.Namespace) -> None:
    """``train --out`` must not be (or hold) the starting model's folder."""
    from .io.encoding import _model_path
    from .pipeline.outputs import refuse_inputs

    try:
        start = Path(_model_path(args.model))
    except ImportError:
        return
    if start.is_dir():
        refuse_inputs({"--out": Path(args.out)}, [], [start])


def _probe(args: argparse.Namespace) -> int:
    from . import sampler_from_string
    from .io.data import load_beir
    from .probe import probe

    _refuse_same_split(args)
    files = {"--json": Path(args.json)} if args.json else {}
    _check_outputs(args, [args.split, args.eval_split], files)
    train_ds = load_beir(args.data, args.split, min_relevance=args.min_relevance)
    eval_ds = load_beir(args.data, args.eval_split, min_relevance=args.min_relevance)
    _log(f"{train_ds.summary()}; held out: {eval_ds.n_queries} queries ({args.eval_split})")
    _log_left_out(train_ds)
    samplers = {spec: sampler_from_string(spec) for spec in args.sampler}
    emb_train = _split_embeddings(args, train_ds)
    emb_eval = _split_embeddings(args, eval_ds)
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
    _log(f"probe: {len(samplers)} samplers x {len(args.seeds)} seeds in {res.seconds:.1f}s")
    if args.json:
        from .io.writers import atomic_path

        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(res.as_dict(), indent=1))
    return 0


def _add_train_data_args(p: argparse.ArgumentParser, eval_default: str | None) -> None:
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
        type=_int_at_least(1),
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
        help="precomputed embeddings of --model (corpus.npy, queries.npy + id lists)",
    )
    p.add_argument("--cache-dir", default=None, help="embedding cache (default ~/.cache/negsample)")
    p.add_argument("--no-cache", action="store_true", help="do not cache embeddings")
    p.add_argument(
        "--max-seq-length", type=_int_at_least(1), default=None, help="truncate inputs (tokens)"
    )
    p.add_argument("--device", default=None, help="torch device (default: the GPU if any)")
    p.add_argument("--n", type=_int_at_least(1), default=7, help="negatives per query (default 7)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``negsample: error: <command>: <problem>``, exit 2."""

    def error(self, message: str) -> NoReturn:
        cmd = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(EXIT_USAGE, f"negsample: error: {cmd}{message} (see {self.prog} --help)\n")


def _int_at_least(lo: int) -> Any:
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


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= v < 2**64:
        raise argparse.ArgumentTypeError(
            f"a seed is an integer in [0, 2**64), got {v} (larger seeds would alias smaller ones)"
        )
    return v


def _max_steps(text: str) -> int:
    v = _int_at_least(-1)(text)
    if v == 0:
        raise argparse.ArgumentTypeError("must be -1 (no limit) or >= 1, got 0")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or not np.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def _ratio(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="negsample", description="Hard-negative sampling for dense retrievers.")
    parser.add_argument("--version", action="version", version=f"negsample {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="mine a built-in synthetic set with every sampler and compare them"
    )
    pos = _int_at_least(1)
    demo.add_argument("--docs", type=pos, default=20_000, help="corpus size (default 20000)")
    demo.add_argument("--queries", type=pos, default=1_000, help="queries (default 1000)")
    demo.add_argument("--dim", type=pos, default=64, help="vector dimension (default 64)")
    demo.add_argument("--n", type=pos, default=7, help="negatives per query (default 7)")
    demo.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)

    from .io.writers import FORMATS, HF_LAYOUTS

    mine = sub.add_parser(
        "mine",
        help="mine hard negatives for a BEIR split and write a training file",
        description="Mine hard negatives for a BEIR split and write a training file. "
        "Resumable: rerun an interrupted command to continue from its last finished chunk.",
    )
    _add_data_args(mine)
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
        "--seed", type=_seed, default=0, help="random seed, 0 <= seed < 2**64 (default 0)"
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
    _add_filter_args(mine)
    _add_denoise_args(mine)
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
        "--worker-cpus", type=_positive_float, default=None, help="CPUs per worker (default 1)"
    )
    ray.add_argument(
        "--worker-gpus",
        type=_nonnegative_float,
        default=None,
        help="GPUs per worker (default 0); use --index torch on GPU workers",
    )
    mine.set_defaults(func=_mine)

    rep = sub.add_parser(
        "report",
        help="compare samplers on a labelled split (hidden-positive protocol, score plots)",
    )
    _add_data_args(rep)
    rep.add_argument(
        "--sampler",
        action="append",
        required=True,
        help="sampler spec; repeat the option to compare several",
    )
    rep.add_argument(
        "--seeds", type=_seed, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)"
    )
    rep.add_argument(
        "--out-dir", required=True, help="folder for summary.md, report.json and the PNG plots"
    )
    _add_denoise_args(rep, teacher_scores=False)
    rep.set_defaults(func=_report)

    tr = sub.add_parser(
        "train",
        help="fine-tune a sentence-transformers model with a sampler's negatives",
        description="Mine negatives with the model as it is, fine-tune with "
        "MultipleNegativesRankingLoss, score the held-out split (nDCG@10, MRR@10, Recall@100).",
    )
    _add_train_data_args(tr, "test")
    tr.add_argument(
        "--sampler", default="topk", help='sampler spec, or "none" for in-batch negatives only'
    )
    tr.add_argument("--epochs", type=pos, default=1, help="epochs (default 1)")
    tr.add_argument(
        "--max-steps", type=_max_steps, default=-1, help="stop after this many steps (-1: none)"
    )
    tr.add_argument("--train-batch-size", type=pos, default=32, help="batch size (default 32)")
    tr.add_argument("--lr", type=_positive_float, default=2e-5, help="learning rate (default 2e-5)")
    tr.add_argument("--warmup-ratio", type=_ratio, default=0.1, help="warm-up share (0.1)")
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
    tr.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    tr.add_argument("--out", default=None, help="folder to save the trained model")
    tr.add_argument("--metrics-json", default=None, help="write the metrics as JSON")
    tr.set_defaults(func=_train)

    pr = sub.add_parser(
        "probe",
        help="rank samplers in seconds: a linear query map trained on frozen embeddings",
        description="For each sampler and seed, train a linear map on the query embeddings "
        "with the sampler's negatives (InfoNCE) and score the held-out split; samplers "
        "ranked by nDCG@10.",
    )
    _add_train_data_args(pr, "test")
    pr.add_argument(
        "--sampler", action="append", required=True, help="sampler spec; repeat to compare"
    )
    pr.add_argument("--seeds", type=_seed, nargs="+", default=[0, 1, 2], help="seeds (0 1 2)")
    pr.add_argument("--epochs", type=pos, default=3, help="epochs of the map (default 3)")
    pr.add_argument(
        "--lr", type=_positive_float, default=1e-3, help="Adam learning rate (default 1e-3)"
    )
    pr.add_argument("--json", default=None, help="write every figure as JSON")
    pr.set_defaults(func=_probe)
    return parser


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is at each record."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@contextmanager
def _library_log_on_stderr() -> Iterator[None]:
    """While a command runs, the library's diagnostics (the ``negsample`` logger, INFO and
    above) go to stderr; the logger is left as it was afterwards."""
    logger = logging.getLogger("negsample")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("negsample: %(levelname)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    if level == logging.NOTSET or level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _one_line(msg: object) -> str:
    return " ".join(part.strip() for part in str(msg).splitlines() if part.strip())


def _os_message(exc: OSError) -> str:
    if exc.filename is None:
        return str(exc)
    where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
    return f"{where}: {exc.strerror or exc}"


def _fail(code: int, msg: object) -> int:
    print(f"negsample: error: {_one_line(msg)}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    with _library_log_on_stderr():
        return _main(argv)


def _main(argv: Sequence[str] | None = None) -> int:
    from .pipeline.lock import RunLocked

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else 2)
    np.set_printoptions(precision=4)
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        tail = (
            "; rerun the same command to resume (finished chunks are kept)"
            if args.command == "mine"
            else ""
        )
        print(f"negsample: interrupted{tail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RunLocked as exc:
        return _fail(EXIT_LOCKED, exc)
    except _Failure as exc:
        return _fail(EXIT_FAILURE, exc)
    except KeyError as exc:
        return _fail(EXIT_USAGE, exc.args[0] if exc.args else exc)
    except (ValueError, TypeError) as exc:
        return _fail(EXIT_USAGE, exc)
    except (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError) as exc:
        return _fail(EXIT_USAGE, _os_message(exc))
    except FileExistsError as exc:
        return _fail(EXIT_USAGE, _os_message(exc))
    except OSError as exc:  # disk full, I/O error: temporary files are already removed
        return _fail(EXIT_FAILURE, _os_message(exc) + _enospc(exc))
    except ImportError as exc:
        return _fail(EXIT_FAILURE, exc)
    except Exception as exc:
        if os.environ.get("NEGSAMPLE_DEBUG"):
            raise
        return _fail(
            EXIT_FAILURE,
            f"unexpected {type(exc).__name__}: {exc} (NEGSAMPLE_DEBUG=1 shows the traceback)",
        )
    return rc
