"""One JSON POST with a whole-request deadline and a cap on the reply, and the redaction
that keeps secrets out of every message the judges produce.

Only the standard library (``http.client``, ``socket``, ``ssl``). Why not ``urllib``: its
``timeout`` bounds each socket operation, not the request, so a server that trickles one
byte per second holds a request for as long as it likes, and ``read()`` takes a reply of
any size into memory.

The deadline covers name resolution, connect, the TLS handshake, a proxy's ``CONNECT``,
sending, and every read of the status line, headers and body. Each socket operation gets
the time left as its timeout, and one watchdog thread (shared by every request of the
process) shuts down the socket of a request whose deadline has passed, which wakes any read
blocked on it whatever the server sends: a request never outlives its deadline by more than
the watchdog's reaction (milliseconds).
"""

from __future__ import annotations

import base64
import email.utils
import heapq
import http.client
import ipaddress
import itertools
import re
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

__all__ = ["Endpoint", "HTTPFailure", "excerpt", "redact", "redact_url"]

REDACTED = "[redacted]"
_EXCERPT = 200  # characters of a server's text kept in a message
_ERROR_BODY = 4096  # bytes of an error reply read for its excerpt

# -- redaction -------------------------------------------------------------------------------

_KEYLIKE = (
    r"api[-_]?key|apikey|key|token|access[-_]?token|auth|authorization|sig|signature|"
    r"secret|client[-_]?secret|password|passwd|pwd|session|code"
)
_KEYLIKE_FIELD = (
    r"api[-_]?key|apikey|key|token|access[-_]?token|refresh[-_]?token|authorization|"
    r"secret|client[-_]?secret|password|passwd"
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # header lines and header dumps: Authorization: ..., X-Api-Key: ..., Cookie: ...
    (
        re.compile(
            r"(?i)\b((?:proxy-)?authorization|x-api-key|api-key|openai-api-key|x-goog-api-key|"
            r"cookie|set-cookie)([\"']?\s*:\s*[\"']?)[^\r\n\"',}]*"
        ),
        rf"\1\2{REDACTED}",
    ),
    # a bearer or basic credential anywhere else
    (re.compile(r"(?i)\b(bearer)(?:\s+|%20)[A-Za-z0-9._~+/=:-]{4,}"), rf"\1 {REDACTED}"),
    (re.compile(r"(?i)\b(basic)(?:\s+|%20)[A-Za-z0-9+/]{8,}={0,2}"), rf"\1 {REDACTED}"),
    # key-like query parameters: ?api-key=..., &token=..., ;sig=...
    (re.compile(rf"(?i)([?&;](?:{_KEYLIKE})=)[^&;#\s\"'<>]*"), rf"\1{REDACTED}"),
    # "api_key": "...", 'token': '...' in JSON or reprs
    (
        re.compile(rf"(?i)([\"'](?:{_KEYLIKE_FIELD})[\"']\s*:\s*[\"'])[^\"']*"),
        rf"\1{REDACTED}",
    ),
    # user:password@ in a URL
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/@\s:]*:)[^@/\s]*@"), rf"\1{REDACTED}@"),
]


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with secrets masked as ``[redacted]``: each of ``secrets`` wherever it
    appears (as it is, URL-quoted and base64-encoded), bearer and basic credentials,
    ``Authorization``-like header values, key-like query parameters (``api-key=``,
    ``token=``, ``sig=``...), key-like JSON fields and the password of a URL.

    Examples
    --------
    >>> from negsample.scoring import redact
    >>> redact('{"Authorization": "Bearer sk-abc123"} from https://h/v1?api-key=xyz&x=1')
    '{"Authorization": "[redacted]"} from https://h/v1?api-key=[redacted]&x=1'
    >>> redact("the key is s3cr3t-v4lue", secrets=["s3cr3t-v4lue"])
    'the key is [redacted]'
    """
    out = str(text)
    for s in sorted({s for s in secrets if s}, key=len, reverse=True):
        forms = {s, urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s)}
        forms.add(base64.b64encode(s.encode("utf-8", "replace")).decode("ascii").rstrip("="))
        for f in sorted(forms, key=len, reverse=True):
            if f:
                out = out.replace(f, REDACTED)
    for pat, repl in _PATTERNS:
        out = pat.sub(repl, out)
    return out


def redact_url(url: str, secrets: Iterable[str | None] = ()) -> str:
    """A URL fit for a message: its password and key-like query parameters masked."""
    return redact(url, secrets)


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    """One line of at most ``limit`` characters: whitespace runs become one space, other
    control characters are dropped. Redact *before* calling (a cut must not split a secret
    out of reach of the redaction)."""
    flat = " ".join(text.split())
    flat = "".join(ch for ch in flat if ch.isprintable())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# -- failures --------------------------------------------------------------------------------


@dataclass
class HTTPFailure(Exception):
    """A request that got no usable reply.

    ``kind``: ``"timeout"`` (the deadline passed), ``"refused"`` (connection refused or a
    name that does not resolve), ``"connect"`` (another connection error), ``"http"`` (a
    status outside 2xx: ``status``, ``reason``, ``detail`` the redacted start of the body,
    ``retry_after``, ``location``), ``"oversize"`` (a reply over the size cap),
    ``"protocol"`` (the server broke HTTP: closed early, sent garbage). ``message`` is one
    redacted line.
    """

    kind: str
    message: str
    status: int = 0
    reason: str = ""
    detail: str = ""
    retry_after: float | None = None
    location: str = ""

    def __str__(self) -> str:
        return self.message


def retry_after(value: str | None) -> float | None:
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
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


# -- the deadline ----------------------------------------------------------------------------


class _Guard:
    """One request's deadline; the watchdog shuts its connection's socket down when it
    passes (never after the request has finished: ``done`` is set under the same lock)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.lock = threading.Lock()
        self.conn: http.client.HTTPConnection | None = None
        # the connected socket: the response keeps reading from it after http.client's
        # connection lets go of it (``Connection: close``)
        self.sock: socket.socket | None = None
        self.expired = False
        self.done = False

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> float:
        """The seconds left; raise a timeout when none are."""
        left = self.left()
        if left <= 0 or self.expired:
            raise _Expired
        return left

    def expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            live = getattr(self.conn, "sock", None) if self.conn is not None else None
            for sock in {id(x): x for x in (live, self.sock) if x is not None}.values():
                try:  # the base method: an SSLSocket's own shutdown would drop its SSL state
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass

    def finish(self) -> None:
        with self.lock:
            self.done = True


class _Expired(Exception):
    pass


class _Watchdog:
    """One daemon thread that expires guards at their deadlines."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, _Guard]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, guard: _Guard) -> None:
        with self._cv:
            heapq.heappush(self._heap, (guard.deadline, next(self._seq), guard))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="negsample-http-deadline", daemon=True
                )
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap:
                    self._cv.wait()
                deadline, _, guard = self._heap[0]
                if guard.done:
                    heapq.heappop(self._heap)
                    continue
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                heapq.heappop(self._heap)
            guard.expire()


_WATCHDOG = _Watchdog()


def _resolve(host: str, port: int, guard: _Guard) -> list[Any]:
    """``getaddrinfo`` bounded by the deadline (in a daemon thread: a resolver that hangs
    is left behind, never waited for, not even at exit)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # a literal address: nothing to look up
        return list(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["infos"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except OSError as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="negsample-resolve", daemon=True).start()
    if not done.wait(guard.check()):
        raise _Expired
    if "error" in box:
        raise box["error"]
    return list(box["infos"])


def _connector(guard: _Guard) -> Any:
    """``socket.create_connection`` with name resolution bounded by the deadline too."""

    def create(address: tuple[str, int], timeout: Any = None, source: Any = None) -> socket.socket:
        host, port = address
        err: OSError | None = None
        for family, kind, proto, _, addr in _resolve(host, port, guard):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(guard.check())
                sock.connect(addr)
                return sock
            except _Expired:
                sock.close()
                raise
            except OSError as exc:
                err = exc
                sock.close()
        raise err if err is not None else OSError(f"no address for {host}")

    return create


class _HTTPS(http.client.HTTPSConnection):
    """HTTPS whose handshake runs after the socket is in place, so the watchdog can cut
    it short too (``wrap_socket`` would handshake before the connection holds it)."""

    guard: _Guard

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP, and a proxy's CONNECT
        host = self._tunnel_host or self.host  # type: ignore[attr-defined]
        ctx: ssl.SSLContext = self._context  # type: ignore[attr-defined]
        s = ctx.wrap_socket(self.sock, server_hostname=host, do_handshake_on_connect=False)
        self.sock = s
        s.settimeout(self.guard.check())
        s.do_handshake()


# -- one endpoint ----------------------------------------------------------------------------


class Endpoint:
    """A URL to POST JSON to, parsed and checked once.

    Parameters
    ----------
    url : ``http://`` or ``https://`` URL (its query string is kept).
    secrets : a callable returning the values to mask in messages (the API key, read when
        a message is made).
    """

    def __init__(self, url: str, secrets: Any = None) -> None:
        self._secrets = secrets or (lambda: ())
        self._userinfo: list[str] = []
        self.proxy: tuple[str, int, list[str], str | None] | None = None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InputError(
                f"base_url must start with http:// or https://, got {self.shown(repr(url))}"
            )
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise InputError(f"{self.shown(url)}: not a valid URL (host or port)") from None
        if not parts.hostname:
            raise InputError(f"{self.shown(url)}: no host in the URL")
        if any(c.isspace() or ord(c) < 32 for c in url):
            raise InputError(f"{self.shown(url)}: the URL holds spaces or control characters")
        self.url = url
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.https else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._userinfo = [parts.password] if parts.password else []
        self.proxy = self._proxy()

    def secrets(self) -> list[str]:
        out = [s for s in self._secrets() if s]
        out += self._userinfo
        if self.proxy is not None:
            out += self.proxy[2]
        return out

    def shown(self, text: str) -> str:
        """``text`` redacted for a message (the URL's and proxy's credentials, the key)."""
        return redact(text, self.secrets())

    def _proxy(self) -> tuple[str, int, list[str], str | None] | None:
        """(host, port, credentials, Proxy-Authorization) of the proxy the environment names
        for this URL (``http_proxy`` / ``https_proxy`` / ``no_proxy``, as urllib reads them),
        or None."""
        proxies = urllib.request.getproxies()
        raw = proxies.get("https" if self.https else "http")
        if not raw or urllib.request.proxy_bypass(self.host):
            return None
        if "://" not in raw:
            raw = "http://" + raw
        p = urllib.parse.urlsplit(raw)
        if p.scheme != "http" or not p.hostname:
            raise InputError(
                f"proxy {redact(raw)}: only http:// proxies are supported (for {self.shown(self.url)})"
            )
        creds = [p.password] if p.password else []
        auth = None
        if p.username is not None:
            user = urllib.parse.unquote(p.username)
            pw = urllib.parse.unquote(p.password or "")
            token = base64.b64encode(f"{user}:{pw}".encode()).decode("ascii")
            auth = f"Basic {token}"
            creds += [token, f"{user}:{pw}"] if pw else [token]
        return p.hostname, p.port or 8080, creds, auth

    def post(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float,
        max_bytes: int,
    ) -> bytes:
        """POST ``body``; the reply's body for a 2xx status, else :class:`HTTPFailure`.
        Everything (resolution, connect, TLS, send, every read) ends within ``timeout``
        seconds; a reply over ``max_bytes`` is refused once that many bytes were seen (or
        at once when its ``Content-Length`` says so)."""
        guard = _Guard(time.monotonic() + timeout)
        _WATCHDOG.watch(guard)
        conn: http.client.HTTPConnection | None = None
        resp: http.client.HTTPResponse | None = None
        try:
            try:
                conn = self._connection(guard)
                with guard.lock:
                    guard.conn = conn
                conn.connect()
                with guard.lock:
                    guard.sock = conn.sock
                guard.check()
                sock = conn.sock
                assert sock is not None
                target = self.target if self.proxy is None or self.https else self.url
                hdrs = dict(headers)
                hdrs["Connection"] = "close"
                if self.proxy is not None and not self.https and self.proxy[3]:
                    hdrs["Proxy-Authorization"] = self.proxy[3]
                sock.settimeout(guard.check())
                conn.request("POST", target, body=body, headers=hdrs)
                sock.settimeout(guard.check())
                resp = conn.getresponse()
                return self._read(resp, sock, guard, max_bytes)
            except HTTPFailure:
                raise
            except _Expired:
                raise self._timeout(timeout) from None
            except Exception as exc:
                if guard.expired or guard.left() <= 0 or isinstance(exc, TimeoutError):
                    raise self._timeout(timeout) from None
                raise self._classify(exc) from None
        finally:
            guard.finish()
            if resp is not None:
                resp.close()
            if conn is not None:
                conn.close()

    def _connection(self, guard: _Guard) -> http.client.HTTPConnection:
        left = guard.check()
        conn: http.client.HTTPConnection
        if self.proxy is None:
            host, port = self.host, self.port
        else:
            host, port = self.proxy[0], self.proxy[1]
        if self.https:
            https = _HTTPS(host, port, timeout=left, context=ssl.create_default_context())
            https.guard = guard
            conn = https
            if self.proxy is not None:
                tunnel = {"Proxy-Authorization": self.proxy[3]} if self.proxy[3] else None
                conn.set_tunnel(self.host, self.port, headers=tunnel)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=left)
        conn._create_connection = _connector(guard)  # type: ignore[attr-defined]
        return conn

    def _read(
        self, resp: http.client.HTTPResponse, sock: socket.socket, guard: _Guard, max_bytes: int
    ) -> bytes:
        status = resp.status
        if not 200 <= status < 300:
            raise self._http_error(resp, sock, guard)
        length = resp.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > max_bytes:
            raise HTTPFailure(
                "oversize",
                self.shown(
                    f"{self.url}: the reply is {int(length)} bytes, over the cap of {max_bytes} "
                    "(max_response_bytes)"
                ),
            )
        parts: list[bytes] = []
        got = 0
        while True:
            sock.settimeout(guard.check())
            chunk = resp.read1(65536)
            if not chunk:
                break
            got += len(chunk)
            if got > max_bytes:
                raise HTTPFailure(
                    "oversize",
                    self.shown(
                        f"{self.url}: the reply runs past the cap of {max_bytes} bytes "
                        "(max_response_bytes)"
                    ),
                )
            parts.append(chunk)
        if guard.expired:  # a body cut short by the watchdog is a timeout, not a reply
            raise _Expired
        return b"".join(parts)

    def _http_error(
        self, resp: http.client.HTTPResponse, sock: socket.socket, guard: _Guard
    ) -> HTTPFailure:
        raw = b""
        try:
            while len(raw) < _ERROR_BODY:
                sock.settimeout(guard.check())
                chunk = resp.read1(_ERROR_BODY - len(raw))
                if not chunk:
                    break
                raw += chunk
        except Exception:  # the body is only a hint in the message
            pass
        detail = excerpt(self.shown(raw.decode("utf-8", "replace")))
        reason = excerpt(self.shown(resp.reason or ""), 60)
        location = excerpt(self.shown(resp.getheader("Location") or ""), 120)
        msg = f"{self.url}: HTTP {resp.status} {reason}".rstrip()
        return HTTPFailure(
            "http",
            self.shown(msg) + (f": {detail}" if detail else ""),
            status=resp.status,
            reason=reason,
            detail=detail,
            retry_after=retry_after(resp.getheader("Retry-After")),
            location=location,
        )

    def _timeout(self, timeout: float) -> HTTPFailure:
        return HTTPFailure(
            "timeout", self.shown(f"{self.url}: no complete reply within {timeout:g} s")
        )

    def _classify(self, exc: BaseException) -> HTTPFailure:
        where = self.proxy_text()
        if isinstance(exc, ConnectionRefusedError):
            return HTTPFailure("refused", self.shown(f"{self.url}: connection refused{where}"))
        if isinstance(exc, socket.gaierror):
            return HTTPFailure(
                "refused",
                self.shown(f"{self.url}: the host name does not resolve{where} ({exc.strerror})"),
            )
        if isinstance(exc, ssl.SSLCertVerificationError):
            return HTTPFailure(
                "connect", self.shown(f"{self.url}: TLS certificate not accepted ({exc.reason})")
            )
        if isinstance(exc, http.client.HTTPException | ValueError):
            kind = "protocol"
        else:
            kind = "connect"
        text = excerpt(self.shown(f"{type(exc).__name__}: {exc}"), 160)
        return HTTPFailure(kind, self.shown(f"{self.url}: {text}{where}"))

    def proxy_text(self) -> str:
        if self.proxy is None:
            return ""
        return f" (through the proxy {self.proxy[0]}:{self.proxy[1]})"
