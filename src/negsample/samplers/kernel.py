"""Shared base for the kernel samplers (SimANS, TriSampler, ReSa2): a positive anchor
policy, a score temperature (docs/algorithms.md, "Score scale"), and the kernel's log-weights
computed in a safe range whatever its parameters.

The kernels are ``log w = -a * x**2`` (or ``-a * |x|``) with ``x = (s- - s+) / T + b``. For
ordinary parameters they are evaluated as written. A row where that overflows (``x**2``
beyond float64's range: ``temperature=1e-200``, ``b=1e200``) or loses the differences
between candidates to rounding (``|log w|`` above 2**40: ``b=1e150`` absorbs every
``s- - s+``) is evaluated relative to its mode instead: with ``x*`` the candidate closest to
the kernel's mode, ``log w - log w* = -a (x - x*)(x + x*)`` where ``x - x* = (d - d*) / T``
holds the differences exactly. The candidates whose relative weight is still beyond
float64's range (``exp`` of less than about -1.8e308) come after every other candidate, in
order of their log-weight (the Gumbel noise cannot reorder them), so a row is never
emptied by its parameters: Gumbel-top-k draws from the exact distribution as far as
float64 can tell it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._validate import check_number
from ..errors import InputError
from .base import BaseSampler, IntArray, gumbel_topk

__all__ = ["KernelSampler", "MAX_SCALE", "kernel_topk"]

Float64Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Bound on ``temperature`` (in ``[1 / MAX_SCALE, MAX_SCALE]``) and on ``|b|``: scores up to
#: float32's range divided by it, plus ``b``, stay far inside float64's range.
MAX_SCALE = 1e250
#: Above this ``|log w|`` a row's log-weights are computed relative to its mode (the
#: rounding of the direct formula would exceed about 2**-12 nats).
_DIRECT_LIMIT = 2.0**40


@dataclass(frozen=True, kw_only=True)
class KernelSampler(BaseSampler):
    """Base for samplers whose weights depend on ``s(q, d-) - s(q, d+)``.

    Parameters
    ----------
    positive_anchor : which positive a row is sampled against when a query has several:
        ``"max"``, ``"min"``, ``"mean"``, ``"random"`` (seeded) or ``"each"`` (one output row
        per positive). Resolved by :class:`BaseSampler` before ``_select`` is called.
    temperature : when set, every score is divided by it before the kernel is applied. The
        kernels were designed on raw BERT inner products (differences of several units);
        on cosine scores in [-1, 1] the same parameters give an almost flat kernel.
        ``temperature=0.05`` matches the usual contrastive scale of 20 for cosine models.
        Within ``[1e-250, 1e250]`` (:data:`MAX_SCALE`); extreme values are computed in a
        safe range (see the module docstring), never leaving rows empty.
    """

    positive_anchor: str = "random"
    temperature: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature is not None:
            t = check_number("temperature", self.temperature, positive=True)
            if not 1 / MAX_SCALE <= t <= MAX_SCALE:
                raise InputError(
                    f"temperature must be within [1e-250, 1e250] (scores divided by it must "
                    f"stay within float64's range), got {t!r}"
                )

    def scaled(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Scores in kernel units: ``x / temperature`` (float64), or ``x`` unchanged."""
        a = np.asarray(x, dtype=np.float64)
        return a / self.temperature if self.temperature is not None else a

    def kernel_draw(
        self,
        logw: Float64Array,
        d: Float64Array,
        valid: BoolArray,
        m: int,
        noise: Float64Array,
        *,
        a: float,
        b: float = 0.0,
        laplace: bool = False,
    ) -> IntArray:
        """Gumbel-top-``m`` positions for the kernel ``-a * x**2`` (``laplace``:
        ``-a * |x|``), ``x = d / temperature + b``: ``logw`` is the kernel as written
        (``-inf`` where not valid), used as it is for the rows where it is well
        conditioned; ``d`` = ``s(q, d-) - s(q, d+)`` ``(b, K)``. See :func:`kernel_topk`."""
        t = 1.0 if self.temperature is None else float(self.temperature)
        return kernel_topk(logw, d, valid, m, noise, a=a, b=b, temperature=t, laplace=laplace)


def kernel_topk(
    logw: Float64Array,
    d: Float64Array,
    valid: BoolArray,
    m: int,
    noise: Float64Array,
    *,
    a: float,
    b: float = 0.0,
    temperature: float = 1.0,
    laplace: bool = False,
) -> IntArray:
    """Gumbel-top-``m`` over the kernel's weights, in a safe range (module docstring).

    Rows whose ``logw`` is finite wherever ``valid`` and at most 2**40 in size go to
    :func:`~negsample.samplers.gumbel_topk` unchanged; the others are evaluated relative to
    their mode, and their candidates beyond float64's range follow the rest in order of
    their log-weight (ties by the noise).
    """
    a = float(a)
    with np.errstate(invalid="ignore"):
        big = np.where(valid, np.abs(logw), 0.0)
        bad = (valid & ~np.isfinite(logw)).any(axis=1) | (
            big.max(axis=1, initial=0.0) > _DIRECT_LIMIT
        )
    if not bad.any():
        return gumbel_topk(logw, m, noise)
    rows = np.flatnonzero(bad)
    rel, far_key = _relative_log_weights(d[rows], valid[rows], a, b, temperature, laplace)
    out_logw = np.array(logw, dtype=np.float64, copy=True)
    out_logw[rows] = rel
    pos = gumbel_topk(out_logw, m, noise)
    far = np.isfinite(far_key)
    if not far.any():
        return pos
    # the candidates beyond float64's range: after every other one, by log-weight (then noise)
    sub = pos[rows]
    need = (sub < 0).any(axis=1) & far.any(axis=1)
    if need.any():
        r = np.flatnonzero(need)
        order = np.lexsort((-noise[rows[r]], far_key[r]), axis=1)
        ranked = np.where(np.take_along_axis(far[r], order, axis=1), order, -1)
        have = (sub[r] >= 0).sum(axis=1)
        slot = np.arange(m)[None, :] - have[:, None]
        width = ranked.shape[1]
        src = np.where((slot >= 0) & (slot < width), slot, 0)
        fill = np.where((slot >= 0) & (slot < width), np.take_along_axis(ranked, src, axis=1), -1)
        sub[r] = np.where(sub[r] >= 0, sub[r], fill)
        pos[rows] = sub
    return pos


def _relative_log_weights(
    d: Float64Array, valid: BoolArray, a: float, b: float, t: float, laplace: bool
) -> tuple[Float64Array, Float64Array]:
    """``log w - log w*`` per candidate (``-inf`` where not valid or beyond float64's range)
    and, for those beyond, ``log(-(log w - log w*))`` (``inf`` elsewhere): the order in
    which they come."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        d = np.where(valid, d, 0.0)
        x = d / t + b
        # the candidate nearest the mode: smallest |x|; where b absorbed d in rounding,
        # equal |x| are ordered by sign(x) * d, the order of the exact |x|
        key1 = np.where(valid, np.abs(x), np.inf)
        key2 = np.where(valid, np.sign(x) * d, np.inf)
        star = np.lexsort((key2, key1), axis=1)[:, :1]
        d_star = np.take_along_axis(d, star, axis=1)
        x_star = np.take_along_axis(x, star, axis=1)
        delta = (d - d_star) / t  # x - x*, exactly as far as d allows
        if laplace:
            same = np.sign(x) == np.sign(x_star)
            diff = np.where(same, np.sign(x_star) * delta, np.abs(x) - np.abs(x_star))
            rel = -a * diff
            mag = np.log(a) + np.log(np.abs(diff)) if a > 0 else np.full(d.shape, -np.inf)
        else:
            total = (d + d_star) / t + 2 * b  # x + x*
            prod = np.where(delta == 0, 0.0, delta * total)
            rel = -a * prod
            mag = (
                np.log(a) + np.log(np.abs(delta)) + np.log(np.abs(total))
                if a > 0
                else np.full(d.shape, -np.inf)
            )
        if a == 0:
            rel = np.zeros_like(d)
        far = valid & ~np.isfinite(rel)
        rel = np.where(valid & ~far, rel, -np.inf)
        far_key = np.where(far, mag, np.inf)
    return rel, far_key
