"""Shared base for the kernel samplers (SimANS, TriSampler, ReSa2): a positive anchor
policy and a score temperature (ALGORITHMS.md, "Score scale")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._validate import check_number
from .base import BaseSampler

__all__ = ["KernelSampler"]


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
    """

    positive_anchor: str = "random"
    temperature: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature is not None:
            check_number("temperature", self.temperature, positive=True)

    def scaled(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Scores in kernel units: ``x / temperature`` (float64), or ``x`` unchanged."""
        a = np.asarray(x, dtype=np.float64)
        return a / self.temperature if self.temperature is not None else a
