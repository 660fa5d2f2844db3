"""SimANS: sample ambiguous negatives, those scored close to the positive (Zhou et al., 2022)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._rng import Stream
from .._validate import check_int, check_number
from ..errors import InputError
from .base import Anchor, IntArray, SamplerBatch
from .kernel import MAX_SCALE, KernelSampler
from .registry import register

__all__ = ["SimANSSampler"]

KERNELS = ("gaussian", "laplace")


@register("simans")
@dataclass(frozen=True, kw_only=True)
class SimANSSampler(KernelSampler):
    """Sample ``n`` of the top-``k`` candidates without replacement, each with a weight that
    peaks where ``s(q, d-)`` is close to the positive's score ``s(q, d+)``.

    With ``x = s(q, d-) - s(q, d+) + b`` in kernel units (both scores divided by
    ``temperature`` first, when it is set)::

        gaussian:  log w = -a * x**2
        laplace:   log w = -a * |x|

    so the weight is largest for candidates scored ``b`` below the positive. Sampling is
    exact successive sampling in log space (Gumbel-top-k): weights never underflow, however
    far a candidate is from the positive.

    Parameters
    ----------
    k : candidates retrieved per query (after the positives are removed). 200 as in the
        released MS MARCO code; the ReSa2 reproduction found 400 best.
    a : kernel sharpness, > 0, in the units of the (temperature-scaled) scores. 0.5 is the
        paper's default; the released MS MARCO code uses ``kernel="laplace", a=3``.
    b : offset of the mode, in score units. The sign follows the released code,
        ``(s- - s+ + b)``: ``b > 0`` puts the mode ``b`` BELOW the positive's score (the
        README formula writes ``- b``, the opposite sign).
    kernel : ``"gaussian"`` (default) or ``"laplace"``.
    positive_anchor : which positive ``s(q, d+)`` comes from when a query has several;
        default ``"random"`` (seeded), as the released code draws a random positive.
    temperature : divide every score by it before the kernel (e.g. 0.05 for cosine models,
        whose scores in [-1, 1] make ``a=0.5`` an almost flat kernel).
    on_shortfall : what to do when a row has fewer than ``n`` valid candidates: ``"pad"``
        (-1, default), ``"fill"`` (nothing is outside SimANS's region but invalid
        candidates, so this pads too) or ``"drop"``.

    Notes
    -----
    Shapes: the batch holds candidates ``(b, k)``; ``_select`` returns positions ``(b, n)``.

    References
    ----------
    .. [1] K. Zhou, Y. Gong, X. Liu, W. X. Zhao, Y. Shen, A. Dong, J. Lu, R. Majumder,
       J.-R. Wen, N. Duan, W. Chen. "SimANS: Simple Ambiguous Negatives Sampling for Dense
       Text Retrieval". EMNLP 2022. https://arxiv.org/abs/2210.11773

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> ids = np.array([[7, 3, 9, 1, 5]]); scores = np.array([[9.0, 8.0, 7.0, 2.0, 1.0]])
    >>> sampler = ns.SimANSSampler(k=5, a=2.0)
    >>> negs = sampler.sample(ids, scores, [[3]], n=2, seed=0)  # s(q, d+) = 8.0
    >>> bool(np.isin(negs.ids, [7, 9]).all())  # the two scored 1 away from the positive
    True
    """

    k: int = 200
    a: float = 0.5
    b: float = 0.0
    kernel: str = "gaussian"

    name = "simans"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("k", self.k, 1)
        check_number("a", self.a, positive=True)
        if abs(check_number("b", self.b)) > MAX_SCALE:
            raise InputError(
                f"b must be within [-1e250, 1e250] (kernel units: it is added to the "
                f"scaled scores), got {self.b!r}"
            )
        if self.kernel not in KERNELS:
            raise InputError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")

    @property
    def depth(self) -> int:
        return int(self.k)

    def log_weights(self, batch: SamplerBatch, anchor: Anchor) -> npt.NDArray[np.float64]:
        """``log w`` ``(b, k)`` of every candidate, ``-inf`` where it is not valid."""
        with np.errstate(invalid="ignore", over="ignore"):
            # subtract, then scale: equidistant scores stay exactly equidistant
            x = self.scaled(batch.scores - anchor.scores[:, None]) + self.b
            logw = -self.a * (x * x if self.kernel == "gaussian" else np.abs(x))
        return np.where(batch.valid, logw, -np.inf)

    def _select(self, batch: SamplerBatch, n: int, anchor: Anchor | None) -> IntArray:
        assert anchor is not None  # resolved by BaseSampler (positive_anchor is set)
        logw = self.log_weights(batch, anchor)
        with np.errstate(invalid="ignore"):
            d = batch.scores - anchor.scores[:, None]
        noise = batch.gumbel_for(batch.ids, Stream.SAMPLE)
        return self.kernel_draw(
            logw, d, batch.valid, n, noise, a=self.a, b=self.b, laplace=self.kernel == "laplace"
        )
