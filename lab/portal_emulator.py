"""A real HTTP server speaking the portal contract (docs/portal-api.yaml, API 1.1).

For tests and the demo, on loopback only. It serves ``items`` as closed requests,
takes ratings with Idempotency-Key semantics and keeps them for inspection::

    with PortalEmulator(items) as portal:
        client = PortalClient(portal.base_url, "test-token", timeout_s=2, page_size=50)
        ...
        assert portal.ratings == [("REQ-1", "survey-1", {...})]

Items whose ``closed_at`` is not an aware date-time are served in *every* window,
after the others, so a test can push a malformed row through the real client.

Fault hooks, each consumed by one incoming request (any path, before the token check):
``fail_next(n, status, retry_after=None, body=None)`` answers with that status (and
body, e.g. ``b"not json"`` with status 200 for a malformed page); ``stall_next(n,
seconds)`` holds the request that long first (for client timeouts). ``overlap_next_page(k)``
makes the next closed-requests page start ``k`` items early, repeating the end of the
previous page (a portal whose paging shifted under concurrent writes).

Comments (1.1): ``PUT .../ratings/{survey_id}/comment`` with a WAV (mono, 8 kHz, 16-bit),
``X-Comment-Duration`` and ``X-Content-SHA256``, accepted only after that rating; kept in
``portal.comments``. ``api_version="1.0"`` models an old portal: 404 on the comment path.
Hostile answers, for the client's bounds: ``trickle_next(n, byte_every_s)`` sends the real
answer's headers at once and its body one byte every ``byte_every_s``; ``endless_next(n)``
answers 200 with a body that never ends (no Content-Length, written until the client hangs
up); ``redirect_next(n, location)`` answers 302 to ``location``; ``endless_cursors(True)``
makes every closed-requests page empty with a fresh next cursor.

Ratings live in a :class:`RatingBook`; pass ``book=old.book`` to a new emulator on the
same port to model a portal restarted in the middle of delivery (its database survives).

CLI: ``python -m lab.portal_emulator --port P --items FILE.json [--token T]
[--dump FILE]`` serves until SIGTERM/SIGINT, prints its base URL on stderr when ready,
and on exit writes the received ratings as JSON to stdout (or ``--dump``).
"""

from __future__ import annotations

import argparse
import base64
import bisect
import hashlib
import io
import json
import logging
import signal
import socket
import sys
import threading
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
OUTCOMES = frozenset(
    {"satisfied", "unsatisfied", "no_input", "no_answer", "opted_out", "not_called"}
)
RATING_REQUIRED = ("survey_id", "outcome", "completed_at", "attempts", "return_for_rework")


@dataclass(frozen=True)
class _Fault:
    status: int | None = None
    retry_after: float | None = None
    body: bytes | None = None
    stall_s: float = 0.0
    trickle_s: float = 0.0
    endless: bool = False
    headers: tuple[tuple[str, str], ...] = ()


class RatingBook:
    """The portal's record of ratings: survives an emulator stop/start when passed on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ratings: list[tuple[str, str, dict[str, Any]]] = []
        self.keys: set[str] = set()
        # (request_id, survey_id) -> the WAV stored, and every comment stored, in order
        self.comments: dict[tuple[str, str], bytes] = {}
        self.comment_log: list[tuple[str, str, str]] = []  # request, survey, sha256


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    trickle_s: float = 0.0  # seconds between body bytes
    endless: bool = False  # the body repeats until the client hangs up


ENDLESS_CHUNK = b'{"id": "REQ-ENDLESS", "phone": "+375291234567"}, ' * 1000


def _aware(text: object) -> datetime | None:
    """An aware datetime from an RFC 3339 string, or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.upper().replace(" ", "T"))
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None


def _json(status: int, payload: object, *headers: tuple[str, str]) -> _Answer:
    return _Answer(status, json.dumps(payload, ensure_ascii=False).encode(), headers)


def _error(status: int, message: str, *headers: tuple[str, str]) -> _Answer:
    return _json(status, {"error": message}, *headers)


def _rating_problem(body: object, key: str) -> str | None:
    """Why a Rating body is unacceptable (422), or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    missing = [name for name in RATING_REQUIRED if name not in body]
    if missing:
        return f"missing fields: {', '.join(missing)}"
    if body["outcome"] not in OUTCOMES:
        return f"outcome not one of {sorted(OUTCOMES)}"
    if not isinstance(body["return_for_rework"], bool):
        return "return_for_rework must be a boolean"
    if body["return_for_rework"] != (body["outcome"] == "unsatisfied"):
        return "return_for_rework must be true exactly when outcome is unsatisfied"
    attempts = body["attempts"]
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
        return "attempts must be an integer >= 0"
    if _aware(body["completed_at"]) is None:
        return "completed_at must be an RFC 3339 date-time with offset"
    if body["survey_id"] != key:
        return "survey_id must equal the Idempotency-Key"
    for flag in ("comment_expected", "callback_requested"):
        if flag in body and not isinstance(body[flag], bool):
            return f"{flag} must be a boolean"
    return None


MAX_COMMENT_S = 120.0


def wav_format_problem(wav: bytes) -> str | None:
    """Why ``wav`` is not a mono 8 kHz 16-bit PCM WAV, or None."""
    try:
        with wave.open(io.BytesIO(wav), "rb") as w:
            if (w.getnchannels(), w.getframerate(), w.getsampwidth()) != (1, 8000, 2):
                return (
                    f"expected mono 8000 Hz 16-bit, got {w.getnchannels()} channel(s) "
                    f"{w.getframerate()} Hz {8 * w.getsampwidth()}-bit"
                )
    except (wave.Error, EOFError) as exc:
        return f"not a WAV file: {exc}"
    return None


def wav_duration_s(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav), "rb") as w:
        return w.getnframes() / w.getframerate()


def _comment_problem(wav: bytes, headers: dict[str, str]) -> tuple[int, str] | None:
    """Why a comment upload is refused (status, message), or None."""
    if headers.get("content-type", "").split(";")[0].strip().lower() != "audio/wav":
        return 415, "Content-Type must be audio/wav"
    if len(wav) > 44 + int(MAX_COMMENT_S * 16000):
        return 413, f"recording longer than {MAX_COMMENT_S:.0f} s"
    problem = wav_format_problem(wav)
    if problem is not None:
        return 415, problem
    stated_sha = headers.get("x-content-sha256")
    stated_len = headers.get("x-comment-duration")
    if not stated_sha or not stated_len:
        return 400, "X-Content-SHA256 and X-Comment-Duration are required"
    if hashlib.sha256(wav).hexdigest() != stated_sha:
        return 422, "X-Content-SHA256 does not match the body"
    try:
        stated = float(stated_len)
    except ValueError:
        return 422, "X-Comment-Duration is not a number"
    if abs(stated - wav_duration_s(wav)) > 0.05:
        return 422, "X-Comment-Duration does not match the recording"
    return None


class PortalEmulator:
    """The portal, in a background thread. ``repeat_status`` answers a repeated key."""

    def __init__(
        self,
        items: list[dict[str, Any]],
        token: str = "test-token",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        repeat_status: int = 200,
        book: RatingBook | None = None,
        api_version: str = "1.1",
    ) -> None:
        self.api_version = api_version
        if repeat_status not in (200, 409):
            raise ValueError("repeat_status must be 200 or 409")
        self._items = list(items)
        # Indexed once: pages are bisected by closed_at, ratings look ids up in a set.
        dated: list[tuple[datetime, int, Any]] = []
        self._undated: list[Any] = []
        self._ids: set[str] = set()
        for index, item in enumerate(self._items):
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                self._ids.add(item["id"])
            closed_at = _aware(item.get("closed_at")) if isinstance(item, dict) else None
            if closed_at is None:
                self._undated.append(item)
            else:
                dated.append((closed_at, index, item))
        dated.sort(key=lambda entry: (entry[0], entry[1]))
        self._dated_keys = [closed_at for closed_at, _, _ in dated]
        self._dated = [item for _, _, item in dated]
        self._overlap = 0
        self._endless_cursors = False
        self._cursor_serial = 0
        self.endless_bytes_sent = 0
        self.book = book if book is not None else RatingBook()
        self._token = token
        self._host = host
        self._port = port
        self._repeat_status = repeat_status
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._comment_faults: list[_Fault] = []
        self._rating_posts = 0
        self._comment_puts = 0
        self._requests_seen: list[tuple[str, str]] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> PortalEmulator:
        emulator = self

        class Handler(_Handler):
            portal = emulator

        self._stopping.clear()
        self._server = _Server((self._host, self._port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},  # stop() waits up to one poll
            name="portal-emulator",
            daemon=True,
        )
        self._thread.start()
        log.info("portal emulator listening at %s", self.base_url)
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes stalled handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.cut_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> PortalEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the portal emulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{API_PREFIX}"

    # -- inspection and fault hooks ---------------------------------------------

    @property
    def ratings(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(request_id, idempotency_key, body) of every recorded rating, in arrival order."""
        with self.book.lock:
            return list(self.book.ratings)

    @property
    def rating_posts(self) -> int:
        """Every rating POST received, repeats and failures included."""
        with self._lock:
            return self._rating_posts

    @property
    def comment_puts(self) -> int:
        """Every comment PUT received, repeats and failures included."""
        with self._lock:
            return self._comment_puts

    @property
    def comments(self) -> dict[tuple[str, str], bytes]:
        """(request_id, survey_id) -> the WAV stored."""
        with self.book.lock:
            return dict(self.book.comments)

    @property
    def requests_seen(self) -> list[tuple[str, str]]:
        """(method, path with query) of every request received."""
        with self._lock:
            return list(self._requests_seen)

    def fail_next(
        self,
        n: int,
        status: int,
        retry_after: float | None = None,
        body: bytes | None = None,
        *,
        after: int = 0,
    ) -> None:
        """The next ``n`` requests (after ``after`` good ones) are answered ``status``
        (with Retry-After and body if given)."""
        with self._lock:
            self._faults.extend([_Fault()] * after)
            self._faults.extend([_Fault(status=status, retry_after=retry_after, body=body)] * n)

    def fail_comments(
        self, n: int, status: int, stall_s: float = 0.0, retry_after: float | None = None
    ) -> None:
        """The next ``n`` comment PUTs (only those) wait ``stall_s`` (or until stop), then are
        answered ``status`` (with Retry-After if given) without storing anything."""
        fault = _Fault(status=status, stall_s=stall_s, retry_after=retry_after)
        with self._lock:
            self._comment_faults.extend([fault] * n)

    def clear_faults(self) -> None:
        """Drop every fault not yet consumed: the portal is well again."""
        with self._lock:
            self._faults.clear()
            self._comment_faults.clear()

    def overlap_next_page(self, k: int) -> None:
        """The next closed-requests page (after the first) starts ``k`` items early."""
        with self._lock:
            self._overlap = k

    def trickle_next(self, n: int, byte_every_s: float) -> None:
        """The next ``n`` answers send their body one byte every ``byte_every_s``."""
        with self._lock:
            self._faults.extend([_Fault(trickle_s=byte_every_s)] * n)

    def endless_next(self, n: int) -> None:
        """The next ``n`` requests get a 200 whose body never ends."""
        with self._lock:
            self._faults.extend([_Fault(endless=True)] * n)

    def redirect_next(self, n: int, location: str, status: int = 302) -> None:
        """The next ``n`` requests are answered ``status`` with ``Location: location``."""
        with self._lock:
            self._faults.extend([_Fault(status=status, headers=(("Location", location),))] * n)

    def endless_cursors(self, on: bool = True) -> None:
        """Closed-requests pages are empty and always give a fresh next cursor."""
        with self._lock:
            self._endless_cursors = on

    def stall_next(self, n: int, seconds: float) -> None:
        """The next ``n`` requests wait ``seconds`` (or until stop) before being handled."""
        with self._lock:
            self._faults.extend([_Fault(stall_s=seconds)] * n)

    # -- request handling (called from handler threads) ---------------------------

    def _handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        count: bool = True,
    ) -> _Answer:
        path = urlsplit(target).path
        with self._lock:
            fault = None
            if count:  # not again for the real answer behind a trickled one
                self._requests_seen.append((method, target))
                fault = self._faults.pop(0) if self._faults else None
                if method == "POST" and path.endswith("/ratings"):
                    self._rating_posts += 1
                if method == "PUT" and path.endswith("/comment"):
                    self._comment_puts += 1
                    if fault is None and self._comment_faults:
                        fault = self._comment_faults.pop(0)
        if fault is not None:
            if fault.stall_s:
                self._stopping.wait(fault.stall_s)
            if fault.endless:
                return _Answer(200, b'{"items": [', endless=True)
            if fault.status is not None:
                extra = fault.headers + (
                    ()
                    if fault.retry_after is None
                    else (("Retry-After", f"{fault.retry_after:g}"),)
                )
                if fault.body is not None:
                    return _Answer(fault.status, fault.body, extra)
                return _error(fault.status, "injected fault", *extra)
            if fault.trickle_s:
                answer = self._handle(method, target, headers, body, count=False)
                return _Answer(answer.status, answer.body, answer.headers, fault.trickle_s)
        if headers.get("authorization") != f"Bearer {self._token}":
            return _error(401, "missing or wrong token", ("WWW-Authenticate", "Bearer"))
        if not path.startswith(API_PREFIX + "/"):
            return _error(404, "no such path")
        parts = path[len(API_PREFIX) + 1 :].split("/")
        if method == "GET" and parts == ["requests", "closed"]:
            with self._lock:
                endless, self._cursor_serial = self._endless_cursors, self._cursor_serial + 1
                serial = self._cursor_serial
            if endless:
                return _json(200, {"items": [], "next_cursor": f"endless-{serial}"})
            return self._closed_page(urlsplit(target).query)
        if (
            method == "POST"
            and len(parts) == 3
            and parts[0] == "requests"
            and parts[2] == "ratings"
        ):
            return self._post_rating(unquote(parts[1]), headers.get("idempotency-key"), body)
        if (
            method == "PUT"
            and self.api_version != "1.0"
            and len(parts) == 5
            and parts[0] == "requests"
            and parts[2] == "ratings"
            and parts[4] == "comment"
        ):
            return self._put_comment(unquote(parts[1]), unquote(parts[3]), headers, body)
        return _error(404, "no such path")

    def _put_comment(
        self, request_id: str, survey_id: str, headers: dict[str, str], wav: bytes
    ) -> _Answer:
        with self.book.lock:
            rated = any(r == request_id and k == survey_id for r, k, _ in self.book.ratings)
        if request_id not in self._ids or not rated:
            return _error(404, f"no rating {survey_id!r} of request {request_id!r}")
        problem = _comment_problem(wav, headers)
        if problem is not None:
            return _error(*problem)
        with self.book.lock:
            if self.book.comments.get((request_id, survey_id)) == wav:
                return _json(200, {"status": "already stored"})
            self.book.comments[(request_id, survey_id)] = wav
            sha = hashlib.sha256(wav).hexdigest()
            self.book.comment_log.append((request_id, survey_id, sha))
        return _json(201, {"status": "stored"})

    def _closed_page(self, query_string: str) -> _Answer:
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        closed_from = _aware(query.get("closed_from"))
        closed_to = _aware(query.get("closed_to"))
        if closed_from is None or closed_to is None:
            return _error(400, "closed_from and closed_to must be date-times with offset")
        if closed_to < closed_from:
            return _error(400, "closed_to is before closed_from")
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return _error(400, "limit must be an integer")
        if not 1 <= limit <= MAX_LIMIT:
            return _error(400, f"limit must be 1..{MAX_LIMIT}")
        window = f"{closed_from.isoformat()}|{closed_to.isoformat()}"
        offset = 0
        if "cursor" in query:
            try:
                decoded = base64.urlsafe_b64decode(query["cursor"].encode()).decode()
                offset_text, cursor_window = decoded.split("|", 1)
                offset = int(offset_text)
            except ValueError:
                return _error(400, "bad cursor")
            if cursor_window != window or offset < 0:
                return _error(400, "cursor belongs to another query")
        matching = self._matching(closed_from, closed_to)
        with self._lock:
            overlap, self._overlap = (self._overlap, 0) if offset > 0 else (0, self._overlap)
        start = max(0, offset - overlap)  # shifted, but still at most `limit` items
        page = matching[start : start + limit]
        next_offset = start + len(page)
        next_cursor = (
            base64.urlsafe_b64encode(f"{next_offset}|{window}".encode()).decode()
            if next_offset < len(matching)
            else None
        )
        return _json(200, {"items": page, "next_cursor": next_cursor})

    def _matching(self, closed_from: datetime, closed_to: datetime) -> list[Any]:
        low = bisect.bisect_left(self._dated_keys, closed_from)
        high = bisect.bisect_left(self._dated_keys, closed_to)
        return self._dated[low:high] + self._undated

    def _post_rating(self, request_id: str, key: str | None, raw_body: bytes) -> _Answer:
        if request_id not in self._ids:
            return _error(404, f"no request {request_id!r}")
        if not key:
            return _error(400, "Idempotency-Key header is required")
        try:
            body = json.loads(raw_body)
        except ValueError:
            return _error(422, "body is not JSON")
        problem = _rating_problem(body, key)
        if problem is not None:
            return _error(422, problem)
        with self.book.lock:
            if key in self.book.keys:
                return _json(self._repeat_status, {"status": "already recorded"})
            self.book.keys.add(key)
            self.book.ratings.append((request_id, key, body))
        return _json(201, {"status": "recorded"})


class _Handler(BaseHTTPRequestHandler):
    portal: PortalEmulator
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK hold every keep-alive answer ~40 ms.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        if self.portal._stopping.is_set():  # killed: a keep-alive request gets no answer
            self.close_connection = True
            return
        answer = self.portal._handle(self.command, self.path, headers, body)
        if self.portal._stopping.is_set():  # killed while handling it: done or not, unanswered
            self.close_connection = True
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        if answer.endless:
            self.send_header("Connection", "close")  # the body ends when the connection does
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        try:
            if answer.trickle_s:
                self.wfile.flush()
                for i in range(len(answer.body)):
                    if self.portal._stopping.wait(answer.trickle_s):
                        break
                    self.wfile.write(answer.body[i : i + 1])
                    self.wfile.flush()
            elif answer.endless:
                self.wfile.write(answer.body)
                while not self.portal._stopping.is_set():
                    self.wfile.write(ENDLESS_CHUNK)
                    self.portal.endless_bytes_sent += len(ENDLESS_CHUNK)
            else:
                self.wfile.write(answer.body)
        except OSError:  # the client hung up: what a hostile answer waits for
            self.close_connection = True

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("portal emulator: %s", format % args)


class _Server(ThreadingHTTPServer):
    """Tracks open connections so stop() can cut keep-alive ones; quiet about broken pipes."""

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        super().__init__(address, handler)
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("portal emulator: connection from %s failed", client_address, exc_info=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--items", help="JSON file with a list of closed requests")
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--dump", help="write received ratings here instead of stdout")
    parser.add_argument("--api-version", default="1.1", choices=["1.0", "1.1"])
    args = parser.parse_args(argv)

    items: list[dict[str, Any]] = []
    if args.items:
        with open(args.items, encoding="utf-8") as f:
            items = json.load(f)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with PortalEmulator(
        items, token=args.token, host=args.host, port=args.port, api_version=args.api_version
    ) as portal:
        print(f"portal emulator listening at {portal.base_url}", file=sys.stderr, flush=True)
        while not done.wait(0.5):
            pass
        received = [
            {"request_id": request_id, "idempotency_key": key, "body": body}
            for request_id, key, body in portal.ratings
        ]
    dump = json.dumps(received, ensure_ascii=False, indent=2)
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as f:
            f.write(dump + "\n")
    else:
        print(dump, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
