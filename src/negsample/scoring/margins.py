"""Margins on teacher scores: the rules of :class:`negsample.Filters` (one engine,
:class:`negsample.filters.ScoreRules`) applied to a scorer's scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..filters import ScoreRules

__all__ = ["Margins"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, kw_only=True)
class Margins:
    """Filters on teacher scores, with sentence-transformers' names and conventions
    (``mine_hard_negatives(cross_encoder=...)``; NV-Retriever's TopK-MarginPos and
    TopK-PercPos, Moreira et al. 2024).

    A candidate is kept when every rule holds (strict inequalities; sentence-transformers
    keeps exact ties, which only matters for equal floats):

    - ``max_score``: ``s- < max_score``; ``min_score``: ``s- > min_score``;
    - ``absolute_margin=m``: ``s- < s+ - m``;
    - ``relative_margin=r``: ``s- < s+ - |s+| * r``, ``r`` in ``[0, 1]``, sign-safe (for
      ``s+ < 0`` the naive ``(1 - r) * s+`` would keep negatives scored above the
      positive). ``r = 0.05`` is NV-Retriever's ``p = 0.95``.

    These are the rules of :class:`negsample.Filters`, with the same names, limits and
    order, applied to teacher scores: both run on one engine,
    :class:`negsample.filters.ScoreRules`.

    ``s+`` is the teacher's score of the query's positives, taken by ``anchor``:
    ``"min"`` (default, as sentence-transformers and NV-Retriever), ``"max"`` or ``"mean"``.
    A candidate failing several rules is counted under the first, in the order above.

    Examples
    --------
    >>> from negsample.scoring import Margins
    >>> m = Margins(relative_margin=0.05)
    >>> m.keep([0.9, 0.96, -2.2, -2.0], [1.0, 1.0, -2.0, -2.0])[0].tolist()
    [True, False, True, False]
    """

    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None
    anchor: str = "min"

    def __post_init__(self) -> None:
        _ = self.rules  # validates: one set of limits with Filters (ScoreRules)

    @property
    def rules(self) -> ScoreRules:
        """These margins as the shared engine :class:`negsample.filters.ScoreRules`."""
        return ScoreRules(
            absolute_margin=self.absolute_margin,
            relative_margin=self.relative_margin,
            max_score=self.max_score,
            min_score=self.min_score,
            anchor=self.anchor,
        )

    @property
    def needs_positive(self) -> bool:
        return self.rules.needs_positive

    @property
    def is_noop(self) -> bool:
        return self.rules.is_noop

    def keep(self, negative: Any, positive: Any) -> tuple[npt.NDArray[np.bool_], IntArray]:
        """``(keep, reason)``: which candidates pass, and for the others the index of the
        first rule that removes them in ``("max_score", "min_score", "absolute_margin",
        "relative_margin")`` (-1 where kept). ``negative`` holds ``s-``, ``positive`` the
        matching ``s+`` (NaN allowed when no margin is set); both compared as float64."""
        s = np.asarray(negative, dtype=np.float64)
        sp = np.asarray(positive, dtype=np.float64)
        return self.rules.first_failing(s, sp)
