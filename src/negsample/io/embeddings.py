"""Precomputed embeddings: ``corpus.npy`` + ``corpus_ids.txt`` and ``queries.npy`` +
``query_ids.txt``, aligned to a dataset's rows, checked, and (given the model that made
them) spot-checked by re-encoding a few rows.

- the id files are read as bytes: UTF-8 (a bad byte is named by its line and column), a
  leading UTF-8 byte-order mark skipped, UTF-16 and NUL bytes refused, ``\\r\\n`` line ends
  accepted, empty or blank lines and duplicate ids refused, each with its line;
- the vectors are memory-mapped and checked in one streamed pass, in blocks of about
  64 MiB: a row the dataset uses holding NaN or inf, or a value that becomes inf once cast
  to float32 (float64 beyond float32's range), is named by its row in the file and its id;
- ids reordered without their vectors cannot be seen from the ids: with ``model=``, a few
  seeded rows of each side are re-encoded with :func:`negsample.encode` and a vector whose
  cosine with its re-encoding is below ``min_cosine`` is refused, named by row and id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ._reading import DataError, check_start
from .texts import _SPACE_LEAD, Texts, as_texts, first_duplicate, lookup

if TYPE_CHECKING:
    from .data import BeirDataset
    from .encoding import DatasetEmbeddings

__all__ = [
    "DEFAULT_MIN_COSINE",
    "SpotCheck",
    "align_embeddings",
    "load_embeddings",
    "read_ids",
    "verify_embeddings",
]

_log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.floating[Any]]
#: The smallest cosine between a stored vector and its text re-encoded by the same model
#: that the spot check accepts: float32 against float16 or bfloat16 encodings differ by
#: about 1e-3; two different passages rarely come within 0.99 of each other.
DEFAULT_MIN_COSINE = 0.99
#: Bytes of vectors per block of the finiteness check.
_CHECK_BLOCK = 64 << 20


def _where(data: bytes, pos: int) -> tuple[int, int]:
    """The 1-based line and column of byte ``pos``."""
    line_start = data.rfind(b"\n", 0, pos) + 1
    return data.count(b"\n", 0, pos) + 1, pos - line_start + 1


def read_ids(path: str | os.PathLike[str]) -> Texts:
    """The ids of an id file (one per line, row ``i`` = line ``i + 1``), checked.

    Raises
    ------
    DataError
        naming the line (and column) of a byte that is not UTF-8, a NUL byte, an empty or
        blank line, or a duplicate id; a UTF-16 file. A leading UTF-8 byte-order mark is
        skipped (as in the dataset's files), ``\\r\\n`` line ends are accepted.
    """
    p = Path(path)
    raw = p.read_bytes()
    skip = check_start(p, raw[:3])
    data = raw[skip:]
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, col = _where(data, exc.start)
            if line == 1:
                col += skip
            raise DataError(
                p, line, f"not valid UTF-8: byte 0x{data[exc.start]:02x} at column {col}"
            ) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        line, col = _where(data, nul)
        raise DataError(
            p,
            line,
            f"NUL byte at column {col} (a UTF-16 file without a byte-order mark, or a "
            "binary file?)",
        )
    a = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(a == 10)
    starts = np.concatenate([[0], nl + 1])
    ends = np.concatenate([nl, [a.size]])
    if starts[-1] == a.size:  # the file ends with a newline: no line after it
        starts, ends = starts[:-1], ends[:-1]
    cr = ends > starts
    cr[cr] = a[ends[cr] - 1] == 13
    ends = ends - cr
    lengths = ends - starts
    empty = np.flatnonzero(lengths == 0)
    maybe = np.flatnonzero((lengths > 0) & _SPACE_LEAD[a[np.minimum(starts, max(a.size - 1, 0))]])
    blank = [int(i) for i in maybe.tolist() if not data[starts[i] : ends[i]].decode().strip()]
    if empty.size or blank:
        first = min([*empty[:1].tolist(), *blank[:1]])
        raise DataError(p, first + 1, "empty id line")
    mask = a != 10  # the bytes of the ids: not the line ends
    mask[ends[cr]] = False
    offsets = np.zeros(starts.size + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = Texts([(a[mask], offsets)]) if starts.size else Texts([])
    dup = first_duplicate(ids)
    if dup is not None:
        i, j = dup
        raise DataError(p, j + 1, f"duplicate id {ids[j]!r} (first on line {i + 1})")
    return ids


def _first_unused(ids: Texts, rows: npt.NDArray[np.int64]) -> str:
    """``"; line N holds '<id>', which the dataset does not have"`` for the first id of the
    file the dataset does not use (a hint at the cause: spaces, another id scheme...)."""
    used = np.zeros(len(ids), bool)
    used[rows[rows >= 0]] = True
    unused = np.flatnonzero(~used)
    if unused.size == 0:
        return ""
    r = int(unused[0])
    return f"; line {r + 1} holds {ids[r]!r}, which the dataset does not have"


def _check_finite(
    arr: FloatArray,
    used: npt.NDArray[np.bool_] | None,
    vf: Path,
    idf: Path,
    ids: Texts,
    n_wanted: int,
    what: str,
) -> None:
    """One streamed pass over the rows, in blocks of about 64 MiB: a finite float32 sum
    proves a block finite; a block that is not is looked at row by row."""
    n, dim = arr.shape
    step = max(1, _CHECK_BLOCK // max(1, arr.itemsize * dim))
    first, n_bad = -1, 0
    for s in range(0, n, step):
        block = np.asarray(arr[s : s + step])
        with np.errstate(over="ignore", invalid="ignore"):  # inf is what is looked for
            as32 = block if block.dtype == np.float32 else block.astype(np.float32)
            total = np.add.reduce(as32.reshape(-1))
        if np.isfinite(total):
            continue
        bad = s + np.flatnonzero(~np.isfinite(as32).all(axis=1))
        if used is not None:
            bad = bad[used[bad]]
        if bad.size:
            n_bad += int(bad.size)
            if first < 0:
                first = int(bad[0])
    if not n_bad:
        return
    v = np.asarray(arr[first])
    with np.errstate(over="ignore", invalid="ignore"):
        v32 = v.astype(np.float32)
    col = int(np.flatnonzero(~np.isfinite(v32))[0])
    val = v[col]
    if np.isfinite(val):
        held = (
            f"holds {float(val):g} in column {col}, beyond float32's range (inf once cast "
            f"to float32): vectors must be finite in float32"
        )
    else:
        held = f"holds {val}: vectors must be finite"
    raise DataError(
        vf,
        None,
        f"row {first} (0-based; id {ids[first]!r}, line {first + 1} of {idf.name}) {held} "
        f"({n_bad} of the {n_wanted} {what} have a non-finite vector)",
    )


def _align(
    vectors_file: str | os.PathLike[str],
    ids_file: str | os.PathLike[str],
    wanted: Sequence[str],
    what: str,
) -> tuple[FloatArray, npt.NDArray[np.int64] | None, Texts]:
    """The aligned rows, the file row of each (``None``: the same order) and the ids."""
    vf, idf = Path(vectors_file), Path(ids_file)
    if not vf.is_file():
        raise FileNotFoundError(f"{vf}: not found")
    if not idf.is_file():
        raise FileNotFoundError(f"{idf}: not found")
    try:
        arr = np.load(vf, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(vf, None, f"not a readable .npy file: {exc}") from exc
    if arr.ndim != 2 or arr.dtype.kind != "f":
        raise DataError(vf, None, f"expected a 2-D float array, got {arr.dtype} {arr.shape}")
    if arr.shape[1] == 0:
        raise DataError(vf, None, f"the vectors have no columns ({arr.shape})")
    ids = read_ids(idf)
    if len(ids) != arr.shape[0]:
        raise DataError(idf, None, f"{len(ids)} ids but {vf.name} has {arr.shape[0]} rows")
    want = as_texts(wanted)
    take = None
    used = None
    out = arr
    if want != ids:
        take = lookup(ids, want)
        missing = np.flatnonzero(take < 0)
        if missing.size:
            shown = ", ".join(repr(want[int(m)]) for m in missing[:5].tolist())
            more = f" and {missing.size - 5} more" if missing.size > 5 else ""
            hint = _first_unused(ids, take)
            raise DataError(
                idf, None, f"no embedding for {missing.size} {what}: {shown}{more}{hint}"
            )
        used = np.zeros(arr.shape[0], bool)
        used[take] = True
    _check_finite(arr, used, vf, idf, ids, len(want), what)
    if take is not None:
        out = np.ascontiguousarray(arr[take], dtype=arr.dtype)
    return out, take, ids


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
        naming the file and the first ids of ``wanted`` that it lacks (and the first id of
        the file the dataset does not have), a row count that differs from the id list, a
        malformed id file (:func:`read_ids`: the line), or a used row holding NaN or inf,
        or a value beyond float32's range (named by its row in the file and its id).
    """
    return _align(vectors_file, ids_file, wanted, what)[0]


class SpotCheck(NamedTuple):
    """The rows re-encoded by :func:`verify_embeddings` (dataset rows, sorted) and the
    cosine of each stored vector with its re-encoding."""

    corpus_rows: npt.NDArray[np.int64]
    corpus_cosine: npt.NDArray[np.float32]
    query_rows: npt.NDArray[np.int64]
    query_cosine: npt.NDArray[np.float32]

    @property
    def min_cosine(self) -> float:
        both = np.concatenate([self.corpus_cosine, self.query_cosine])
        return float(both.min()) if both.size else 1.0


def _spot(
    vectors: FloatArray,
    texts: Sequence[str],
    ids: Sequence[str],
    *,
    model: str | os.PathLike[str],
    n: int,
    seed: int,
    min_cosine: float,
    prompt: str | None,
    prompt_name: str | None,
    encode_kwargs: dict[str, Any],
    where: str,
    file_rows: npt.NDArray[np.int64] | None,
    ids_name: str | None,
    what: str,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    from .encoding import encode

    m = len(texts)
    k = min(n, m)
    if k == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    rng = np.random.default_rng([seed, 0 if what == "documents" else 1])
    rows = np.sort(rng.choice(m, size=k, replace=False)).astype(np.int64)
    got = encode(
        [texts[int(r)] for r in rows],
        model,
        prompt=prompt,
        prompt_name=prompt_name,
        progress=False,
        desc=f"{what} (spot check)",
        **encode_kwargs,
    )
    have = np.asarray(vectors[rows], dtype=np.float32)
    if got.shape[1] != have.shape[1]:
        raise DataError(
            where,
            None,
            f"the model {str(model)!r} gives {got.shape[1]}-dimensional vectors, these "
            f"have {have.shape[1]}: another model made them",
        )
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(have, axis=1)
    cos = ((got * have).sum(axis=1) / np.maximum(norms, 1e-30)).astype(np.float32)
    bad = np.flatnonzero(~(cos >= min_cosine))
    if bad.size:
        shown = []
        for i in bad[:5].tolist():
            r = int(rows[i])
            fr = r if file_rows is None else int(file_rows[r])
            line = f", line {fr + 1} of {ids_name}" if ids_name else ""
            shown.append(f"row {fr} (id {ids[r]!r}{line}): cosine {cos[i]:.3f}")
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise DataError(
            where,
            None,
            f"{bad.size} of the {k} {what} re-encoded with {str(model)!r} do not match their "
            f"stored vectors (cosine < {min_cosine}): {'; '.join(shown)}{more}. Were the ids "
            "reordered without their vectors, or the vectors made by another model, prompt "
            "or max_seq_length?",
        )
    return rows, cos


def verify_embeddings(
    embeddings: DatasetEmbeddings,
    dataset: BeirDataset,
    model: str | os.PathLike[str],
    *,
    n: int = 8,
    seed: int = 0,
    min_cosine: float = DEFAULT_MIN_COSINE,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    query_prompt_name: str | None = None,
    document_prompt_name: str | None = None,
    **encode_kwargs: Any,
) -> SpotCheck:
    """Re-encode ``n`` seeded documents and ``n`` seeded queries of ``dataset`` with
    ``model`` (:func:`negsample.encode`, same prompts and ``encode_kwargs`` as the
    stored vectors were made with) and refuse vectors that do not match.

    Row ``i`` of ``embeddings.corpus`` must be the vector of ``dataset.document_texts[i]``
    (and of ``query_texts[i]`` for the queries), as :func:`load_embeddings` aligns them.

    Returns
    -------
    :class:`SpotCheck`: the rows checked and their cosines (all >= ``min_cosine``).

    Raises
    ------
    DataError
        naming the rows and ids whose stored vector has a cosine below ``min_cosine``
        with its re-encoding (ids reordered without their vectors, another model,
        another prompt), or a model whose dimension differs.

    Notes
    -----
    A spot check sees a systematic mismatch (ids sorted or shifted against their
    vectors, another model) at once; one swapped pair among ``N`` rows is seen with
    probability about ``2n / N``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"n must be a non-negative integer, got {n!r}")
    if not 0.0 < float(min_cosine) <= 1.0:
        raise InputError(f"min_cosine must be in (0, 1], got {min_cosine!r}")
    return _verify(
        embeddings,
        dataset,
        model,
        n=n,
        seed=seed,
        min_cosine=float(min_cosine),
        prompts=(query_prompt, document_prompt, query_prompt_name, document_prompt_name),
        encode_kwargs=encode_kwargs,
        located=None,
    )


def _verify(
    embeddings: DatasetEmbeddings,
    dataset: BeirDataset,
    model: str | os.PathLike[str],
    *,
    n: int,
    seed: int,
    min_cosine: float,
    prompts: tuple[str | None, str | None, str | None, str | None],
    encode_kwargs: dict[str, Any],
    located: tuple[Path, Path, Path, Path, Any, Any] | None,
) -> SpotCheck:
    qp, dp, qpn, dpn = prompts
    c_where: str | Path = "corpus vectors"
    q_where: str | Path = "query vectors"
    c_rows = q_rows = None
    c_ids = q_ids = None
    if located is not None:
        c_where, q_where, c_idf, q_idf, c_rows, q_rows = located
        c_ids, q_ids = c_idf.name, q_idf.name
    cr, cc = _spot(
        embeddings.corpus,
        dataset.document_texts,
        dataset.corpus_ids,
        prompt=dp,
        prompt_name=dpn,
        encode_kwargs=encode_kwargs,
        where=str(c_where),
        file_rows=c_rows,
        ids_name=c_ids,
        what="documents",
        model=model,
        n=n,
        seed=seed,
        min_cosine=min_cosine,
    )
    qr, qc = _spot(
        embeddings.queries,
        dataset.query_texts,
        dataset.query_ids,
        prompt=qp,
        prompt_name=qpn,
        encode_kwargs=encode_kwargs,
        where=str(q_where),
        file_rows=q_rows,
        ids_name=q_ids,
        what="queries",
        model=model,
        n=n,
        seed=seed,
        min_cosine=min_cosine,
    )
    check = SpotCheck(cr, cc, qr, qc)
    _log.info(
        "spot check of the embeddings against %s: %d documents and %d queries re-encoded, "
        "smallest cosine %.4f",
        model,
        cr.size,
        qr.size,
        check.min_cosine,
    )
    return check


def load_embeddings(
    directory: str | os.PathLike[str],
    dataset: BeirDataset,
    *,
    model: str | os.PathLike[str] | None = None,
    spot_check: int = 8,
    min_cosine: float = DEFAULT_MIN_COSINE,
    seed: int = 0,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    query_prompt_name: str | None = None,
    document_prompt_name: str | None = None,
    **encode_kwargs: Any,
) -> DatasetEmbeddings:
    """Precomputed embeddings for ``dataset`` from a folder holding ``corpus.npy`` +
    ``corpus_ids.txt`` and ``queries.npy`` + ``query_ids.txt`` (one id per line, row ``i``
    = line ``i + 1``), aligned to the dataset's corpus rows and split queries.

    Parameters
    ----------
    directory : the folder.
    dataset : the :class:`~negsample.BeirDataset` the vectors are for.
    model : the model that made the vectors (a folder or a name, as :func:`encode`
        takes; ``"all-MiniLM-L6-v2"`` is the bundled one). Given, ``spot_check``
        seeded documents and queries are re-encoded and compared
        (:func:`verify_embeddings`); ``None`` (default): no spot check.
    spot_check : rows of each side re-encoded when ``model`` is given (0: none).
    min_cosine : the smallest cosine accepted between a stored vector and its
        re-encoding (default 0.99: float32 against float16 encodings differ by ~1e-3).
    seed : chooses the rows of the spot check.
    query_prompt, document_prompt, query_prompt_name, document_prompt_name : the prompts
        the vectors were made with (as :func:`encode_dataset` takes them).
    encode_kwargs : the other settings of the encoding (``max_seq_length``,
        ``precision``, ``device``, ``batch_size``...), passed to :func:`encode`.

    Raises
    ------
    DataError
        as :func:`align_embeddings` for each file, a dimension that differs between the
        corpus and the queries, or a spot check that fails.
    """
    from .encoding import DatasetEmbeddings

    if isinstance(spot_check, bool) or not isinstance(spot_check, int) or spot_check < 0:
        raise InputError(f"spot_check must be a non-negative integer, got {spot_check!r}")
    if not 0.0 < float(min_cosine) <= 1.0:
        raise InputError(f"min_cosine must be in (0, 1], got {min_cosine!r}")
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: not a directory (expected corpus.npy, queries.npy, ...)")
    c_vf, c_idf = d / "corpus.npy", d / "corpus_ids.txt"
    q_vf, q_idf = d / "queries.npy", d / "query_ids.txt"
    corpus, c_rows, _ = _align(c_vf, c_idf, dataset.corpus_ids, "documents")
    queries, q_rows, _ = _align(q_vf, q_idf, dataset.query_ids, "queries")
    if corpus.shape[1] != queries.shape[1]:
        raise DataError(
            d, None, f"corpus vectors have dimension {corpus.shape[1]}, queries {queries.shape[1]}"
        )
    stat = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(d.glob("*"))]
    digest = hashlib.sha256(json.dumps(stat).encode()).hexdigest()[:16]
    out = DatasetEmbeddings(corpus, queries, f"precomputed={d.resolve()}#{digest}")
    if model is not None and spot_check:
        _verify(
            out,
            dataset,
            model,
            n=spot_check,
            seed=seed,
            min_cosine=float(min_cosine),
            prompts=(query_prompt, document_prompt, query_prompt_name, document_prompt_name),
            encode_kwargs=encode_kwargs,
            located=(c_vf, q_vf, c_idf, q_idf, c_rows, q_rows),
        )
    return out
