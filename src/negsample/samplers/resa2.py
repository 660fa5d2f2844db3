"""ReSa2: query-centric weighted draw, then a positive-centric re-rank (Li et al., ACML 2025)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from .._rng import Stream
from .._validate import check_int, check_number
from ..errors import InputError, InputTypeError
from .base import Anchor, IntArray, SamplerBatch, gumbel_topk, take_positions
from .kernel import KernelSampler
from .registry import register

__all__ = ["RELEASED_CHUNK", "ReSa2Sampler", "ReSa2Stages"]

RELEASED_CHUNK = 100
"""Chunk size of the released code's stage-2 sort (``faithful=True``)."""


class ReSa2Stages(NamedTuple):
    """The intermediate sets of one ReSa2 batch (for inspection and tests).

    Attributes
    ----------
    stage1 : int64 ``(b, k1_prime)`` positions into ``batch.ids`` of the stage-1 draws, in
        draw order, ``-1`` where a row had fewer than ``k1_prime`` valid candidates.
    stage2 : int64 ``(b, k2)`` positions into ``batch.ids`` of the re-ranked region the
        final ``n`` are drawn from, best first, ``-1`` padded.
    """

    stage1: IntArray
    stage2: IntArray


@register("resa2")
@dataclass(frozen=True, kw_only=True)
class ReSa2Sampler(KernelSampler):
    """ReSa2 two-stage sampling: a query-centric weighted draw, then a positive-centric
    re-rank, then a uniform draw.

    1. Stage 1 (query-centric): from the top ``k1`` candidates, draw ``k1_prime`` without
       replacement with ``log w = -tau * (s(q, d-) - s+)^2`` (Gumbel-top-k, log space).
    2. Stage 2 (positive-centric): score the ``k1_prime`` draws by ``s(d+, d-)`` with the
       anchor positive's corpus vector and keep the best ``k2`` (one ordering over all
       ``k1_prime`` draws).
    3. Draw ``n`` uniformly without replacement from those ``k2``.

    Parameters
    ----------
    k1 : candidates retrieved per query (default 1000, as in the paper).
    k1_prime : stage-1 draws per query (default 500).
    k2 : size of the stage-2 region the negatives are drawn from (default 75).
    tau : stage-1 kernel sharpness, in the units of the (temperature-scaled) scores
        (default 0.25, the paper's value).
    faithful : reproduce the released code's stage 2, which sorts the ``k1_prime`` draws
        in independent chunks of 100 (in draw order) and concatenates them, so the
        "top-``k2``" is the top ``k2`` of the first 100 draws. Default ``False``: one
        global ordering, as the paper describes.
    positive_anchor : the positive giving ``s+`` (stage 1) and ``d+`` (stage 2); default
        ``"max"``, the released code's choice for ``s+``.
    temperature : divides every score before the stage-1 kernel (stage 2 only ranks, so it
        is unaffected). ``None`` keeps raw scores, as the paper (BERT inner products).
    on_shortfall : what to do with a row that has fewer than ``n`` valid candidates (see
        Notes).

    Notes
    -----
    Shortfall. With fewer than ``k1_prime`` valid candidates stage 1 takes all of them
    (in a weighted random order); with fewer than ``k2`` stage-1 draws stage 2 keeps all.
    Since ``n <= k2 <= k1_prime`` is enforced, a row can only run short when fewer than
    ``n`` valid candidates survive the positives and the filters; every one of them is
    then returned and the missing slots follow ``on_shortfall``. ``"fill"`` finds nothing
    more to add (every valid candidate is already in the region), so it pads like ``"pad"``;
    ``"drop"`` removes the row. All cases are counted in ``stats.short_rows``/``padded``.

    Nothing is gathered but the anchor positive's vector (one per row): stage 2 asks the
    index for ``s(d+, d-)`` of the ``k1_prime`` draws (``index.score``).

    References
    ----------
    .. [1] M. Li, Z. Wang, S. Chen, et al., "ReSa2: A Two-Stage Retrieval-Sampling Algorithm
       for Negative Sampling in Dense Retrieval", Proceedings of the 17th Asian Conference
       on Machine Learning (ACML 2025), PMLR 304:686-701.
       https://proceedings.mlr.press/v304/li25d.html. Where the released code differs:
       ``docs/samplers/resa2.md``.

    Examples
    --------
    >>> import numpy as np, negsample as ns
    >>> rng = np.random.default_rng(0)
    >>> corpus = rng.standard_normal((300, 16)).astype("float32")
    >>> sampler = ns.ReSa2Sampler(k1=100, k1_prime=50, k2=10)
    >>> negs = ns.mine(corpus[:3], ns.NumpyIndex(corpus), [[0], [1], [2]],
    ...                sampler=sampler, n=4, seed=0)
    >>> negs.ids.shape
    (3, 4)
    """

    k1: int = 1000
    k1_prime: int = 500
    k2: int = 75
    tau: float = 0.25
    faithful: bool = False
    positive_anchor: str = "max"

    name = "resa2"
    needs_vectors = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for field_name in ("k1", "k1_prime", "k2"):
            check_int(field_name, getattr(self, field_name), 1)
        if not self.k1 >= self.k1_prime >= self.k2:
            raise InputError(
                f"need k1 >= k1_prime >= k2, got k1={self.k1}, k1_prime={self.k1_prime}, "
                f"k2={self.k2}"
            )
        check_number("tau", self.tau, nonnegative=True)
        if not isinstance(self.faithful, bool):
            raise InputTypeError(f"faithful must be True or False, got {self.faithful!r}")

    @property
    def depth(self) -> int:
        return self.k1

    @property
    def region_size(self) -> int:
        """``k2``: the final negatives are drawn from the stage-2 region."""
        return int(self.k2)

    def _region_phrase(self) -> str:
        return (
            f"ReSa2Sampler draws the negatives from its stage-2 region of k2={self.k2} candidates"
        )

    def _region_hint(self) -> str:
        return "; raise k2 or lower n"

    # -- the stages -----------------------------------------------------------------------
    def stage1(self, batch: SamplerBatch, anchor: Anchor) -> IntArray:
        """Positions ``(b, k1_prime)`` of the stage-1 draws, in draw order, ``-1`` padded."""
        with np.errstate(over="ignore", invalid="ignore"):
            d = np.where(batch.valid, batch.scores, 0.0) - anchor.scores[:, None]
            x = self.scaled(d)
            logw = np.where(batch.valid, -self.tau * x**2, -np.inf)
        noise = batch.gumbel_for(batch.ids, Stream.STAGE1)
        return self.kernel_draw(logw, d, batch.valid, self.k1_prime, noise, a=self.tau)

    def stage2(self, batch: SamplerBatch, anchor: Anchor, draws: IntArray) -> IntArray:
        """Positions ``(b, k2)`` of the best ``k2`` stage-1 draws by ``s(d+, d-)``, best first
        (``faithful``: the first ``k2`` of the chunk-wise sorted draws), ``-1`` padded."""
        b = draws.shape[0]
        width = max(1, int((draws >= 0).sum(axis=1).max(initial=0)))
        draws = draws[:, :width]  # -1 padding is trailing: dropping it changes no chunk
        sim = batch.scores_against(anchor.vectors(batch), draws)  # s(d+, d-), NaN at -1
        sim = np.where(draws >= 0, sim, -np.inf)
        if self.faithful:
            chunk = np.broadcast_to(np.arange(width) // RELEASED_CHUNK, sim.shape)
            order = np.lexsort((-sim, chunk), axis=1)  # by chunk, then s(d+, d-) descending
        else:
            order = _top_stable(sim, self.k2)
        region = np.take_along_axis(draws, order[:, : self.k2], axis=1)
        if region.shape[1] < self.k2:
            pad = np.full((b, self.k2 - region.shape[1]), -1, np.int64)
            region = np.concatenate([region, pad], axis=1)
        return region

    def stages(self, batch: SamplerBatch, anchor: Anchor) -> ReSa2Stages:
        """Both intermediate sets, for inspection (``_select`` uses the same two calls)."""
        s1 = self.stage1(batch, anchor)
        return ReSa2Stages(s1, self.stage2(batch, anchor, s1))

    def _select(self, batch: SamplerBatch, n: int, anchor: Anchor | None) -> IntArray:
        assert anchor is not None
        region = self.stages(batch, anchor).stage2
        logw = np.where(region >= 0, 0.0, -np.inf)
        pick = gumbel_topk(logw, n, batch.gumbel_for(batch.candidate_ids(region), Stream.FINAL))
        return take_positions(region, pick, -1).astype(np.int64)


def _top_stable(x: npt.NDArray[np.float64], k: int) -> IntArray:
    """Column positions of the ``k`` largest of each row of ``x``, largest first, equal values
    in column order: the first ``k`` of a stable descending argsort, found by partitioning
    packed (value, position) keys (exact: no two keys are equal) and sorting only ``k``."""
    b, m = x.shape
    if k >= m:
        return np.argsort(-x, axis=1, kind="stable")
    bits = (np.asarray(x, np.float64) + 0.0).view(np.int64)  # + 0.0 folds -0.0 into 0.0
    bits = np.where(bits < 0, bits ^ np.int64(0x7FFFFFFFFFFFFFFF), bits)  # monotone in x
    # rank by value (higher first), then by position (smaller first): float64 bits do not
    # leave room for the position, so order by value bits and break ties separately
    top = np.argpartition(-bits, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(bits, top, axis=1).min(axis=1, keepdims=True)
    above = bits > kth  # surely in
    at = bits == kth  # ties at the cut: the first ones by position fill the rest
    need = k - above.sum(axis=1, keepdims=True)
    at &= np.cumsum(at, axis=1) <= need
    chosen = above | at
    cols = np.nonzero(chosen)[1].reshape(b, k)
    vals = np.take_along_axis(bits, cols, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")  # cols ascending: ties keep position order
    return np.take_along_axis(cols, order, axis=1)
