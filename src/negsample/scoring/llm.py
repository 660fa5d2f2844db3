"""LLM judges over any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, TGI,
hosted APIs), with bounded concurrency, whole-request deadlines, retries bounded in count
and in time, a reply size cap, a persistent cache, and the two-judge cascade of RLHN.

Only the standard library is used (``http.client``, ``concurrent.futures``, ``sqlite3``):
no new dependency. Texts are sent to the endpoint as they are: point ``base_url`` at a
server you are allowed to send the corpus to. The API key never appears in a message,
an exception, a repr, the cache or the stats (:func:`redact`).
"""

from __future__ import annotations

import hashlib
import json
import os
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, InputTypeError
from ._http import Endpoint, HTTPFailure, excerpt
from .base import JudgeItem, Label, ScoringStats, parse_label
from .cache import JudgementCache

__all__ = [
    "DEFAULT_PROMPT",
    "CascadeJudge",
    "JudgeError",
    "JudgePrompt",
    "LLMJudge",
    "judgement_version",
]

_KEY_VERSION = "2"  # bump when a change makes cached labels wrong
_FATAL_STATUS = (401, 403, 404)  # the same for every request: a configuration error
_ANSWER_CHARS = 4000  # characters of a raw answer kept in the cache (for audit)
DEFAULT_CRITERIA = "negsample-resa2-1"
"""The criteria name of the default prompts (pointwise and listwise): the ReSa2 appendix's
three labels in this library's words. Judgements cached under it are shared by both."""

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

    ``criteria`` names what the labels mean, for the cache: judgements are keyed by it
    (:attr:`criteria_id`), so two prompts that ask the same question in other words (say a
    pointwise and a listwise one) may share their answers when given the same name.
    """

    system: str = _DEFAULT_SYSTEM
    user: str = _DEFAULT_USER
    criteria: str | None = None

    def __post_init__(self) -> None:
        if self.criteria is not None and (not isinstance(self.criteria, str) or not self.criteria):
            raise InputError(f"criteria must be a non-empty string or None, got {self.criteria!r}")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.user) if f is not None]
        except ValueError as exc:
            raise InputError(f"JudgePrompt.user is not a valid template: {exc}") from exc
        need = {"query", "positive", "document"}
        if set(fields) != need:
            raise InputError(
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
        """A hash of the two texts."""
        blob = json.dumps([self.system, self.user]).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def criteria_id(self) -> str:
        """What the cache key holds of the prompt: ``criteria`` when given; the default
        prompt's :data:`DEFAULT_CRITERIA` (shared with the default listwise prompt); else
        a hash of the texts (another wording is asked again)."""
        if self.criteria is not None:
            return self.criteria
        if (self.system, self.user) == (_DEFAULT_SYSTEM, _DEFAULT_USER):
            return DEFAULT_CRITERIA
        return f"prompt:{self.version}"


DEFAULT_PROMPT = JudgePrompt()


def judgement_version(criteria: str, *, temperature: float, extra_body: Mapping[str, Any]) -> str:
    """The version in a judgement's cache key: what, beside the model and the three texts,
    decides a label: the criteria (:attr:`JudgePrompt.criteria_id`), the temperature and
    the extra request fields, hashed. ``max_tokens`` is not in it (an answer cut short is
    malformed and never cached), nor the judging mode: a pointwise and a listwise judge
    with the same criteria share their cached labels."""
    blob = json.dumps(
        ["judgement", _KEY_VERSION, criteria, float(temperature), sorted(extra_body.items())],
        default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class JudgeError(RuntimeError):
    """The judge stops: the endpoint refused in a way every request would share (HTTP 401,
    403, 404, a redirect, a refused connection or a name that does not resolve, after
    ``connect_retries``), no reply succeeded for ``max_outage`` seconds, or too many items
    in a row got no label. Answers received so far are cached. The message is one line,
    with secrets redacted."""


Unit = list[tuple[str, JudgeItem]]  # the (cache key, item) pairs one request judges


class _ChatJudge:
    """What the pointwise and the listwise judges share: the endpoint, the key, the
    requests and their retries, the breakers, the cache and the counters. A subclass says
    how items are grouped into requests (:meth:`_units`), what is sent (:meth:`_messages`)
    and how an answer is read (:meth:`_labels`)."""

    _default_max_tokens = 16

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
    ) -> None:
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
            raise InputError(f"api_key_env must be a variable name or None, got {api_key_env!r}")
        self.api_key_env = api_key_env
        self._seen_keys: set[str] = set()
        self._endpoint = Endpoint(
            base_url.rstrip("/") + "/chat/completions" if isinstance(base_url, str) else base_url,
            secrets=self._secrets,
        )
        if not isinstance(model, str) or not model:
            raise InputError("model must be a non-empty string")
        max_tokens = self._default_max_tokens if max_tokens is None else max_tokens
        for name, v, lo in (
            ("max_concurrency", max_concurrency, 1),
            ("max_retries", max_retries, 0),
            ("max_total_retries", max_total_retries, 0),
            ("connect_retries", connect_retries, 0),
            ("max_tokens", max_tokens, 1),
            ("max_response_bytes", max_response_bytes, 1024),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise InputError(f"{name} must be an int >= {lo}, got {v!r}")
        for name, f in (("timeout", timeout), ("backoff_max", backoff_max)):
            if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f < float("inf"):
                raise InputError(f"{name} must be a finite number > 0, got {f!r}")
        if max_outage is not None and (
            isinstance(max_outage, bool)
            or not isinstance(max_outage, int | float)
            or not 0 < max_outage < float("inf")
        ):
            raise InputError(f"max_outage must be a finite number > 0 or None, got {max_outage!r}")
        if not backoff_base >= 0:
            raise InputError(f"backoff_base must be >= 0, got {backoff_base!r}")
        if max_consecutive_failures is not None and max_consecutive_failures < 1:
            raise InputError(
                f"max_consecutive_failures must be >= 1 or None, got {max_consecutive_failures}"
            )
        reserved = {"model", "messages"} & set(extra_body or {})
        if reserved:
            raise InputError(f"extra_body may not set {sorted(reserved)}")
        self._key()  # a key a header cannot carry is refused now, not at the first request
        self.base_url = base_url.rstrip("/")
        self.model = model
        if cache is None or isinstance(cache, JudgementCache):
            self.cache = cache
        else:
            self.cache = JudgementCache(cache)
        self.max_concurrency = max_concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.max_total_retries = max_total_retries
        self.connect_retries = connect_retries
        self.max_outage = None if max_outage is None else float(max_outage)
        self.max_response_bytes = max_response_bytes
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
        self._failing_since: float | None = None
        self._last_error = ""
        self._fatal: JudgeError | None = None
        self._stop = threading.Event()
        self._sleep: Callable[[float], Any] = self._stop.wait  # woken when the run stops

    # -- secrets ----------------------------------------------------------------------------
    def _key(self) -> str | None:
        """The API key from the environment (``None`` when unset or empty)."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if not key:
            return None
        self._seen_keys.add(key)
        if any(c in key for c in "\r\n\0") or not key.isprintable() or not _latin1(key):
            raise JudgeError(
                f"${self.api_key_env} holds characters an HTTP header cannot carry (a newline, "
                "a control or non-Latin-1 character): check how it was set"
            )
        return key

    def _secrets(self) -> list[str]:
        return sorted(self._seen_keys | {k for k in [self._env_key()] if k})

    def _env_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def _redact(self, text: str) -> str:
        return self._endpoint.shown(text)

    @property
    def url(self) -> str:
        """The chat-completions URL, fit for a message (credentials redacted)."""
        return self._redact(self._endpoint.url)

    @property
    def version(self) -> str:
        """The version in this judge's cache keys (:func:`judgement_version`)."""
        return judgement_version(
            self._criteria(), temperature=self.temperature, extra_body=self.extra_body
        )

    def _criteria(self) -> str:
        raise NotImplementedError

    def cache_key(self, item: JudgeItem) -> str:
        return JudgementCache.key(self.model, self.version, item)

    # -- the public call ------------------------------------------------------------------
    def judge(self, items: Sequence[JudgeItem | tuple[str, str, str]]) -> list[Label | None]:
        """One label per item (``None`` where the judge failed), in the order given.

        Items already in the cache, or repeated in ``items``, are not asked again; the rest
        go to the endpoint, at most ``max_concurrency`` requests at once. Each answer is
        cached the moment it arrives, so an interrupted call loses nothing it had received.
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
        with self._lock:
            if self._fatal is not None:  # a new call after a stop starts afresh
                self._failing_since = None
                self._consecutive = 0
            self._fatal = None
            self._stop.clear()
        try:
            if todo:
                units = self._units(list(todo.items()))
                workers = min(self.max_concurrency, len(units))
                ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="negsample-judge")
                try:
                    futures = [ex.submit(self._ask, u) for u in units]
                    for fut in as_completed(futures):
                        answers.update(fut.result())
                except JudgeError:
                    raise
                except Exception as exc:  # never let a raw exception carry a secret out
                    self._abort("stopped")
                    raise JudgeError(
                        self._redact(f"{self.url}: unexpected {type(exc).__name__}: {exc}")
                    ) from None
                except BaseException:  # Ctrl-C: threads in flight stop at their next step
                    self._abort("interrupted")
                    raise
                finally:
                    # on an error: requests in flight stop at their next step (what they
                    # received is cached), the rest never start
                    ex.shutdown(wait=True, cancel_futures=True)
        finally:
            self.stats.add(pairs=len(its), cache_hits=len(its) - len(todo))
            self.stats.add(seconds=time.perf_counter() - t0)
        labels = [answers.get(k) for k in keys]
        self.stats.add(failures=sum(lab is None for lab in labels))
        return labels

    # -- what a subclass says ----------------------------------------------------------------
    def _units(self, todo: Unit) -> list[Unit]:
        raise NotImplementedError

    def _messages(self, unit: Unit) -> list[dict[str, str]]:
        raise NotImplementedError

    def _labels(self, content: str, unit: Unit) -> list[tuple[Label | None, str]]:
        """(label or None, the answer to cache) per item of ``unit``; malformed items are
        counted in ``stats.malformed`` here."""
        raise NotImplementedError

    # -- one request ------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._key()
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def _body(self, unit: Unit) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(unit),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        body.update(self.extra_body)
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _ask(self, unit: Unit) -> dict[str, Label | None]:
        content = self._request(self._body(unit), unit[0][0])
        if content is None:
            self._failed(len(unit))
            return {k: None for k, _ in unit}
        out: dict[str, Label | None] = {}
        ok = 0
        for (k, _), (label, answer) in zip(unit, self._labels(content, unit), strict=True):
            out[k] = label
            if label is not None:
                ok += 1
                if self.cache is not None:
                    self.cache.put(
                        k,
                        label,
                        model=self.model,
                        prompt_version=self.version,
                        answer=excerpt(self._redact(answer), _ANSWER_CHARS),
                    )
        if ok:
            with self._lock:
                self._consecutive = 0
        if ok < len(unit):
            self._failed(len(unit) - ok)
        return out

    def _request(self, data: bytes, key: str) -> str | None:
        """The answer text of one chat-completions request, retried as documented; None
        when it failed (counted); JudgeError when the run must stop."""
        attempt = refused = 0
        while True:
            self._check_running()
            self._wait_for_pause()
            self._check_running()
            retry_after: float | None = None
            self.stats.add(requests=1)
            try:
                payload = self._endpoint.post(
                    data,
                    self._headers(),
                    timeout=self.timeout,
                    max_bytes=self.max_response_bytes,
                )
            except HTTPFailure as f:
                failure = f
            else:
                with self._lock:
                    self._failing_since = None
                content = _content(payload)
                if content is None:
                    self.stats.add(malformed=1)
                    return None
                return content
            # -- a failed request: decide, count, and maybe retry
            self._last_error = failure.message
            kind = failure.kind
            if kind == "http":
                code = failure.status
                if code in _FATAL_STATUS or 300 <= code < 400:
                    if code in (401, 403):
                        hint = f"is ${self.api_key_env} set and valid?"
                    elif code == 404:
                        hint = "check base_url and model"
                    else:
                        hint = "redirects are not followed: use the URL it names" + (
                            f", {failure.location}" if failure.location else ""
                        )
                    detail = f": {failure.detail}" if failure.detail else ""
                    self._fatal_error(
                        f"{self.url}: HTTP {code} {failure.reason} for model {self.model!r} "
                        f"({hint}){detail}"
                    )
                if code != 429 and code < 500:  # the request itself is refused: not retried
                    return None
                retry_after = failure.retry_after
                if code >= 500:
                    self._outage()
            elif kind == "oversize":
                self.stats.add(oversize=1)
                return None
            elif kind == "timeout":
                self.stats.add(timeouts=1)
                self._outage()
            elif kind == "refused":
                self._outage()
                refused += 1
                if refused > self.connect_retries:
                    self._fatal_error(
                        f"{failure.message} ({refused} attempts); is the server running and "
                        "base_url right?"
                    )
            else:
                self._outage()
            # a retriable failure
            if kind != "refused" and attempt >= self.max_retries:
                return None
            if not self._take_retry():
                if kind == "refused":
                    self._fatal_error(f"{failure.message} (retry budget spent)")
                return None
            self.stats.add(retries=1)
            if retry_after is not None:
                # the server asked for a pause: every thread waits (in _wait_for_pause)
                delay = min(retry_after, self.backoff_max)
                with self._lock:
                    self._pause_until = max(self._pause_until, time.monotonic() + delay)
            else:
                self._sleep(self._clip(self._backoff(key, attempt)))
            attempt += 1

    # -- breakers ---------------------------------------------------------------------------
    def _abort(self, why: str) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = JudgeError(f"{self.url}: {why}")
            self._stop.set()

    def _fatal_error(self, message: str) -> None:
        err = JudgeError(self._redact(message))
        with self._lock:
            if self._fatal is None:
                self._fatal = err
            self._stop.set()
        raise err

    def _check_running(self) -> None:
        """Stop this thread when the run is stopping, or when no request has succeeded for
        ``max_outage`` seconds."""
        if self._fatal is not None:
            raise JudgeError(str(self._fatal))
        with self._lock:
            since = self._failing_since
        if since is not None and self.max_outage is not None:
            gone = time.monotonic() - since
            if gone > self.max_outage:
                s = self.stats
                self._fatal_error(
                    f"{self.url}: no reply succeeded for {gone:.0f} s (max_outage="
                    f"{self.max_outage:g}; {s.requests} requests, {s.timeouts} timeouts, "
                    f"{s.retries} retries; last error: {self._last_error}); stopping. "
                    "Answers received are cached; check the endpoint."
                )

    def _outage(self) -> None:
        with self._lock:
            if self._failing_since is None:
                self._failing_since = time.monotonic()

    def _clip(self, delay: float) -> float:
        """A wait never runs past the moment the outage breaker would stop the run."""
        with self._lock:
            since = self._failing_since
        if since is None or self.max_outage is None:
            return delay
        return max(0.0, min(delay, since + self.max_outage - time.monotonic() + 0.05))

    def _failed(self, k: int = 1) -> None:
        """Count ``k`` items left without a label; stop after too many in a row."""
        with self._lock:
            self._consecutive += k
            n = self._consecutive
        if self.max_consecutive_failures is not None and n >= self.max_consecutive_failures:
            s = self.stats
            last = f"; last error: {self._last_error}" if self._last_error else ""
            self._fatal_error(
                f"{self.url}: {n} items in a row got no label (max_consecutive_failures="
                f"{self.max_consecutive_failures}; so far: {s.requests} requests, "
                f"{s.timeouts} timeouts, {s.malformed} malformed answers, {s.retries} retries"
                f"{last}); stopping. Answers received are cached; check the endpoint and the "
                "model."
            )

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


class LLMJudge(_ChatJudge):
    """Label (query, positive, candidate) items with an LLM behind a chat-completions API,
    one request per item.

    Parameters
    ----------
    base_url : str
        The API root, e.g. ``http://localhost:8000/v1`` (vLLM), ``http://localhost:11434/v1``
        (Ollama), ``https://api.openai.com/v1``; ``/chat/completions`` is appended. The
        ``http_proxy`` / ``https_proxy`` / ``no_proxy`` variables are honoured (an
        ``http://`` proxy, with ``user:password@`` if it needs one).
    model : str
        The model name the server expects.
    api_key_env : str or None
        The environment variable holding the API key (sent as a bearer token, read at each
        request); when it is unset or empty no key is sent (local servers need none).
    prompt : JudgePrompt or None
        Default :data:`DEFAULT_PROMPT`.
    cache : JudgementCache, path or None
        A :class:`JudgementCache` or the path of its sqlite file; ``None`` caches nothing.
        Keyed by (model, :attr:`version`, query, positive, document).
    max_concurrency : int
        Requests in flight at once (threads).
    timeout : float
        Seconds per request, the whole of it: name resolution, connect, TLS, sending and
        every read of the reply end within it, however slowly the server trickles.
    max_retries : int
        Retries per item after a 429, a 5xx, a timeout or a connection error.
    max_total_retries : int
        Retries over the judge's lifetime; once spent, a retriable error fails the item
        at once.
    connect_retries : int
        A refused connection (or a host name that does not resolve) is retried this many
        times (with the backoff below), then the run stops with :class:`JudgeError`: the
        server is not there, and every request would wait for it.
    max_outage : float or None
        Stop with :class:`JudgeError` when no request has succeeded for this many seconds
        since the first failure (a dead or hanging endpoint: timeouts, 5xx, connection
        errors; a 429 is a live server and does not count). Retries are so bounded in time
        as well as in number. ``None``: never.
    max_response_bytes : int
        The largest reply read (default 4 MiB): a longer one fails its request at once,
        counted in ``stats.oversize``, and is not retried.
    backoff_base, backoff_max : float
        The wait before retry ``r`` (from 0) is ``min(backoff_max, backoff_base * 2**r)``
        times a jitter factor in [0.5, 1) that is a hash of (``seed``, item, ``r``), so
        reproducible. A ``Retry-After`` header (seconds or date) replaces it (capped at
        ``backoff_max``) and pauses every thread.
    max_consecutive_failures : int or None
        Stop with :class:`JudgeError` when this many items in a row get no label (a dead
        endpoint, a model that never answers in the format); ``None`` never stops.
    temperature, max_tokens : float, int
        Generation settings sent with each request (``max_tokens`` default 16).
    extra_body : mapping
        More JSON fields for each request (``{"seed": 0}``, vLLM's
        ``{"chat_template_kwargs": {"enable_thinking": False}}``...).
    seed : int
        Seeds the retry jitter.

    A reply is parsed with :func:`~negsample.scoring.parse_label`; anything else is
    counted as ``malformed`` and the item gets ``None`` (never a guessed label). Only valid
    labels are cached. Every message (exceptions, the cache's stored answers, the repr)
    passes through :func:`~negsample.scoring.redact` with the key: a server that echoes the
    ``Authorization`` header in an error body does not leak it.

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
        prompt: JudgePrompt | None = None,
    ) -> None:
        if prompt is not None and not isinstance(prompt, JudgePrompt):
            raise InputTypeError(f"prompt must be a JudgePrompt, got {type(prompt).__name__}")
        self.prompt = prompt if prompt is not None else DEFAULT_PROMPT
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

    def __repr__(self) -> str:
        return self._redact(
            f"LLMJudge(base_url={self.base_url!r}, model={self.model!r}, "
            f"max_concurrency={self.max_concurrency}, cache={self.cache!r})"
        )

    def _criteria(self) -> str:
        return self.prompt.criteria_id

    def _units(self, todo: Unit) -> list[Unit]:
        return [[kv] for kv in todo]

    def _messages(self, unit: Unit) -> list[dict[str, str]]:
        return self.prompt.messages(unit[0][1])

    def _labels(self, content: str, unit: Unit) -> list[tuple[Label | None, str]]:
        label = parse_label(content)
        if label is None:
            self.stats.add(malformed=1)
        return [(label, content)]


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _item(x: Any, i: int) -> JudgeItem:
    if not isinstance(x, tuple) or len(x) != 3 or not all(isinstance(t, str) for t in x):
        raise InputTypeError(
            f"item {i}: expected (query, positive, document) strings, got {x!r:.80}"
        )
    return JudgeItem(*x)


def _content(payload: bytes) -> str | None:
    """The first choice's message text of a chat-completions reply, or None."""
    try:
        obj = json.loads(payload)
        content = obj["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


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
                raise InputTypeError(f"{name} must be a Judge (with a judge() method), got {j!r}")
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
