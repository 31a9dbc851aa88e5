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

Ratings live in a :class:`lab.portal_state.RatingBook`; pass ``book=old.book`` to a new
emulator on the same port to model a portal restarted in the middle of delivery (its
database survives).

CLI: ``python -m lab.portal_emulator --port P --items FILE.json [--token T]
[--dump FILE]`` serves until SIGTERM/SIGINT, prints its base URL on stderr when ready,
and on exit writes the received ratings as JSON to stdout (or ``--dump``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any
from urllib.parse import unquote, urlsplit

from lab.portal_contract import API_PREFIX, Answer, error_answer
from lab.portal_http import Handler, Server
from lab.portal_state import ClosedRequests, RatingBook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Fault:
    status: int | None = None
    retry_after: float | None = None
    body: bytes | None = None
    stall_s: float = 0.0
    trickle_s: float = 0.0
    endless: bool = False
    headers: tuple[tuple[str, str], ...] = ()


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
        self._closed = ClosedRequests(self._items)
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
        self.stopping = threading.Event()  # set by stop(): handlers answer nothing more
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> PortalEmulator:
        emulator = self

        class PortalHandler(Handler):
            portal = emulator

        self.stopping.clear()
        self._server = Server((self._host, self._port), PortalHandler)
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
        self.stopping.set()  # wakes stalled handlers
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
        self._closed.overlap_next_page(k)

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
        self._closed.endless_cursors(on)

    def stall_next(self, n: int, seconds: float) -> None:
        """The next ``n`` requests wait ``seconds`` (or until stop) before being handled."""
        with self._lock:
            self._faults.extend([_Fault(stall_s=seconds)] * n)

    # -- request handling (called from handler threads) ---------------------------
    # -- request handling (called from handler threads) ---------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, count: bool = True
    ) -> Answer:
        """The answer to one request: an injected fault's, or the contract's.
        ``count=False``: the real answer behind a trickled one, not counted again."""
        fault = self._take_fault(method, target) if count else None
        if fault is not None:
            if fault.stall_s:
                self.stopping.wait(fault.stall_s)
            if fault.endless:
                return Answer(200, b'{"items": [', endless=True)
            if fault.status is not None:
                extra = fault.headers
                if fault.retry_after is not None:
                    extra += (("Retry-After", f"{fault.retry_after:g}"),)
                if fault.body is not None:
                    return Answer(fault.status, fault.body, extra)
                return error_answer(fault.status, "injected fault", *extra)
            if fault.trickle_s:
                answer = self.handle(method, target, headers, body, count=False)
                return Answer(answer.status, answer.body, answer.headers, fault.trickle_s)
        if headers.get("authorization") != f"Bearer {self._token}":
            return error_answer(401, "missing or wrong token", ("WWW-Authenticate", "Bearer"))
        return self._route(method, target, headers, body)

    def _take_fault(self, method: str, target: str) -> _Fault | None:
        """Count the request and take the fault it meets, if any."""
        path = urlsplit(target).path
        with self._lock:
            self._requests_seen.append((method, target))
            fault = self._faults.pop(0) if self._faults else None
            if method == "POST" and path.endswith("/ratings"):
                self._rating_posts += 1
            if method == "PUT" and path.endswith("/comment"):
                self._comment_puts += 1
                if fault is None and self._comment_faults:
                    fault = self._comment_faults.pop(0)
        return fault

    def _route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        split = urlsplit(target)
        if not split.path.startswith(API_PREFIX + "/"):
            return error_answer(404, "no such path")
        parts = [unquote(part) for part in split.path[len(API_PREFIX) + 1 :].split("/")]
        if method == "GET" and parts == ["requests", "closed"]:
            return self._closed.page(split.query)
        if method == "POST" and len(parts) == 3 and parts[0::2] == ["requests", "ratings"]:
            request_id = parts[1]
            if request_id not in self._closed:
                return error_answer(404, f"no request {request_id!r}")
            key = headers.get("idempotency-key")
            return self.book.rate(request_id, key, body, self._repeat_status)
        comment = len(parts) == 5 and parts[0::2] == ["requests", "ratings", "comment"]
        if method == "PUT" and self.api_version != "1.0" and comment:
            request_id, survey_id = parts[1], parts[3]
            if request_id not in self._closed or not self.book.rated(request_id, survey_id):
                return error_answer(404, f"no rating {survey_id!r} of request {request_id!r}")
            return self.book.store_comment(request_id, survey_id, headers, body)
        return error_answer(404, "no such path")


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
