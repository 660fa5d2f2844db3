"""The judge's transport against hostile servers on 127.0.0.1 (issue 20, items 6 and 7):
secrets are redacted from every message, a request ends by its deadline however the server
trickles or hangs, a refused connection fails fast, a reply over the size cap is refused
without being read, and retries are bounded in time.

Each server here is a raw socket whose handler is told exactly what to send. Elapsed times
are asserted only where the deadline is the behaviour under test, with generous margins.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from negsample.scoring import JudgeError, JudgeItem, LLMJudge, redact

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-live-0123456789abcdefSECRET"

Handler = Callable[[socket.socket, bytes], None]


class RawServer:
    """Accepts connections on 127.0.0.1; each one is read up to the end of its request
    (head and Content-Length body), then given to ``handler(conn, request_bytes)``."""

    def __init__(self, handler: Handler, read_request: bool = True) -> None:
        self.handler = handler
        self.read_request = read_request
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.requests: list[bytes] = []
        self.sent = 0
        self.lock = threading.Lock()
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            req = _read_request(conn) if self.read_request else b""
            with self.lock:
                self.requests.append(req)
            self.handler(conn, req)
        except OSError:
            pass
        finally:
            conn.close()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        with self.lock:
            self.sent += len(data)

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _reply(status: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _chat(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()


@pytest.fixture
def raw() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def make(handler: Handler, **kw: Any) -> RawServer:
        s = RawServer(handler, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def _items(docs: list[str]) -> list[JudgeItem]:
    return [JudgeItem("what lowers LDL?", "Oats lower LDL.", d) for d in docs]


def _judge(url: str, **kw: Any) -> LLMJudge:
    args: dict[str, Any] = dict(base_url=url, model="m", backoff_base=0.01, timeout=5.0)
    args.update(kw)
    return LLMJudge(**args)


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc.args)


# -- item 6: secrets never leave in a message ---------------------------------------------------


def test_redact() -> None:
    cases = {
        "Authorization: Bearer abc.def-123\r\nHost: x": "Authorization: [redacted]\r\nHost: x",
        '{"authorization": "Bearer abcd1234"}': '{"authorization": "[redacted]"}',
        "'Authorization': 'Bearer abcd1234'": "'Authorization': '[redacted]'",
        "see https://h/v1?api-key=zz&model=m#x": "see https://h/v1?api-key=[redacted]&model=m#x",
        "GET /v1?key=zz;sig=yy HTTP/1.1": "GET /v1?key=[redacted];sig=[redacted] HTTP/1.1",
        "https://user:pw@h/v1": "https://user:[redacted]@h/v1",
        "x-api-key: abcdef": "x-api-key: [redacted]",
        "token bearer%20abcd1234": "token bearer [redacted]",
        '{"api_key": "k1", "code": "context_length_exceeded"}': (
            '{"api_key": "[redacted]", "code": "context_length_exceeded"}'
        ),
        "maximum context length is 4096 tokens": "maximum context length is 4096 tokens",
    }
    for text, want in cases.items():
        assert redact(text) == want, text
    # the secret itself, wherever and however it is written
    s = "p@ss word/+="
    import base64
    import urllib.parse

    for form in (s, urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s)):
        assert s not in redact(f"x {form} y", [s]) and "[redacted]" in redact(f"x {form} y", [s])
    b64 = base64.b64encode(s.encode()).decode()
    assert b64.rstrip("=") not in redact(b64, [s])


def _echo(status: str, reason_key: bool = False, expect_key: bool = True) -> Handler:
    """Replies ``status`` with every request header echoed in the body (as a JSON dump and as
    raw lines) and, if asked, the key in the reason phrase."""

    def handle(conn: socket.socket, req: bytes) -> None:
        head = req.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        hdrs = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        auth = f"Authorization: {hdrs.get('Authorization', '')}\r\n".encode("latin-1")
        assert KEY.encode() in auth or not expect_key
        body = auth + json.dumps({"error": {"message": "bad request", "echo": hdrs}}).encode()
        body += b"\n" + head.encode("latin-1")
        line = status
        if reason_key:
            code = status.split()[0]
            line = f"{code} {hdrs.get('Authorization', '')}"
        conn.sendall(_reply(line, body, {"Location": f"https://h/v1?api-key={KEY}"}))

    return handle


@pytest.mark.parametrize(
    "status",
    ["401 Unauthorized", "403 Forbidden", "404 Not Found", "302 Found", "400 Bad", "500 Oops"],
)
def test_echoed_key_never_in_a_message(
    raw: Callable[..., RawServer],
    status: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MY_KEY", KEY)
    server = raw(_echo(status, reason_key=status.startswith("40")))
    judge = _judge(
        server.url,
        api_key_env="MY_KEY",
        cache=tmp_path / "c.sqlite",
        max_retries=1,
        max_consecutive_failures=3,
    )
    with caplog.at_level("DEBUG"), pytest.raises(JudgeError) as info:
        judge.judge(_items([f"d{i}" for i in range(6)]))
    # the server did receive the key: the test is not vacuous
    assert any(KEY.encode() in r for r in server.requests)
    text = _all_text(info.value)
    assert KEY not in text and "[redacted]" in text, text
    assert "\n" not in str(info.value)  # one line
    assert len(str(info.value)) < 700  # the body excerpt is capped
    assert KEY not in repr(judge) and KEY not in str(judge.stats.as_dict())
    out = capsys.readouterr()
    assert KEY not in out.out + out.err + caplog.text
    judge.cache.close()  # type: ignore[union-attr]
    for f in tmp_path.iterdir():
        assert KEY.encode() not in f.read_bytes(), f


def test_key_echoed_in_an_answer_is_not_cached(
    raw: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MY_KEY", KEY)

    def handle(conn: socket.socket, req: bytes) -> None:
        auth = [ln for ln in req.decode("latin-1").split("\r\n") if ln.startswith("Authorization")]
        conn.sendall(_reply("200 OK", _chat(f"HN - you sent {auth[0]} and {KEY}")))

    server = raw(handle)
    judge = _judge(server.url, api_key_env="MY_KEY", cache=tmp_path / "c.sqlite")
    assert judge.judge(_items(["a", "b"])) == ["HN", "HN"]
    judge.cache.close()  # type: ignore[union-attr]
    blobs = b"".join(f.read_bytes() for f in tmp_path.iterdir())
    assert KEY.encode() not in blobs and b"[redacted]" in blobs


def test_key_in_the_url_is_redacted(raw: Callable[..., RawServer]) -> None:
    server = raw(_echo("401 Unauthorized", expect_key=False))
    url = server.url.replace("/v1", f"/v1?api-key={KEY}")
    url = url.replace("http://", f"http://user:{KEY}@")
    judge = LLMJudge(base_url=url, model="m", api_key_env=None)
    assert KEY not in repr(judge) and KEY not in judge.url
    with pytest.raises(JudgeError) as info:
        judge.judge(_items(["a"]))
    assert KEY not in _all_text(info.value)
    with pytest.raises(ValueError, match="not a valid URL") as bad:
        LLMJudge(base_url=f"http://h:99999/v1?api-key={KEY}", model="m")
    assert KEY not in str(bad.value)


def test_key_a_header_cannot_carry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", KEY + "\n")
    with pytest.raises(JudgeError, match=r"\$MY_KEY holds characters") as info:
        LLMJudge(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="MY_KEY")
    assert KEY not in _all_text(info.value)


def test_uncaught_judge_error_in_a_subprocess_leaks_nothing(
    raw: Callable[..., RawServer], tmp_path: Path
) -> None:
    """What a user sees: DEBUG logging on, the JudgeError left uncaught (a traceback on
    stderr), the stats printed."""
    server = raw(_echo("401 Unauthorized", reason_key=True))
    script = textwrap.dedent(
        f"""
        import logging
        logging.basicConfig(level=logging.DEBUG)
        from negsample.scoring import LLMJudge, JudgeItem
        j = LLMJudge(base_url={server.url!r}, model="m", api_key_env="SUB_KEY",
                     cache={str(tmp_path / "sub.sqlite")!r})
        print(j, j.stats)
        try:
            j.judge([JudgeItem("q", "p", "d")])
        finally:
            print(j.stats.as_dict())
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SUB_KEY=KEY)
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "JudgeError" in proc.stderr, proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    assert any(KEY.encode() in r for r in server.requests)


# -- item 7: deadlines, refused connections, size caps, bounded retries ------------------------


def _trickle(head_too: bool) -> Handler:
    def handle(conn: socket.socket, req: bytes) -> None:
        body = _chat("HN")
        data = _reply("200 OK", body)
        if not head_too:
            split = data.index(b"\r\n\r\n") + 4
            conn.sendall(data[:split])
            data = data[split:]
        for b in data:
            conn.sendall(bytes([b]))
            time.sleep(0.25)

    return handle


@pytest.mark.parametrize("head_too", [False, True])
def test_trickling_server_is_cut_at_the_deadline(
    raw: Callable[..., RawServer], head_too: bool
) -> None:
    server = raw(_trickle(head_too))
    judge = _judge(server.url, timeout=1.5, max_retries=0)
    t0 = time.monotonic()
    assert judge.judge(_items(["a"])) == [None]
    elapsed = time.monotonic() - t0
    # the reply needs ~20 s at this pace; the request ends at its 1.5 s deadline
    assert 1.3 < elapsed < 4.0, elapsed
    assert judge.stats.timeouts == 1 and judge.stats.failures == 1


def test_hanging_server_is_cut_at_the_deadline(raw: Callable[..., RawServer]) -> None:
    release = threading.Event()
    server = raw(lambda conn, req: release.wait(30))
    try:
        judge = _judge(server.url, timeout=1.0, max_retries=0)
        t0 = time.monotonic()
        assert judge.judge(_items(["a"])) == [None]
        assert 0.9 < time.monotonic() - t0 < 3.5
        assert judge.stats.timeouts == 1
        # a server that accepts and never reads: the same (the request head is not read)
        silent = raw(lambda conn, req: release.wait(30), read_request=False)
        t0 = time.monotonic()
        assert _judge(silent.url, timeout=1.0, max_retries=0).judge(_items(["a"])) == [None]
        assert time.monotonic() - t0 < 3.5
    finally:
        release.set()


def test_hanging_endpoint_stops_the_run_in_bounded_time(raw: Callable[..., RawServer]) -> None:
    release = threading.Event()
    server = raw(lambda conn, req: release.wait(60))
    try:
        judge = _judge(
            server.url,
            timeout=0.5,
            max_retries=50,
            backoff_base=0.05,
            max_outage=1.5,
            max_consecutive_failures=None,
            max_concurrency=4,
        )
        t0 = time.monotonic()
        with pytest.raises(JudgeError, match=r"no reply succeeded for \d+ s \(max_outage=1.5"):
            judge.judge(_items([f"h{i}" for i in range(40)]))
        # without max_outage: 40 items x 51 attempts x 0.5 s; with it, about 1.5 s + a timeout
        assert time.monotonic() - t0 < 8.0
    finally:
        release.set()


def test_refused_connection_fails_fast_with_one_line() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on port
    judge = LLMJudge(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", backoff_base=0.2, connect_retries=2
    )
    t0 = time.monotonic()
    with pytest.raises(JudgeError) as info:
        judge.judge(_items([f"r{i}" for i in range(100)]))
    elapsed = time.monotonic() - t0
    msg = str(info.value)
    assert "connection refused (3 attempts); is the server running" in msg and "\n" not in msg
    # 3 attempts with backoffs 0.1-0.2 s and 0.2-0.4 s, not 100 items x 6 retries
    assert elapsed < 5.0, elapsed
    assert judge.stats.requests < 40


def test_unresolvable_host_fails_fast() -> None:
    judge = LLMJudge(base_url="http://judge.invalid/v1", model="m", backoff_base=0.0)
    with pytest.raises(JudgeError, match="does not resolve"):
        judge.judge(_items(["a"]))


def test_over_size_reply_with_a_length_is_refused_unread(raw: Callable[..., RawServer]) -> None:
    def handle(conn: socket.socket, req: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 150000000\r\n\r\n")
        zeros = b"0" * 65536
        try:
            for _ in range(150_000_000 // 65536):
                server.send(conn, zeros)
        except OSError:
            pass

    server = raw(handle)
    judge = _judge(server.url, max_response_bytes=1 << 20)
    t0 = time.monotonic()
    assert judge.judge(_items(["a", "b"])) == [None, None]
    assert time.monotonic() - t0 < 5.0
    st = judge.stats
    assert st.oversize == 2 and st.failures == 2 and st.retries == 0


def test_over_size_reply_without_a_length_stops_at_the_cap(raw: Callable[..., RawServer]) -> None:
    done = threading.Event()

    def handle(conn: socket.socket, req: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")  # ends when closed
        zeros = b"0" * 65536
        try:
            for _ in range(150_000_000 // 65536):
                server.send(conn, zeros)
        except OSError:
            pass
        finally:
            done.set()

    server = raw(handle)
    judge = _judge(server.url, max_response_bytes=1 << 20)
    tracemalloc.start()
    try:
        assert judge.judge(_items(["a"])) == [None]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert judge.stats.oversize == 1
    assert peak < 16 * 2**20, peak  # a 150 MB reply is never held, only the 1 MiB cap
    done.wait(10)
    assert server.sent < 50_000_000  # the client hung up long before the end


def test_retry_waits_never_outlast_the_outage_window(raw: Callable[..., RawServer]) -> None:
    server = raw(lambda conn, req: conn.sendall(_reply("503 Busy", b"busy")))
    judge = _judge(server.url, backoff_base=30.0, backoff_max=30.0, max_retries=5, max_outage=1.0)
    t0 = time.monotonic()
    with pytest.raises(JudgeError, match="no reply succeeded"):
        judge.judge(_items(["a"]))
    # a 30 s backoff is cut to what is left of the 1 s outage window
    assert time.monotonic() - t0 < 5.0


def test_http_proxy_from_the_environment(
    raw: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def handle(conn: socket.socket, req: bytes) -> None:
        conn.sendall(_reply("200 OK", _chat("TN")))

    proxy = raw(handle)
    port = proxy.url.split(":")[2].split("/")[0]
    monkeypatch.setenv("http_proxy", f"http://alice:{KEY}@127.0.0.1:{port}")
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    judge = LLMJudge(base_url="http://judge.internal:8000/v1", model="m", api_key_env=None)
    assert judge.judge(_items(["a"])) == ["TN"]
    line = proxy.requests[0].split(b"\r\n")[0]
    assert line == b"POST http://judge.internal:8000/v1/chat/completions HTTP/1.1"
    assert b"Proxy-Authorization: Basic " in proxy.requests[0]
    assert KEY not in repr(judge)


def test_a_call_after_a_stop_starts_afresh(raw: Callable[..., RawServer]) -> None:
    mode = {"down": True}

    def handle(conn: socket.socket, req: bytes) -> None:
        if mode["down"]:
            conn.sendall(_reply("503 Busy", b"busy"))
        else:
            conn.sendall(_reply("200 OK", _chat("TN")))

    server = raw(handle)
    judge = _judge(server.url, backoff_base=0.05, max_retries=50, max_outage=0.5)
    with pytest.raises(JudgeError, match="no reply succeeded"):
        judge.judge(_items(["a"]))
    mode["down"] = False  # the endpoint is back: the outage clock of the last call is gone
    assert judge.judge(_items(["a", "b"])) == ["TN", "TN"]
