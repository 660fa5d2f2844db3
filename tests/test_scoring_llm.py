"""LLMJudge against a chat-completions server on 127.0.0.1 started by the tests: answers in
every accepted format, malformed answers, timeouts, 429/5xx retries with Retry-After, the
cache (no request on a rerun, nothing asked twice after a kill), bounded concurrency."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from negsample.scoring import (
    DEFAULT_PROMPT,
    CascadeJudge,
    JudgeError,
    JudgeItem,
    JudgementCache,
    JudgePrompt,
    LLMJudge,
    parse_label,
)

ROOT = Path(__file__).resolve().parents[1]
_DOC = re.compile(r"Candidate paragraph:\n(.*?)\n\nReply with", re.S)

# a reply: (status, headers, body text or None for a chat answer, seconds to wait first)
Reply = tuple[int, dict[str, str], str | None, float]
Plan = Callable[[str, int, dict[str, Any]], Reply]


class Server:
    """A threaded chat-completions server. ``plan(document, attempt, request)`` decides
    each reply; the answer is the document's text after ``=>`` by default."""

    def __init__(self, plan: Plan | None = None) -> None:
        self.plan = plan or (lambda doc, attempt, req: (200, {}, None, 0.0))
        self.lock = threading.Lock()
        self.requests: list[str] = []  # document of each request, in arrival order
        self.answered: list[str] = []  # documents that got a 200 reply
        self.headers: list[dict[str, str]] = []
        self.models: list[str] = []
        self.inflight = 0
        self.max_inflight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # one reply, one packet: no 40 ms delayed ACKs
            wbufsize = -1

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                doc = _DOC.search(body["messages"][-1]["content"]).group(1)  # type: ignore[union-attr]
                with server.lock:
                    attempt = server.requests.count(doc)
                    server.requests.append(doc)
                    server.headers.append(dict(self.headers))
                    server.models.append(body["model"])
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                counted = True
                try:
                    status, headers, text, wait = server.plan(doc, attempt, body)
                    if wait:
                        time.sleep(wait)
                    if text is None:
                        text = doc.split("=>", 1)[1] if "=>" in doc else "HN"
                    payload = (
                        json.dumps(
                            {"choices": [{"message": {"role": "assistant", "content": text}}]}
                        )
                        if status == 200
                        else json.dumps({"error": text})
                    ).encode()
                    # leaving the count before the reply goes out: a client that gets it may
                    # send its next request before this handler returns
                    with server.lock:
                        server.inflight -= 1
                        counted = False
                    try:
                        self.send_response(status)
                        for k, v in headers.items():
                            self.send_header(k, v)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    if status == 200:
                        with server.lock:
                            server.answered.append(doc)
                finally:
                    if counted:
                        with server.lock:
                            server.inflight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def _judge(server: Server, **kw: Any) -> LLMJudge:
    args: dict[str, Any] = dict(
        base_url=server.url, model="test-model", backoff_base=0.01, timeout=5.0
    )
    args.update(kw)
    return LLMJudge(**args)


def _items(docs: list[str]) -> list[JudgeItem]:
    return [JudgeItem("what lowers LDL?", "Oats lower LDL.", d) for d in docs]


def test_parse_label() -> None:
    good = {
        "FN": "FN",
        " hn\n": "HN",
        "**TN**": "TN",
        "`HN`.": "HN",
        "Label: FN": "FN",
        "answer - tn": "TN",
        "False negative": "FN",
        "hard_negative": "HN",
        '"TN"': "TN",
        "HN - it is about oats but not LDL": "HN",
        "<think>maybe FN? no.</think>\nHN": "HN",
        '{"label": "fn"}': "FN",
    }
    for text, want in good.items():
        assert parse_label(text) == want, text
    for bad in [
        "",
        "The answer is HN",
        "not FN",
        "HNX",
        "FN/HN?",
        "{bad json",
        '{"x": 1}',
        "maybe",
    ]:
        assert parse_label(bad) is None, bad


def test_well_formed_and_malformed(server: Server) -> None:
    docs = ["a=>FN", "b=>**HN**", "c=>Label: TN", "d=>I am not sure", "e=>hard negative", "a=>FN"]
    judge = _judge(server)
    labels = judge.judge(_items(docs))
    assert labels == ["FN", "HN", "TN", None, "HN", "FN"]
    st = judge.stats
    assert st.pairs == 6 and st.requests == 5 and st.cache_hits == 1  # the repeat is not sent
    assert st.malformed == 1 and st.failures == 1 and st.retries == 0
    # the default prompt was sent with the query, the positive and the document
    assert server.models == ["test-model"] * 5
    assert "Authorization" not in server.headers[0]


def test_api_key_from_the_environment(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-test")
    _judge(server, api_key_env="MY_JUDGE_KEY").judge(_items(["a=>HN"]))
    assert server.headers[-1]["Authorization"] == "Bearer sk-test"


def test_timeouts_are_retried_then_fail() -> None:
    server = Server(lambda doc, attempt, req: (200, {}, None, 1.5 if doc.startswith("slow") else 0))
    try:
        judge = _judge(server, timeout=0.3, max_retries=1)
        labels = judge.judge(_items(["slow=>HN", "fast=>TN"]))
        assert labels == [None, "TN"]
        assert judge.stats.timeouts == 2 and judge.stats.retries == 1
        assert judge.stats.failures == 1
    finally:
        server.close()


def test_429_and_500_retried_with_retry_after() -> None:
    def plan(doc: str, attempt: int, req: dict[str, Any]) -> Reply:
        if doc.startswith("rate") and attempt == 0:
            return 429, {"Retry-After": "2"}, "slow down", 0.0
        if doc.startswith("flaky") and attempt < 2:
            return 500, {}, "oops", 0.0
        if doc.startswith("bad"):
            return 400, {}, "context too long", 0.0
        return 200, {}, None, 0.0

    server = Server(plan)
    try:
        judge = _judge(server, backoff_base=0.5, backoff_max=30.0)
        slept: list[float] = []
        judge._sleep = slept.append  # record the waits instead of sleeping
        labels = judge.judge(_items(["rate=>FN", "flaky=>TN", "bad=>HN"]))
        assert labels == ["FN", "TN", None]
        st = judge.stats
        assert st.retries == 3 and st.requests == 6 and st.failures == 1
        assert server.requests.count("bad=>HN") == 1  # a 400 is not retried
        # Retry-After: 2 was honoured (the pause), the 500s backed off 0.5 * 2**r * [0.5, 1)
        assert any(1.5 < s <= 2.0 for s in slept)
        backoffs = sorted(s for s in slept if s < 1.5)
        assert len(backoffs) == 2
        assert 0.25 <= backoffs[0] < 0.5 and 0.5 <= backoffs[1] < 1.0
        # the jitter is a function of (seed, item, attempt): reproducible
        key = judge.cache_key(_items(["flaky=>TN"])[0])
        assert judge._backoff(key, 1) == _judge(server, backoff_base=0.5)._backoff(key, 1)
        assert judge._backoff(key, 1) != _judge(server, backoff_base=0.5, seed=1)._backoff(key, 1)
    finally:
        server.close()


def test_retry_budget_and_fatal_errors() -> None:
    server = Server(lambda doc, attempt, req: (503, {}, "busy", 0.0))
    try:
        judge = _judge(server, max_retries=5, max_total_retries=3)
        assert judge.judge(_items(["x=>HN", "y=>HN"])) == [None, None]
        assert judge.stats.retries == 3 and judge.stats.requests == 5
        # every item fails: the breaker stops the run with one clear line
        judge = _judge(server, max_retries=0, max_consecutive_failures=4)
        # threads in flight may add a failure or two before the run stops
        with pytest.raises(JudgeError, match=r"[4-9] items in a row got no label \(max_consec"):
            judge.judge(_items([f"z{i}=>HN" for i in range(10)]))
    finally:
        server.close()
    auth = Server(lambda doc, attempt, req: (401, {}, "invalid key", 0.0))
    try:
        with pytest.raises(JudgeError, match=r"HTTP 401.*OPENAI_API_KEY.*invalid key"):
            _judge(auth).judge(_items(["x=>HN"]))
        assert len(auth.requests) == 1
    finally:
        auth.close()


def test_connection_refused_stops_the_run_fast() -> None:
    s = Server()
    url = s.url
    s.close()  # nothing listens there any more
    judge = LLMJudge(base_url=url, model="m", connect_retries=1, backoff_base=0.0)
    with pytest.raises(JudgeError, match=r"connection refused \(2 attempts\); is the server"):
        judge.judge(_items([f"x{i}=>HN" for i in range(20)]))
    # one refused connection is retried connect_retries times, then the whole run stops
    assert judge.stats.requests <= 2 + 8 * 2 and judge.stats.retries >= 1


def test_cache_hit_on_rerun(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "cache" / "judgements.sqlite"
    docs = [f"d{i}=>{'FN' if i % 3 == 0 else 'HN'}" for i in range(12)] + ["m=>no idea"]
    first = _judge(server, cache=path).judge(_items(docs))
    n_requests = len(server.requests)
    assert n_requests == 13
    judge = _judge(server, cache=str(path))
    again = judge.judge(_items(docs))
    assert again == first
    # only the malformed answer (never cached) is asked again
    assert len(server.requests) == n_requests + 1 and server.requests[-1] == "m=>no idea"
    assert judge.stats.cache_hits == 12 and judge.stats.requests == 1
    assert len(JudgementCache(path)) == 12
    # another model, or another prompt, is another key
    _judge(server, cache=path, model="other").judge(_items(docs[:2]))
    other_prompt = JudgePrompt(user=DEFAULT_PROMPT.user.replace("Labels:", "The labels:"))
    _judge(server, cache=path, prompt=other_prompt).judge(_items(docs[:2]))
    assert len(server.requests) == n_requests + 1 + 4


def test_exception_after_k_answers_then_resume(tmp_path: Path) -> None:
    """The endpoint turns fatal after K answers: the run stops, the cache holds what was
    answered, and the rerun asks only for the rest."""
    k = 7
    state = {"ok": 0}
    lock = threading.Lock()

    def plan(doc: str, attempt: int, req: dict[str, Any]) -> Reply:
        with lock:
            if state["ok"] >= k:
                return 401, {}, "revoked", 0.0
            state["ok"] += 1
        return 200, {}, None, 0.0

    server = Server(plan)
    path = tmp_path / "j.sqlite"
    docs = [f"doc{i}=>{'FN' if i % 4 == 0 else 'TN'}" for i in range(25)]
    try:
        with pytest.raises(JudgeError, match="HTTP 401"):
            _judge(server, cache=path, max_concurrency=3).judge(_items(docs))
    finally:
        server.close()
    answered = set(server.answered)
    assert len(answered) == k
    assert len(JudgementCache(path)) == k
    healthy = Server()
    try:
        labels = _judge(healthy, cache=path, max_concurrency=3).judge(_items(docs))
        assert labels == [("FN" if i % 4 == 0 else "TN") for i in range(25)]
        assert not answered & set(healthy.requests)
        assert len(healthy.requests) == 25 - k
    finally:
        healthy.close()


def test_killed_run_resumed_without_repeats(tmp_path: Path) -> None:
    """A subprocess judging through a slow server is SIGKILLed mid-run; the rerun asks
    exactly the items the cache does not hold."""
    server = Server(lambda doc, attempt, req: (200, {}, None, 0.05))
    path = tmp_path / "killed.sqlite"
    docs = [f"k{i}=>{'HN' if i % 2 else 'FN'}" for i in range(60)]
    script = textwrap.dedent(
        f"""
        from negsample.scoring import LLMJudge, JudgeItem
        docs = {docs!r}
        j = LLMJudge(base_url={server.url!r}, model="test-model", cache={str(path)!r},
                     max_concurrency=2)
        j.judge([JudgeItem("what lowers LDL?", "Oats lower LDL.", d) for d in docs])
        print("finished")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(server.answered) < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert b"finished" not in out
        time.sleep(0.2)  # let the server's handler threads finish their writes
        cached = len(JudgementCache(path))
        assert 10 <= cached < 60
        before = len(server.requests)
        judge = _judge(server, cache=path)
        labels = judge.judge(_items(docs))
        assert labels == [("HN" if i % 2 else "FN") for i in range(60)]
        rerun = server.requests[before:]
        assert len(rerun) == 60 - cached
        assert judge.stats.cache_hits == cached
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()


def test_bounded_concurrency() -> None:
    server = Server(lambda doc, attempt, req: (200, {}, None, 0.05))
    try:
        judge = _judge(server, max_concurrency=3)
        judge.judge(_items([f"c{i}=>TN" for i in range(24)]))
        assert 2 <= server.max_inflight <= 3
        assert judge.stats.requests == 24
    finally:
        server.close()


def test_cascade_rejudges_only_the_flagged(tmp_path: Path) -> None:
    def plan(doc: str, attempt: int, req: dict[str, Any]) -> Reply:
        i = int(doc[1:].split("=")[0])
        if req["model"] == "cheap":
            return 200, {}, "FN" if i % 2 == 0 else "TN", 0.0
        return 200, {}, "FN" if i % 4 == 0 else "HN", 0.0  # the strong judge overturns half

    server = Server(plan)
    try:
        cheap = _judge(server, model="cheap", cache=tmp_path / "c.sqlite")
        strong = _judge(server, model="strong", cache=tmp_path / "c.sqlite")
        cascade = CascadeJudge(cheap, strong)
        docs = [f"x{i}=>?" for i in range(12)]
        labels = cascade.judge(_items(docs))
        assert labels == ["FN" if i % 4 == 0 else ("HN" if i % 2 == 0 else "TN") for i in range(12)]
        assert server.models.count("cheap") == 12 and server.models.count("strong") == 6
        assert (cascade.escalated, cascade.confirmed, cascade.overturned) == (6, 3, 3)
        assert cascade.stats.requests == 18
    finally:
        server.close()


def test_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="base_url"):
        LLMJudge(base_url="localhost:8000", model="m")
    with pytest.raises(ValueError, match="max_concurrency"):
        LLMJudge(base_url="http://x/v1", model="m", max_concurrency=0)
    with pytest.raises(ValueError, match="fields"):
        JudgePrompt(user="judge {query} and {document}")
    with pytest.raises(ValueError, match="extra_body may not set"):
        LLMJudge(base_url="http://x/v1", model="m", extra_body={"messages": []})
    judge = LLMJudge(base_url="http://x/v1", model="m")
    with pytest.raises(TypeError, match="item 0"):
        judge.judge([("only", "two")])  # type: ignore[list-item]
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not an sqlite file, but a long enough text to have a header" * 20)
    with pytest.raises(ValueError, match="not a usable sqlite file"):
        JudgementCache(bad)
