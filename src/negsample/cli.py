"""Command line: ``negsample demo``, ``negsample mine``, ``negsample report``.

``main(argv) -> int``: data to stdout or files, progress and diagnostics to stderr.
Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input, 3 a run stopped by
``--max-chunks`` before its end (rerun the same command to continue).
The subcommands only call the Python API (``load_beir``, ``encode_dataset``,
``mine_dataset``, ``write_negatives``, ``sampler_report``...).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]


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


def _load_inputs(args: argparse.Namespace) -> tuple[Any, dict[str, float], dict[str, Any]]:
    """The dataset, the seconds spent loading it, and the settings that identify it."""
    from .io.data import load_beir, resolve_file

    t = time.perf_counter()
    ds = load_beir(args.data, args.split)
    dt = time.perf_counter() - t
    st = ds.stats
    _log(f"{ds.summary()} (read in {dt:.1f}s)")
    left = {k: v for k, v in st.items() if k != "judgements" and v}
    if left:
        _log("left out: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in left.items()))
    root = Path(args.data)
    files = [
        resolve_file(root, "corpus.jsonl"),
        resolve_file(root, "queries.jsonl"),
        resolve_file(root / "qrels", f"{args.split}.tsv"),
    ]
    return ds, {"load": dt}, {"data": [_file_stat(f) for f in files], "split": args.split}


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
    from .io.writers import write_negatives
    from .pipeline.dataset import mine_dataset
    from .pipeline.resume import RunIncomplete, remove_work_dir

    t_all = time.perf_counter()
    sampler = sampler_from_string(args.sampler)
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"{out}: --out must be a file, not a folder")
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
    work = _work_dir(out)
    if args.fresh:
        remove_work_dir(work)
    _log(f"mining with {sampler!r}, n={args.n}, seed={args.seed}, index={args.index}")
    had_work = work.is_dir()
    try:
        res = mine_dataset(
            ds,
            sampler,
            embeddings=emb,
            candidates=cands,
            n=args.n,
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
        )
    except RunIncomplete as exc:
        _log(str(exc))
        return 3
    except BaseException:
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
    t = time.perf_counter()
    report = write_negatives(
        res.negatives,
        ds,
        out,
        args.format,
        scores=args.scores,
        positive_scores=res.positive_scores,
        on_short=args.on_short,
    )
    timings["write"] = time.perf_counter() - t
    remove_work_dir(work)
    timings["total"] = time.perf_counter() - t_all
    _log(report.summary())
    _log("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    if args.stats_json:
        from .io.writers import atomic_path

        info = {
            "command": "mine",
            "sampler": repr(sampler),
            "n": args.n,
            "seed": args.seed,
            "index": args.index,
            "dataset": {"n_corpus": ds.n_corpus, "n_queries": ds.n_queries, **ds.stats},
            "mining": st.as_dict(),
            "write": report.as_dict(),
            "timings": timings,
        }
        with atomic_path(args.stats_json) as tmp:
            tmp.write_text(json.dumps(info, indent=1))
    return 0


def _report(args: argparse.Namespace) -> int:
    from . import sampler_from_string
    from .pipeline.report import sampler_report

    samplers = {spec: sampler_from_string(spec) for spec in args.sampler}
    ds, timings, _settings = _load_inputs(args)
    emb = _embeddings(args, ds, timings)
    rep = sampler_report(
        ds,
        emb,
        samplers,
        n=args.n,
        seeds=args.seeds,
        index=args.index,
        metric=args.metric,
    )
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
    g.add_argument("--batch-size", type=int, default=64, help="encoding batch size (default 64)")
    g.add_argument("--max-seq-length", type=int, default=None, help="truncate inputs (tokens)")
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
    p.add_argument("--n", type=int, default=7, help="negatives per query (default 7)")
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


def _train(args: argparse.Namespace) -> int:
    from . import sampler_from_string
    from .integrations.sentence_transformers import TrainingData, train
    from .io.data import load_beir

    train_ds = load_beir(args.data, args.split)
    _log(train_ds.summary())
    eval_ds = load_beir(args.data, args.eval_split) if args.eval_split else None
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
        result.model.save(args.out)
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
        Path(args.metrics_json).write_text(json.dumps(report, indent=1))
    return 0


def _probe(args: argparse.Namespace) -> int:
    from . import sampler_from_string
    from .io.data import load_beir
    from .probe import probe

    train_ds = load_beir(args.data, args.split)
    eval_ds = load_beir(args.data, args.eval_split)
    _log(f"{train_ds.summary()}; held out: {eval_ds.n_queries} queries ({args.eval_split})")
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
        Path(args.json).write_text(json.dumps(res.as_dict(), indent=1))
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
    p.add_argument("--max-seq-length", type=int, default=None, help="truncate inputs (tokens)")
    p.add_argument("--device", default=None, help="torch device (default: the GPU if any)")
    p.add_argument("--n", type=int, default=7, help="negatives per query (default 7)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="negsample", description="Hard-negative sampling for dense retrievers."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="mine a built-in synthetic set with every sampler and compare them"
    )
    demo.add_argument("--docs", type=int, default=20_000, help="corpus size (default 20000)")
    demo.add_argument("--queries", type=int, default=1_000, help="queries (default 1000)")
    demo.add_argument("--dim", type=int, default=64, help="vector dimension (default 64)")
    demo.add_argument("--n", type=int, default=7, help="negatives per query (default 7)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)

    from .io.writers import FORMATS

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
    mine.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    mine.add_argument("--out", required=True, help="output file (written atomically)")
    mine.add_argument(
        "--format", choices=FORMATS, default="st-ntuple", help="output format (default st-ntuple)"
    )
    mine.add_argument(
        "--scores", action="store_true", help="add s(q,d+) and s(q,d-) where the format has them"
    )
    mine.add_argument(
        "--on-short",
        choices=("skip", "error"),
        default="skip",
        help="rows with fewer than n negatives: skip/shorten and count them (default), or fail",
    )
    mine.add_argument(
        "--chunk-size", type=int, default=4096, help="queries per saved chunk (default 4096)"
    )
    mine.add_argument(
        "--max-chunks",
        type=int,
        default=None,
        help="compute at most this many new chunks, then stop (exit 3); rerun to continue",
    )
    mine.add_argument(
        "--fresh", action="store_true", help="discard the saved chunks of an earlier run"
    )
    mine.add_argument(
        "--keep-duplicate-texts",
        action="store_true",
        help="allow negatives whose text is identical to one of the query's positives under "
        "another id (by default they are excluded and counted)",
    )
    mine.add_argument("--stats-json", default=None, help="also write the diagnostics as JSON")
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
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)"
    )
    rep.add_argument(
        "--out-dir", required=True, help="folder for summary.md, report.json and the PNG plots"
    )
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
    tr.add_argument("--epochs", type=int, default=1, help="epochs (default 1)")
    tr.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps")
    tr.add_argument("--train-batch-size", type=int, default=32, help="batch size (default 32)")
    tr.add_argument("--lr", type=float, default=2e-5, help="learning rate (default 2e-5)")
    tr.add_argument("--warmup-ratio", type=float, default=0.1, help="warm-up share (0.1)")
    tr.add_argument("--loss", choices=("mnrl", "cached_mnrl"), default="mnrl", help="loss")
    tr.add_argument(
        "--mini-batch-size", type=int, default=32, help="cached_mnrl mini-batch (default 32)"
    )
    tr.add_argument(
        "--remine-every",
        type=int,
        default=None,
        help="re-mine with the current model every K epochs",
    )
    tr.add_argument("--evaluate-before", action="store_true", help="also score the start model")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
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
    pr.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (0 1 2)")
    pr.add_argument("--epochs", type=int, default=3, help="epochs of the map (default 3)")
    pr.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    pr.add_argument("--json", default=None, help="write every figure as JSON")
    pr.set_defaults(func=_probe)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    np.set_printoptions(precision=4)
    try:
        rc: int = args.func(args)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"negsample: error: {msg}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"negsample: error: {exc}", file=sys.stderr)
        return 1
    return rc
