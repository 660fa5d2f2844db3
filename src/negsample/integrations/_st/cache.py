"""The drop-in's embeddings: encoded with the model's ``encode_query`` /
``encode_document`` (the corpus first, as sentence-transformers does), or read from and
written to sentence-transformers' own cache files (same names, same hash, so a cache that
either library wrote serves the other). Files are written atomically by
:func:`save_atomic`, the one place that writes them."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from ...errors import InputError

__all__ = ["STREAM_BLOCK", "cache_file", "embeddings", "load_cached", "save_atomic", "write_atomic"]

_log = logging.getLogger("negsample.integrations.sentence_transformers")

_KEY_ROWS = 65536  # texts turned into Python strings at a time for the cache key
STREAM_BLOCK = 16384  # texts per encode call for a streamed input


def _model_name(model: Any) -> str:
    card = getattr(model, "model_card_data", None)
    return getattr(card, "base_model", None) or ""


def cache_file(
    cache_folder: str,
    model: Any,
    kind: str,
    prompt: str | None,
    prompt_name: str | None,
    texts: Any,
) -> str:
    """sentence-transformers' cache file name: ``{kind}_embeddings_{h}.npy`` with ``h`` the
    SHA-256 of ``repr((model_name, prompt, prompt_name, texts_as_a_list))``, computed here
    over the Arrow ``texts`` in slices (the same bytes, without a list of all of them).

    Parameters
    ----------
    cache_folder : str
        The folder.
    model : Any
        The model (its ``model_card_data.base_model`` names it).
    kind : str
        ``"query"`` or ``"corpus"``.
    prompt, prompt_name : str or None
        The encode prompts.
    texts : pyarrow.Array
        The distinct texts, in order.

    Returns
    -------
    str
        The path.
    """
    h = hashlib.sha256(usedforsecurity=False)
    head = repr((_model_name(model), prompt, prompt_name, []))
    h.update(head[:-2].encode())  # "(name, prompt, prompt_name, [" ... "])"
    for a in range(0, len(texts), _KEY_ROWS):
        part = ", ".join(map(repr, texts.slice(a, _KEY_ROWS).to_pylist()))
        h.update(((", " if a else "") + part).encode())
    h.update(b"])")
    return os.path.join(cache_folder, f"{kind}_embeddings_{h.hexdigest()}.npy")


def load_cached(path: str, rows: int, what: str) -> npt.NDArray[np.float32] | None:
    """The cached embeddings at ``path`` (``None`` if there is no file); a file whose shape
    does not match the texts raises.

    Parameters
    ----------
    path : str
        The cache file.
    rows : int
        How many texts it must hold.
    what : str
        ``"query"`` or ``"corpus"`` (for the message).

    Returns
    -------
    numpy.ndarray or None
        float32 ``(rows, dim)``.
    """
    if not os.path.exists(path):
        return None
    arr = np.load(path)
    if arr.ndim != 2 or arr.shape[0] != rows or not np.issubdtype(arr.dtype, np.floating):
        raise InputError(
            f"{path}: cached {what} embeddings have shape {arr.shape} and dtype {arr.dtype}, "
            f"expected ({rows}, dim) floats; the file does not belong to these texts (delete it)"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def write_atomic(path: str, write: Callable[[IO[Any]], None]) -> None:
    """``write(f)`` into a temporary file beside ``path``, then rename it to ``path``
    (:func:`negsample._files.atomic_file`): an interrupted run leaves no truncated file for
    the next one to load. The one place the drop-in writes files.

    Parameters
    ----------
    path : str
        The destination.
    write : Callable[[IO[Any]], None]
        Writes the content to the open binary file it is given.
    """
    from ..._files import atomic_file

    with atomic_file(path) as f:
        write(f)


def save_atomic(path: str, arr: np.ndarray) -> None:
    """``np.save(path, arr)``, atomically (:func:`write_atomic`).

    Parameters
    ----------
    path : str
        The destination.
    arr : numpy.ndarray
        The array.
    """
    write_atomic(path, lambda f: np.save(f, arr))


def _encode(
    model: Any,
    texts: Any,
    kind: str,
    pool: Any,
    batch_size: int,
    prompt_name: str | None,
    prompt: str | None,
    verbose: bool,
    block: int | None,
) -> npt.NDArray[np.float32]:
    """The embeddings of the Arrow ``texts``: one encode call (``block=None``, as
    sentence-transformers makes it), or one per ``block`` texts (only that many Python
    strings at a time)."""
    if block is None or len(texts) <= block:
        return _encode_call(model, texts, kind, pool, batch_size, prompt_name, prompt, verbose)
    out: npt.NDArray[np.float32] | None = None
    for a in range(0, len(texts), block):
        part = _encode_call(
            model, texts.slice(a, block), kind, pool, batch_size, prompt_name, prompt, verbose
        )
        if out is None:
            out = np.empty((len(texts), part.shape[1]), np.float32)
        out[a : a + part.shape[0]] = part
    assert out is not None
    return out


def _encode_call(
    model: Any,
    texts: Any,
    kind: str,
    pool: Any,
    batch_size: int,
    prompt_name: str | None,
    prompt: str | None,
    verbose: bool,
) -> npt.NDArray[np.float32]:
    """One encode call over the Arrow ``texts``."""
    method = "encode_query" if kind == "query" else "encode_document"
    fn = getattr(model, method, None) or model.encode
    n = len(texts)
    emb = fn(
        texts.to_pylist(),
        pool=pool,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=verbose,
        prompt_name=prompt_name,
        prompt=prompt,
    )
    if hasattr(emb, "detach"):
        emb = emb.detach().cpu().numpy()
    out = np.ascontiguousarray(emb, dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != n:
        raise InputError(
            f"model.{method} returned shape {out.shape} for {n} texts; expected one vector per text"
        )
    return out


def _warn_unnamed(model: Any) -> None:
    if not _model_name(model):
        _log.warning(
            "cache_folder: the model has no model_card_data.base_model, so its cache "
            "files are keyed by the texts and prompts alone (as sentence-transformers "
            "keys them): another unnamed model would read the same files"
        )


def embeddings(
    model: Any,
    queries: Any,
    corpus: Any,
    *,
    cache_folder: str | None,
    query_prompt_name: str | None,
    query_prompt: str | None,
    corpus_prompt_name: str | None,
    corpus_prompt: str | None,
    batch_size: int,
    use_multi_process: list[str] | bool,
    verbose: bool,
    block: int | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The query and corpus embeddings, L2-normalised: read from ``cache_folder`` when
    there, else encoded (corpus first, in a multi-process pool when asked) and written
    there.

    Parameters
    ----------
    model : Any
        A ``SentenceTransformer`` (``encode_query`` / ``encode_document``, or ``encode``).
    queries, corpus : pyarrow.Array
        The distinct texts.
    cache_folder : str or None
        sentence-transformers' cache folder.
    query_prompt_name, query_prompt, corpus_prompt_name, corpus_prompt : str or None
        Passed to the encode calls.
    batch_size : int
        Encoding batch size.
    use_multi_process : list[str] or bool
        ``model.start_multi_process_pool`` (``True`` or a list of devices).
    verbose : bool
        Progress bars and the cache lines sentence-transformers prints.
    block : int or None
        Texts per encode call (``None``: all of them in one call, as sentence-transformers
        encodes them; a streamed input encodes in blocks).

    Returns
    -------
    tuple[numpy.ndarray, numpy.ndarray]
        float32 ``(queries, dim)`` and ``(corpus, dim)``.
    """
    q_emb = c_emb = None
    q_file = c_file = ""
    if cache_folder:
        os.makedirs(cache_folder, exist_ok=True)
        _warn_unnamed(model)
        q_file = cache_file(cache_folder, model, "query", query_prompt, query_prompt_name, queries)
        c_file = cache_file(
            cache_folder, model, "corpus", corpus_prompt, corpus_prompt_name, corpus
        )
        q_emb = load_cached(q_file, len(queries), "query")
        c_emb = load_cached(c_file, len(corpus), "corpus")
        for f, e in ((q_file, q_emb), (c_file, c_emb)):
            if e is not None and verbose:
                print(f"[Cache] Loaded embeddings from {f} (shape={e.shape})")
    if q_emb is None or c_emb is None:
        pool = None
        if use_multi_process:
            devices = None if isinstance(use_multi_process, bool) else use_multi_process
            pool = model.start_multi_process_pool(target_devices=devices)
        try:
            if c_emb is None:
                c_emb = _encode(
                    model, corpus, "corpus", pool, batch_size, corpus_prompt_name,
                    corpus_prompt, verbose, block,
                )  # fmt: skip
                if cache_folder:
                    save_atomic(c_file, c_emb)
                    if verbose:
                        print(f"[Cache] Saved corpus embeddings to {c_file}")
            if q_emb is None:
                q_emb = _encode(
                    model, queries, "query", pool, batch_size, query_prompt_name,
                    query_prompt, verbose, block,
                )  # fmt: skip
                if cache_folder:
                    save_atomic(q_file, q_emb)
                    if verbose:
                        print(f"[Cache] Saved query embeddings to {q_file}")
        finally:
            if pool is not None:
                model.stop_multi_process_pool(pool)
    if q_emb.shape[1] != c_emb.shape[1]:
        raise InputError(
            f"query embeddings have dimension {q_emb.shape[1]}, corpus embeddings {c_emb.shape[1]}"
        )
    return q_emb, c_emb
