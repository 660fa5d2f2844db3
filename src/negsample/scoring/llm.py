"""LLM judges over any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, TGI,
hosted APIs), with bounded concurrency, retries, a persistent cache, and the two-judge
cascade of RLHN.

Only the standard library is used (``urllib`` and ``concurrent.futures``): no new
dependency. Texts are sent to the endpoint as they are: point ``base_url`` at a server you
are allowed to send the corpus to.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from .base import JudgeItem, Label, ScoringStats, parse_label
from .cache import JudgementCache

__all__ = ["DEFAULT_PROMPT", "CascadeJudge", "JudgeError", "JudgePrompt", "LLMJudge"]

_PARSER_VERSION = "1"
_FATAL_STATUS = (401, 403, 404)  # the same for every request: a configuration error

_DEFAULT_SYSTEM = (
    "You label training data for a search engine. You read a query, a passage known to be "
    "relevant to it, and one candidate paragraph, and you answer with a single label."
)

_DEFAULT_USER = """Decide whether the candidate paragraph could serve as a negative example for the query.

Labels:
- FN (false negative): the candidate answers the query as well. It carries the information the query asks for, so it is at least as close to the relevant passage as the query itself is, and it would be wrong to train a search engine to rank it low.
- HN (hard negative): the candidate is about the same subject as the query or the relevant passage, and may share many of its words, but it does not answer the query.
- TN (true negative): the candidate has nothing to do with what the query asks.

Query:
{query}

Relevant passage:
{positive}

Candidate paragraph:
{document}

Reply with exactly one of FN, HN or TN, and nothing else."""


@dataclass(frozen=True)
class JudgePrompt:
    """The messages sent for one item: a system message and a user template with the
    fields ``{query}``, ``{positive}`` and ``{document}`` (each exactly once at least;
    no other field). Literal braces are written ``{{`` and ``}}``.

    The default is this library's wording of the criteria of the ReSa2 appendix
    (Li et al., ACML 2025): false negative, hard negative, true negative.
    """

    system: str = _DEFAULT_SYSTEM
    user: str = _DEFAULT_USER

    def __post_init__(self) -> None:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.user) if f is not None]
        except ValueError as exc:
            raise ValueError(f"JudgePrompt.user is not a valid template: {exc}") from exc
        need = {"query", "positive", "document"}
        if set(fields) != need:
            raise ValueError(
                f"JudgePrompt.user must use the fields {sorted(need)} and no other, got "
                f"{sorted(set(fields))}"
            )

    def messages(self, item: JudgeItem) -> list[dict[str, str]]:
        user = self.user.format(query=item.query, positive=item.positive, document=item.document)
        out = [{"role": "user", "content": user}]
        if self.system:
            out.insert(0, {"role": "system", "content": self.system})
        return out

    @property
    def version(self) -> str:
        """A hash of the two texts (part of the cache key)."""
        blob = json.dumps([self.system, self.user]).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]


DEFAULT_PROMPT = JudgePrompt()


class JudgeError(RuntimeError):
    """The endpoint refused in a way every request would share (HTTP 401, 403, 404), or
    too many requests failed in a row: the run stops; answers received so far are cached."""


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class LLMJudge:
    """Label (query, positive, candidate) items with an LLM behind a chat-completions API.

    Parameters
    ----------
    base_url : the API root, e.g. ``http://localhost:8000/v1`` (vLLM),
        ``http://localhost:11434/v1`` (Ollama), ``https://api.openai.com/v1``;
        ``/chat/completions`` is appended.
    model : the model name the server expects.
    api_key_env : the environment variable holding the API key (sent as a bearer token);
        when it is unset or empty no key is sent (local servers need none).
    prompt : a :class:`JudgePrompt`; default :data:`DEFAULT_PROMPT`.
    cache : a :class:`JudgementCache` or the path of its sqlite file; ``None`` caches
        nothing. Keyed by (model, :attr:`version`, query, positive, document).
    max_concurrency : requests in flight at once (threads).
    timeout : seconds per request (socket connect and each read).
    max_retries : retries per item after a 429, a 5xx, a timeout or a connection error.
    max_total_retries : retries over the judge's lifetime; once spent, a retriable error
        fails the item at once.
    backoff_base, backoff_max : the wait before retry ``r`` (from 0) is
        ``min(backoff_max, backoff_base * 2**r)`` times a jitter factor in [0.5, 1)
        that is a hash of (``seed``, item, ``r``), so reproducible. A ``Retry-After`` header
        (seconds or date) replaces it (capped at ``backoff_max``) and pauses every thread.
    max_consecutive_failures : stop with :class:`JudgeError` when this many items in a
        row get no label (a dead endpoint, a model that never answers in the format);
        ``None`` never stops.
    temperature, max_tokens : generation settings sent with each request.
    extra_body : more JSON fields for each request (``{"seed": 0}``, vLLM's
        ``{"chat_template_kwargs": {"enable_thinking": False}}``...).
    seed : seeds the retry jitter.

    A reply is parsed with :func:`~negsample.scoring.parse_label`; anything else is
    counted as ``malformed`` and the item gets ``None`` (never a guessed label). Only valid
    labels are cached.

    Examples
    --------
    >>> from negsample.scoring import LLMJudge
    >>> judge = LLMJudge(base_url="http://localhost:8000/v1", model="Qwen/Qwen2.5-7B-Instruct",
    ...                  cache="judgements.sqlite", max_concurrency=16)  # doctest: +SKIP
    >>> judge.judge([("what lowers LDL?", "Oats lower LDL ...", "Oat farming in ...")])  # doctest: +SKIP
    ['TN']
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        prompt: JudgePrompt | None = None,
        cache: JudgementCache | str | os.PathLike[str] | None = None,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        max_total_retries: int = 1000,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_consecutive_failures: int | None = 50,
        temperature: float = 0.0,
        max_tokens: int = 16,
        extra_body: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not isinstance(model, str) or not model:
            raise ValueError("model must be a non-empty string")
        for name, v, lo in (
            ("max_concurrency", max_concurrency, 1),
            ("max_retries", max_retries, 0),
            ("max_total_retries", max_total_retries, 0),
            ("max_tokens", max_tokens, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        for name, f in (("timeout", timeout), ("backoff_max", backoff_max)):
            if not f > 0:
                raise ValueError(f"{name} must be > 0, got {f!r}")
        if not backoff_base >= 0:
            raise ValueError(f"backoff_base must be >= 0, got {backoff_base!r}")
        if max_consecutive_failures is not None and max_consecutive_failures < 1:
            raise ValueError(
                f"max_consecutive_failures must be >= 1 or None, got {max_consecutive_failures}"
            )
        reserved = {"model", "messages"} & set(extra_body or {})
        if reserved:
            raise ValueError(f"extra_body may not set {sorted(reserved)}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.prompt = prompt if prompt is not None else DEFAULT_PROMPT
        if cache is None or isinstance(cache, JudgementCache):
            self.cache = cache
        else:
            self.cache = JudgementCache(cache)
        self.max_concurrency = max_concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.max_total_retries = max_total_retries
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.max_consecutive_failures = max_consecutive_failures
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.seed = int(seed)
        self.name = f"llm:{model}"
        self.stats = ScoringStats()
        self._lock = threading.Lock()
        self._retry_budget = max_total_retries
        self._pause_until = 0.0
        self._consecutive = 0
        self._sleep: Callable[[float], None] = time.sleep
        self._url = self.base_url + "/chat/completions"

    def __repr__(self) -> str:
        return (
            f"LLMJudge(base_url={self.base_url!r}, model={self.model!r}, "
            f"max_concurrency={self.max_concurrency}, cache={self.cache!r})"
        )

    @property
    def version(self) -> str:
        """What, beside the model and the texts, decides an answer: the prompt, the parser
        and the generation settings, hashed (part of the cache key)."""
        blob = json.dumps(
            [
                self.prompt.version,
                _PARSER_VERSION,
                self.temperature,
                self.max_tokens,
                sorted(self.extra_body.items()),
            ],
            default=str,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def cache_key(self, item: JudgeItem) -> str:
        return JudgementCache.key(self.model, self.version, item)

    # -- the public call ------------------------------------------------------------------
    def judge(self, items: Sequence[JudgeItem | tuple[str, str, str]]) -> list[Label | None]:
        """One label per item (``None`` where the judge failed), in the order given.

        Items already in the cache, or repeated in ``items``, are not asked again; the rest
        go to the endpoint, at most ``max_concurrency`` at once. Each answer is cached the
        moment it arrives, so an interrupted call loses nothing it had received.
        """
        t0 = time.perf_counter()
        its = [_item(x, i) for i, x in enumerate(items)]
        keys = [self.cache_key(it) for it in its]
        answers: dict[str, Label | None] = {}
        if self.cache is not None:
            answers.update(self.cache.get_many(keys))
        todo: dict[str, JudgeItem] = {}
        for k, it in zip(keys, its, strict=True):
            if k not in answers:
                todo.setdefault(k, it)
        try:
            if todo:
                workers = min(self.max_concurrency, len(todo))
                ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="negsample-judge")
                try:
                    futures = {ex.submit(self._ask, it, k): k for k, it in todo.items()}
                    for fut in as_completed(futures):
                        answers[futures[fut]] = fut.result()
                finally:
                    # on an error: requests in flight finish (and are cached), the rest never start
                    ex.shutdown(wait=True, cancel_futures=True)
        finally:
            self.stats.add(pairs=len(its), cache_hits=len(its) - len(todo))
            self.stats.add(seconds=time.perf_counter() - t0)
        labels = [answers.get(k) for k in keys]
        self.stats.add(failures=sum(lab is None for lab in labels))
        return labels

    # -- one item ---------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def _body(self, item: JudgeItem) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.prompt.messages(item),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        body.update(self.extra_body)
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _ask(self, item: JudgeItem, key: str) -> Label | None:
        data = self._body(item)
        attempt = 0
        while True:
            self._wait_for_pause()
            retry_after: float | None = None
            self.stats.add(requests=1)
            try:
                req = urllib.request.Request(self._url, data=data, headers=self._headers())
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = resp.read()
            except urllib.error.HTTPError as exc:
                code = exc.code
                detail = _error_text(exc)
                if code in _FATAL_STATUS:
                    hint = (
                        f"is ${self.api_key_env} set?"
                        if code in (401, 403)
                        else "check base_url and model"
                    )
                    raise JudgeError(
                        f"{self._url}: HTTP {code} {exc.reason} for model {self.model!r} "
                        f"({hint}){detail}"
                    ) from exc
                if code != 429 and code < 500:  # the request itself is refused: not retried
                    self._failed()
                    return None
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
                    self.stats.add(timeouts=1)
            else:
                label = self._parse(payload)
                if label is None:
                    self.stats.add(malformed=1)
                    self._failed()
                    return None
                if self.cache is not None:
                    self.cache.put(
                        key,
                        label,
                        model=self.model,
                        prompt_version=self.version,
                        answer=_content(payload),
                    )
                with self._lock:
                    self._consecutive = 0
                return label
            # a retriable failure
            if attempt >= self.max_retries or not self._take_retry():
                self._failed()
                return None
            self.stats.add(retries=1)
            if retry_after is not None:
                # the server asked for a pause: every thread waits (in _wait_for_pause)
                delay = min(retry_after, self.backoff_max)
                with self._lock:
                    self._pause_until = max(self._pause_until, time.monotonic() + delay)
            else:
                self._sleep(self._backoff(key, attempt))
            attempt += 1

    def _parse(self, payload: bytes) -> Label | None:
        content = _content(payload)
        return None if content is None else parse_label(content)

    def _failed(self) -> None:
        """Count an item left without a label; stop after too many in a row."""
        with self._lock:
            self._consecutive += 1
            n = self._consecutive
        if self.max_consecutive_failures is not None and n >= self.max_consecutive_failures:
            s = self.stats
            raise JudgeError(
                f"{self._url}: {n} items in a row got no label (max_consecutive_failures="
                f"{self.max_consecutive_failures}; so far: {s.requests} requests, "
                f"{s.timeouts} timeouts, {s.malformed} malformed answers, {s.retries} retries); "
                "stopping. Answers received are cached; check the endpoint and the model."
            )
        return None

    def _take_retry(self) -> bool:
        with self._lock:
            if self._retry_budget <= 0:
                return False
            self._retry_budget -= 1
            return True

    def _backoff(self, key: str, attempt: int) -> float:
        h = hashlib.sha256(f"{self.seed}:{key}:{attempt}".encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        return min(self.backoff_max, self.backoff_base * 2.0**attempt) * (0.5 + 0.5 * u)

    def _wait_for_pause(self) -> None:
        with self._lock:
            wait = self._pause_until - time.monotonic()
        if wait > 0:
            self._sleep(wait)


def _item(x: Any, i: int) -> JudgeItem:
    if not isinstance(x, tuple) or len(x) != 3 or not all(isinstance(t, str) for t in x):
        raise TypeError(f"item {i}: expected (query, positive, document) strings, got {x!r:.80}")
    return JudgeItem(*x)


def _content(payload: bytes) -> str | None:
    """The first choice's message text of a chat-completions reply, or None."""
    try:
        obj = json.loads(payload)
        content = obj["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read(300).decode("utf-8", "replace").strip()
    except Exception:  # the body is only a hint in the message
        return ""
    return f": {body}" if body else ""


class CascadeJudge:
    """RLHN's two-judge cascade (Thakur et al., EMNLP Findings 2025): a cheap judge labels
    every item, a stronger judge re-labels the items the first calls ``FN``; its label is
    final (``None`` if it fails: never the first judge's guess).

    Attributes
    ----------
    escalated : items the first judge labelled FN (sent to the second).
    confirmed : of those, the second judge also labelled FN.
    overturned : of those, the second judge labelled TN or HN.
    """

    def __init__(self, first: Any, second: Any) -> None:
        for name, j in (("first", first), ("second", second)):
            if not callable(getattr(j, "judge", None)):
                raise TypeError(f"{name} must be a Judge (with a judge() method), got {j!r}")
        self.first = first
        self.second = second
        self.name = f"cascade({first.name} -> {second.name})"
        self.escalated = 0
        self.confirmed = 0
        self.overturned = 0

    def __repr__(self) -> str:
        return f"CascadeJudge({self.first!r}, {self.second!r})"

    @property
    def stats(self) -> ScoringStats:
        """Both judges' counters added (requests, cache hits... of the two)."""
        return self.first.stats.copy().merge(self.second.stats)

    def judge(self, items: Sequence[JudgeItem | tuple[str, str, str]]) -> list[Label | None]:
        labels: list[Label | None] = list(self.first.judge(items))
        flagged = [i for i, lab in enumerate(labels) if lab == "FN"]
        if flagged:
            again = self.second.judge([items[i] for i in flagged])
            for i, lab in zip(flagged, again, strict=True):
                labels[i] = lab
            self.escalated += len(flagged)
            self.confirmed += sum(lab == "FN" for lab in again)
            self.overturned += sum(lab in ("TN", "HN") for lab in again)
        return labels
