"""The two contracts of the scoring subpackage and the counters they share.

A :class:`Scorer` turns (query text, document text) pairs into float scores (a
cross-encoder, a teacher bi-encoder); a :class:`Judge` turns (query, labelled positive,
candidate) texts into one of three labels, or ``None`` when it could not say (a failed or
malformed answer: counted, never guessed).
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "LABELS",
    "Judge",
    "JudgeItem",
    "Label",
    "Scorer",
    "ScoringStats",
    "parse_label",
]

Label = Literal["FN", "TN", "HN"]
LABELS: tuple[Label, ...] = ("FN", "TN", "HN")
"""``FN`` false negative (the candidate answers the query too), ``TN`` true negative
(unrelated), ``HN`` hard negative (close to the topic, but does not answer)."""

FloatArray = npt.NDArray[np.float32]


class JudgeItem(NamedTuple):
    """What a judge sees: the query, the labelled relevant passage, the candidate."""

    query: str
    positive: str
    document: str


@dataclass
class ScoringStats:
    """Counters of a scorer or a judge; add two with :meth:`merge`.

    Attributes
    ----------
    pairs : pairs (or judge items) asked for, cache hits included.
    requests : model calls made (HTTP requests for an LLM judge, retries included; forward
        batches for a local model).
    cache_hits : answers taken from the judgement cache without a request.
    retries : requests repeated after a 429, a 5xx, a timeout or a connection error.
    timeouts : requests that ran past their timeout (the whole request: connect, send and
        every read).
    malformed : answers received that are not one of the labels (never guessed); for a
        listwise judge, items an answer left out or labelled with something else.
    oversize : replies refused because they ran past the judge's ``max_response_bytes``.
    failures : items left without an answer (retries exhausted, a 4xx, a malformed or
        over-size answer).
    seconds : wall time spent inside the scorer or judge.
    """

    pairs: int = 0
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    timeouts: int = 0
    malformed: int = 0
    oversize: int = 0
    failures: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(
        default_factory=threading.Lock, repr=False, compare=False, init=False
    )

    def add(self, **counts: float) -> None:
        """Add to the named counters (thread-safe)."""
        with self._lock:
            for name, value in counts.items():
                if name.startswith("_") or name not in _STAT_FIELDS:
                    raise AttributeError(f"ScoringStats has no counter {name!r}")
                setattr(self, name, getattr(self, name) + value)

    def merge(self, other: ScoringStats) -> ScoringStats:
        """Add ``other``'s counters into this one; returns ``self``."""
        self.add(**other.as_dict())
        return self

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _STAT_FIELDS}

    def copy(self) -> ScoringStats:
        return ScoringStats(**self.as_dict())

    def since(self, before: ScoringStats) -> ScoringStats:
        """The counts added after ``before`` (a :meth:`copy` taken earlier)."""
        now, then = self.as_dict(), before.as_dict()
        return ScoringStats(**{k: now[k] - then[k] for k in now})


_STAT_FIELDS = tuple(f.name for f in dataclasses.fields(ScoringStats) if not f.name.startswith("_"))


@runtime_checkable
class Scorer(Protocol):
    """Scores (query text, document text) pairs; higher = more relevant.

    ``score`` returns float32 ``(len(pairs),)``, one score per pair in the order given, and
    must be deterministic for a given pair (the denoising step relies on it). ``name`` says
    what produced the scores (written beside them).
    """

    name: str
    stats: ScoringStats

    def score(self, pairs: Sequence[tuple[str, str]]) -> FloatArray: ...


@runtime_checkable
class Judge(Protocol):
    """Labels (query, positive, candidate) items: one of :data:`LABELS` per item, or
    ``None`` where the judge failed or answered something else (counted in ``stats``)."""

    name: str
    stats: ScoringStats

    def judge(self, items: Sequence[JudgeItem]) -> list[Label | None]: ...


# -- parsing an answer ----------------------------------------------------------------------

_PHRASES: dict[str, Label] = {
    "FN": "FN",
    "TN": "TN",
    "HN": "HN",
    "FALSE NEGATIVE": "FN",
    "TRUE NEGATIVE": "TN",
    "HARD NEGATIVE": "HN",
}
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_PREFIX = re.compile(r"^(?:final\s+)?(?:label|answer|classification|verdict)\s*[:=\-]\s*", re.I)
_HEAD = re.compile(
    r"^(FALSE[\s_-]+NEGATIVE|TRUE[\s_-]+NEGATIVE|HARD[\s_-]+NEGATIVE|FN|TN|HN)(?![A-Z0-9])"
)


_ANY = re.compile(
    r"(?<![A-Z0-9])(FALSE[\s_-]+NEGATIVE|TRUE[\s_-]+NEGATIVE|HARD[\s_-]+NEGATIVE|FN|TN|HN)(?![A-Z0-9])"
)


def parse_label(answer: str) -> Label | None:
    """The label an answer gives, or ``None`` (malformed).

    Accepted, whatever the case and surrounding whitespace, quotes, markdown emphasis or
    final punctuation: the code alone (``HN``), the label's name (``hard negative``), either
    after a ``Label:``/``Answer:`` prefix, either followed by an explanation
    (``HN - the paragraph ...``), or a JSON object ``{"label": "HN"}``; a ``<think>...</think>``
    block before the answer is ignored. Anything else is malformed: an answer that starts with
    other words (``The answer is HN``, ``not FN``) or names two different labels
    (``FN/HN``, ``HN, not TN``). A label is never guessed.

    Examples
    --------
    >>> from negsample.scoring import parse_label
    >>> [parse_label(a) for a in ["HN", "**fn**.", "Label: true negative", '{"label": "TN"}',
    ...                           "The answer is HN", ""]]
    ['HN', 'FN', 'TN', 'TN', None, None]
    """
    if not isinstance(answer, str):
        return None
    text = _THINK.sub("", answer).strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        value = obj.get("label") if isinstance(obj, dict) else None
        return _PHRASES.get(_normalise(value)) if isinstance(value, str) else None
    text = text.replace("*", "").replace("`", "").strip().strip("\"'").strip()
    text = _PREFIX.sub("", text).strip().strip("\"'").strip()
    upper = text.upper()
    m = _HEAD.match(upper)
    if m is None:
        return None
    label = _PHRASES.get(_normalise(m.group(1)))
    # an answer that names two different labels ("FN/HN", "HN, or maybe FN") is ambiguous
    named = {_PHRASES[_normalise(x)] for x in _ANY.findall(upper)}
    return label if named == {label} else None


def _normalise(value: str) -> str:
    return re.sub(r"[\s_-]+", " ", value.strip().strip(".").upper())
