"""``negsample mine``: mine hard negatives for a BEIR split and write a training file
(resumable; optionally denoised by a teacher and an LLM judge; optionally on Ray)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ._args import (
    add_data_args,
    add_denoise_args,
    add_filter_args,
    int_at_least,
    nonnegative_float,
    positive_float,
    seed,
)
from ._common import (
    check_denoise_args,
    check_outputs,
    dataset_embeddings,
    file_stat,
    load_inputs,
    log,
    scoring_setup,
)
from ._errors import EXIT_INCOMPLETE, EXIT_OK, Failure, enospc, kept, os_message

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from .. import sampler_from_string
    from ..pipeline.outputs import made_parents
    from ..pipeline.resume import work_lock

    sampler = sampler_from_string(args.sampler)
    filters = _filters(args)
    check_denoise_args(args)
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
        from ..io.writers import tevatron_corpus_path

        outputs["--out (its Tevatron corpus file)"] = tevatron_corpus_path(out)
    if args.stats_json:
        outputs["--stats-json"] = Path(args.stats_json)
    check_outputs(args, [args.split], outputs, out_dirs)
    work = _work_dir(out)
    # one run per output: the lock is held from here to the end (a second run on the same
    # --out fails at once, and never touches this run's work folder)
    with made_parents(out.parent), work_lock(work):
        return _mine_locked(args, sampler, out, work, filters)


def _work_dir(out: Path) -> Path:
    return out.with_name(f".{out.name}.negsample-work")


def _mine_locked(
    args: argparse.Namespace, sampler: Any, out: Path, work: Path, filters: Any = None
) -> int:
    from ..io.writers import EmptyOutput, atomic_path, write_negatives
    from ..pipeline.dataset import mine_dataset
    from ..pipeline.outputs import remove_stale_tmp
    from ..pipeline.resume import RunIncomplete, remove_work_dir

    t_all = time.perf_counter()
    stale = remove_stale_tmp(out) + (remove_stale_tmp(args.stats_json) if args.stats_json else 0)
    if stale:
        log(f"removed {stale} temporary files left beside {out} by an interrupted write")
    if args.fresh:
        remove_work_dir(work)
    ds, timings, settings = load_inputs(args)
    emb = cands = None
    if args.run:
        from ..io.runs import read_trec_run

        t = time.perf_counter()
        depth = sampler.depth + max(p.size for p in ds.positives) if sampler.depth else None
        run = read_trec_run(args.run, ds, depth=depth)
        timings["read_run"] = time.perf_counter() - t
        cands = run.candidates
        settings["run"] = file_stat(Path(args.run))
        rs = run.stats
        log(
            f"run {args.run}: {rs['lines']} lines, {cands.ids.shape[1]} candidates per query "
            f"at most; {rs['queries_not_in_split']} run queries not in the split (skipped), "
            f"{rs['queries_without_candidates']} split queries without candidates, "
            f"{rs['truncated']} candidates beyond depth {depth} (dropped)"
        )
    else:
        emb = dataset_embeddings(args, ds, timings)
    denoising = bool(args.rescore or args.judge_url)
    n_mine, mine_sampler = args.n, sampler
    if denoising:
        n_mine, mine_sampler = _draws(args, sampler, ds.n_corpus)
        log(f"denoising: {n_mine} draws per row mined, the first {args.n} that pass are kept")
    log(f"mining with {sampler!r}, n={args.n}, seed={args.seed}, index={args.index}")
    if filters is not None:
        log(f"filters: {filters!r}")
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
            log=log,
            exclude_duplicate_texts=not args.keep_duplicate_texts,
            filters=filters,
            nprobe=args.nprobe,
            ef_search=args.ef_search,
        )
    except RunIncomplete as exc:
        log(str(exc))
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
    log(
        f"mined {st.n_rows} rows for {st.n_queries} queries; candidates seen "
        f"{st.candidates_seen}, removed: {removed}; short rows {st.short_rows}, "
        f"filled {st.filled}, padded slots {st.padded}, dropped rows {st.dropped_rows}"
    )
    if st.emptied:
        log(
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
        raise Failure(f"{os_message(exc)}{enospc(exc)}; {kept(work)}") from exc
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    log(report.summary())
    log("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
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
            raise Failure(
                f"{os_message(exc)}{enospc(exc)}; {out} was written, {kept(work)}"
            ) from exc
    remove_work_dir(work)
    return EXIT_OK


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


def _denoise(args: argparse.Namespace, sampler: Any, ds: Any, negatives: Any) -> Any:
    """Teacher margins and/or an LLM judge over the mined draws (``negsample.scoring``)."""
    from ..scoring import JudgeError, denoise

    scorer, judge, margins = scoring_setup(args)
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
        raise Failure(f"{exc} (rerun to resume: answers received are cached)") from exc
    except RuntimeError as exc:  # on_judge_failure='raise'
        raise Failure(str(exc)) from exc
    finally:
        if scorer is not None:
            scorer.close()
    st = den.stats
    log(
        f"denoised {st.rows} rows: {st.candidates_checked} candidates checked "
        f"({st.pairs_per_query:.2f} per query), removed: "
        + (", ".join(f"{k} {v}" for k, v in st.removed.items()) or "none")
        + (f"; judge labels {st.labels}" if st.labels else "")
        + f"; short rows {st.short_rows} (a larger --oversample draws more), dropped rows "
        f"{st.dropped_rows}"
    )
    for who, s in (("scorer", st.scorer), ("judge", st.judge)):
        if s is not None:
            log(
                f"{who}: {s.pairs} pairs, {s.requests} requests, {s.cache_hits} cache hits, "
                f"{s.retries} retries, {s.timeouts} timeouts, {s.malformed} malformed, "
                f"{s.failures} failures, {s.seconds:.1f}s"
            )
    return den


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


def _ray_runner(args: argparse.Namespace) -> Any:
    """``mine_dataset_distributed`` with the cluster flags, called like ``mine_dataset``."""
    from ..distributed import mine_dataset_distributed

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
    from ..filters import Filters

    f = Filters(
        range_min=args.range_min,
        range_max=args.range_max,
        absolute_margin=args.absolute_margin,
        relative_margin=args.relative_margin,
        max_score=args.max_score,
        min_score=args.min_score,
    )
    return None if f.is_noop else f


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
    mine.set_defaults(func=run)
