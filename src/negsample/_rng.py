"""Counter-based random streams: one stream per (seed, query index, purpose).

Results must not depend on how queries are split into chunks, so no generator is
threaded through the chunks. Instead every random number is a pure function of
``(seed, stream, query index, column)``, computed with the SplitMix64 mixing function
over numpy ``uint64`` arrays. This is vectorised over the batch (no Python loop per
query) and gives the same numbers for a query whatever chunk it is processed in.
"""

from __future__ import annotations

import secrets

import numpy as np
import numpy.typing as npt

from .errors import InputError, InputTypeError

__all__ = ["Stream", "gumbel", "gumbel_at", "normalize_seed", "uniform", "uniform_at"]

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK63 = (1 << 63) - 1


class Stream:
    """Named purposes of random numbers, so two uses of randomness never share numbers.

    A sampler passes one of these to :meth:`~negsample.SamplerBatch.gumbel_for`,
    :meth:`~negsample.SamplerBatch.gumbel` or :meth:`~negsample.SamplerBatch.uniform`; the
    numbers are a function of ``(seed, query index, stream[, candidate id])`` only. Public
    as ``negsample.Stream`` (and ``negsample.samplers.Stream``). A sampler with more
    purposes than these takes its own integers from :attr:`USER` on (``Stream.USER + 1``...).

    Attributes
    ----------
    ANCHOR : the ``"random"`` positive anchor (shared by every sampler: do not reuse).
    SAMPLE : a one-stage sampler's draw.
    STAGE1, STAGE2, FINAL : the stages of a multi-stage sampler.
    CORPUS : RandomSampler's draws over the corpus.
    REUSE : the keys of the cross-query reuse cap (which rows keep a popular document).
    BATCH : the batch-safe order of a training file (``write_negatives(batch_size=)``).
    USER : the first stream number free for samplers outside the package.
    """

    ANCHOR = 1
    SAMPLE = 2
    STAGE1 = 3
    STAGE2 = 4
    FINAL = 5
    REUSE = 6
    BATCH = 7
    CORPUS = 16
    USER = 1024


def normalize_seed(seed: int | np.random.Generator | None) -> int:
    """Turn a user ``seed`` into a non-negative int.

    ``None`` draws fresh entropy (the result is recorded in the diagnostics so the run
    can be repeated); a ``numpy.random.Generator`` is asked for one integer.
    """
    if seed is None:
        return secrets.randbits(63)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, _MASK63, dtype=np.int64))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InputTypeError(
            f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}"
        )
    if seed < 0 or seed >= 1 << 64:
        raise InputError(f"seed must be an integer in [0, 2**64), got {seed}")
    return int(seed)


def _mix(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _row_keys(
    seed: int, rows: npt.ArrayLike, stream: int, sub: npt.ArrayLike | None
) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        base = _mix(np.array([seed], dtype=np.uint64) + np.uint64(stream) * _GAMMA)
        r = np.asarray(rows, dtype=np.int64).astype(np.uint64)
        keys = _mix(base ^ _mix(r + _GAMMA))
        if sub is not None:
            keys = _mix(keys ^ _mix(np.asarray(sub, dtype=np.int64).astype(np.uint64) * _M2))
        return keys


def uniform(
    seed: int,
    rows: npt.ArrayLike,
    n: int,
    stream: int,
    sub: npt.ArrayLike | None = None,
    start: int = 0,
) -> npt.NDArray[np.float64]:
    """Uniform numbers in the open interval (0, 1), shape ``(len(rows), n)``.

    Row ``i`` depends only on ``(seed, rows[i], sub[i], stream)`` and column ``j`` on ``j``;
    ``sub`` tells apart several rows of one query (one per positive); ``start`` skips the
    first columns, so a row's stream can be read on in later rounds.
    """
    keys = _row_keys(seed, rows, stream, sub)
    with np.errstate(over="ignore"):
        cols = (np.arange(start + 1, start + n + 1, dtype=np.uint64) * _GAMMA)[None, :]
        bits = _mix(keys[:, None] + cols)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))


def gumbel(
    seed: int, rows: npt.ArrayLike, n: int, stream: int, sub: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """Standard Gumbel noise ``-log(-log(U))``, shape ``(len(rows), n)``."""
    return -np.log(-np.log(uniform(seed, rows, n, stream, sub)))


def uniform_at(
    seed: int,
    rows: npt.ArrayLike,
    keys: npt.ArrayLike,
    stream: int,
    sub: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """Uniform numbers in (0, 1) keyed by ``keys`` ``(b, m)`` (e.g. candidate ids) instead of
    column positions: entry ``[i, j]`` depends only on ``(seed, rows[i], sub[i], stream,
    keys[i, j])``. A candidate keeps its random number wherever it sits in the row, so two
    near-tied candidates that swap ranks keep their draws."""
    row_keys = _row_keys(seed, rows, stream, sub)
    with np.errstate(over="ignore"):
        k = np.asarray(keys, dtype=np.int64).astype(np.uint64) + np.uint64(1)
        bits = _mix(row_keys[:, None] + k * _GAMMA)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))


def gumbel_at(
    seed: int,
    rows: npt.ArrayLike,
    keys: npt.ArrayLike,
    stream: int,
    sub: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """Standard Gumbel noise keyed by ``keys`` ``(b, m)`` (see :func:`uniform_at`)."""
    return -np.log(-np.log(uniform_at(seed, rows, keys, stream, sub)))
