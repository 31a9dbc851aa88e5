"""This runner's sign of life: what it is doing now (``NodeProbe``, also read by ``/metrics``
and ``/readyz``) and the thread that writes it to ``node_heartbeats`` every few seconds.

The clock is injected; the writer's own pause between beats is a plain ``Event.wait`` so a stop
is seen at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sqlalchemy import Engine

from ivr.core.clock import Clock
from ivr.sip.api import RegistrationStatus
from storage.heartbeat import NodeHeartbeat, Registration, remove_heartbeat, write_heartbeat

if TYPE_CHECKING:
    from ivr.campaign.dialer import Dialer

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 5.0
# A dial loop that has not gone round for this long is stuck (it goes round at least every
# 30 s while it waits for work, every 0.2 s while calls are up).
STUCK_AFTER_S = 120.0


def package_version() -> str:
    try:
        return version("ivr-rating")
    except PackageNotFoundError:
        return "unknown"


@runtime_checkable
class RegistrationSource(Protocol):
    @property
    def registration(self) -> RegistrationStatus: ...


class LastErrorHandler(logging.Handler):
    """Keeps the last ERROR (or worse) line this process logged, for the heartbeat. Log lines
    are already masked (phones) and free of secrets, so the text can be shown as it is."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.last = f"{record.name}: {record.getMessage()}"[:500]
        except Exception:  # a bad format string must not break logging
            self.last = f"{record.name}: {record.msg!r}"[:500]


class NodeProbe:
    """What this runner is doing, filled in by the runner as its parts come up."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        phone: object | None = None,
        registration_required: bool = True,
    ) -> None:
        self.name = name
        self.clock = clock
        self.phone = phone
        self.registration_required = registration_required
        self.dialer: Dialer | None = None
        self.started_at = clock.now()
        self.errors = LastErrorHandler()

    def calls_up(self) -> int:
        return self.dialer.active_calls() if self.dialer is not None else 0

    def channel_cap(self) -> int:
        return self.dialer.settings.channels if self.dialer is not None else 0

    def registration(self) -> Registration:
        """The phone's registration as the heartbeat states it: registered, failed (lost and
        being retried), or unregistered (not used, starting or stopped)."""
        if not isinstance(self.phone, RegistrationSource):
            return "unregistered"
        state = self.phone.registration.state
        if state == "registered":
            return "registered"
        return "failed" if state == "lost" else "unregistered"

    def loop_idle_s(self) -> float | None:
        """Seconds since the dial loop last went round; None before it started."""
        if self.dialer is None or self.dialer.last_round is None:
            return None
        return max(0.0, self.clock.monotonic() - self.dialer.last_round)

    def stuck(self) -> bool:
        idle = self.loop_idle_s()
        return idle is not None and idle > STUCK_AFTER_S

    def heartbeat(self, now: datetime) -> NodeHeartbeat:
        return NodeHeartbeat(
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=package_version(),
            started_at=self.started_at,
            seen_at=now,
            calls_up=self.calls_up(),
            channel_cap=self.channel_cap(),
            registration=self.registration(),
            last_error=self.errors.last,
        )


class HeartbeatWriter:
    """Writes the probe's heartbeat every ``every_s`` seconds on a small daemon thread, and
    removes the node's row when stopped cleanly (a stopped node is not a silent one; a crashed
    one stays, silent, for the operators to see). A database error is logged (once per outage)
    and retried."""

    def __init__(
        self, engine: Engine, probe: NodeProbe, every_s: float = HEARTBEAT_EVERY_S
    ) -> None:
        self.engine = engine
        self.probe = probe
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def beat(self) -> bool:
        try:
            write_heartbeat(self.engine, self.probe.heartbeat(self.probe.clock.now()))
        except Exception as exc:
            if not self._failing:
                log.warning("heartbeat of node %s not written: %s", self.probe.name, exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.beat()

    def start(self) -> None:
        logging.getLogger().addHandler(self.probe.errors)
        self.beat()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        try:
            remove_heartbeat(self.engine, self.probe.name)
        except Exception as exc:
            log.warning("heartbeat of node %s not removed: %s", self.probe.name, exc)
        logging.getLogger().removeHandler(self.probe.errors)

    def __enter__(self) -> HeartbeatWriter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
