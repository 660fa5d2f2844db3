"""Input checks with messages that name the problem and where it is."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InputError, InputTypeError

__all__ = [
    "FLOAT32_MAX",
    "as_float32",
    "as_matrix",
    "check_int",
    "check_number",
    "check_finite",
    "pad_positives",
    "to_numpy",
]

_FLOAT_KINDS = (np.float16, np.float32, np.float64)
_CHECK_ROWS = 65536
_CHECK_FLOATS = 1 << 22  # values checked at a time (16 MiB as float32)
#: The largest float32: every vector is used as float32, and so are its inner products.
FLOAT32_MAX = float(np.finfo(np.float32).max)


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
        raise InputTypeError(
            f"{name}: cannot convert {type(x).__name__} to an array: {exc}"
        ) from exc


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
        raise InputError(f"{name} must be a 2-D array (n, dim), got shape {arr.shape}")
    if arr.dtype.type not in _FLOAT_KINDS:
        raise InputTypeError(
            f"{name} must hold float16, float32 or float64 vectors, got dtype {arr.dtype}"
        )
    if arr.shape[1] == 0:
        raise InputError(f"{name} has dimension 0")
    if dim is not None and arr.shape[1] != dim:
        raise InputError(f"{name} has dimension {arr.shape[1]}, but the index has dimension {dim}")
    if check:
        check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str, *, row_offset: int = 0) -> None:
    """Raise ``ValueError`` naming the first row of vectors that cannot be used as float32:
    one holding NaN or an infinity, a value beyond float32's range (a float64 ``1e39``
    becomes ``inf`` once cast), or a squared norm beyond it (its inner products would
    overflow float32: with ``|q|^2`` and ``|d|^2`` within range, ``|q.d| <= (|q|^2 +
    |d|^2) / 2`` is too, so every score and norm is finite). Checked in blocks."""
    step = max(1, min(_CHECK_ROWS, _CHECK_FLOATS // max(1, arr.shape[1] if arr.ndim > 1 else 1)))
    for start in range(0, arr.shape[0], step):
        block = np.asarray(arr[start : start + step])
        if block.ndim == 1:
            block = block[:, None]
        nonfinite = ~np.isfinite(block).all(axis=1)
        with np.errstate(over="ignore", invalid="ignore"):
            b32 = block.astype(np.float32, copy=False)
            cast = ~np.isfinite(b32).all(axis=1) & ~nonfinite
            sq = np.einsum("ij,ij->i", b32, b32)
        bad = nonfinite | cast | ~np.isfinite(sq)
        if not bad.any():
            continue
        r = int(np.argmax(bad))
        row = start + r + row_offset
        if nonfinite[r]:
            what = "NaN" if np.isnan(block[r]).any() else "an infinite value"
            raise InputError(f"{name} row {row} contains {what}")
        if cast[r]:
            value = block[r][~np.isfinite(b32[r])][0]
            raise InputError(
                f"{name} row {row} holds {value:.4g}, beyond float32's range "
                f"(+/-{FLOAT32_MAX:.4g}): it becomes infinite once cast to float32; "
                "rescale the vectors"
            )
        big = float(np.sqrt(np.sum(np.square(block[r].astype(np.float64)))))
        raise InputError(
            f"{name} row {row} has norm {big:.4g}: its squared norm and inner products "
            f"overflow float32 (norms must stay below {np.sqrt(FLOAT32_MAX):.4g}); rescale "
            "the vectors"
        )


def as_float32(values: Any, name: str) -> npt.NDArray[np.float32]:
    """``values`` (scores) as float32, refusing a finite value beyond float32's range (it
    would become ``inf`` in the cast) with its position named; NaN and infinities are left
    for the caller's own rule."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4 and arr.size:
        with np.errstate(invalid="ignore"):
            over = np.isfinite(arr) & (np.abs(arr) > FLOAT32_MAX)
        if over.any():
            at = tuple(int(i) for i in np.argwhere(over)[0])
            where = f"row {at[0]}, column {at[1]}" if len(at) == 2 else f"entry {at[0]}"
            raise InputError(
                f"{name} {where} is {arr[at]:.4g}, beyond float32's range "
                f"(+/-{FLOAT32_MAX:.4g}): it would become infinite"
            )
    with np.errstate(over="ignore"):
        return arr.astype(np.float32, copy=False)


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
        raise InputError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        if minimum is not None and minimum > 1 and maximum is None:
            what = f"an integer >= {minimum}"
        raise InputError(f"{name} must be {what}, got {v}")
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
        raise InputError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if np.isnan(v) or (finite and not np.isfinite(v)):
        raise InputError(f"{name} must be a finite number, got {v}")
    if positive and not v > 0:
        raise InputError(f"{name} must be > 0, got {v}")
    if nonnegative and not v >= 0:
        raise InputError(f"{name} must be >= 0, got {v}")
    return v
