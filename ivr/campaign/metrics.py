"""Prometheus metrics, ``/healthz`` and ``/readyz``: the counters and a tiny server.

Counters and the latency histogram live in ``REGISTRY`` and are incremented where things happen
(dialer, call runner, import, delivery, the portal wrapper). Gauges are read when scraped
(:mod:`ivr.campaign.gauges`): what this runner is doing from its ``NodeProbe``
(``RunnerCollector``), and shared figures from the database (``DatabaseCollector``: the console
registers this one on its own registry too).

Naming follows Prometheus: ``ivr_`` prefix, units in the name, counters end in ``_total``.
Labels never carry a phone number or a request id: only small fixed sets (disposition,
outcome, result, kind, state).

For another server (the console): ``gauges.console_registry(engine, clock, tz)`` builds a registry
of the database figures and every runner's heartbeat (``NodesCollector``); ``exposition(registry)``
gives the body and content type, ``healthz()`` and ``readyz(problems)`` give status and text,
and ``readiness_problems(engine, None)`` lists what keeps a process without a dialer from being
ready (the database).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from sqlalchemy import Engine

from ivr.core.errors import (
    ConfigError,
    PortalAuthError,
    PortalError,
    PortalRejected,
    PortalUnavailable,
)
from ivr.core.vocabulary import CALL_DISPOSITIONS, Outcome
from ivr.sip.api import MediaCounters
from storage.figures import database_reachable

if TYPE_CHECKING:
    from ivr.campaign.heartbeat import NodeProbe

log = logging.getLogger(__name__)

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: nothing here needs them

DISPOSITIONS = tuple(str(d) for d in CALL_DISPOSITIONS)
OUTCOMES = tuple(str(o) for o in Outcome if o is not Outcome.NOT_CALLED)
IMPORT_RESULTS = ("new", "known", "rejected", "not_called")
DELIVERY_RESULTS = ("delivered", "dead", "deferred")
PORTAL_ERROR_KINDS = ("unavailable", "rejected", "malformed", "auth")

REGISTRY = CollectorRegistry()
ReadyCheck = Callable[[], list[str]]  # the reasons a process is not ready; empty: ready

CALLS_STARTED = Counter(
    "ivr_calls_started", "Survey calls started (INVITE about to go out).", registry=REGISTRY
)
CALLS_ENDED = Counter(
    "ivr_calls", "Survey calls ended, by disposition.", ["disposition"], registry=REGISTRY
)
OUTCOMES_STORED = Counter(
    "ivr_survey_outcomes",
    "Final survey outcomes stored by this runner's calls and deadline expiries.",
    ["outcome"],
    registry=REGISTRY,
)
KEY_TO_OUTCOME = Histogram(
    "ivr_key_to_outcome_seconds",
    "From a key taken off the line to its outcome committed in the database.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
IMPORT_ITEMS = Counter(
    "ivr_import_items",
    "Portal items imported, by result (new: to be called; not_called: stored, not to be called).",
    ["result"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "ivr_deliveries", "Rating deliveries to the portal, by result.", ["result"], registry=REGISTRY
)
PORTAL_ERRORS = Counter(
    "ivr_portal_errors", "Failed portal operations, by kind.", ["kind"], registry=REGISTRY
)
RTP_DROPPED = Counter(
    "ivr_rtp_dropped",
    "RTP datagrams dropped on ended survey calls, by why (runt: shorter than a header; "
    "malformed: not RTP; foreign: not from the far end's address).",
    ["kind"],
    registry=REGISTRY,
)
RTP_DROP_KINDS = ("runt", "malformed", "foreign")
for _k in RTP_DROP_KINDS:
    RTP_DROPPED.labels(kind=_k)
for _d in DISPOSITIONS:
    CALLS_ENDED.labels(disposition=_d)
for _o in OUTCOMES:
    OUTCOMES_STORED.labels(outcome=_o)
for _r in IMPORT_RESULTS:
    IMPORT_ITEMS.labels(result=_r)
for _r in DELIVERY_RESULTS:
    DELIVERIES.labels(result=_r)
for _k in PORTAL_ERROR_KINDS:
    PORTAL_ERRORS.labels(kind=_k)


def count_rtp_dropped(counters: MediaCounters) -> None:
    """What one ended call's media dropped, added to the node's totals."""
    for kind in RTP_DROP_KINDS:
        if n := getattr(counters, kind):
            RTP_DROPPED.labels(kind=kind).inc(n)


def count_outcome(outcome: str) -> None:
    if outcome in OUTCOMES:  # a fixed label set, whatever a caller passes
        OUTCOMES_STORED.labels(outcome=outcome).inc()


def count_import(new: int, known: int, rejected: int, not_called: int) -> None:
    for result, n in (
        ("new", new - not_called),
        ("known", known),
        ("rejected", rejected),
        ("not_called", not_called),
    ):
        if n > 0:
            IMPORT_ITEMS.labels(result=result).inc(n)


def portal_error_kind(exc: PortalError) -> str:
    from ivr.portal.answers import MalformedPage

    if isinstance(exc, PortalAuthError):
        return "auth"
    if isinstance(exc, MalformedPage):
        return "malformed"
    if isinstance(exc, PortalRejected):
        return "rejected"
    if isinstance(exc, PortalUnavailable):
        return "unavailable"
    return "rejected"


# ---- the portal, counted --------------------------------------------------------------------
class CountingPortal:
    """The portal client with every failed operation counted by kind (a page pull that gave up,
    a rating or a comment not delivered). Same methods as the client for the runner's purposes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def iter_closed(self, closed_from: datetime, closed_to: datetime) -> Iterator[dict[str, Any]]:
        try:
            yield from self.inner.iter_closed(closed_from, closed_to)
        except PortalError as exc:
            PORTAL_ERRORS.labels(kind=portal_error_kind(exc)).inc()
            raise

    def post_rating(self, request_id: str, rating: dict[str, Any]) -> int:
        try:
            status: int = self.inner.post_rating(request_id, rating)
        except PortalError as exc:
            PORTAL_ERRORS.labels(kind=portal_error_kind(exc)).inc()
            raise
        return status

    def put_comment(
        self, request_id: str, survey_id: str, wav: bytes, duration_s: float, sha256: str
    ) -> int:
        # Without it delivery saw a client that does not speak API 1.1: no comment was sent.
        try:
            status: int = self.inner.put_comment(request_id, survey_id, wav, duration_s, sha256)
        except PortalError as exc:
            PORTAL_ERRORS.labels(kind=portal_error_kind(exc)).inc()
            raise
        return status


# ---- for any server -----------------------------------------------------------------------
def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The Prometheus text exposition of ``registry`` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def healthz() -> tuple[int, str]:
    """The process is alive (it answers)."""
    return 200, "ok\n"


def readiness_problems(engine: Engine, probe: NodeProbe | None) -> list[str]:
    """What keeps this process from doing its job: database unreachable, SIP not registered
    (when registration is configured), dial loop stuck. Empty: ready."""
    problems = []
    db = database_reachable(engine)
    if db is not None:
        problems.append(db)
    if probe is not None:
        state = probe.registration()
        if probe.registration_required and state != "registered":
            problems.append(f"SIP {state}")
        if probe.stuck():
            problems.append(f"dial loop stuck for {probe.loop_idle_s():.0f} s")
    return problems


def readyz(problems: list[str]) -> tuple[int, str]:
    if problems:
        return 503, "not ready: " + "; ".join(problems) + "\n"
    return 200, "ready\n"


# ---- the tiny server ----------------------------------------------------------------------
class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` (stdlib HTTP server on a
    daemon thread; GET only)."""

    def __init__(
        self,
        listen: str,
        ready: ReadyCheck,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        host, _, port = listen.rpartition(":")
        self.ready = ready
        self.registry = registry
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, ctype = exposition(outer.registry)
                    self._send(200, body, ctype)
                elif path == "/healthz":
                    code, text = healthz()
                    self._send(code, text.encode(), "text/plain; charset=utf-8")
                elif path == "/readyz":
                    code, text = readyz(outer.ready())
                    self._send(code, text.encode(), "text/plain; charset=utf-8")
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("metrics: %s", format % args)

        host = host.strip("[]") or "127.0.0.1"

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

        try:
            self.httpd = Server((host, int(port)), Handler)
        except OSError as exc:
            raise ConfigError("metrics.listen", f"cannot listen on {listen}: {exc}") from exc
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="metrics", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        host, port = self.address
        log.info("metrics and health on http://%s:%d/metrics, /healthz, /readyz", host, port)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5.0)
