"""The gauges read when ``/metrics`` is scraped: what this runner is doing (from its probe),
the figures every node shares through the database, and every runner's heartbeat (for the
console). The counters, the exposition and the server are in :mod:`ivr.campaign.metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from ivr.campaign.metrics import REGISTRY
from ivr.core.clock import Clock
from storage.figures import newest_completed_import, outbox_state_counts
from storage.heartbeat import REGISTRATION_STATES, list_nodes
from storage.models import DeliveryState

if TYPE_CHECKING:
    from ivr.campaign.heartbeat import NodeProbe
    from storage.store import Store

log = logging.getLogger(__name__)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class RunnerCollector(Collector):
    """What this runner is doing now, from its probe."""

    def __init__(self, probe: NodeProbe) -> None:
        self.probe = probe

    def collect(self) -> Iterable[Metric]:
        up, cap = self.probe.calls_up(), self.probe.channel_cap()
        yield _gauge("ivr_calls_in_progress", "Survey calls up on this runner.", up)
        yield _gauge("ivr_channels", "Channel cap of this runner (dialing.channels).", cap)
        yield _gauge(
            "ivr_channel_occupancy_ratio",
            "Calls in progress over the channel cap (0 when no dialer runs).",
            up / cap if cap else 0.0,
        )
        state = self.probe.registration()
        reg = GaugeMetricFamily(
            "ivr_sip_registration_state",
            "SIP registration of this runner: 1 for the current state.",
            labels=["state"],
        )
        for s in REGISTRATION_STATES:
            reg.add_metric([s], 1.0 if s == state else 0.0)
        yield reg
        yield _gauge(
            "ivr_sip_registered", "1 when this runner is registered.", state == "registered"
        )


class DatabaseCollector(Collector):
    """Figures every node shares through the database (one or two cheap queries a scrape)."""

    def __init__(self, engine: Engine, clock: Clock, tz: ZoneInfo) -> None:
        self.engine = engine
        self.clock = clock
        self.tz = tz

    def collect(self) -> Iterable[Metric]:
        from ivr.core.windows import local_day_bounds

        now = self.clock.now()
        try:
            counts = outbox_state_counts(self.engine)
            newest = newest_completed_import(self.engine)
        except Exception as exc:
            log.warning("metrics: database figures not read: %s", type(exc).__name__)
            yield _gauge("ivr_database_up", "1 when the database answered this scrape.", 0)
            return
        yield _gauge("ivr_database_up", "1 when the database answered this scrape.", 1)
        yield _gauge(
            "ivr_delivery_backlog",
            "Ratings waiting to be delivered to the portal.",
            counts[DeliveryState.PENDING],
        )
        yield _gauge(
            "ivr_dead_letters",
            "Ratings the portal refused for good (see report; deliver --retry-dead).",
            counts[DeliveryState.DEAD],
        )
        if newest is not None:
            day, completed = newest
            day_end = local_day_bounds(day, self.tz)[1]
            yield _gauge(
                "ivr_import_lag_seconds",
                "From the end of the newest fully imported local day to now.",
                max(0.0, (now - day_end).total_seconds()),
            )
            yield _gauge(
                "ivr_import_last_completed_timestamp_seconds",
                "When the newest fully imported day's import completed (Unix time).",
                completed.timestamp(),
            )


class NodesCollector(Collector):
    """Every runner as its heartbeat says (for the console, which runs no dialer itself)."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        try:
            nodes = list_nodes(self.engine, self.clock.now())
        except Exception as exc:
            log.warning("metrics: node heartbeats not read: %s", type(exc).__name__)
            return
        yield _gauge(
            "ivr_nodes_alive", "Runners with a heartbeat in the last 30 s.",
            sum(not n.silent for n in nodes),
        )  # fmt: skip
        yield _gauge(
            "ivr_nodes_silent", "Runners known but without a heartbeat for 30 s.",
            sum(n.silent for n in nodes),
        )  # fmt: skip
        calls = GaugeMetricFamily(
            "ivr_node_calls_in_progress", "Calls up on each live runner.", labels=["node"]
        )
        registered = GaugeMetricFamily(
            "ivr_node_sip_registered", "1 when a live runner is registered.", labels=["node"]
        )
        for n in nodes:
            if not n.silent:
                calls.add_metric([n.name], n.calls_up)
                registered.add_metric([n.name], 1.0 if n.registration == "registered" else 0.0)
        yield calls
        yield registered


def console_registry(engine: Engine, clock: Clock, tz: ZoneInfo) -> CollectorRegistry:
    """A registry for a process that runs no dialer (the console): the shared database figures
    and every runner's heartbeat."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(engine, clock, tz))
    registry.register(NodesCollector(engine, clock))
    return registry


_runner_collectors: list[Collector] = []


def register_runner(probe: NodeProbe, store: Store, clock: Clock, tz: ZoneInfo) -> None:
    """Adds this runner's gauges to ``REGISTRY`` (replacing those of an earlier runner in the
    same process)."""
    unregister_runner()
    _runner_collectors.extend([RunnerCollector(probe), DatabaseCollector(store.engine, clock, tz)])
    for collector in _runner_collectors:
        REGISTRY.register(collector)


def unregister_runner() -> None:
    while _runner_collectors:
        REGISTRY.unregister(_runner_collectors.pop())
