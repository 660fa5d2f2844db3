"""TriSampler: transitional sampling, then the quasi-triangular region (Yang et al., 2024)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._rng import Stream
from .base import Anchor, FloatArray, IntArray, SamplerBatch, _take, gumbel_topk
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
       ``w = ReLU(s(d+, d-) - s(q, d-)) = ReLU(<d-, d+ - q>)``, both scores computed from the
       index's vectors (the region test comes first; the weights are computed inside it).

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
    Shapes: candidates ``(b, k)``; stage 1 keeps positions ``(b, m)``; the candidate vectors
    gathered are ``(b, m, dim)``; ``_select`` returns positions ``(b, n)``. No public code
    exists for this sampler; every choice the paper leaves open is a parameter above.

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
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if not _is_int(self.k) or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        if self.m is not None and (not _is_int(self.m) or not 1 <= self.m <= self.k):
            raise ValueError(f"m must be None or an integer in [1, k={self.k}], got {self.m!r}")
        if not (np.isfinite(self.theta) and 0 < self.theta <= 180):
            raise ValueError(f"theta must be an angle in degrees in (0, 180], got {self.theta!r}")
        if not (np.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"tau must be a positive number, got {self.tau!r}")

    @property
    def depth(self) -> int:
        return int(self.k)

    @property
    def transitional_size(self) -> int:
        """``m``, or ``max(1, k // 2)`` when ``m`` is None."""
        return int(self.m) if self.m is not None else max(1, int(self.k) // 2)

    def vectors_per_query(self) -> int:
        # the m candidate vectors, (for T1) their offsets from q, and the positive
        m = self.transitional_size
        return (2 * m if self.variant == "T1" else m) + 1

    @property
    def max_n(self) -> int:
        return min(int(self.k), self.transitional_size)

    def check_n(self, n: int) -> None:
        super().check_n(n)
        if n > self.transitional_size:
            raise ValueError(
                f"TriSampler draws its negatives from m={self.transitional_size} transitional "
                f"candidates, fewer than the n={n} negatives requested; raise m (or k)"
            )

    # -- the stages --------------------------------------------------------------------------
    def transitional(self, batch: SamplerBatch, anchor: Anchor) -> IntArray:
        """Stage 1: positions ``(b, m)`` into ``batch.ids`` in draw order, ``-1`` where short."""
        with np.errstate(invalid="ignore"):
            x = self.scaled(batch.scores) - self.scaled(anchor.scores)[:, None]
            logw = np.where(batch.valid, -self.tau * x * x, -np.inf)
        noise = batch.gumbel(logw.shape[1], Stream.STAGE1)
        return gumbel_topk(logw, self.transitional_size, noise)

    def angles(self, queries: FloatArray, positive: FloatArray, cands: FloatArray) -> Float64Array:
        """The region angle in degrees ``(b, m)`` for ``queries`` ``(b, dim)``, ``positive``
        ``(b, dim)`` and candidate vectors ``cands`` ``(b, m, dim)``; NaN where undefined."""
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.variant == "T1":
                u = (positive - queries)[:, :, None]  # d+ - q, (b, dim, 1)
                v = cands - queries[:, None, :]  # d- - q, (b, m, dim)
                uv = np.matmul(v, u)[:, :, 0].astype(np.float64)
                vv = np.einsum("bmd,bmd->bm", v, v).astype(np.float64)
                uu = np.einsum("bd,bd->b", u[:, :, 0], u[:, :, 0]).astype(np.float64)
                cos = uv / np.sqrt(uu[:, None] * vv)
                return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
            qd = np.matmul(cands, queries[:, :, None])[:, :, 0].astype(np.float64)
            dd = np.einsum("bmd,bmd->bm", cands, cands).astype(np.float64)
            qq = np.einsum("bd,bd->b", queries, queries).astype(np.float64)
            pp = np.einsum("bd,bd->b", positive, positive).astype(np.float64)
            pq = np.einsum("bd,bd->b", positive, queries).astype(np.float64)
            a_pos = np.arccos(np.clip(pq / np.sqrt(pp * qq), -1.0, 1.0))
            a_neg = np.arccos(np.clip(qd / np.sqrt(dd * qq[:, None]), -1.0, 1.0))
            return np.degrees(np.abs(a_pos[:, None] - a_neg))

    def final_log_weights(
        self, queries: FloatArray, positive: FloatArray, cands: FloatArray
    ) -> Float64Array:
        """Stage 2: ``log ReLU(s(d+, d-) - s(q, d-))`` ``(b, m)``, ``-inf`` outside the
        region (angle > ``theta`` or undefined) or where the weight is 0."""
        inside = self.angles(queries, positive, cands) <= self.theta  # NaN compares False
        w = np.matmul(cands, (positive - queries)[:, :, None])[:, :, 0].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(inside & (w > 0), np.log(w), -np.inf)

    def _select(self, batch: SamplerBatch, n: int, anchor: Anchor | None) -> IntArray:
        assert anchor is not None  # resolved by BaseSampler (positive_anchor is set)
        if batch.queries is None:
            raise ValueError(
                "TriSampler needs the query vectors for its region test: pass queries= and "
                "index= to sample(), or use mine()"
            )
        trans = self.transitional(batch, anchor)
        cands = batch.candidate_vectors(trans)
        queries = np.asarray(batch.queries, dtype=np.float32)
        positive = np.asarray(anchor.vectors(batch), dtype=np.float32)
        logw = self.final_log_weights(queries, positive, cands)
        logw[trans < 0] = -np.inf
        picked = gumbel_topk(logw, n, batch.gumbel(logw.shape[1], Stream.FINAL))
        return _take(trans, picked, -1).astype(np.int64)

    def _fill_order(self, batch: SamplerBatch, anchor: Anchor | None) -> IntArray | None:
        assert anchor is not None
        return self.transitional(batch, anchor)


def _is_int(x: object) -> bool:
    return not isinstance(x, bool) and isinstance(x, int | np.integer)
