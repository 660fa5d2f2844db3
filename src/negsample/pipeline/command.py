"""``negsample mine`` as a library function: :func:`run_mine` takes a
:class:`MineOptions` and does what the command does, in this order.

1. Check every option, build the sampler, the filters, the teacher's margins and the
   descriptions of the teacher and the judge (no model loaded, no connection opened), and
   check every path against every other
   (:func:`~negsample.pipeline.outputs.check_places`): the outputs, the caches, the run's
   own lock file and work folder, the inputs. A problem is an
   :class:`~negsample.errors.InputError` before any work.
2. Hold the output's lock (:class:`~negsample.RunLocked` when another run holds it),
   remove what an interrupted write left beside the outputs, load the dataset, read the
   run file or load/encode the embeddings.
3. Mine (:func:`~negsample.mine_dataset`, or on Ray
   :func:`~negsample.distributed.mine_dataset_distributed`), resumable from the work
   folder; ``max_chunks`` raises :class:`~negsample.RunIncomplete`.
4. Denoise the draws (a teacher's margins, an LLM judge), write the output atomically,
   write the stats JSON, remove the work folder.

What is left on disk after each outcome is docs/cli.md's table: bad input before or after
mining leaves no work folder of this run; an interruption (``KeyboardInterrupt``, or the
command line's SIGTERM) or a failure while mining keeps the finished chunks; a failed
write (:class:`~negsample.errors.RunFailed`) keeps them too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, RunFailed, is_input_error, os_error_message
from ..filters import Filters
from ..samplers.base import BaseSampler
from .inputs import dataset_embeddings, load_dataset, parse_sampler, read_places
from .options import (
    DataOptions,
    DenoiseOptions,
    JudgeSpec,
    RayOptions,
    TeacherSpec,
    open_scoring,
)
from .outputs import Place, check_places
from .settings import identify_file

__all__ = ["MineOptions", "MineResult", "denoise_draws", "run_mine", "work_dir_of"]

Log = Callable[[str], None]
_logger = logging.getLogger(__name__)
#: Rows denoised per call of a Ray stage's scorer or judge.
_RAY_CHUNK_ROWS = 65536


def work_dir_of(out: str | os.PathLike[str]) -> Path:
    """The work folder of a run writing ``out``: ``.<name>.negsample-work`` beside it
    (its lock file is that name plus ``.lock``)."""
    p = Path(out)
    return p.with_name(f".{p.name}.negsample-work")


@dataclass(frozen=True, kw_only=True)
class MineOptions:
    """What ``negsample mine`` is asked to do (its options, by the same names; see
    docs/cli.md). Options that do not go together are refused when made.

    Parameters
    ----------
    data : DataOptions
        the dataset, its vectors and the index.
    out : str or os.PathLike
        the output file (a folder for ``format="hf"``).
    sampler : str or BaseSampler
        a sampler spec (``"ReSa2Sampler(k2=75)"``) or a sampler.
    n, seed : int
        negatives per query; the seed.
    run : str or None
        a TREC run file as the candidates instead of a dense search.
    format, hf_layout : str
        the output format (:data:`negsample.io.writers.FORMATS`) and a ``hf`` folder's rows.
    scores : bool
        write the miner's own scores.
    on_short : str
        ``"skip"`` or ``"error"``.
    chunk_size, max_chunks : int or None
        queries per saved chunk; stop after this many new chunks.
    fresh : bool
        discard the saved chunks of an earlier run on ``out``.
    keep_duplicate_texts : bool
        allow negatives whose text equals a positive's.
    stats_json : str or None
        also write the diagnostics as JSON there.
    filters : Filters or None
        rank window, margins, score caps and the embedding near-duplicate rule;
        ``filters.near_duplicate`` (``--near-duplicate``) turns on the normalised-text
        rule too (:attr:`near_duplicate_texts`).
    nprobe, ef_search : int or None
        faiss search settings.
    denoise : DenoiseOptions
        a teacher and/or a judge over the draws.
    ray : RayOptions
        a Ray cluster.
    progress : bool
        progress bars on stderr.
    exclude_other_positives : bool
        never sample a document that is a labelled positive of another query of the split.
    max_negative_reuse : int or None
        the most rows one document may be a negative of (docs/algorithms.md); with a
        teacher or a judge, applied to the draws that pass.
    reuse_oversample : float
        draws per negative wanted for the cap.
    batch_safe : int or None
        write the rows in a batch-safe order for training batches of this many rows.
    """

    data: DataOptions
    out: str | os.PathLike[str]
    sampler: Any = "topk"
    n: int = 7
    seed: int = 0
    run: str | None = None
    format: str = "st-ntuple"
    hf_layout: str = "st-ntuple"
    scores: bool = False
    on_short: str = "skip"
    chunk_size: int | None = None
    max_chunks: int | None = None
    fresh: bool = False
    keep_duplicate_texts: bool = False
    stats_json: str | None = None
    filters: Filters | None = None
    nprobe: int | None = None
    ef_search: int | None = None
    denoise: DenoiseOptions = field(default_factory=DenoiseOptions)
    ray: RayOptions = field(default_factory=RayOptions)
    progress: bool = False
    exclude_other_positives: bool = False
    max_negative_reuse: int | None = None
    reuse_oversample: float = 2.0
    batch_safe: int | None = None

    def __post_init__(self) -> None:
        from ..io.batches import BATCH_FORMATS

        if self.batch_safe is not None and self.format not in BATCH_FORMATS:
            raise InputError(
                f"--batch-safe orders the rows of a row format ({', '.join(BATCH_FORMATS)}); "
                f"--format {self.format} has no training batches of rows to order"
            )
        if self.batch_safe is not None and self.batch_safe < 1:
            raise InputError(f"--batch-safe must be >= 1, got {self.batch_safe}")
        if self.max_negative_reuse is not None and self.max_negative_reuse < 1:
            raise InputError(f"--max-negative-reuse must be >= 1, got {self.max_negative_reuse}")
        from ..crossquery import check_oversample

        try:
            check_oversample(self.reuse_oversample)
        except ValueError as exc:
            raise InputError(f"--reuse-oversample: {exc}") from None
        if self.run and (self.data.embeddings or self.data.model):
            raise InputError("--run gives the candidates: leave out --embeddings and --model")
        if self.denoise.teacher_scores and self.scores:
            raise InputError("give --scores (the miner's scores) or --teacher-scores, not both")
        if self.ray.enabled and self.run:
            raise InputError(
                "--ray distributes the dense search; with --run there is none: drop --ray"
            )
        from ..index.registry import parse_index_spec

        if parse_index_spec(self.data.index).is_source:
            if self.run:
                raise InputError(
                    f"--run and --index {self.data.index} both give the candidates: give one"
                )
            if self.ray.enabled:
                raise InputError(
                    f"--index {self.data.index} computes its candidates in one process: drop "
                    "--ray (or use a vector --index)"
                )
        if self.filters is not None and self.filters.near_duplicate is not None:
            if self.run:
                raise InputError(
                    "--near-duplicate compares candidates with the positives' embeddings, "
                    "and --run gives none: mine with --embeddings or --model instead"
                )
            if self.keep_duplicate_texts:
                raise InputError(
                    "--near-duplicate removes identical texts too (they normalise alike): "
                    "drop --keep-duplicate-texts"
                )
        if self.ray.enabled and self.max_chunks is not None:
            raise InputError(
                "--max-chunks is not available with --ray: stop a cluster run with Ctrl-C and "
                "run the same command again to continue"
            )
        stages = self.ray.stages
        if "encode" in stages and (self.run or self.data.embeddings):
            raise InputError(
                "--ray-stages encode encodes with --model: nothing is encoded with "
                + ("--run" if self.run else "--embeddings")
            )
        if "rescore" in stages and not self.denoise.rescore:
            raise InputError("--ray-stages rescore needs --rescore (the teacher to run)")
        if "judge" in stages and not self.denoise.judge_url:
            raise InputError("--ray-stages judge needs --judge-url and --judge-model")

    @property
    def near_duplicate_texts(self) -> bool:
        """Whether documents whose normalised text equals a positive's are excluded: with
        the embedding rule (``--near-duplicate``), always."""
        return self.filters is not None and self.filters.near_duplicate is not None


@dataclass(frozen=True)
class MineResult:
    """What :func:`run_mine` did.

    Parameters
    ----------
    out : pathlib.Path
        the output written.
    negatives : Negatives
        the negatives written (after denoising; with the teacher's scores if asked).
    write : WriteReport
        rows written, skipped, shortened.
    denoise : Any
        the denoising counts (``None`` without a teacher or judge).
    timings : dict of str to float
        seconds per phase.
    info : dict of str to Any
        what ``stats_json`` holds (written or not).
    """

    out: Path
    negatives: Any
    write: Any
    denoise: Any
    timings: dict[str, float]
    info: dict[str, Any]


@dataclass(frozen=True)
class _Plan:
    """What step 1 of :func:`run_mine` made: nothing loaded, nothing written yet."""

    sampler: Any
    out: Path
    work: Path
    teacher: TeacherSpec | None
    judge: JudgeSpec | None
    margins: Any


def denoise_draws(sampler: Any, *, n: int, oversample: float, n_corpus: int) -> tuple[int, Any]:
    """Draws to mine per row when denoising, and the sampler to mine them with: the first
    draws of :func:`negsample.scoring.draw_plan` (``oversample`` x ``n``, at most what the
    sampler can draw and ``n_corpus - 1``; ``on_shortfall="drop"`` is applied after
    denoising, so the draws are mined with ``"pad"``)."""
    from ..scoring import draw_plan

    try:
        plan = draw_plan(sampler, n, oversample=oversample, n_corpus=n_corpus)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return plan.first, plan.sampler


def _places(opts: MineOptions, plan: _Plan) -> list[Place]:
    """Every path of the run: outputs, the run's lock and work folder, caches, inputs."""
    from ..io.writers import FOLDER_FORMATS

    out, work = plan.out, plan.work
    places = [Place("--out", out, "output", folder=opts.format in FOLDER_FORMATS, leftovers=True)]
    if opts.format == "tevatron":  # and its corpus file beside it
        from ..io.writers import tevatron_corpus_path

        places.append(
            Place("--out (its Tevatron corpus file)", tevatron_corpus_path(out), "output")
        )
    if opts.stats_json:
        places.append(Place("--stats-json", Path(opts.stats_json), "output", leftovers=True))
    places.append(Place("the run's work folder", work, "work", folder=True))
    places.append(Place("the run's lock file", work.with_name(work.name + ".lock"), "work"))
    encoding = not opts.run and not opts.data.embeddings and opts.data.uses_embeddings
    return places + read_places(
        opts.data,
        [opts.data.split],
        model=encoding,
        cache=encoding,
        teacher=plan.teacher,
        judge=plan.judge,
        run=opts.run,
    )


def _plan(opts: MineOptions) -> _Plan:
    """Step 1: everything checked and described before any work."""
    sampler = parse_sampler(opts.sampler) if isinstance(opts.sampler, str) else opts.sampler
    if opts.run and sampler.needs_vectors:
        raise InputError(
            f"{type(sampler).__name__} needs corpus vectors (needs_vectors=True), but a run "
            "file gives only scores; use a sampler that needs only scores (topk, simans), "
            "or mine with --embeddings / --model instead of --run"
        )
    _check_source(opts, sampler)
    if opts.exclude_other_positives and sampler.depth == 0:
        raise InputError(
            f"--exclude-other-positives removes candidates of a search, and "
            f"{type(sampler).__name__} searches none; its negatives that are another "
            "query's positive are counted (other_positives) but not removed"
        )
    if opts.max_negative_reuse is not None and not isinstance(sampler, BaseSampler):
        raise InputError(
            f"--max-negative-reuse needs a negsample sampler (spare draws in draw order), "
            f"got {type(sampler).__name__}"
        )
    check_n = getattr(sampler, "check_n", None)
    if check_n is not None and not opts.denoise.enabled:  # (denoising mines other n)
        try:
            check_n(opts.n)
        except InputError:
            raise
        except ValueError as exc:  # an n the sampler can never fill: refused before work
            raise InputError(str(exc)) from None
    out = Path(opts.out)
    plan = _Plan(
        sampler=sampler,
        out=out,
        work=work_dir_of(out),
        teacher=opts.denoise.teacher(opts.data, progress=opts.progress),
        judge=opts.denoise.judge(),
        margins=opts.denoise.margins(),
    )
    check_places(_places(opts, plan))
    if opts.run:
        with open(opts.run, "rb"):  # there and readable (an OSError naming it otherwise)
            pass
    return plan


def _check_source(opts: MineOptions, sampler: Any) -> None:
    """With ``--index bm25`` / ``hybrid``: the sampler must be one the source can serve,
    and bm25s (and PyStemmer) must be installed, before any data is read."""
    from ..index.registry import parse_index_spec

    spec = parse_index_spec(opts.data.index)
    if not spec.is_source:
        return
    from ..index.bm25 import check_bm25_available
    from ..sources import bm25_params_of, check_sampler

    try:
        check_sampler(sampler, spec=opts.data.index, dense=opts.data.uses_embeddings)
        check_bm25_available(bm25_params_of(spec))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def run_mine(options: MineOptions, *, log: Log | None = None) -> MineResult:
    """Do what ``negsample mine`` does (see the module docstring).

    Parameters
    ----------
    options : MineOptions
        the run.
    log : callable or None
        called with one-line diagnostics (``None``: the ``negsample`` logger, INFO).

    Returns
    -------
    MineResult

    Raises
    ------
    InputError
        bad input or settings (before any work, or after mining: zero rows to write).
    RunIncomplete
        ``max_chunks`` stopped the run; the finished chunks are kept.
    RunLocked
        another run holds this output.
    RunFailed
        writing failed (a full disk); the finished chunks are kept.
    """
    from .outputs import made_parents
    from .resume import work_lock

    say: Log = log if log is not None else _logger.info
    plan = _plan(options)
    # one run per output: the lock is held from here to the end (a second run on the same
    # --out fails at once, and never touches this run's work folder)
    with made_parents(plan.out.parent), work_lock(plan.work), _stage_session(options.ray):
        return _run_locked(options, plan, say)


@contextlib.contextmanager
def _stage_session(ray: RayOptions) -> Iterator[None]:
    """With ``--ray-stages``: one connection to the cluster for the stages and the search
    (each would otherwise join and leave it in turn), let go at the end."""
    if not ray.stages:
        yield
        return
    from ..distributed import connect
    from ..distributed._ray import ray_module

    started = connect(ray.address)
    try:
        yield
    finally:
        if started:
            ray_module().shutdown()


def _run_locked(opts: MineOptions, plan: _Plan, log: Log) -> MineResult:
    from ..io.writers import EmptyOutput, atomic_path, write_negatives
    from .dataset import mine_dataset
    from .outputs import remove_stale_tmp
    from .resume import RunIncomplete, remove_work_dir

    sampler, out, work, data = plan.sampler, plan.out, plan.work, opts.data
    t_all = time.perf_counter()
    stale = remove_stale_tmp(out) + (remove_stale_tmp(opts.stats_json) if opts.stats_json else 0)
    if stale:
        log(f"removed {stale} temporary files left beside {out} by an interrupted write")
    if opts.fresh:
        remove_work_dir(work)
    ds, timings, settings = load_dataset(data, log=log)
    emb = cands = None
    if opts.run:
        from ..io.runs import read_trec_run

        t = time.perf_counter()
        depth = sampler.depth + max(p.size for p in ds.positives) if sampler.depth else None
        run = read_trec_run(opts.run, ds, depth=depth)
        timings["read_run"] = time.perf_counter() - t
        cands = run.candidates
        settings["run"] = identify_file(Path(opts.run))
        rs = run.stats
        log(
            f"run {opts.run}: {rs['lines']} lines, {cands.ids.shape[1]} candidates per query "
            f"at most; {rs['queries_not_in_split']} run queries not in the split (skipped), "
            f"{rs['queries_without_candidates']} split queries without candidates, "
            f"{rs['truncated']} candidates beyond depth {depth} (dropped)"
        )
    elif data.uses_embeddings:  # (--index bm25 without --embeddings / --model: texts only)
        encoder = None
        if "encode" in opts.ray.stages:
            from functools import partial

            from ..distributed import encode_dataset_ray

            encoder = partial(encode_dataset_ray, **opts.ray.pool())
            log(f"encoding as a Ray Data stage on {opts.ray.address}")
        emb = dataset_embeddings(
            data, ds, timings, progress=opts.progress, log=log, encoder=encoder
        )
    denoising = opts.denoise.enabled
    n_mine, mine_sampler = opts.n, sampler
    reuse, n_keep = opts.max_negative_reuse, opts.n  # n_keep: draws kept by the denoiser
    if denoising:
        if reuse is not None:  # the cap applies to the draws that pass: keep spares
            n_keep = _reuse(sampler, opts, ds.n_corpus).draws
        n_mine, mine_sampler = denoise_draws(
            sampler, n=n_keep, oversample=opts.denoise.oversample, n_corpus=ds.n_corpus
        )
        log(f"denoising: {n_mine} draws per row mined, the first {n_keep} that pass are kept")
    if reuse is not None:
        log(
            f"reuse cap: a document is a negative of at most {reuse} rows; "
            f"{_reuse(sampler, opts, ds.n_corpus).draws} draws per row "
            + ("that pass denoising " if denoising else "")
            + f"to choose {opts.n} from"
        )
    log(f"mining with {sampler!r}, n={opts.n}, seed={opts.seed}, index={data.index}")
    if opts.filters is not None:
        log(f"filters: {opts.filters!r}")
    had_work = work.is_dir()
    mine_fn = mine_dataset if not opts.ray.enabled else _ray_runner(opts.ray)
    try:
        res = mine_fn(
            ds,
            mine_sampler,
            embeddings=emb,
            candidates=cands,
            n=n_mine,
            seed=opts.seed,
            index=data.index,
            metric=data.metric,
            work_dir=work,
            chunk_size=opts.chunk_size,
            max_chunks=opts.max_chunks,
            settings=settings,
            progress=opts.progress,
            log=log,
            exclude_duplicate_texts=not opts.keep_duplicate_texts,
            near_duplicate_texts=opts.near_duplicate_texts,
            filters=opts.filters,
            nprobe=opts.nprobe,
            ef_search=opts.ef_search,
            exclude_other_positives=opts.exclude_other_positives,
            max_negative_reuse=None if denoising else reuse,
            reuse_oversample=opts.reuse_oversample,
        )
    except RunIncomplete:  # the finished chunks are the point: kept
        raise
    except BaseException as exc:
        if is_input_error(exc):  # bad input or settings: leave no work folder of ours
            if not had_work:
                remove_work_dir(work)
        elif not had_work and not any(work.glob("chunk_*.npz")):
            remove_work_dir(work)  # interrupted or failed: finished chunks are kept
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
    log(_other_positives_line(st.other_positives, res.negatives, opts.exclude_other_positives))
    if st.reuse is not None:
        log(st.reuse.summary())
    negatives, positive_scores, den = res.negatives, res.positive_scores, None
    if denoising:
        t = time.perf_counter()
        den = _denoise(opts, plan, ds, res.negatives, log, n=n_keep, capped=reuse is not None)
        timings["denoise"] = time.perf_counter() - t
        negatives = den.negatives
        if opts.denoise.teacher_scores:
            assert den.teacher is not None
            negatives, positive_scores = den.teacher_negatives(), den.teacher.positive
        if reuse is not None:  # the cap over the draws that passed
            from ..crossquery import PositiveMask

            t = time.perf_counter()
            negatives = _reuse(sampler, opts, ds.n_corpus).apply(
                negatives,
                seed=opts.seed,
                positives=PositiveMask.of(ds.positives_ragged(), ds.n_corpus),
            )
            timings["reuse"] = time.perf_counter() - t
            assert negatives.stats.reuse is not None
            st.reuse = negatives.stats.reuse
            log(st.reuse.summary())
            log(_other_positives_line(negatives.stats.other_positives, negatives, False))
        elif opts.denoise.judge_fn_action == "relabel":
            # relabelled false negatives join their query's positives; the miner's score of
            # such a new positive is not kept: it is written as unknown (null)
            positive_scores = [
                np.concatenate([ps, np.full(p.size - ps.size, np.nan, np.float32)])
                for ps, p in zip(positive_scores, den.positives, strict=True)
            ]
    t = time.perf_counter()
    written = ds if den is None else den.with_positives(ds)
    try:
        report = write_negatives(
            negatives,
            written,
            out,
            opts.format,
            scores=opts.scores or opts.denoise.teacher_scores,
            positive_scores=positive_scores,
            on_short=opts.on_short,
            hf_layout=opts.hf_layout,
            batch_size=opts.batch_safe,
            batch_seed=opts.seed,
        )
    except EmptyOutput as exc:
        remove_work_dir(work)  # a refused write (exit 2) leaves nothing of the run
        raise InputError(f"{exc}: {_empty_hint(opts, negatives.stats)}") from None
    except (ValueError, TypeError) as exc:
        if is_input_error(exc):  # --on-short error...: nothing of the run is left
            remove_work_dir(work)
        raise
    except OSError as exc:  # disk full...: the temporary file is gone, the chunks are kept
        raise RunFailed(f"{os_error_message(exc)}; {_kept(work)}") from exc
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    log(report.summary())
    log("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    info = {
        "command": "mine",
        "sampler": repr(sampler),
        "n": opts.n,
        "seed": st.seed,
        "index": data.index,
        "min_relevance": data.min_relevance,
        "dataset": {"n_corpus": ds.n_corpus, "n_queries": ds.n_queries, **ds.stats},
        "mining": st.as_dict(),
        "denoise": None if den is None else den.stats.as_dict(),
        "write": report.as_dict(),
        "timings": timings,
    }
    if opts.stats_json:
        try:
            with atomic_path(opts.stats_json) as tmp:
                tmp.write_text(json.dumps(info, indent=1))
        except OSError as exc:
            raise RunFailed(f"{os_error_message(exc)}; {out} was written, {_kept(work)}") from exc
    remove_work_dir(work)
    return MineResult(out, negatives, report, None if den is None else den.stats, timings, info)


def _kept(work: Path) -> str:
    return (
        f"the mined chunks are kept in {work}: rerun the same command to write without mining again"
    )


def _reuse(sampler: Any, opts: MineOptions, n_corpus: int) -> Any:
    """The run's :class:`~negsample.crossquery.ReuseCap` (its draws from
    :func:`~negsample.scoring.draw_plan`)."""
    from ..crossquery import reuse_cap

    assert opts.max_negative_reuse is not None
    try:
        cap, _ = reuse_cap(
            sampler,
            opts.n,
            opts.max_negative_reuse,
            oversample=opts.reuse_oversample,
            n_corpus=n_corpus,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return cap


def _other_positives_line(count: int, negatives: Any, excluded: bool) -> str:
    """The log line of ``stats.other_positives``."""
    total = int((negatives.ids >= 0).sum())
    share = f" ({100 * count / total:.2f}% of {total})" if total else ""
    what = "excluded from the candidates" if excluded else "--exclude-other-positives removes them"
    return f"negatives that are a labelled positive of another query: {count}{share}; {what}"


def _denoise(
    opts: MineOptions,
    plan: _Plan,
    ds: Any,
    negatives: Any,
    log: Log,
    *,
    n: int,
    capped: bool = False,
) -> Any:
    """Teacher margins and/or an LLM judge over the mined draws (``negsample.scoring``):
    the first ``n`` that pass per row (with the reuse cap after, ``capped``: spares, rows
    short padded, dropped only after the cap)."""
    from ..scoring import JudgeError, denoise

    on_ray = {"rescore", "judge"} & set(opts.ray.stages)
    with open_scoring(plan.teacher, plan.judge, plan.margins, log=log, ray=opts.ray) as (
        scorer,
        judge,
    ):
        try:
            den = denoise(
                negatives,
                query_texts=ds.query_texts,
                document_texts=ds.document_texts,
                positives=ds.positives,
                n=n,
                scorer=scorer,
                judge=judge,
                margins=plan.margins,
                judge_keep=tuple(opts.denoise.judge_keep.split(",")),
                on_judge_failure=opts.denoise.judge_on_failure,
                teacher_scores=opts.denoise.teacher_scores,
                on_short="drop" if plan.sampler.on_shortfall == "drop" and not capped else "pad",
                fn_action=opts.denoise.judge_fn_action,
                drop_above=opts.denoise.judge_drop_above,
                # a Ray stage starts its actors per call: few, large calls (the output
                # does not depend on the chunking)
                chunk_rows=_RAY_CHUNK_ROWS if on_ray else 4096,
                progress=opts.progress,
            )
        except JudgeError as exc:
            raise RunFailed(f"{exc} (rerun to resume: answers received are cached)") from exc
        except RuntimeError as exc:  # on_judge_failure='raise'
            raise RunFailed(str(exc)) from exc
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


def _empty_hint(opts: MineOptions, st: Any) -> str:
    """Why a run wrote nothing, and what to try."""
    from ..index.registry import parse_index_spec

    if st.n_rows and st.short_rows == st.n_rows:
        what = f"every one of the {st.n_rows} rows has fewer than n={opts.n} negatives"
    else:
        what = f"{st.n_rows} rows mined, {st.short_rows} of them short"
    emptied = sum(getattr(st, "emptied", {}).values())
    if emptied:
        by = ", ".join(f"{k} {v}" for k, v in st.emptied.items())
        tip = (
            f"the filters left {emptied} queries without any candidate ({by}): loosen them "
            "(--relative-margin 0.05 is NV-Retriever's 95%)"
        )
    elif opts.run:
        tip = "the run file gives too few candidates per query: use a deeper run or a smaller --n"
    elif "nprobe" in parse_index_spec(opts.data.index).search_options:
        tip = (
            f"the index {opts.data.index!r} returned too few candidates (an IVF searches one "
            "list by default): try --index Flat (or exact), or an IVF with fewer lists"
        )
    else:
        tip = "try a smaller --n, a sampler with a wider window, or --format st-triplet"
    return f"{what}; {tip}"


def _ray_runner(ray: RayOptions) -> Any:
    """``mine_dataset_distributed`` with the cluster options, called like ``mine_dataset``."""
    from ..distributed import mine_dataset_distributed

    def run(*a: Any, candidates: Any, max_chunks: Any, **kw: Any) -> Any:
        return mine_dataset_distributed(
            *a,
            address=ray.address,
            workers=ray.workers,
            corpus_shards=ray.corpus_shards,
            cpus_per_worker=1.0 if ray.worker_cpus is None else ray.worker_cpus,
            gpus_per_worker=0.0 if ray.worker_gpus is None else ray.worker_gpus,
            **kw,
        )

    return run
