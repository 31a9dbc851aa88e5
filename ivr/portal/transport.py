"""The portal's HTTP transport, bounded in time and bytes, and what is kept of its answers.

``requests`` bounds each socket operation (``timeout``), not a request: a portal that trickles
one byte a second keeps every read alive forever. Here each request runs under a
:class:`RequestWatch`: a small thread that, at the wall-clock deadline (or when the stop event
of an import is set), shuts the request's socket down, so whatever read is blocked returns at
once. The watched socket is found through our own urllib3 connection classes, which attach
themselves to the watch of the thread that sends on them (keep-alive connections included).

Bodies are read streamed, at most a given number of bytes (:func:`read_capped`).

Nothing from the process environment is trusted (:func:`bounded_session`): no ``.netrc``
credentials, no proxy settings, no CA bundle override; our own token is the only credential.

Whatever is kept or shown of a portal's answer goes through :func:`redact_credentials` first.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ivr.core.clock import SYSTEM_CLOCK

CHUNK_BYTES = 64 * 1024
"""How much one streamed read asks for (memory stays within the cap plus one chunk)."""

WATCH_POLL_S = 0.1
"""How often a watch looks at the stop event, and retries a shutdown that found no socket yet."""

_current = threading.local()


class RequestWatch:
    """Ends one request at ``deadline_s`` from now, or as soon as ``stop`` is set."""

    def __init__(self, deadline_s: float, stop: threading.Event | None) -> None:
        self._give_up_at = SYSTEM_CLOCK.monotonic() + deadline_s
        self._stop = stop
        self._finished = threading.Event()
        self._connections: list[HTTPConnection] = []
        self._lock = threading.Lock()
        self.fired: str | None = None
        """None, "deadline" or "stop": why the request's socket was shut down."""
        self._thread = threading.Thread(target=self._run, name="portal-watch", daemon=True)

    def attach(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._connections.append(connection)
            fired = self.fired is not None
        if fired:
            _shut(connection)

    def _run(self) -> None:
        while not self._finished.is_set():
            if self._stop is not None and self._stop.is_set():
                self.fired = "stop"
                break
            left = self._give_up_at - SYSTEM_CLOCK.monotonic()
            if left <= 0:
                self.fired = "deadline"
                break
            self._finished.wait(min(left, WATCH_POLL_S) if self._stop is not None else left)
        # Until the request notices, shut its socket down again (it may still be connecting).
        while self.fired is not None and not self._finished.is_set():
            with self._lock:
                connections = list(self._connections)
            for connection in connections:
                _shut(connection)
            self._finished.wait(WATCH_POLL_S)

    @contextmanager
    def running(self) -> Iterator[RequestWatch]:
        """Watch the calling thread's requests until the block ends."""
        _current.watch = self
        self._thread.start()
        try:
            yield self
        finally:
            _current.watch = None
            self._finished.set()
            self._thread.join()


def _shut(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    try:
        # socket.socket's own shutdown, also for TLS: a read blocked in another thread
        # returns at once, and the TLS object it uses is left alone.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _attach_to_current_watch(connection: HTTPConnection) -> None:
    watch: RequestWatch | None = getattr(_current, "watch", None)
    if watch is not None:
        watch.attach(connection)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_to_current_watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_to_current_watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


def bounded_session(session: requests.Session | None = None) -> requests.Session:
    """``session`` (or a new one) that trusts nothing from the environment and whose
    requests a :class:`RequestWatch` can end."""
    session = session if session is not None else requests.Session()
    session.trust_env = False  # no .netrc, no *_PROXY (with their credentials), no CA override
    session.proxies.clear()
    session.mount("http://", _WatchedAdapter())
    session.mount("https://", _WatchedAdapter())
    return session


class BodyTooLarge(Exception):
    """The body went past the cap; ``seen`` bytes were read (or announced) before stopping."""

    def __init__(self, seen: int) -> None:
        super().__init__(f"{seen} bytes")
        self.seen = seen


def read_capped(response: requests.Response, limit: int, *, must_fit: bool) -> bytes:
    """The body, streamed, at most ``limit`` bytes. Past the limit: :class:`BodyTooLarge` if
    ``must_fit``, else the first ``limit`` bytes (an excerpt is all we keep of it). Memory
    stays within the limit plus one chunk; the rest is never read (the caller closes)."""
    announced = response.headers.get("Content-Length", "")
    if must_fit and announced.isdigit() and int(announced) > limit:
        raise BodyTooLarge(int(announced))
    parts: list[bytes] = []
    size = 0
    for chunk in response.iter_content(CHUNK_BYTES):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            if must_fit:
                raise BodyTooLarge(size)
            break
    return b"".join(parts)[:limit]


# -- what is kept or shown of an answer -------------------------------------------------------

_SECRET_WORDS = r"password|passwd|pwd|token|secret|api[_-]?key|authorization|cookie"
_SECRET_NAME = rf"[\w.-]*(?:{_SECRET_WORDS})[\w.-]*"
_QUOTED_FIELD = re.compile(
    rf'(?i)(["\']{_SECRET_NAME}["\']\s*[:=]\s*)("(?:[^"\\]|\\.)*"|\'[^\']*\'|[^\s,;&}}\]]+)'
)
_BARE_FIELD = re.compile(rf"(?i)(\b{_SECRET_NAME}\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&}}\]\"']+)")
_SCHEME_CREDENTIALS = re.compile(r"(?i)\b(bearer|basic|digest)\s+[A-Za-z0-9._~+/=-]{4,}")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]*@")
_HEADER_LINE = re.compile(r"(?im)^(\s*(?:proxy-)?authorization\s*:\s*)\S.*$")
REDACTED = "***"


def redact_credentials(text: str, *secrets: str) -> str:
    """``text`` with our own secrets and anything credential-like replaced by ``***``:
    ``password``/``token``/``secret``/``api_key``/``Authorization`` fields (JSON, form,
    header or log style), ``Bearer``/``Basic`` credentials and ``user:password@`` in URLs."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _SCHEME_CREDENTIALS.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _HEADER_LINE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _QUOTED_FIELD.sub(lambda m: m.group(1) + _quoted_like(m.group(2)), text)
    text = _BARE_FIELD.sub(lambda m: m.group(1) + _quoted_like(m.group(2)), text)
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)


def _quoted_like(value: str) -> str:
    if value[:1] in ("'", '"'):
        return f"{value[0]}{REDACTED}{value[0]}"
    return REDACTED
