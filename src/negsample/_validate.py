"""Input checks with messages that name the problem and where it is."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "as_matrix",
    "check_int",
    "check_number",
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
    """Ids per query (validated, duplicates removed) as an int64 ``(n, P)`` array padded
    with ``-1``. For evaluation and training helpers only: mining keeps positives ragged
    (:func:`negsample._ragged.as_ragged`), since padding to the widest row makes memory grow
    with ``queries x the largest positive count``."""
    from ._ragged import as_ragged

    return as_ragged(positives, n_queries, n_corpus, name, allow_empty=allow_empty)[0].to_padded()


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int: a Python or numpy integer (never a bool, a float or a string)
    within ``[minimum, maximum]``; otherwise a ``ValueError`` naming the parameter."""
    what = {1: "a positive integer", 0: "a non-negative integer"}.get(
        minimum if minimum is not None else -1, "an integer"
    )
    if maximum is not None:
        what = f"an integer in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        if minimum is not None and minimum > 1 and maximum is None:
            what = f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {v}")
    return v


def check_number(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a float: a real number (int or float, never a bool or a string),
    finite unless ``finite=False``, and ``> 0`` / ``>= 0`` when asked."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if np.isnan(v) or (finite and not np.isfinite(v)):
        raise ValueError(f"{name} must be a finite number, got {v}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    if nonnegative and not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v
