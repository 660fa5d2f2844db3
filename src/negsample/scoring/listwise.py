"""A listwise LLM judge (RLHN, Thakur et al. 2025; ARHN, Choi et al. 2026): one request
labels all of a query's candidates at once, beside the query and its labelled positive.

It is a :class:`~negsample.scoring.Judge` like :class:`~negsample.scoring.LLMJudge`
(``judge(items) -> labels``, one label per item, ``None`` where it could not say), shares
its transport, retries, breakers and cache, and fills the same per-(query, positive,
candidate) cache rows: a later pointwise or listwise run with the same criteria reuses them.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, InputTypeError
from .base import JudgeItem, Label, parse_label
from .cache import JudgementCache
from .llm import DEFAULT_CRITERIA, Unit, _ChatJudge

__all__ = ["DEFAULT_LISTWISE_PROMPT", "ListwiseJudge", "ListwisePrompt", "parse_labels"]

_LIST_SYSTEM = (
    "You label training data for a search engine. You read a query, a passage known to be "
    "relevant to it, and a numbered list of candidate paragraphs, and you give every "
    "candidate one label."
)

_LIST_USER = """For each numbered candidate paragraph below, decide whether it could serve as a negative example for the query.

Labels:
- FN (false negative): the candidate answers the query as well. It carries the information the query asks for, so it is at least as close to the relevant passage as the query itself is, and it would be wrong to train a search engine to rank it low.
- HN (hard negative): the candidate is about the same subject as the query or the relevant passage, and may share many of its words, but it does not answer the query.
- TN (true negative): the candidate has nothing to do with what the query asks.

Judge every candidate on its own merits against the query and the relevant passage: any number of them, all or none, may be false negatives, and their order means nothing.

Query:
{query}

Relevant passage:
{positive}

Candidate paragraphs:
{candidates}

Reply with one JSON object that maps the number of every candidate to its label, for example {{"1": "HN", "2": "FN", "3": "TN"}}, and nothing else."""


@dataclass(frozen=True)
class ListwisePrompt:
    """The messages of one listwise request: a system message and a user template with
    the fields ``{query}``, ``{positive}`` and ``{candidates}`` (no other field; literal
    braces written ``{{`` and ``}}``). ``{candidates}`` becomes the numbered list
    ``[1] text``, ``[2] text``... separated by blank lines.

    The default asks the same question as the default pointwise prompt (the ReSa2
    appendix's three labels, in this library's words) for a whole list, and shares its
    criteria name (:data:`~negsample.scoring.llm.DEFAULT_CRITERIA`), hence its cached
    labels. ``criteria`` names the criteria of a custom prompt (default: a hash of its
    texts); see :class:`~negsample.scoring.JudgePrompt`.
    """

    system: str = _LIST_SYSTEM
    user: str = _LIST_USER
    criteria: str | None = None

    def __post_init__(self) -> None:
        if self.criteria is not None and (not isinstance(self.criteria, str) or not self.criteria):
            raise InputError(f"criteria must be a non-empty string or None, got {self.criteria!r}")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.user) if f is not None]
        except ValueError as exc:
            raise InputError(f"ListwisePrompt.user is not a valid template: {exc}") from exc
        need = {"query", "positive", "candidates"}
        if set(fields) != need:
            raise InputError(
                f"ListwisePrompt.user must use the fields {sorted(need)} and no other, got "
                f"{sorted(set(fields))}"
            )

    def messages(self, query: str, positive: str, documents: list[str]) -> list[dict[str, str]]:
        block = "\n\n".join(f"[{i}] {d}" for i, d in enumerate(documents, 1))
        user = self.user.format(query=query, positive=positive, candidates=block)
        out = [{"role": "user", "content": user}]
        if self.system:
            out.insert(0, {"role": "system", "content": self.system})
        return out

    @property
    def version(self) -> str:
        """A hash of the two texts."""
        import hashlib

        blob = json.dumps(["listwise", self.system, self.user]).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def criteria_id(self) -> str:
        """The criteria in the cache key: ``criteria``, or :data:`DEFAULT_CRITERIA` for the
        default texts, or a hash of the texts."""
        if self.criteria is not None:
            return self.criteria
        if (self.system, self.user) == (_LIST_SYSTEM, _LIST_USER):
            return DEFAULT_CRITERIA
        return f"listwise-prompt:{self.version}"


DEFAULT_LISTWISE_PROMPT = ListwisePrompt()

# -- reading an answer ------------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.S)
_NUMBER = re.compile(
    r"^\s*(?:candidate|passage|paragraph|doc(?:ument)?)?\s*[#\[(]?\s*(\d+)\s*[\])]?\s*$", re.I
)
_LINE = re.compile(
    r"^\s*(?:[-*]\s*)?(?:candidate|passage|paragraph|doc(?:ument)?)?\s*#?"
    r"(?:[\[(]\s*(\d+)\s*[\])]\s*[:.=\-\u2013\u2014]?|(\d+)\s*[:.)=\-\u2013\u2014])\s*(.+?)\s*$",
    re.I,
)
_WRAPPERS = ("labels", "judgements", "judgments", "results", "candidates", "answer", "answers")
_ID_KEYS = ("id", "candidate", "index", "number", "n", "idx")


def parse_labels(answer: str, k: int) -> list[Label | None]:
    """The labels a listwise answer gives its ``k`` candidates (numbered from 1), ``None``
    for each candidate it leaves out or labels with anything but a label.

    Read, in order of preference (after dropping ``<think>...</think>`` blocks and
    markdown code fences):

    - a JSON object mapping numbers to labels, ``{"1": "HN", "2": "FN"}`` (keys may be
      written ``"[2]"`` or ``"candidate 2"``; values are read by
      :func:`~negsample.scoring.parse_label`, so ``"hard negative"`` is ``HN``), or
      such an object under one key ``labels`` / ``judgements`` / ``results``...;
    - a JSON list of objects with a number (``id``, ``candidate``, ``index``...) and a
      ``label``; or a JSON list of exactly ``k`` labels, in candidate order;
    - else one line per candidate, ``2: FN``, ``[2] FN``, ``- 2. hard negative``...

    A candidate numbered twice with different labels is ``None`` (ambiguous), and so is
    every candidate of an answer cut off inside its ``<think>`` block. Numbers outside
    ``1..k`` are ignored. A label is never guessed: missing means ``None``.

    Examples
    --------
    >>> from negsample.scoring import parse_labels
    >>> parse_labels('{"1": "HN", "2": "fn", "4": "TN"}', 4)
    ['HN', 'FN', None, 'TN']
    >>> parse_labels("```json\\n[{\\"id\\": 2, \\"label\\": \\"TN\\"}]\\n```", 2)
    [None, 'TN']
    >>> parse_labels("1: HN\\n2: FN - it gives the dose\\n2: TN", 2)
    ['HN', None]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InputError(f"k must be an int >= 0, got {k!r}")
    if not isinstance(answer, str):
        return [None] * k
    text = _THINK.sub("", answer)
    if re.search(r"<think>", text, re.I):  # cut off while thinking
        return [None] * k
    fenced = _FENCE.findall(text)
    if fenced:
        text = "\n".join(fenced)
    pairs = _json_pairs(text, k)
    if pairs is None:
        pairs = _line_pairs(text)
    out: dict[int, Label | None] = {}
    for i, lab in pairs:
        if not 1 <= i <= k:
            continue
        if i in out and out[i] != lab:
            out[i] = None  # numbered twice, two answers
        elif i not in out:
            out[i] = lab
    return [out.get(i) for i in range(1, k + 1)]


def _label(value: Any) -> Label | None:
    if isinstance(value, dict):
        value = value.get("label")
    return parse_label(value) if isinstance(value, str) else None


def _number(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str):
        m = _NUMBER.match(key)
        if m:
            return int(m.group(1))
    return None


def _json_pairs(text: str, k: int) -> list[tuple[int, Label | None]] | None:
    """(number, label) pairs from the first JSON object or list in ``text`` that holds
    any, or None when none does (then the answer is read line by line)."""
    dec = json.JSONDecoder(object_pairs_hook=lambda kv: ("__pairs__", kv))
    for m in re.finditer(r"[\[{]", text):
        try:
            obj, _ = dec.raw_decode(text, m.start())
        except ValueError:
            continue
        pairs = _pairs_of(obj, k)
        if pairs:
            return pairs
    return None


def _pairs_of(obj: Any, k: int) -> list[tuple[int, Label | None]]:
    if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "__pairs__":
        kv = obj[1]
        if len(kv) == 1 and str(kv[0][0]).lower() in _WRAPPERS:
            return _pairs_of(kv[0][1], k)
        out = []
        for key, value in kv:
            i = _number(key)
            if i is not None:
                out.append((i, _label(_plain(value))))
        return out
    if isinstance(obj, list):
        items = [_plain(x) for x in obj]
        if all(isinstance(x, dict) for x in items) and items:
            out = []
            for x in items:
                i = next((_number(x[n]) for n in _ID_KEYS if n in x), None)
                if i is not None:
                    out.append((i, _label(x)))
            return out
        if len(items) == k and all(isinstance(x, str) for x in items):
            return [(i, _label(x)) for i, x in enumerate(items, 1)]
    return []


def _plain(obj: Any) -> Any:
    """The object_pairs_hook's ("__pairs__", kv) turned back into a dict (last key wins:
    only the top level is checked for repeated numbers)."""
    if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "__pairs__":
        return {k: _plain(v) for k, v in obj[1]}
    if isinstance(obj, list):
        return [_plain(x) for x in obj]
    return obj


def _line_pairs(text: str) -> list[tuple[int, Label | None]]:
    out = []
    for line in text.splitlines():
        m = _LINE.match(line.replace("*", "").replace("`", ""))
        if m:
            out.append((int(m.group(1) or m.group(2)), parse_label(m.group(3))))
    return out


# -- the judge --------------------------------------------------------------------------------


class ListwiseJudge(_ChatJudge):
    """Label (query, positive, candidate) items with an LLM, all of a query's candidates in
    one request (RLHN, Thakur et al., EMNLP Findings 2025; ARHN, Choi et al. 2026).

    Items are grouped by (query, positive) in the order they are given; a group longer
    than ``max_candidates`` candidates, or whose candidate texts add up to more than
    ``max_chars`` characters, is split, in order, into several requests: a request closes
    when the next candidate would pass either limit (a single candidate longer than
    ``max_chars`` goes alone). With :func:`~negsample.scoring.denoise`, a group is the
    draws of one row that still need a check: the first ``n`` draws in one request, then
    one more request for the replacements of those it rejected, and so on.

    Parameters
    ----------
    prompt : ListwisePrompt or None
        Default :data:`DEFAULT_LISTWISE_PROMPT`.
    max_candidates : int
        The most candidates one request judges (default 20).
    max_chars : int
        The most characters of candidate text in one request (default 24,000, about 6,000
        tokens; keep the prompt inside the model's context).
    max_tokens : int
        Tokens the answer may take (default 512: about 8 per candidate, with room).
    base_url, model, api_key_env, cache, max_concurrency, timeout, max_retries,
    max_total_retries, connect_retries, max_outage, max_response_bytes, backoff_base,
    backoff_max, max_consecutive_failures, temperature, extra_body, seed
        As for :class:`~negsample.scoring.LLMJudge` (``max_concurrency`` counts requests,
        ``max_consecutive_failures`` items).

    An answer is read with :func:`parse_labels`: a candidate it leaves out or labels with
    something else gets ``None`` and is counted in ``stats.malformed`` (never taken as
    TN), and is asked again by the next run (only valid labels are cached). Each valid
    label fills the cache row of its (query, positive, candidate), the row a pointwise
    :class:`~negsample.scoring.LLMJudge` with the same criteria reads, and the other way
    round. ``stats.requests`` counts requests, ``stats.pairs`` items.

    Examples
    --------
    >>> from negsample.scoring import ListwiseJudge
    >>> judge = ListwiseJudge(base_url="http://localhost:8000/v1", model="Qwen/Qwen2.5-7B-Instruct",
    ...                       cache="judgements.sqlite")  # doctest: +SKIP
    >>> judge.judge([("q", "relevant", "cand 1"), ("q", "relevant", "cand 2")])  # doctest: +SKIP
    ['HN', 'FN']
    """

    _default_max_tokens = 512

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        cache: JudgementCache | str | os.PathLike[str] | None = None,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        max_total_retries: int = 1000,
        connect_retries: int = 2,
        max_outage: float | None = 120.0,
        max_response_bytes: int = 4 * 2**20,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_consecutive_failures: int | None = 50,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
        seed: int = 0,
        prompt: ListwisePrompt | None = None,
        max_candidates: int = 20,
        max_chars: int = 24_000,
    ) -> None:
        if prompt is not None and not isinstance(prompt, ListwisePrompt):
            raise InputTypeError(f"prompt must be a ListwisePrompt, got {type(prompt).__name__}")
        for name, v in (("max_candidates", max_candidates), ("max_chars", max_chars)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be an int >= 1, got {v!r}")
        self.prompt = prompt if prompt is not None else DEFAULT_LISTWISE_PROMPT
        self.max_candidates = max_candidates
        self.max_chars = max_chars
        super().__init__(
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            cache=cache,
            max_concurrency=max_concurrency,
            timeout=timeout,
            max_retries=max_retries,
            max_total_retries=max_total_retries,
            connect_retries=connect_retries,
            max_outage=max_outage,
            max_response_bytes=max_response_bytes,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_consecutive_failures=max_consecutive_failures,
            temperature=temperature,
            max_tokens=max_tokens,
            extra_body=extra_body,
            seed=seed,
        )
        self.name = f"llm-listwise:{self.model}"

    def __repr__(self) -> str:
        return self._redact(
            f"ListwiseJudge(base_url={self.base_url!r}, model={self.model!r}, "
            f"max_candidates={self.max_candidates}, max_concurrency={self.max_concurrency}, "
            f"cache={self.cache!r})"
        )

    def _criteria(self) -> str:
        return self.prompt.criteria_id

    def _units(self, todo: Unit) -> list[Unit]:
        groups: dict[tuple[str, str], Unit] = {}
        for kv in todo:
            it = kv[1]
            groups.setdefault((it.query, it.positive), []).append(kv)
        units: list[Unit] = []
        for group in groups.values():
            cur: Unit = []
            chars = 0
            for kv in group:
                size = len(kv[1].document)
                if cur and (len(cur) >= self.max_candidates or chars + size > self.max_chars):
                    units.append(cur)
                    cur, chars = [], 0
                cur.append(kv)
                chars += size
            if cur:
                units.append(cur)
        return units

    def _messages(self, unit: Unit) -> list[dict[str, str]]:
        first: JudgeItem = unit[0][1]
        return self.prompt.messages(first.query, first.positive, [it.document for _, it in unit])

    def _labels(self, content: str, unit: Unit) -> list[tuple[Label | None, str]]:
        labels = parse_labels(content, len(unit))
        bad = sum(lab is None for lab in labels)
        if bad:
            self.stats.add(malformed=bad)
        k = len(unit)
        return [(lab, f"listwise [{i}/{k}]: {lab}") for i, lab in enumerate(labels, 1)]
