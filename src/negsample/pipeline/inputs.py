"""What a command reads: the paths of its inputs (for :func:`~negsample.pipeline.outputs.
check_places`), the BEIR dataset and its embeddings, and the settings that identify them
for a resumed run."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from .options import DataOptions, JudgeSpec, TeacherSpec
from .outputs import Place
from .settings import identify_files

__all__ = [
    "EMBEDDING_FILES",
    "data_files",
    "dataset_embeddings",
    "input_places",
    "load_dataset",
    "read_places",
    "log_left_out",
    "model_folder",
    "parse_sampler",
]

Log = Callable[[str], None]

#: The files of a folder of precomputed embeddings (``--embeddings``).
EMBEDDING_FILES = ("corpus.npy", "corpus_ids.txt", "queries.npy", "query_ids.txt")


def parse_sampler(spec: str, option: str = "--sampler") -> Any:
    """The sampler of a spec string (:func:`~negsample.sampler_from_string`); a spec that
    names no registered sampler, or parameters it does not take, is the user's input.

    Raises
    ------
    InputError
        for a malformed spec, an unknown sampler (the known ones are listed), or a
        parameter the sampler does not take or refuses.
    """
    from ..samplers import sampler_from_string

    try:
        return sampler_from_string(spec)
    except InputError:
        raise
    except ValueError as exc:  # a malformed spec, or a parameter out of range
        raise InputError(str(exc)) from None
    except KeyError as exc:  # unknown name: the message lists the known ones
        raise InputError(exc.args[0] if exc.args else str(exc)) from None
    except TypeError as exc:  # the constructor refused a parameter name or value
        raise InputError(f"{option} {spec!r}: {exc}") from None


def data_files(root: str | Path, splits: Sequence[str]) -> list[Path]:
    """The BEIR files a command reads (corpus, queries, the splits' qrels).

    Raises
    ------
    FileNotFoundError
        when ``root`` is not a folder or a file is missing (named with the splits there).
    """
    from ..io.data import qrels_file, resolve_file

    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"{r}: not a directory (expected a BEIR dataset folder)")
    files = [resolve_file(r, "corpus.jsonl"), resolve_file(r, "queries.jsonl")]
    return files + [qrels_file(r, s) for s in dict.fromkeys(splits)]


def model_folder(model: str | None) -> Path | None:
    """The local folder of a sentence-transformers ``model`` (``None``: the bundled
    default), or ``None`` for a hub name or a default that is not installed."""
    from ..io.encoding import _model_path

    try:
        p = Path(_model_path(model))
    except ImportError:
        return None
    return p if p.is_dir() else None


def input_places(
    data: DataOptions,
    splits: Sequence[str],
    *,
    run: str | None = None,
    models: Sequence[tuple[str, str | None]] = (),
) -> list[Place]:
    """Every input of a command: the data folder and its files, the embeddings folder
    and its files, the run file, and the local folders of ``models`` (``(option, model)``
    pairs; a ``None`` model is the bundled default)."""
    places = [Place("--data", Path(data.data), folder=True)]
    places += [Place("--data", f) for f in data_files(data.data, splits)]
    if data.embeddings:
        d = Path(data.embeddings)
        places.append(Place("--embeddings", d, folder=True))
        places += [Place("--embeddings", d / n) for n in EMBEDDING_FILES]
    if run:
        places.append(Place("--run", Path(run)))
    for option, model in models:
        folder = model_folder(model)
        if folder is not None:
            places.append(Place(option, folder, folder=True))
    return places


def read_places(
    data: DataOptions,
    splits: Sequence[str],
    *,
    model: bool,
    cache: bool,
    teacher: TeacherSpec | None = None,
    judge: JudgeSpec | None = None,
    run: str | None = None,
) -> list[Place]:
    """The caches and the inputs of a command that reads ``data``: the embedding cache
    folder (when it encodes: ``cache``), the judge cache, then :func:`input_places` with
    the local folders of the model (when it loads it: ``model``) and of the teacher."""
    places = []
    folder = data.embedding_cache() if cache else None
    if folder is not None:
        places.append(Place("--cache-dir", folder, "cache", folder=True))
    if judge is not None:
        places.append(Place("--judge-cache", judge.cache, "cache"))
    models = [("--model", data.model)] if model else []
    if teacher is not None:
        models.append(("--rescore", teacher.path))
    return places + input_places(data, splits, run=run, models=models)


def log_left_out(ds: Any, log: Log) -> None:
    """Log what the dataset left out (queries without a positive...), if anything."""
    left = {k: v for k, v in ds.stats.items() if k != "judgements" and v}
    if left:
        log("left out: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in left.items()))


def load_dataset(data: DataOptions, *, log: Log) -> tuple[Any, dict[str, float], dict[str, Any]]:
    """The dataset, the seconds spent loading it, and the settings that identify it."""
    from ..io.data import load_beir

    t = time.perf_counter()
    ds = load_beir(data.data, data.split, min_relevance=data.min_relevance)
    dt = time.perf_counter() - t
    log(f"{ds.summary()} (read in {dt:.1f}s)")
    log_left_out(ds, log)
    settings = {
        "data": identify_files(data_files(data.data, [data.split])),
        "split": data.split,
        "min_relevance": data.min_relevance,
    }
    return ds, {"load": dt}, settings


def dataset_embeddings(
    data: DataOptions,
    ds: Any,
    timings: dict[str, float],
    *,
    progress: bool,
    log: Log,
    encoder: Callable[..., Any] | None = None,
) -> Any:
    """The embeddings of ``ds``: loaded from ``data.embeddings``, else encoded with
    ``data.model`` (cached unless ``data.no_cache``) by ``encoder`` (default
    :func:`~negsample.io.encoding.encode_dataset`; on Ray,
    :func:`~negsample.distributed.encode_dataset_ray`); the seconds go to
    ``timings["encode"]``."""
    from ..io.encoding import encode_dataset

    t = time.perf_counter()
    if data.embeddings:
        emb = data.load_embeddings(ds)
        checked = (
            f"; {data.spot_check} rows of each side re-encoded with {data.model}: they match"
            if data.model and data.spot_check
            else ""
        )
        log(f"precomputed embeddings from {data.embeddings}: dim {emb.corpus.shape[1]}{checked}")
    else:
        cache = data.embedding_cache()
        emb = (encoder or encode_dataset)(
            ds,
            data.model,
            cache_dir=None if cache is None else str(cache),
            batch_size=data.batch_size,
            max_seq_length=data.max_seq_length,
            query_prompt=data.query_prompt,
            document_prompt=data.document_prompt,
            query_prompt_name=data.query_prompt_name,
            document_prompt_name=data.document_prompt_name,
            precision=data.precision,
            batch_tokens=data.batch_tokens,
            device=data.device,
            progress=progress,
        )
    timings["encode"] = time.perf_counter() - t
    return emb
