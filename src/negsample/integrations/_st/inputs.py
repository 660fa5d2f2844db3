"""The drop-in's inputs: the arguments as sentence-transformers 6.3 reads them (deprecated
aliases resolved, mistakes refused), the dataset's two text columns and the corpus as
distinct texts (Arrow string arrays, in order of first appearance, as ``dict.fromkeys``),
and the (query, positive) pairs as row numbers into them."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from ..._optional import require
from ...errors import InputError, InputTypeError
from ...samplers.base import BaseSampler, IntArray

__all__ = [
    "OUTPUT_FORMATS",
    "READ_ROWS",
    "ST_RULES",
    "Pairs",
    "Settings",
    "check_call",
    "check_texts",
    "columns_of",
    "compact",
    "corpus_batches",
    "group_pairs",
    "index_in",
    "own_text",
    "read_pairs",
    "resolve_settings",
    "select_columns",
    "warn_old_sentence_transformers",
    "window",
]

_log = logging.getLogger("negsample.integrations.sentence_transformers")

OUTPUT_FORMATS = ("triplet", "n-tuple", "labeled-pair", "labeled-list")
READ_ROWS = 8192  # rows read at a time from a streamed dataset or a separate corpus
ST_RULES = (6, 3)  # the sentence-transformers release whose mine_hard_negatives this follows
_version_warned: list[str] = []


def warn_old_sentence_transformers() -> None:
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


# -- the arguments --------------------------------------------------------------------------


def check_call(*, faiss_batch_size: Any, use_faiss: bool, sampler: Any) -> None:
    """Refuse a ``faiss_batch_size`` that is no positive integer and a ``sampler`` that is
    no negsample sampler; with ``use_faiss``, faiss must be installed.

    Parameters
    ----------
    faiss_batch_size : Any
        Queries mined at a time.
    use_faiss : bool
        Search with faiss.
    sampler : Any
        The user's sampler, or ``None``.
    """
    if (
        isinstance(faiss_batch_size, bool)
        or not isinstance(faiss_batch_size, int)
        or faiss_batch_size <= 0
    ):
        raise InputError(f"faiss_batch_size must be a positive integer, got {faiss_batch_size}.")
    if use_faiss:
        require("faiss", "mine_hard_negatives(use_faiss=True)")
    if sampler is not None and not isinstance(sampler, BaseSampler):
        raise InputTypeError(f"sampler must be a negsample sampler, got {type(sampler).__name__}")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The arguments once the deprecated aliases are resolved and checked.

    Attributes
    ----------
    output_format : str
        One of :data:`OUTPUT_FORMATS`.
    output_scores : bool
        Scores instead of (or besides) labels.
    absolute_margin, relative_margin, max_score, min_score : float or None
        The score filters, as given.
    range_min : int
        The rank window's start.
    range_max : int or None
        The rank window's end as given (``None``: derived by :func:`window`).
    num_negatives : int
        Negatives per query.
    sampling_strategy : str
        ``"top"`` or ``"random"``.
    include_positives : bool
        Keep the positives among the candidates.
    """

    output_format: str
    output_scores: bool
    absolute_margin: float | None
    relative_margin: float | None
    max_score: float | None
    min_score: float | None
    range_min: int
    range_max: int | None
    num_negatives: int
    sampling_strategy: str
    include_positives: bool

    @property
    def filter_set(self) -> bool:
        """Whether any score filter is set."""
        return any(
            v is not None
            for v in (self.absolute_margin, self.relative_margin, self.max_score, self.min_score)
        )


def resolve_settings(
    *,
    output_format: str,
    output_scores: bool,
    absolute_margin: float | None,
    relative_margin: float | None,
    max_score: float | None,
    min_score: float | None,
    margin: float | None,
    as_triplets: bool | None,
    range_min: int,
    range_max: int | None,
    num_negatives: int,
    sampling_strategy: str,
    include_positives: bool,
) -> Settings:
    """sentence-transformers' argument handling (its warnings, in its order), plus the
    checks it lacks: a ``sampling_strategy`` other than ``"top"`` / ``"random"`` and both
    ``margin`` and ``absolute_margin`` raise.

    Parameters
    ----------
    output_format, output_scores, absolute_margin, relative_margin, max_score, min_score, \
margin, as_triplets, range_min, range_max, num_negatives, sampling_strategy, \
include_positives : Any
        As :func:`~negsample.integrations.sentence_transformers.mine_hard_negatives` takes
        them.

    Returns
    -------
    Settings
        The resolved arguments.
    """
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
        raise InputError(
            f"Invalid output_format: {output_format}. Must be one of 'triplet', 'n-tuple', "
            "'labeled-pair', or 'labeled-list'."
        )
    if margin is not None:
        if absolute_margin is not None:
            raise InputError("give absolute_margin or its deprecated alias margin, not both")
        absolute_margin = margin
        _log.warning(
            "The `margin` parameter is deprecated. Use the `absolute_margin` and/or "
            "`relative_margin` parameter instead. Setting `absolute_margin` to `%s`.",
            absolute_margin,
        )
    if sampling_strategy not in ("top", "random"):
        raise InputError(f"sampling_strategy must be 'top' or 'random', got {sampling_strategy!r}")
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1:
        raise InputError(f"num_negatives must be at least 1, got num_negatives={num_negatives}.")
    return Settings(
        output_format=output_format,
        output_scores=bool(output_scores),
        absolute_margin=absolute_margin,
        relative_margin=relative_margin,
        max_score=max_score,
        min_score=min_score,
        range_min=range_min,
        range_max=range_max,
        num_negatives=num_negatives,
        sampling_strategy=sampling_strategy,
        include_positives=include_positives,
    )


def window(s: Settings, *, max_positives: int, cross_encoder: bool, verbose: bool) -> int:
    """``range_max``: as given, or derived as sentence-transformers 6.3 derives it; checks
    the window ``[range_min, range_max)`` holds ``num_negatives``.

    Parameters
    ----------
    s : Settings
        The resolved arguments.
    max_positives : int
        The most rows any query has.
    cross_encoder : bool
        Whether a cross-encoder rescores (then ``min_score`` widens the derived window).
    verbose : bool
        Print the derived value, as sentence-transformers does.

    Returns
    -------
    int
        ``range_max``.
    """
    range_min, range_max, n = s.range_min, s.range_max, s.num_negatives
    if range_max is None:
        # min_score widens the window only when a cross-encoder rescores (its scores may
        # then remove many candidates)
        widen = any(v is not None for v in (s.absolute_margin, s.relative_margin, s.max_score))
        if widen or (cross_encoder and s.min_score is not None):
            range_max = range_min + n * 10 + max_positives
        else:
            range_max = range_min + n + max_positives
        if verbose:
            print(f"Setting range_max to {range_max} based on the provided parameters.")
    if range_min < 0:
        raise InputError(f"range_min must be non-negative, got range_min={range_min}.")
    if range_min >= range_max:
        raise InputError(
            "range_min must be smaller than range_max, "
            f"got range_min={range_min} and range_max={range_max}."
        )
    if n > range_max - range_min:
        raise InputError(
            f"Cannot mine {n} negatives per query: only {range_max - range_min} "
            f"candidates remain after skipping the first range_min={range_min} of "
            f"range_max={range_max}. Consider decreasing num_negatives or range_min, or "
            "increasing range_max."
        )
    return range_max


# -- the texts ------------------------------------------------------------------------------


def _column(columns: Sequence[str], name: str | None, pos: int, what: str) -> str:
    if name:
        if name not in columns:
            raise InputError(
                f"{what}={name!r} is not a column of the dataset (columns: {list(columns)})"
            )
        return name
    if len(columns) <= pos:
        raise InputError(
            "Dataset must contain at least two columns to select the positive column "
            f"automatically (columns: {list(columns)})"
        )
    return columns[pos]


def select_columns(
    columns: Sequence[str], anchor: str | None, positive: str | None
) -> tuple[str, str]:
    """The anchor and positive column names (default: the first and the second column);
    a name that is not a column raises (sentence-transformers falls back silently).

    Parameters
    ----------
    columns : Sequence[str]
        The dataset's columns.
    anchor, positive : str or None
        The names asked for.

    Returns
    -------
    tuple[str, str]
        The anchor and the positive column.
    """
    a = _column(columns, anchor, 0, "anchor_column_name")
    p = _column(columns, positive, 1, "positive_column_name")
    if a == p:
        raise InputError(f"the anchor and positive columns are the same ({a!r})")
    return a, p


def _text_column(table: Any, name: str) -> Any:
    """The column (an Arrow string array, as stored); refuses nulls and non-strings."""
    pa = require("pyarrow", "mine_hard_negatives")
    col = table.column(name)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise InputTypeError(f"column {name!r} must hold strings, got Arrow type {col.type}")
    if col.null_count:
        row = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise InputError(f"column {name!r} row {row} is None; every row needs a text")
    return col


def compact(texts: Any) -> Any:
    """``string`` (32-bit offsets) when the texts fit, so that gathering them for the output
    needs no cast; ``large_string`` otherwise."""
    pa = require("pyarrow", "mine_hard_negatives")
    if pa.types.is_large_string(texts.type) and texts.nbytes < 2**31 - 2**24:
        return texts.cast(pa.string())
    return texts


def index_in(values: Any, uniq: Any, missing: int | None = None) -> npt.NDArray[np.int64]:
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


def columns_of(dataset: Any) -> list[str]:
    """A dataset's column names; for an ``IterableDataset`` whose features are unknown,
    the keys of its first example (read for that).

    Parameters
    ----------
    dataset : datasets.Dataset or datasets.IterableDataset
        The dataset.

    Returns
    -------
    list[str]
        Its columns (empty for an empty dataset of unknown features).
    """
    names = dataset.column_names
    if names is None:
        first = next(iter(dataset.take(1)), None)
        names = list(first) if first else []
    return list(names)


def check_texts(texts: Sequence[Any], start: int, column: str | None) -> None:
    """Refuse a text that is not a string, naming where it is.

    Parameters
    ----------
    texts : Sequence[Any]
        A batch of texts.
    start : int
        The row of its first text.
    column : str or None
        The dataset column (``None``: the separate corpus).
    """
    for i, t in enumerate(texts):
        if isinstance(t, str):
            continue
        if column is None:
            raise InputTypeError(f"corpus[{start + i}] must be a string, got {type(t).__name__}")
        if t is None:
            raise InputError(f"column {column!r} row {start + i} is None; every row needs a text")
        raise InputTypeError(
            f"column {column!r} row {start + i} must hold strings, got {type(t).__name__}"
        )


def _corpus_column(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    if "text" in names:
        return "text"
    raise InputError(
        "corpus: a dataset given as the corpus needs one column or a 'text' column "
        f"(columns: {list(names)}); or pass one column, corpus_dataset['text']"
    )


def corpus_batches(corpus: Any, rows: int) -> Iterator[list[Any]]:
    """The separate corpus in order, in batches of at most ``rows`` texts (unchecked): a
    list (or tuple, array) of strings, a dataset column (``corpus_dataset["text"]``, of a
    ``Dataset`` or an ``IterableDataset``), or a dataset (its only column, or ``text``).

    Parameters
    ----------
    corpus : Any
        The corpus.
    rows : int
        Texts per batch.

    Yields
    ------
    list
        The next texts.
    """
    datasets = require("datasets", "mine_hard_negatives")
    source, name = corpus, None
    if hasattr(corpus, "source") and hasattr(corpus, "column_name"):  # a dataset column
        source, name = corpus.source, corpus.column_name
    if isinstance(source, datasets.IterableDataset):
        name = name or _corpus_column(columns_of(source))
        for batch in source.iter(batch_size=rows):
            yield list(batch[name])
    elif isinstance(source, datasets.Dataset):
        name = name or _corpus_column(source.column_names)
        col = source.select_columns([name]).with_format("arrow")
        for a in range(0, len(source), rows):
            yield col[a : a + rows].column(0).to_pylist()
    elif isinstance(corpus, np.ndarray) and corpus.ndim == 1:
        for a in range(0, corpus.size, rows):
            yield corpus[a : a + rows].tolist()
    elif isinstance(corpus, Sequence) and not isinstance(corpus, str):
        for a in range(0, len(corpus), rows):
            yield list(corpus[a : a + rows])
    else:
        raise InputTypeError(
            f"corpus must be a list of strings or a dataset (column), got {type(corpus).__name__}"
        )


def _corpus_texts(corpus: Any) -> Any:
    """The separate corpus as one Arrow ``large_string`` array; refuses a text that is not
    a string."""
    pa = require("pyarrow", "mine_hard_negatives")
    parts, start = [], 0
    for texts in corpus_batches(corpus, READ_ROWS):
        check_texts(texts, start, None)
        parts.append(pa.array(texts, pa.large_string()))
        start += len(texts)
    return pa.concat_arrays(parts) if parts else pa.array([], pa.large_string())


@dataclass(frozen=True, kw_only=True)
class Pairs:
    """The distinct texts and the (query, positive) pairs, in row numbers.

    Attributes
    ----------
    queries : pyarrow.Array
        Distinct query texts, in order of first appearance.
    corpus : pyarrow.Array
        Distinct documents: the separate corpus's texts first, then the new positives (as
        ``dict.fromkeys(corpus + positives)``).
    pair_q, pair_p : numpy.ndarray
        ``(pairs,)`` int64: the distinct (query, positive) pairs grouped by query (queries
        in order of first appearance, each query's positives too), as sentence-transformers
        orders its output rows.
    n_rows : int
        Rows of the dataset (a repeated pair counts each time).
    max_positives : int
        The most rows any query has (sentence-transformers' ``max_positives``).
    query_docs : numpy.ndarray or None
        int64 ``(queries,)`` the document whose text is each query's text (``-1``: none),
        when the reader found it on the way (``None``: :func:`own_text` looks it up).
    """

    queries: Any
    corpus: Any
    pair_q: IntArray
    pair_p: IntArray
    n_rows: int
    max_positives: int
    query_docs: IntArray | None = None

    @cached_property
    def n_pos(self) -> IntArray:
        """``(queries,)`` distinct positives of each query."""
        return np.bincount(self.pair_q, minlength=len(self.queries))

    @cached_property
    def q_first(self) -> IntArray:
        """``(queries,)`` the first pair of each query."""
        return np.concatenate([[0], np.cumsum(self.n_pos)[:-1]]).astype(np.int64)

    @cached_property
    def positives(self) -> list[IntArray]:
        """The distinct positives of each query (ragged)."""
        return np.split(self.pair_p, np.cumsum(self.n_pos)[:-1])


def _pairs(q_idx: IntArray, p_idx: IntArray, n_c: int) -> tuple[IntArray, IntArray]:
    """Distinct (query, positive) pairs grouped by query (queries in order of first
    appearance, each query's positives in order of first appearance)."""
    key = q_idx * np.int64(n_c) + p_idx
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    order = first[np.argsort(q_idx[first], kind="stable")]
    return q_idx[order], p_idx[order]


def group_pairs(
    queries: Any,
    corpus: Any,
    q_idx: IntArray,
    p_idx: IntArray,
    query_docs: IntArray | None = None,
) -> Pairs:
    """:class:`Pairs` from the distinct texts and each row's query and positive.

    Parameters
    ----------
    queries, corpus : pyarrow.Array
        The distinct texts.
    q_idx, p_idx : numpy.ndarray
        ``(rows,)`` int64: each dataset row's query and positive.
    query_docs : numpy.ndarray or None
        See :class:`Pairs`.

    Returns
    -------
    Pairs
        The pairs, grouped by query.
    """
    pair_q, pair_p = _pairs(q_idx, p_idx, len(corpus))
    return Pairs(
        queries=queries,
        corpus=corpus,
        pair_q=pair_q,
        pair_p=pair_p,
        n_rows=int(q_idx.size),
        max_positives=int(np.bincount(q_idx).max()),  # rows per query, as ST counts them
        query_docs=query_docs,
    )


def read_pairs(dataset: Any, anchor: str, positive: str, corpus: Any) -> Pairs:
    """The texts of a ``datasets.Dataset`` (read as Arrow, no Python list of its rows).

    Parameters
    ----------
    dataset : datasets.Dataset
        The (anchor, positive) pairs.
    anchor, positive : str
        Its text columns.
    corpus : Sequence[str] or None
        More candidate documents.

    Returns
    -------
    Pairs
        The distinct texts and the pairs.
    """
    pa = require("pyarrow", "mine_hard_negatives")
    table = dataset.select_columns([anchor, positive]).with_format("arrow")[:]
    q_col, p_col = _text_column(table, anchor), _text_column(table, positive)
    uq = compact(_unique(q_col))
    q_idx = index_in(q_col, uq)
    uc = _unique(p_col)
    if corpus is not None:
        # dict.fromkeys(corpus + positives): the corpus's texts first, then new positives
        first = _unique(_corpus_texts(corpus))
        uc = _unique(pa.concat_arrays([first, uc.cast(pa.large_string())]))
    uc = compact(uc)
    p_idx = index_in(p_col, uc)
    return group_pairs(uq, uc, q_idx, p_idx)


def own_text(pairs: Pairs) -> IntArray:
    """``(queries, 1)``: the document whose text is the query's own text, which is never
    its negative (as in sentence-transformers >= 6.3); ``-1`` when there is none or when it
    is one of the query's positives (then removed as a positive, or kept with
    ``include_positives``).

    Parameters
    ----------
    pairs : Pairs
        The texts and pairs.

    Returns
    -------
    numpy.ndarray
        int64 ``(queries, 1)``, ``-1`` for none.
    """
    if pairs.query_docs is not None:
        exclude = np.array(pairs.query_docs, np.int64)[:, None]
    else:
        exclude = index_in(pairs.queries, pairs.corpus, missing=-1)[:, None]
    self_pos = exclude[pairs.pair_q, 0] == pairs.pair_p
    exclude[pairs.pair_q[self_pos], 0] = -1
    return exclude
