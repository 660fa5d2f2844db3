"""Input checks with messages that name the problem and where it is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "as_matrix",
    "check_finite",
    "pad_positives",
    "to_numpy",
]

_FLOAT_KINDS = (np.float16, np.float32, np.float64)
_CHECK_ROWS = 65536


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Return a numpy view of ``x`` (numpy array, memmap, torch tensor, nested list)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        t = x.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return np.asarray(t.numpy())
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy's own message is kept
        raise TypeError(f"{name}: cannot convert {type(x).__name__} to an array: {exc}") from exc


def as_matrix(
    x: Any,
    name: str,
    *,
    dim: int | None = None,
    check: bool = True,
    allow_1d: bool = False,
) -> np.ndarray:
    """Validate a 2-D float matrix of vectors without copying it.

    float16 and float64 are accepted and kept as they are (memory-mapped float16 corpora
    stay float16 on disk); computation converts chunks to float32. Integer, bool and object
    arrays are refused: they are almost always ids or labels passed by mistake.
    """
    arr = to_numpy(x, name)
    if arr.ndim == 1 and allow_1d:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, dim), got shape {arr.shape}")
    if arr.dtype.type not in _FLOAT_KINDS:
        raise TypeError(
            f"{name} must hold float16, float32 or float64 vectors, got dtype {arr.dtype}"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has dimension 0")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has dimension {arr.shape[1]}, but the index has dimension {dim}")
    if check:
        check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str, *, row_offset: int = 0) -> None:
    """Raise ``ValueError`` naming the first row that holds NaN or an infinity (chunked)."""
    for start in range(0, arr.shape[0], _CHECK_ROWS):
        block = np.asarray(arr[start : start + _CHECK_ROWS])
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            row = start + int(np.argmax(bad))
            what = "NaN" if np.isnan(block[row - start]).any() else "an infinite value"
            raise ValueError(f"{name} row {row + row_offset} contains {what}")


def pad_positives(
    positives: Any,
    n_queries: int,
    n_corpus: int | None,
    name: str = "positives",
    allow_empty: bool = False,
) -> npt.NDArray[np.int64]:
    """Ragged positives (one sequence of corpus rows per query) to an int64 ``(n, P)`` array
    padded with ``-1``. Every query needs at least one positive (unless ``allow_empty``);
    ids must be in range."""
    if isinstance(positives, np.ndarray) and positives.ndim == 2 and positives.dtype.kind in "iu":
        pos = positives.astype(np.int64, copy=False)
        if pos.shape[0] != n_queries:
            raise ValueError(f"{name} has {pos.shape[0]} rows but there are {n_queries} queries")
        lengths = (pos >= 0).sum(axis=1)
        # padding must be at the end of a row
        first_pad = np.where(pos < 0, np.arange(pos.shape[1]), pos.shape[1]).min(axis=1)
        if np.any(lengths != first_pad):
            row = int(np.argmax(lengths != first_pad))
            raise ValueError(f"{name} row {row}: -1 padding must come after the ids")
    else:
        if not isinstance(positives, Sequence) and not isinstance(positives, np.ndarray):
            raise TypeError(
                f"{name} must be a sequence with one sequence of corpus row ids per query, "
                f"got {type(positives).__name__}"
            )
        if len(positives) != n_queries:
            raise ValueError(
                f"{name} has {len(positives)} entries but there are {n_queries} queries"
            )
        rows = []
        for i, p in enumerate(positives):
            a = np.atleast_1d(np.asarray(p))
            if a.size and a.dtype.kind not in "iu":
                raise TypeError(
                    f"{name}[{i}] must hold integer corpus row ids, got dtype {a.dtype}"
                )
            rows.append(a.astype(np.int64, copy=False).ravel())
        lengths = np.fromiter((r.size for r in rows), dtype=np.int64, count=len(rows))
        width = int(lengths.max()) if len(rows) else 0
        pos = np.full((n_queries, max(width, 1)), -1, dtype=np.int64)
        if rows:
            mask = np.arange(pos.shape[1])[None, :] < lengths[:, None]
            pos[mask] = np.concatenate(rows) if width else np.empty(0, np.int64)
        if np.any((pos[mask] if rows else pos) < 0) and rows:
            flat_bad = np.argwhere(mask & (pos < 0))
            r = int(flat_bad[0, 0])
            raise ValueError(f"{name}[{r}] holds a negative id ({rows[r][rows[r] < 0][0]})")
    lengths = (pos >= 0).sum(axis=1)
    if n_queries and not allow_empty and np.any(lengths == 0):
        row = int(np.argmax(lengths == 0))
        n_empty = int((lengths == 0).sum())
        raise ValueError(
            f"query {row} has no positives ({n_empty} queries in all); every query needs at "
            "least one labelled positive (drop those queries first)"
        )
    if n_corpus is not None and pos.size:
        bad = pos >= n_corpus
        if bad.any():
            r, c = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(
                f"{name}[{r}] holds id {pos[r, c]}, out of range for a corpus of {n_corpus} rows"
            )
    return pos
