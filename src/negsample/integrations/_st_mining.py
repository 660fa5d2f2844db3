"""A drop-in for sentence-transformers' ``util.mine_hard_negatives``, mined by negsample.

Change one import::

    from sentence_transformers.util import mine_hard_negatives           # before
    from negsample.integrations.sentence_transformers import mine_hard_negatives  # after

Same parameters, defaults, meanings and output layout (columns and their order, row
counts, dtypes) as the sentence-transformers version installed; plus ``sampler=`` (any
negsample sampler) and ``seed=``. Inside: encode with the model (or read the embeddings
that ``cache_folder`` holds, in sentence-transformers' own cache files), index the corpus
(:class:`~negsample.FaissIndex` with ``use_faiss``, else :class:`~negsample.NumpyIndex`),
search sentence-transformers' candidate pool and sample it with a negsample sampler and
:class:`~negsample.Filters` (``sampler.sample``, draws keyed by the query; with
``sampler=``, :func:`negsample.mine`), then the ``datasets.Dataset`` built with Arrow
``take`` on the de-duplicated texts (no Python loop over rows).
The deliberate differences from sentence-transformers are listed in
docs/sentence_transformers.md and in the docstring of :func:`mine_hard_negatives`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .._optional import require
from .._types import MiningStats, Negatives
from .._validate import pad_positives
from ..filters import Filters
from ..index.base import Index
from ..mining import mine
from ..samplers.base import Anchor, BaseSampler, IntArray, SamplerBatch
from ..samplers.topk import TopKSampler

__all__ = ["mine_hard_negatives"]

_log = logging.getLogger("negsample.integrations.sentence_transformers")

OUTPUT_FORMATS = ("triplet", "n-tuple", "labeled-pair", "labeled-list")
ST_RULES = (6, 3)  # the sentence-transformers release whose mine_hard_negatives this follows
_version_warned: list[str] = []
_TAKE_ROWS = 65536  # rows gathered per Arrow take (keeps each string chunk well under 2 GiB)


@dataclass(frozen=True, kw_only=True)
class _EligibleRankTopK(TopKSampler):
    """TopK over a pool of the first ``k`` candidates (positives removed) whose rank window
    ``[range_min, range_max)`` counts only the candidates that pass the filters, as
    sentence-transformers' ``mine_hard_negatives`` does (its filters set scores to -inf
    before its top-k, so a removed candidate does not use up a rank)."""

    name = "topk-st"

    def _select(self, batch: SamplerBatch, n: int, anchor: Anchor | None) -> IntArray:
        rank = np.cumsum(batch.valid, axis=1) - 1
        region = batch.valid & (rank >= self.range_min)
        if self.range_max is not None:
            region &= rank < self.range_max
        plain = TopKSampler(k=self.k, strategy=self.strategy, on_shortfall=self.on_shortfall)
        return plain._select(replace(batch, valid=region), n, anchor)


# -- the inputs -----------------------------------------------------------------------------


def _warn_old_sentence_transformers() -> None:
    """Warn once when the installed sentence-transformers is older than :data:`ST_RULES`:
    its own ``mine_hard_negatives`` then builds another candidate pool (no room for the
    query's own text, which it returns as a negative; a cross-encoder only with a score
    filter), so the two outputs can differ."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("sentence-transformers")
    except PackageNotFoundError:
        return
    m = re.match(r"(\d+)\.(\d+)", v)
    if m and (int(m[1]), int(m[2])) < ST_RULES and v not in _version_warned:
        _version_warned.append(v)
        _log.warning(
            "mine_hard_negatives follows sentence-transformers %d.%d; the installed %s builds "
            "its candidate pool differently, so the two outputs may differ "
            '(pip install "negsample[st]" installs a matching one)',
            *ST_RULES,
            v,
        )


def _column(columns: Sequence[str], name: str | None, pos: int, what: str) -> str:
    if name:
        if name not in columns:
            raise ValueError(
                f"{what}={name!r} is not a column of the dataset (columns: {list(columns)})"
            )
        return name
    if len(columns) <= pos:
        raise ValueError(
            "Dataset must contain at least two columns to select the positive column "
            f"automatically (columns: {list(columns)})"
        )
    return columns[pos]


def _text_column(table: Any, name: str) -> Any:
    """The column (an Arrow string array, as stored); refuses nulls and non-strings."""
    pa = require("pyarrow", "mine_hard_negatives")
    col = table.column(name)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise TypeError(f"column {name!r} must hold strings, got Arrow type {col.type}")
    if col.null_count:
        row = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise ValueError(f"column {name!r} row {row} is None; every row needs a text")
    return col


def _compact(texts: Any) -> Any:
    """``string`` (32-bit offsets) when the texts fit, so that gathering them for the output
    needs no cast; ``large_string`` otherwise."""
    pa = require("pyarrow", "mine_hard_negatives")
    if pa.types.is_large_string(texts.type) and texts.nbytes < 2**31 - 2**24:
        return texts.cast(pa.string())
    return texts


def _index_in(values: Any, uniq: Any, missing: int | None = None) -> npt.NDArray[np.int64]:
    """Row of each of ``values`` in ``uniq``; ``missing`` for a value not there (``None``:
    every value is there)."""
    pa = require("pyarrow", "mine_hard_negatives")
    pc = require("pyarrow.compute", "mine_hard_negatives")
    if uniq.type != values.type:  # one side holds more than 2 GiB of text
        if pa.types.is_large_string(uniq.type):
            values = values.cast(pa.large_string())
        else:
            uniq = uniq.cast(pa.large_string())
            values = values.cast(pa.large_string())
    found = pc.index_in(values, value_set=uniq)
    if missing is not None:
        found = found.fill_null(missing)
    return np.asarray(found).astype(np.int64)


def _unique(values: Any) -> Any:
    """Distinct texts in order of first appearance (as ``dict.fromkeys``)."""
    pc = require("pyarrow.compute", "mine_hard_negatives")
    return pc.unique(values)


def _pairs(q_idx: IntArray, p_idx: IntArray, n_q: int, n_c: int) -> tuple[IntArray, IntArray]:
    """Distinct (query, positive) pairs grouped by query (queries in order of first
    appearance, each query's positives in order of first appearance), as
    sentence-transformers orders its output rows."""
    key = q_idx * np.int64(n_c) + p_idx
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    order = first[np.argsort(q_idx[first], kind="stable")]
    return q_idx[order], p_idx[order]


# -- embeddings -----------------------------------------------------------------------------


def _cache_files(
    cache_folder: str,
    model: Any,
    kind: str,
    prompt: str | None,
    prompt_name: str | None,
    texts: list[str],
) -> str:
    """sentence-transformers' cache file name (so either library reads the other's)."""
    card = getattr(model, "model_card_data", None)
    model_name = getattr(card, "base_model", None) or ""
    digest = hashlib.sha256(
        repr((model_name, prompt, prompt_name, texts)).encode(), usedforsecurity=False
    ).hexdigest()
    return os.path.join(cache_folder, f"{kind}_embeddings_{digest}.npy")


def _load_cached(path: str, rows: int, what: str) -> npt.NDArray[np.float32] | None:
    if not os.path.exists(path):
        return None
    arr = np.load(path)
    if arr.ndim != 2 or arr.shape[0] != rows or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"{path}: cached {what} embeddings have shape {arr.shape} and dtype {arr.dtype}, "
            f"expected ({rows}, dim) floats; the file does not belong to these texts (delete it)"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def _save_atomic(path: str, arr: np.ndarray) -> None:
    from .._files import atomic_file

    with atomic_file(path) as f:
        np.save(f, arr)


def _encode(
    model: Any,
    texts: list[str],
    kind: str,
    pool: Any,
    batch_size: int,
    prompt_name: str | None,
    prompt: str | None,
    verbose: bool,
) -> npt.NDArray[np.float32]:
    method = "encode_query" if kind == "query" else "encode_document"
    fn = getattr(model, method, None) or model.encode
    emb = fn(
        texts,
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
    if out.ndim != 2 or out.shape[0] != len(texts):
        raise ValueError(
            f"model.{method} returned shape {out.shape} for {len(texts)} texts; expected "
            "one vector per text"
        )
    return out


def _embeddings(
    model: Any,
    queries: list[str],
    corpus: list[str],
    *,
    cache_folder: str | None,
    query_prompt_name: str | None,
    query_prompt: str | None,
    corpus_prompt_name: str | None,
    corpus_prompt: str | None,
    batch_size: int,
    use_multi_process: list[str] | bool,
    verbose: bool,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    q_emb = c_emb = None
    q_file = c_file = ""
    if cache_folder:
        os.makedirs(cache_folder, exist_ok=True)
        card = getattr(model, "model_card_data", None)
        if not (getattr(card, "base_model", None) or ""):
            _log.warning(
                "cache_folder: the model has no model_card_data.base_model, so its cache "
                "files are keyed by the texts and prompts alone (as sentence-transformers "
                "keys them): another unnamed model would read the same files"
            )
        q_file = _cache_files(
            cache_folder, model, "query", query_prompt, query_prompt_name, queries
        )
        c_file = _cache_files(
            cache_folder, model, "corpus", corpus_prompt, corpus_prompt_name, corpus
        )
        q_emb = _load_cached(q_file, len(queries), "query")
        c_emb = _load_cached(c_file, len(corpus), "corpus")
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
                    corpus_prompt, verbose,
                )  # fmt: skip
                if cache_folder:
                    _save_atomic(c_file, c_emb)
                    if verbose:
                        print(f"[Cache] Saved corpus embeddings to {c_file}")
            if q_emb is None:
                q_emb = _encode(
                    model, queries, "query", pool, batch_size, query_prompt_name,
                    query_prompt, verbose,
                )  # fmt: skip
                if cache_folder:
                    _save_atomic(q_file, q_emb)
                    if verbose:
                        print(f"[Cache] Saved query embeddings to {q_file}")
        finally:
            if pool is not None:
                model.stop_multi_process_pool(pool)
    if q_emb.shape[1] != c_emb.shape[1]:
        raise ValueError(
            f"query embeddings have dimension {q_emb.shape[1]}, corpus embeddings {c_emb.shape[1]}"
        )
    return q_emb, c_emb


# -- mining paths that need their own candidates --------------------------------------------


def _pool(
    index: Index,
    q: npt.NDArray[np.float32],
    remove: IntArray,
    depth: int,
) -> tuple[IntArray, npt.NDArray[np.float32]]:
    """sentence-transformers' candidate pool: the top ``depth`` of the search, less the ids
    of ``remove`` (``(b, R)``, -1 padded) found among them; compacted, best first, ``-1`` /
    NaN padded to ``depth`` columns."""
    k = int(min(depth, index.ntotal))
    res = index.search(q, k)
    ids, sc = np.asarray(res.ids, np.int64), np.asarray(res.scores, np.float32)
    width = int(max(ids.max(initial=-1), remove.max(initial=-1))) + 2
    row = np.arange(ids.shape[0], dtype=np.int64)[:, None] * width
    removed = np.isin(row + ids + 1, (row + remove + 1)[remove >= 0])
    keep = (ids >= 0) & ~removed
    order = np.argsort(~keep, axis=1, kind="stable")
    c_ids = np.take_along_axis(np.where(keep, ids, -1), order, axis=1)
    c_sc = np.take_along_axis(np.where(keep, sc, np.nan), order, axis=1).astype(np.float32)
    if c_ids.shape[1] < depth:
        pad = depth - c_ids.shape[1]
        c_ids = np.pad(c_ids, ((0, 0), (0, pad)), constant_values=-1)
        c_sc = np.pad(c_sc, ((0, 0), (0, pad)), constant_values=np.nan)
    return c_ids, c_sc


def _mine_pools(
    q_emb: npt.NDArray[np.float32],
    index: Index,
    positives: list[IntArray],
    exclude: IntArray,
    sampler: BaseSampler,
    *,
    depth: int,
    n: int,
    seed: int | None,
    filters: Filters | None,
    chunk: int,
    include_positives: bool,
    rescore: Any,
    pos_scores: list[npt.NDArray[np.float32]],
    progress: bool,
) -> Negatives:
    """Mine from sentence-transformers' pool: per chunk of queries, search the top
    ``depth`` (``range_max + max_positives + 1``), remove the query's positives (unless
    ``include_positives``) and excluded ids found there, optionally rescore the pool
    (``rescore(query_rows, ids) -> scores``, a cross-encoder) and re-sort it, then
    ``sampler.sample`` with the filters. The random draws are keyed by the global query
    index, as in :func:`negsample.mine`, so ``chunk`` never changes the result."""
    from .._rng import normalize_seed

    seed_i = normalize_seed(seed)
    stats = MiningStats(seed=seed_i)
    parts: list[Negatives] = []
    starts = range(0, q_emb.shape[0], chunk)
    if progress:
        tqdm = require("tqdm.auto", "progress bars").tqdm
        starts = tqdm(starts, desc="Mining", unit="chunk")
    for start in starts:
        stop = min(start + chunk, q_emb.shape[0])
        rows = np.arange(start, stop)
        pos = pad_positives([positives[i] for i in rows], len(rows), None)
        exc = exclude[start:stop]
        remove = exc if include_positives else np.concatenate([pos, exc], axis=1)
        ids, sc = _pool(index, q_emb[start:stop], remove, depth)
        ps = _ragged_to_padded_f([pos_scores[i] for i in rows])
        if rescore is not None:
            sc = rescore(rows, ids)
            order = np.argsort(np.where(ids >= 0, -sc, np.inf), axis=1, kind="stable")
            ids = np.take_along_axis(ids, order, axis=1)
            sc = np.take_along_axis(sc, order, axis=1)
        if include_positives:
            # the positives stay candidates: the sampler is told of none (an id that is no
            # corpus row) and given s+ (the least positive score, the filters' anchor)
            told = np.full((len(rows), 1), index.ntotal, np.int64)
            s_pos = np.nanmin(ps, axis=1, keepdims=True)
            part = sampler.sample(
                ids, sc, told, n=n, seed=seed_i, positive_scores=s_pos, filters=filters,
                query_index=rows,
            )  # fmt: skip
        else:
            part = sampler.sample(
                ids, sc, pos, n=n, seed=seed_i, positive_scores=ps, filters=filters,
                query_index=rows,
            )  # fmt: skip
        stats.merge(part.stats)
        parts.append(part)
    stats.seed = seed_i
    return Negatives.concat(parts, n, stats)


def _ragged_to_padded_f(rows: Sequence[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    width = max(1, max((r.size for r in rows), default=0))
    out = np.full((len(rows), width), np.nan, np.float32)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


# -- the output dataset ---------------------------------------------------------------------


def _take(texts: Any, ids: IntArray) -> Any:
    """``texts[ids]`` as a chunked Arrow ``string`` column (sentence-transformers' type)."""
    pa = require("pyarrow", "mine_hard_negatives")
    ids = np.asarray(ids, np.int64)
    chunks = []
    for s in range(0, ids.size, _TAKE_ROWS):
        part = texts.take(pa.array(ids[s : s + _TAKE_ROWS]))
        chunks.append(part if part.type == pa.string() else part.cast(pa.string()))
    return pa.chunked_array(chunks, type=pa.string())


def _lists(offsets: IntArray, values: Any) -> Any:
    pa = require("pyarrow", "mine_hard_negatives")
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def _text_lists(texts: Any, offsets: IntArray, ids: IntArray) -> Any:
    """Lists of texts (row ``i``: ``texts[ids[offsets[i]:offsets[i + 1]]]``), chunked by
    rows so that no chunk's strings pass 2 GiB."""
    pa = require("pyarrow", "mine_hard_negatives")
    n_rows = offsets.size - 1
    step = max(1, _TAKE_ROWS // max(1, int(np.ceil(ids.size / max(n_rows, 1)))))
    chunks = []
    for a in range(0, n_rows, step):
        b = min(a + step, n_rows)
        vals = _take(texts, ids[offsets[a] : offsets[b]])
        flat = vals.combine_chunks() if vals.num_chunks else pa.array([], pa.string())
        chunks.append(_lists(offsets[a : b + 1] - offsets[a], flat))
    return pa.chunked_array(chunks, type=pa.list_(pa.string()))


@dataclass
class _Mined:
    """Everything the layouts need, in row numbers."""

    queries: Any  # Arrow strings, distinct queries
    corpus: Any  # Arrow strings, distinct documents
    pair_q: IntArray  # (pairs,) query of each distinct (query, positive) pair
    pair_p: IntArray  # (pairs,) its positive
    pair_s: npt.NDArray[np.float64]  # (pairs,) s(q, d+)
    neg_ids: IntArray  # (pairs, n) negatives of each pair, best first, -1 last
    neg_s: npt.NDArray[np.float64]  # (pairs, n) their scores, NaN for -1
    q_first: IntArray  # (n_queries,) the first pair of each query


def _build(
    m: _Mined, fmt: str, scores: bool, anchor: str, positive: str
) -> tuple[dict[str, Any], npt.NDArray[np.float64], npt.NDArray[np.float64], int]:
    """Columns of the output in sentence-transformers' order, plus the positive and negative
    scores it reports and the most rows the format could have had."""
    pa = require("pyarrow", "mine_hard_negatives")
    valid = m.neg_ids >= 0
    n = m.neg_ids.shape[1]
    cols: dict[str, Any] = {}
    if fmt == "triplet":
        r, j = np.nonzero(valid)
        cols[anchor] = _take(m.queries, m.pair_q[r])
        cols[positive] = _take(m.corpus, m.pair_p[r])
        cols["negative"] = _take(m.corpus, m.neg_ids[r, j])
        if scores:
            vals = np.stack([m.pair_s[r], m.neg_s[r, j]], axis=1).ravel()
            cols["scores"] = _lists(np.arange(0, 2 * r.size + 1, 2), pa.array(vals))
        return cols, m.pair_s, m.neg_s[r, j], valid.size
    if fmt == "n-tuple":
        (r,) = np.nonzero(valid.all(axis=1))
        cols[anchor] = _take(m.queries, m.pair_q[r])
        cols[positive] = _take(m.corpus, m.pair_p[r])
        for c in range(n):
            cols[f"negative_{c + 1}"] = _take(m.corpus, m.neg_ids[r, c])
        if scores:
            vals = np.concatenate([m.pair_s[r, None], m.neg_s[r]], axis=1).ravel()
            cols["scores"] = _lists(np.arange(0, (n + 1) * r.size + 1, n + 1), pa.array(vals))
        return cols, m.pair_s, m.neg_s[r].ravel(), valid.shape[0]
    if fmt == "labeled-list":
        (r,) = np.nonzero(valid.any(axis=1))
        docs = np.concatenate([m.pair_p[r, None], m.neg_ids[r]], axis=1)
        keep = np.concatenate([np.ones((r.size, 1), bool), valid[r]], axis=1)
        offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
        cols[anchor] = _take(m.queries, m.pair_q[r])
        cols[positive] = _text_lists(m.corpus, offsets, docs[keep])
        if scores:
            s = np.concatenate([m.pair_s[r, None], m.neg_s[r]], axis=1)[keep]
            cols["scores"] = _lists(offsets, pa.array(s, pa.float64()))
        else:
            lab = np.concatenate(
                [np.ones((r.size, 1), np.int64), np.zeros((r.size, n), np.int64)], axis=1
            )
            cols["labels"] = _lists(offsets, pa.array(lab[keep], pa.int64()))
        return cols, m.pair_s, m.neg_s[valid], valid.shape[0]
    # labeled-pair: per query, its positives (label 1) then its negatives (label 0), once
    first = m.q_first
    qv = valid[first]
    n_q = first.size
    kind = np.concatenate([np.zeros(m.pair_q.size, np.int64), np.ones(int(qv.sum()), np.int64)])
    qr, qc = np.nonzero(qv)
    entry_q = np.concatenate([m.pair_q, qr])
    entry_doc = np.concatenate([m.pair_p, m.neg_ids[first][qr, qc]])
    entry_s = np.concatenate([m.pair_s, m.neg_s[first][qr, qc]])
    within = np.concatenate([np.arange(m.pair_q.size), qc])
    order = np.lexsort((within, kind, entry_q))
    cols[anchor] = _take(m.queries, entry_q[order])
    cols[positive] = _take(m.corpus, entry_doc[order])
    if scores:
        cols["score"] = pa.array(entry_s[order], pa.float64())
    else:
        cols["label"] = pa.array(1 - kind[order], pa.int64())
    neg_rep = m.neg_s[valid]
    return cols, m.pair_s, neg_rep, n_q * n + m.pair_q.size


def _fingerprint(parts: Sequence[Any]) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def _text_digest(texts: Any) -> str:
    """A digest of an Arrow string array (its value bytes and offsets)."""
    h = hashlib.sha256()
    for buf in texts.buffers():
        if buf is not None:
            h.update(memoryview(buf))
    return h.hexdigest()


def _print_stats(
    pos: npt.NDArray[np.float64],
    neg: npt.NDArray[np.float64],
    diff: npt.NDArray[np.float64],
    stats: MiningStats,
    settings: dict[str, float | None],
    missing: int,
    possible: int,
    range_min: int,
) -> None:
    """The summary sentence-transformers prints with ``verbose=True``."""
    row = "{:<6} {:>14} {:>14} {:>14}"
    print(row.format("Metric", "Positive", "Negative", "Difference"))
    print(row.format("Count", f"{pos.size:,}", f"{neg.size:,}", ""))

    def f(fn: Any, a: np.ndarray) -> str:
        return f"{fn(a):.4f}" if a.size else "nan"

    for name, fn in [
        ("Mean", np.mean),
        ("Median", np.median),
        ("Std", lambda a: np.std(a, ddof=1) if a.size > 1 else float("nan")),
        ("Min", np.min),
        ("25%", lambda a: np.quantile(a, 0.25)),
        ("50%", lambda a: np.quantile(a, 0.5)),
        ("75%", lambda a: np.quantile(a, 0.75)),
        ("Max", np.max),
    ]:
        print(row.format(name, f(fn, pos), f(fn, neg), f(fn, diff)))
    seen = max(stats.candidates_seen, 1)
    for name, value in settings.items():
        skipped = stats.removed.get(name, 0)
        if value is not None and skipped:
            print(
                f"Skipped {skipped:,} potential negatives ({skipped / seen:.2%}) due to the "
                f"{name} of {value}."
            )
    if missing > 0:
        names = ["range_max"] + (["range_min"] if range_min > 0 else [])
        names += [
            k
            for k in ("absolute_margin", "relative_margin", "max_score")
            if settings.get(k) is not None
        ]
        hint = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        print(
            f"Could not find enough negatives for {missing} samples ({missing / possible:.2%})."
            f" Consider adjusting the {hint} parameter{'s' if len(names) > 1 else ''} if you'd "
            "like to find more valid negatives."
        )


def _pair_negatives(
    ids: IntArray,
    scores: npt.NDArray[np.float32],
    query_index: IntArray,
    anchor_ids: IntArray,
    pair_q: IntArray,
    pair_p: IntArray,
    n: int,
    n_corpus: int,
) -> tuple[IntArray, npt.NDArray[np.float64]]:
    """The negatives of each (query, positive) pair, ``(pairs, n)``, sorted by score (best
    first, ``-1`` last, as sentence-transformers orders them): the row sampled against that
    positive when the sampler made one per positive, else the query's first row."""
    sc = np.where(ids >= 0, scores.astype(np.float64), np.nan)
    order = np.argsort(np.where(ids >= 0, -sc, np.inf), axis=1, kind="stable")
    ids = np.take_along_axis(ids, order, axis=1)
    sc = np.take_along_axis(sc, order, axis=1)
    if ids.shape[1] < n:
        pad = n - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        sc = np.pad(sc, ((0, 0), (0, pad)), constant_values=np.nan)
    # rows are sorted by query: the first row of each query, then rows anchored on a pair
    first = np.searchsorted(query_index, pair_q, side="left")
    has = (
        (first < query_index.size)
        & (query_index[np.minimum(first, query_index.size - 1)] == pair_q)
        if query_index.size
        else np.zeros(pair_q.size, bool)
    )
    row = np.where(has, first, -1)
    anchored = anchor_ids >= 0
    if anchored.any():
        width = np.int64(n_corpus + 1)
        rkey = query_index[anchored] * width + anchor_ids[anchored]
        rrow = np.flatnonzero(anchored)
        o = np.argsort(rkey, kind="stable")
        rkey, rrow = rkey[o], rrow[o]
        pkey = pair_q * width + pair_p
        at = np.searchsorted(rkey, pkey)
        hit = (at < rkey.size) & (rkey[np.minimum(at, rkey.size - 1)] == pkey)
        row = np.where(hit, rrow[np.minimum(at, rkey.size - 1)], row)
    out_ids = np.full((pair_q.size, n), -1, np.int64)
    out_sc = np.full((pair_q.size, n), np.nan, np.float64)
    ok = row >= 0
    out_ids[ok] = ids[row[ok]]
    out_sc[ok] = sc[row[ok]]
    return out_ids, out_sc


class _CrossEncoderScores:
    """Scores (query, document) pairs with ``cross_encoder.predict``, in a multi-process
    pool when asked; :meth:`close` stops the pool."""

    def __init__(
        self,
        cross_encoder: Any,
        queries: list[str],
        corpus: list[str],
        batch_size: int,
        use_multi_process: list[str] | bool,
        verbose: bool,
    ) -> None:
        self.ce, self.queries, self.corpus = cross_encoder, queries, corpus
        self.kwargs: dict[str, Any] = {"batch_size": batch_size, "show_progress_bar": verbose}
        self.pool = None
        if use_multi_process:
            devices = None if isinstance(use_multi_process, bool) else use_multi_process
            self.pool = cross_encoder.start_multi_process_pool(target_devices=devices)
            self.kwargs["pool"] = self.pool

    def pairs(self, q: IntArray, d: IntArray) -> npt.NDArray[np.float32]:
        """Scores of the pairs ``(queries[q[i]], corpus[d[i]])``."""
        if q.size == 0:
            return np.empty(0, np.float32)
        texts = [
            (self.queries[a], self.corpus[b]) for a, b in zip(q.tolist(), d.tolist(), strict=True)
        ]
        out = self.ce.predict(texts, **self.kwargs)
        if hasattr(out, "detach"):
            out = out.detach().float().cpu().numpy()
        arr = np.asarray(out, dtype=np.float32)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.shape != (q.size,):
            raise ValueError(
                f"cross_encoder.predict returned shape {arr.shape} for {q.size} pairs; "
                "expected one score per pair"
            )
        return arr

    def __call__(self, rows: IntArray, ids: IntArray) -> npt.NDArray[np.float32]:
        """Scores ``(b, K)`` of the candidates ``ids`` of the queries ``rows``; NaN for -1."""
        r, c = np.nonzero(ids >= 0)
        out = np.full(ids.shape, np.nan, np.float32)
        out[r, c] = self.pairs(rows[r], ids[r, c])
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.ce.stop_multi_process_pool(self.pool)
            self.pool = None


# -- the function ---------------------------------------------------------------------------


def mine_hard_negatives(
    dataset: Any,
    model: Any,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    corpus: list[str] | None = None,
    cross_encoder: Any = None,
    range_min: int = 0,
    range_max: int | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    num_negatives: int = 3,
    sampling_strategy: str = "top",
    query_prompt_name: str | None = None,
    query_prompt: str | None = None,
    corpus_prompt_name: str | None = None,
    corpus_prompt: str | None = None,
    include_positives: bool = False,
    output_format: str = "triplet",
    output_scores: bool = False,
    batch_size: int = 32,
    faiss_batch_size: int = 16384,
    use_faiss: bool = False,
    use_multi_process: list[str] | bool = False,
    verbose: bool = True,
    cache_folder: str | None = None,
    as_triplets: bool | None = None,
    margin: float | None = None,
    *,
    sampler: BaseSampler | None = None,
    seed: int | None = 0,
) -> Any:
    """Add hard negatives to a dataset of (anchor, positive) pairs: sentence-transformers'
    ``mine_hard_negatives``, mined by negsample.

    The parameters before ``sampler`` are sentence-transformers' own, in its order, with its
    defaults and meanings (positional use works as there; the two new ones are
    keyword-only). The output ``datasets.Dataset`` has its layout.

    Parameters
    ----------
    dataset : ``datasets.Dataset`` of (anchor, positive) text pairs; a query that appears
        on several rows has several positives.
    model : a ``SentenceTransformer`` (anything with ``encode_query`` / ``encode_document``,
        or ``encode``); embeddings are L2-normalised, scores are cosine similarities.
    anchor_column_name, positive_column_name : default the first and the second column.
        A name that is not a column raises (sentence-transformers falls back silently).
    corpus : more candidate documents besides the positives. Texts are de-duplicated: one
        text is one document.
    cross_encoder : rescore the candidates that can be sampled and the positives with
        ``cross_encoder.predict``, with or without a score filter (as sentence-transformers
        does since 6.3); ranks, filters and output scores are then the cross-encoder's.
    range_min, range_max : the rank window ``[range_min, range_max)``, counted among the
        candidates that pass the filters, in a pool of the top ``range_max + max_positives
        + 1`` of the search less the query's positives and the query's own text
        (``max_positives``: the most rows any query has), as in sentence-transformers.
        ``range_max=None``: ``range_min + num_negatives + max_positives``, or ``range_min +
        10 * num_negatives + max_positives`` with ``absolute_margin``, ``relative_margin``,
        ``max_score``, or ``min_score`` together with a ``cross_encoder``.
    max_score, min_score : keep ``min_score < s(q,d-) < max_score``.
    absolute_margin : keep ``s(q,d-) < s+ - absolute_margin``.
    relative_margin : keep ``s(q,d-) < s+ - |s+| * relative_margin`` (0.05: NV-Retriever's
        TopK-PercPos 95%); ``s+`` is the least positive score of the query.
    num_negatives : negatives per query.
    sampling_strategy : ``"top"`` (the best ``num_negatives`` of the window) or ``"random"``
        (uniform without replacement from the window, seeded).
    query_prompt_name, query_prompt, corpus_prompt_name, corpus_prompt : passed to the
        model's encode calls (``prompt`` wins over ``prompt_name``).
    include_positives : keep the positives among the candidates (reranking evaluation
        sets); forces ``output_format="n-tuple"``.
    output_format : ``"triplet"`` (anchor, positive, negative), ``"n-tuple"`` (anchor,
        positive, negative_1..n), ``"labeled-pair"`` (anchor, document, label),
        ``"labeled-list"`` (anchor, [documents], [labels]); ``"n-tuple-scores"`` is
        ``"n-tuple"`` with ``output_scores=True`` (deprecated there too).
    output_scores : add a ``scores`` column (triplet, n-tuple: ``[s+, s-...]``) or replace the
        labels by scores (``score`` / ``scores``).
    batch_size : encoding batch size.
    faiss_batch_size : queries mined per chunk (bounds memory, never changes the result).
    use_faiss : search with a faiss Flat index (:class:`~negsample.FaissIndex`, on the GPU
        when faiss-gpu sees one) instead of the exact numpy index.
    use_multi_process : encode with ``model.start_multi_process_pool`` (``True`` or a list
        of devices).
    verbose : progress bars and the summary sentence-transformers prints.
    cache_folder : read / write the embeddings in sentence-transformers' cache files
        (``query_embeddings_{hash}.npy``, ``corpus_embeddings_{hash}.npy``, same hash), so a
        cache written by either library serves the other; written atomically here.
    as_triplets, margin : deprecated (``output_format``, ``absolute_margin``).
    sampler : any negsample sampler instead of the default TopK, mined by
        :func:`negsample.mine` with the sampler's own depth (then ``range_min`` and an
        explicit ``range_max`` become a :class:`~negsample.Filters` rank window and
        ``sampling_strategy`` is the sampler's business); not with ``include_positives`` or
        ``cross_encoder``.
    seed : the random draws (``None``: fresh entropy); sentence-transformers cannot be
        seeded.

    Returns
    -------
    datasets.Dataset
        ``triplet``: ``anchor, positive, negative[, scores]`` one row per (query, positive,
        negative); ``n-tuple``: ``anchor, positive, negative_1 .. negative_n[, scores]`` one
        row per (query, positive) with all ``n`` found; ``labeled-pair``: ``anchor,
        positive, label|score``, each query's positives then its negatives;
        ``labeled-list``: ``anchor, positive (list), labels|scores (list)``, one row per
        (query, positive) with at least one negative. Columns keep the input's names.

    Notes
    -----
    Deliberate differences from sentence-transformers (see docs/sentence_transformers.md):
    seeded draws; filters are strict (``<``); unknown column names, invalid
    ``sampling_strategy`` or ``relative_margin`` values and ``None`` texts raise; cache
    files are written atomically; no 2048 cap on ``range_max`` with faiss on a GPU; an
    empty result keeps typed columns. The rules followed are sentence-transformers 6.3's
    (an older installed version is reported with a warning).

    Examples
    --------
    >>> from negsample.integrations.sentence_transformers import mine_hard_negatives
    >>> ds = mine_hard_negatives(pairs, model, range_max=50, relative_margin=0.05,
    ...                          num_negatives=5, output_format="n-tuple")  # doctest: +SKIP
    """
    datasets = require("datasets", "mine_hard_negatives")
    pa = require("pyarrow", "mine_hard_negatives")
    _warn_old_sentence_transformers()
    if len(dataset) == 0:
        raise ValueError("The dataset is empty. Please provide a non-empty dataset.")
    if (
        isinstance(faiss_batch_size, bool)
        or not isinstance(faiss_batch_size, int)
        or faiss_batch_size <= 0
    ):
        raise ValueError(f"faiss_batch_size must be a positive integer, got {faiss_batch_size}.")
    if use_faiss:
        require("faiss", "mine_hard_negatives(use_faiss=True)")
    columns = list(dataset.column_names)
    anchor = _column(columns, anchor_column_name, 0, "anchor_column_name")
    positive = _column(columns, positive_column_name, 1, "positive_column_name")
    if anchor == positive:
        raise ValueError(f"the anchor and positive columns are the same ({anchor!r})")
    if as_triplets is not None:
        output_format = "triplet" if as_triplets else "n-tuple"
        _log.warning(
            "The `as_triplets` parameter is deprecated. Use the `output_format` parameter "
            "instead. Setting `output_format` to `%s`.",
            output_format,
        )
    filter_set = any(
        v is not None for v in (absolute_margin, relative_margin, max_score, min_score, margin)
    )
    if include_positives:
        if range_min != 0 or range_max is not None or filter_set or sampling_strategy != "top":
            _log.warning(
                "When using `include_positives=True`, updating `range_min`, `range_max`, "
                "`max_score`, `min_score`, `absolute_margin`, `relative_margin`, or "
                "`sampling_strategy` from the default values may still discard the positive values."
            )
        if output_format != "n-tuple":
            _log.warning(
                'When using `include_positives=True`, `output_format` will be set to "n-tuple" '
                "to ensure that the ranking order is preserved."
            )
            output_format = "n-tuple"
    if output_format == "n-tuple-scores":
        _log.warning(
            '`output_format="n-tuple-scores"` is deprecated. Use `output_format="n-tuple"` with '
            "`output_scores=True` instead for equivalent output formats."
        )
        output_format, output_scores = "n-tuple", True
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(
            f"Invalid output_format: {output_format}. Must be one of 'triplet', 'n-tuple', "
            "'labeled-pair', or 'labeled-list'."
        )
    if margin is not None:
        if absolute_margin is not None:
            raise ValueError("give absolute_margin or its deprecated alias margin, not both")
        absolute_margin = margin
        _log.warning(
            "The `margin` parameter is deprecated. Use the `absolute_margin` and/or "
            "`relative_margin` parameter instead. Setting `absolute_margin` to `%s`.",
            absolute_margin,
        )
    if sampling_strategy not in ("top", "random"):
        raise ValueError(f"sampling_strategy must be 'top' or 'random', got {sampling_strategy!r}")
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1, got num_negatives={num_negatives}.")
    if sampler is not None and not isinstance(sampler, BaseSampler):
        raise TypeError(f"sampler must be a negsample sampler, got {type(sampler).__name__}")

    # -- texts to rows: queries and documents de-duplicated, pairs grouped by query --------
    table = dataset.select_columns([anchor, positive]).with_format("arrow")[:]
    q_col, p_col = _text_column(table, anchor), _text_column(table, positive)
    uq = _compact(_unique(q_col))
    q_idx = _index_in(q_col, uq)
    uc = _unique(p_col)
    if corpus is not None:
        if isinstance(corpus, str) or not isinstance(corpus, Sequence):
            raise TypeError(f"corpus must be a list of strings, got {type(corpus).__name__}")
        for i, t in enumerate(corpus):
            if not isinstance(t, str):
                raise TypeError(f"corpus[{i}] must be a string, got {type(t).__name__}")
        # dict.fromkeys(corpus + positives): the corpus's texts first, then new positives
        first = _unique(pa.array(list(corpus), pa.large_string()))
        uc = _unique(pa.concat_arrays([first, uc.cast(pa.large_string())]))
    uc = _compact(uc)
    p_idx = _index_in(p_col, uc)
    n_q, n_c = len(uq), len(uc)
    max_positives = int(np.bincount(q_idx).max())  # rows per query, as sentence-transformers counts
    pair_q, pair_p = _pairs(q_idx, p_idx, n_q, n_c)
    n_pos = np.bincount(pair_q, minlength=n_q)
    q_first = np.concatenate([[0], np.cumsum(n_pos)[:-1]]).astype(np.int64)
    positives = np.split(pair_p, np.cumsum(n_pos)[:-1])

    range_max_given = range_max is not None
    if range_max is None:
        # as sentence-transformers 6.3 derives it: min_score widens the window only when a
        # cross-encoder rescores (its scores may then remove many candidates)
        widen = any(v is not None for v in (absolute_margin, relative_margin, max_score))
        if widen or (cross_encoder is not None and min_score is not None):
            range_max = range_min + num_negatives * 10 + max_positives
        else:
            range_max = range_min + num_negatives + max_positives
        if verbose:
            print(f"Setting range_max to {range_max} based on the provided parameters.")
    if range_min < 0:
        raise ValueError(f"range_min must be non-negative, got range_min={range_min}.")
    if range_min >= range_max:
        raise ValueError(
            "range_min must be smaller than range_max, "
            f"got range_min={range_min} and range_max={range_max}."
        )
    if num_negatives > range_max - range_min:
        raise ValueError(
            f"Cannot mine {num_negatives} negatives per query: only {range_max - range_min} "
            f"candidates remain after skipping the first range_min={range_min} of "
            f"range_max={range_max}. Consider decreasing num_negatives or range_min, or "
            "increasing range_max."
        )
    if verbose and n_q != len(q_idx):
        print(f"Found {n_q} unique queries out of {len(q_idx)} total queries.")
    if verbose and max_positives > 1:
        print(f"Found an average of {np.mean(n_pos):.3f} positives per query.")

    # -- embeddings, index ------------------------------------------------------------------
    queries_list: list[str] = uq.to_pylist()
    corpus_list: list[str] = uc.to_pylist()
    q_emb, c_emb = _embeddings(
        model,
        queries_list,
        corpus_list,
        cache_folder=cache_folder,
        query_prompt_name=query_prompt_name,
        query_prompt=query_prompt,
        corpus_prompt_name=corpus_prompt_name,
        corpus_prompt=corpus_prompt,
        batch_size=batch_size,
        use_multi_process=use_multi_process,
        verbose=verbose,
    )
    pair_s = np.empty(pair_q.size, np.float32)
    for a in range(0, pair_q.size, _TAKE_ROWS):  # s(q, d+) per pair, gathered in blocks
        b = slice(a, a + _TAKE_ROWS)
        pair_s[b] = np.einsum("ij,ij->i", q_emb[pair_q[b]], c_emb[pair_p[b]])
    index: Index
    if use_faiss:
        from ..index.faiss_index import FaissIndex

        # the Flat index stores the vectors exactly: no second copy is kept beside it
        index = FaissIndex(c_emb, "Flat", metric="ip", check=False, keep_vectors=False)
        del c_emb
    else:
        from ..index.numpy_index import NumpyIndex

        index = NumpyIndex(c_emb, metric="ip", check=False)

    # a document whose text is the query's own text is never its negative (as in
    # sentence-transformers >= 6.3), unless it is one of the query's positives: (n_q, 1),
    # -1 = none. A positive is removed as a positive, or kept with include_positives.
    exclude = _index_in(uq, uc, missing=-1)[:, None]
    self_pos = exclude[pair_q, 0] == pair_p
    exclude[pair_q[self_pos], 0] = -1

    filters = Filters(
        absolute_margin=absolute_margin,
        relative_margin=relative_margin,
        max_score=max_score,
        min_score=min_score,
    )
    n_eff = min(num_negatives, n_c - 1)
    # sentence-transformers (6.3) searches range_max + max_positives + 1 (the most rows any
    # query has, and the query's own text) and removes the positives and that text from it
    depth = range_max + max_positives + 1
    if sampler is None:
        run_sampler: BaseSampler = _EligibleRankTopK(
            k=depth, range_min=range_min, range_max=range_max, strategy=sampling_strategy
        )
    else:
        run_sampler = sampler
        filters = replace(
            filters, range_min=range_min, range_max=range_max if range_max_given else None
        )
        if include_positives or cross_encoder is not None:
            raise ValueError(
                "sampler= works without include_positives and cross_encoder (they reorder "
                "or keep candidates that a negsample sampler would remove)"
            )
    use_ce = cross_encoder is not None
    active = None if filters.is_noop else filters
    if n_eff < 1:
        negs = Negatives.concat([], num_negatives, MiningStats(n_queries=n_q))
        ids = np.full((n_q, num_negatives), -1, np.int64)
        nsc = np.full((n_q, num_negatives), np.nan, np.float32)
        qidx = np.arange(n_q)
        anchors = np.full(n_q, -1, np.int64)
    else:
        if sampler is not None:
            negs = mine(
                q_emb,
                index,
                positives,
                run_sampler,
                n=n_eff,
                seed=seed,
                filters=active,
                chunk_size=faiss_batch_size,
                progress=verbose,
                exclude=exclude,
            )
        else:
            scorer = None
            if use_ce:
                scorer = _CrossEncoderScores(
                    cross_encoder, queries_list, corpus_list, batch_size, use_multi_process,
                    verbose,
                )  # fmt: skip
            try:
                if scorer is not None:
                    pair_s = scorer.pairs(pair_q, pair_p)
                pos_scores = [pair_s[q_first[q] : q_first[q] + n_pos[q]] for q in range(n_q)]
                negs = _mine_pools(
                    q_emb, index, positives, exclude, run_sampler, depth=depth, n=n_eff,
                    seed=seed, filters=active, chunk=faiss_batch_size,
                    include_positives=include_positives, rescore=scorer, pos_scores=pos_scores,
                    progress=verbose,
                )  # fmt: skip
            finally:
                if scorer is not None:
                    scorer.close()
        ids, nsc, qidx, anchors = negs.ids, negs.scores, negs.query_index, negs.anchor_ids

    # -- negatives of each (query, positive) pair, best first -------------------------------
    neg_ids, neg_s = _pair_negatives(ids, nsc, qidx, anchors, pair_q, pair_p, num_negatives, n_c)
    mined = _Mined(
        queries=uq,
        corpus=uc,
        pair_q=pair_q,
        pair_p=pair_p,
        pair_s=pair_s.astype(np.float64),
        neg_ids=neg_ids,
        neg_s=neg_s,
        q_first=q_first,
    )
    cols, pos_rep, neg_rep, possible = _build(mined, output_format, output_scores, anchor, positive)
    fp = _fingerprint(
        [
            getattr(dataset, "_fingerprint", None),
            _text_digest(uc),
            output_format,
            output_scores,
            anchor,
            positive,
            repr(run_sampler),
            num_negatives,
            negs.stats.seed,
            pair_q,
            pair_p,
            neg_ids,
            mined.pair_s,
            neg_s,
        ]
    )
    out = datasets.Dataset(pa.table(cols), fingerprint=fp)
    if verbose:
        valid = neg_ids >= 0
        rows = np.ones(len(valid), bool)
        if output_format == "n-tuple":
            rows = np.asarray(valid.all(axis=1))
        diff = (mined.pair_s[:, None] - neg_s)[valid & rows[:, None]]
        settings = {
            "absolute_margin": absolute_margin,
            "relative_margin": relative_margin,
            "max_score": max_score,
            "min_score": min_score,
        }
        _print_stats(
            pos_rep, neg_rep, diff, negs.stats, settings, possible - len(out), possible, range_min
        )
    return out
