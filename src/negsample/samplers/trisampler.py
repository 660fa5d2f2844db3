"""TriSampler: transitional sampling, then the quasi-triangular region (Yang et al., 2024)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._rng import Stream
from .._validate import check_int, check_number
from ..errors import InputError
from .base import Anchor, IntArray, SamplerBatch, gumbel_topk, take_positions
from .kernel import KernelSampler
from .registry import register

__all__ = ["TriSampler"]

VARIANTS = ("T1", "T2")
Float64Array = npt.NDArray[np.float64]


@register("trisampler")
@dataclass(frozen=True, kw_only=True)
class TriSampler(KernelSampler):
    """Two-stage sampling: transitional negatives near the positive's score, then final
    negatives inside the quasi-triangular region around ``q`` and ``d+``.

    1. Transitional: from the top-``k`` candidates draw ``m`` without replacement with
       ``log w = -tau * (s(q, d-) - s(q, d+))**2`` (``tau = 1/4`` in the paper; scores
       divided by ``temperature`` first, when it is set).
    2. Region: keep the transitional candidates whose angle is at most ``theta`` degrees:

       - ``"T1"``: the angle at ``q`` between ``d+ - q`` and ``d- - q`` (uses the raw
         vectors, so it is sensitive to their norms);
       - ``"T2"`` (the paper's formula): ``|arccos(cos(q, d+)) - arccos(cos(q, d-))|``.

    3. Final: from the region draw ``n`` without replacement with
       ``w = ReLU(s(d+, d-) - s(q, d-)) = ReLU(<d-, d+ - q>)`` (the region test comes first;
       the weights are computed inside it).

    Nothing is gathered: both the angles and the weights are computed from scores and norms
    that the index serves (``index.score`` for ``s(d+, d-)``, ``index.sq_norms`` for
    ``|d-|^2``), with ``s(q, d-)`` from the search and ``s(q, d+)`` of the anchor::

        T1: (d+ - q).(d- - q) = s(d+,d-) - s(q,d+) - s(q,d-) + |q|^2
            |d- - q|^2 = |d-|^2 - 2 s(q,d-) + |q|^2     (likewise for d+)
        T2: cos(q, d) = s(q, d) / (|q| |d|)

    computed in float64. For T1, a candidate within about ``1e-3`` of ``q`` (where the
    subtraction above cancels) has an undefined angle and is outside the region.

    A candidate whose weight is 0 cannot be drawn, so it is outside the sampler's region too,
    as is one whose angle is undefined (a zero-length vector, e.g. ``q == d+`` for ``"T1"``).
    When the region holds fewer than ``n`` candidates, the row is short (counted in
    ``stats.short_rows``) and ``on_shortfall`` decides.

    Parameters
    ----------
    variant : ``"T2"`` (default: the formula printed in the paper) or ``"T1"`` (the reading
        used by the ReSa2 reproduction, whose reported TriSampler numbers are T1).
    k : candidates retrieved per query, after the positives are removed. Default 200, the
        paper's value for NQ (it uses 400 for MS MARCO).
    m : transitional negatives drawn in stage 1; ``None`` (default) means ``max(1, k // 2)``.
        The paper does not give it; half of ``k`` leaves the region test room to choose
        while still concentrating on ambiguous candidates. ``n`` may not exceed it.
    theta : region half-angle in degrees, in ``(0, 180]``; 60 as in the paper.
    tau : sharpness of the transitional kernel, > 0; 0.25 (the paper's 1/4).
    positive_anchor : which positive ``d+`` is when a query has several; default
        ``"random"`` (seeded). ``"mean"`` uses the mean score and the mean vector.
    temperature : divide the scores by it before the transitional kernel (stage 1 only: the
        final weights are proportional, so a scale does not change stage 2).
    on_shortfall : ``"fill"`` (default) takes the missing slots from the transitional
        negatives outside the region, in the order stage 1 drew them (a weighted sample of
        the transitional kernel, so a fill is still an ambiguous negative and never simply
        the hardest candidate, which is the one most likely to be a false negative);
        counted in ``stats.filled``. ``"pad"`` leaves ``-1``; ``"drop"`` removes the row.

    Notes
    -----
    Shapes: candidates ``(b, k)``; stage 1 keeps positions ``(b, m)``; the scores asked of the
    index are ``(b, m)``; ``_select`` returns positions ``(b, n)``. No public code exists for
    this sampler; every choice the paper leaves open is a parameter above.

    References
    ----------
    .. [1] Z. Yang, Z. Shao, Y. Dong, J. Tang. "TriSampler: A Better Negative Sampling
       Principle for Dense Retrieval". AAAI 2024, 38(8), 9269-9277.
       https://doi.org/10.1609/aaai.v38i8.28779 (arXiv:2402.11855)

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> rng = np.random.default_rng(0)
    >>> corpus = rng.standard_normal((300, 8)).astype("float32")
    >>> index = ns.NumpyIndex(corpus)
    >>> queries = corpus[:3] + 0.3 * rng.standard_normal((3, 8)).astype("float32")
    >>> negs = ns.mine(queries, index, [[0], [1], [2]], sampler=ns.TriSampler(k=50), n=4)
    >>> negs.ids.shape
    (3, 4)
    """

    variant: str = "T2"
    k: int = 200
    m: int | None = None
    theta: float = 60.0
    tau: float = 0.25
    on_shortfall: str = "fill"

    name = "trisampler"
    needs_vectors = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.variant, str) or self.variant not in VARIANTS:
            raise InputError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        check_int("k", self.k, 1)
        if self.m is not None:
            check_int("m", self.m, 1, int(self.k))
        theta = check_number("theta", self.theta, positive=True)
        if theta > 180:
            raise InputError(f"theta must be an angle in degrees in (0, 180], got {self.theta!r}")
        check_number("tau", self.tau, positive=True)

    @property
    def depth(self) -> int:
        return int(self.k)

    @property
    def transitional_size(self) -> int:
        """``m``, or ``max(1, k // 2)`` when ``m`` is None."""
        return int(self.m) if self.m is not None else max(1, int(self.k) // 2)

    @property
    def region_size(self) -> int:
        """``m``: the final negatives are drawn from the transitional set (``m <= k``)."""
        return min(int(self.k), self.transitional_size)

    def _region_phrase(self) -> str:
        return (
            f"TriSampler draws its negatives from m={self.region_size} transitional "
            f"candidates (of its top-{self.k})"
        )

    def _region_hint(self) -> str:
        return "; raise m (or k)"

    # -- the stages --------------------------------------------------------------------------
    def transitional(self, batch: SamplerBatch, anchor: Anchor) -> IntArray:
        """Stage 1: positions ``(b, m)`` into ``batch.ids`` in draw order, ``-1`` where short."""
        with np.errstate(invalid="ignore", over="ignore"):
            d = batch.scores - anchor.scores[:, None]
            x = self.scaled(d)
            logw = np.where(batch.valid, -self.tau * x * x, -np.inf)
        noise = batch.gumbel_for(batch.ids, Stream.STAGE1)
        return self.kernel_draw(logw, d, batch.valid, self.transitional_size, noise, a=self.tau)

    def region_angles(
        self,
        s_qd: Float64Array,
        s_pd: Float64Array,
        d_sq: Float64Array,
        s_qp: Float64Array,
        p_sq: Float64Array,
        q_sq: Float64Array,
    ) -> Float64Array:
        """The region angle in degrees ``(b, m)`` from scores and squared norms: candidates'
        ``s(q, d-)``, ``s(d+, d-)``, ``|d-|^2`` ``(b, m)``; the positive's ``s(q, d+)``,
        ``|d+|^2`` and ``|q|^2`` ``(b,)``. NaN where the angle is undefined."""
        qq, qp, pp = q_sq[:, None], s_qp[:, None], p_sq[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.variant == "T1":
                uv = s_pd - qp - s_qd + qq  # (d+ - q).(d- - q)
                uu = pp - 2 * qp + qq  # |d+ - q|^2
                vv = d_sq - 2 * s_qd + qq  # |d- - q|^2
                cos = np.where((uu > 0) & (vv > 0), uv / np.sqrt(uu * vv), np.nan)
                return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
            a_pos = np.arccos(np.clip(qp / np.sqrt(pp * qq), -1.0, 1.0))
            a_neg = np.arccos(np.clip(s_qd / np.sqrt(d_sq * qq), -1.0, 1.0))
            return np.degrees(np.abs(a_pos - a_neg))

    def _select(self, batch: SamplerBatch, n: int, anchor: Anchor | None) -> IntArray:
        assert anchor is not None  # resolved by BaseSampler (positive_anchor is set)
        if batch.queries is None:
            raise InputError(
                "TriSampler needs the query vectors for its region test: pass queries= and "
                "index= to sample(), or use mine()"
            )
        trans = self.transitional(batch, anchor)
        q = np.asarray(batch.queries, dtype=np.float64)
        s_qd = batch.candidate_scores(trans)
        s_pd = batch.scores_against(anchor.vectors(batch), trans)
        angle = self.region_angles(
            s_qd,
            s_pd,
            batch.candidate_sq_norms(trans),
            anchor.scores,
            anchor.sq_norms(batch),
            np.einsum("bd,bd->b", q, q),
        )
        w = s_pd - s_qd  # ReLU(s(d+, d-) - s(q, d-))
        with np.errstate(divide="ignore", invalid="ignore"):
            logw = np.where((angle <= self.theta) & (w > 0) & (trans >= 0), np.log(w), -np.inf)
        noise = batch.gumbel_for(batch.candidate_ids(trans), Stream.FINAL)
        picked = gumbel_topk(logw, n, noise)
        return take_positions(trans, picked, -1).astype(np.int64)

    def _fill_order(self, batch: SamplerBatch, anchor: Anchor | None) -> IntArray | None:
        assert anchor is not None
        return self.transitional(batch, anchor)
