"""The metrics server over real HTTP, its database figures on SQLite and PostgreSQL, /readyz's
reasons, the portal error kinds, JSON log lines, the night's progress line and the prompt
conversion's log level."""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ivr.campaign import gauges, metrics
from ivr.campaign.dialer import Dialer
from ivr.campaign.heartbeat import STUCK_AFTER_S, NodeProbe
from ivr.campaign.night import estimate_finish, progress_line
from ivr.core.config import parse_config
from ivr.core.errors import PortalAuthError, PortalError, PortalRejected, PortalUnavailable
from ivr.entry.cli import JsonFormatter
from ivr.portal.answers import MalformedPage
from storage.db import make_engine
from storage.figures import DayProgress, day_progress
from storage.store import NewSurvey, Store
from tests.fakes import FakeClock, FakePhone, FakePrompts
from tests.helpers import config_data, free_tcp_port, http_get as get, start_attempt

MINSK = ZoneInfo("Europe/Minsk")
DAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # 10:00 in Minsk, the day after DAY


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(get(url)[1]):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def survey(store: Store, rid: str, phone: str) -> str:
    store.add_survey(
        NewSurvey(rid, rid, NOW - timedelta(hours=20), DAY, phone, phone, "ru", None), NOW
    )
    due = [s for s in store.due_surveys(NOW, 100) if s.portal_request_id == rid]
    return due[0].id


class Server:
    def __init__(self, registry: CollectorRegistry, ready: metrics.ReadyCheck) -> None:
        self.server = metrics.MetricsServer(f"127.0.0.1:{free_tcp_port()}", ready, registry)
        host, port = self.server.address
        self.base = f"http://{host}:{port}"


@pytest.fixture
def serve() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        s.server.stop()


def start(serve: list[Server], registry: CollectorRegistry, ready: metrics.ReadyCheck) -> str:
    s = Server(registry, ready)
    s.server.start()
    serve.append(s)
    return s.base


def test_database_figures_over_http(store: Store, serve: list[Server]) -> None:
    clock = FakeClock(NOW)
    registry = CollectorRegistry()
    registry.register(gauges.DatabaseCollector(store.engine, clock, MINSK))
    base = start(serve, registry, lambda: [])

    before = scrape(base + "/metrics")
    assert before[("ivr_database_up", ())] == 1
    assert before[("ivr_delivery_backlog", ())] == 0
    assert ("ivr_import_lag_seconds", ()) not in before  # nothing imported yet

    a = survey(store, "R1", "+375291000001")
    b = survey(store, "R2", "+375291000002")
    survey(store, "R3", "+375291000003")
    store.record_outcome(a, "satisfied", "1", None, NOW, NOW)
    store.record_outcome(b, "unsatisfied", "2", None, NOW, NOW)
    store.mark_dead(b, 422, "no such request", NOW)
    store.begin_import(DAY, NOW)
    store.complete_import(DAY, NOW, 3, 0)
    clock.sleep(600)

    after = scrape(base + "/metrics")
    assert after[("ivr_delivery_backlog", ())] == 1
    assert after[("ivr_dead_letters", ())] == 1
    # DAY ended at midnight Minsk (21:00 UTC on the 25th); now is 07:10 UTC on the 26th.
    assert after[("ivr_import_lag_seconds", ())] == 10 * 3600 + 600
    assert after[("ivr_import_last_completed_timestamp_seconds", ())] == NOW.timestamp()


def test_runner_gauges_and_readiness(store: Store, serve: list[Server]) -> None:
    clock = FakeClock(NOW)
    config = parse_config(config_data(dialing={"channels": 4}))
    probe = NodeProbe("n1", clock, FakePhone([]), registration_required=True)
    registry = CollectorRegistry()
    registry.register(gauges.RunnerCollector(probe))
    base = start(serve, registry, lambda: metrics.readiness_problems(store.engine, probe))

    assert get(base + "/healthz") == (200, "ok\n")
    # The fake phone has no registration: a runner that must register is not ready.
    assert get(base + "/readyz") == (503, "not ready: SIP unregistered\n")
    probe.registration_required = False
    assert get(base + "/readyz") == (200, "ready\n")

    with Dialer(store, FakePhone([]), FakePrompts(), config, clock) as dialer:
        probe.dialer = dialer
        dialer.start_due(clock.now())
        got = scrape(base + "/metrics")
        assert got[("ivr_channels", ())] == 4
        assert got[("ivr_calls_in_progress", ())] == 0
        assert got[("ivr_sip_registration_state", (("state", "unregistered"),))] == 1
        assert got[("ivr_sip_registered", ())] == 0
        assert get(base + "/readyz")[0] == 200
        clock.sleep(STUCK_AFTER_S + 1)  # the dial loop has not gone round since
        code, text = get(base + "/readyz")
        assert code == 503 and "dial loop stuck for 121 s" in text


def test_readyz_names_an_unreachable_database(serve: list[Server]) -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    base = start(serve, CollectorRegistry(), lambda: metrics.readiness_problems(engine, None))
    code, text = get(base + "/readyz")
    assert code == 503 and "database unreachable" in text
    assert get(base + "/healthz")[0] == 200  # alive all the same


class _Failing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def iter_closed(self, closed_from: datetime, closed_to: datetime) -> Iterator[dict[str, str]]:
        yield {"id": "R1"}
        raise self.exc

    def post_rating(self, request_id: str, rating: dict[str, str]) -> int:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (PortalUnavailable("HTTP 503", url="u", status=503), "unavailable"),
        (PortalRejected("HTTP 422", url="u", status=422), "rejected"),
        (MalformedPage("not json", url="u", status=200), "malformed"),
        (PortalAuthError("HTTP 401", url="u", status=401), "auth"),
    ],
    ids=["unavailable", "rejected", "malformed", "auth"],
)
def test_failed_portal_operations_are_counted_by_kind(exc: PortalError, kind: str) -> None:
    counter = metrics.PORTAL_ERRORS.labels(kind=kind)
    before = counter._value.get()
    portal = metrics.CountingPortal(_Failing(exc))
    with pytest.raises(type(exc)):
        portal.post_rating("R1", {})
    with pytest.raises(type(exc)):
        list(portal.iter_closed(NOW, NOW))
    assert counter._value.get() == before + 2


def test_json_log_lines_parse_with_extra_fields() -> None:
    logger = logging.getLogger("ivr.test.json")
    record = logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, "call %s ended: %s", ("c1", "busy"), None,
        extra={"node": "a", "attempt": 2},
    )  # fmt: skip
    out = json.loads(JsonFormatter().format(record))
    assert out["level"] == "WARNING" and out["logger"] == "ivr.test.json"
    assert out["message"] == "call c1 ended: busy"
    assert (out["node"], out["attempt"]) == ("a", 2)
    assert datetime.fromisoformat(out["time"]).tzinfo is not None
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(failed)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exception"]


def test_text_stays_the_default_format() -> None:
    assert parse_config(config_data()).logging.format == "text"
    assert parse_config(config_data(logging={"format": "json"})).logging.format == "json"
    with pytest.raises(Exception, match="logging.format"):
        parse_config(config_data(logging={"format": "xml"}))


@pytest.mark.parametrize(
    ("listen", "ok"),
    [("", True), ("127.0.0.1:9120", True), ("[::1]:9120", True), ("9120", False),
     ("localhost:0", False), ("127.0.0.1:http", False)],
    ids=["off", "v4", "v6", "no-host", "port-0", "named-port"],
)  # fmt: skip
def test_metrics_listen_is_host_and_port(listen: str, ok: bool) -> None:
    data = config_data(metrics={"listen": listen})
    if ok:
        assert parse_config(data).metrics.listen == listen
    else:
        with pytest.raises(Exception, match="metrics.listen"):
            parse_config(data)


P = DayProgress(total=10, done=4, in_calls=2, waiting=3, due=1, next_retry_at=None)


@pytest.mark.parametrize(
    ("progress", "elapsed", "done_since", "expected"),
    [
        (P, 600, 4, NOW + timedelta(seconds=900)),  # 6 left at 150 s each
        (P, 600, 0, None),  # no pace yet
        (DayProgress(10, 10, 0, 0, 0, None), 600, 10, NOW),  # all done
        (  # only retries left: not before the first of them
            DayProgress(10, 8, 0, 2, 0, NOW + timedelta(hours=1)),
            600,
            8,
            NOW + timedelta(hours=1),
        ),
    ],
    ids=["pace", "no-pace", "done", "waiting-for-retries"],
)
def test_estimate_of_finish(
    progress: DayProgress, elapsed: float, done_since: int, expected: datetime | None
) -> None:
    assert estimate_finish(progress, NOW, elapsed, done_since) == expected


def test_progress_line() -> None:
    p = DayProgress(12, 5, 2, 3, 2, NOW + timedelta(minutes=40))
    line = progress_line(DAY, p, NOW, MINSK, 700, 5)
    assert line == (
        "progress 2026-11-25: 5 of 12 done, 2 in calls, 3 waiting for a retry "
        "(next at 10:40:00), 2 due; finish estimated at 10:16:20"
    )


def test_day_progress_counts(store: Store) -> None:
    ids = [survey(store, f"R{i}", f"+37529100000{i}") for i in range(5)]
    store.record_outcome(ids[0], "satisfied", "1", None, NOW, NOW)
    start_attempt(store, ids[1], NOW)
    store.schedule_retry(ids[2], NOW + timedelta(minutes=20))
    store.schedule_retry(ids[3], NOW + timedelta(minutes=5))
    p = day_progress(store.engine, DAY, NOW)
    assert p == DayProgress(5, 1, 1, 2, 1, NOW + timedelta(minutes=5))
    assert day_progress(store.engine, DAY + timedelta(days=1), NOW).total == 0


def test_prompt_conversion_is_logged_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ivr.entry.app import PACKAGED_PROMPTS
    from prompts.library import PromptLibrary

    library = PromptLibrary(PACKAGED_PROMPTS, tmp_path / "cache", ("ru",))
    with caplog.at_level(logging.DEBUG, logger="prompts"):
        library.render("ru", ("greeting",))
    converted = [r for r in caplog.records if r.getMessage().startswith("converted prompt")]
    assert converted and all(r.levelno == logging.DEBUG for r in converted)


def test_console_registry_shows_every_node_from_its_heartbeat(store: Store) -> None:
    from storage.heartbeat import NodeHeartbeat, write_heartbeat

    clock = FakeClock(NOW)
    for name, seen, reg in (("a", NOW, "registered"), ("b", NOW - timedelta(minutes=2), "failed"),
                            ("c", NOW, "failed")):  # fmt: skip
        write_heartbeat(
            store.engine,
            NodeHeartbeat(name, "h", 1, "0.1.0", NOW, seen, 2, 4, reg),  # type: ignore[arg-type]
        )
    text = metrics.exposition(gauges.console_registry(store.engine, clock, MINSK))[0].decode()
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert got[("ivr_nodes_alive", ())] == 2 and got[("ivr_nodes_silent", ())] == 1
    assert got[("ivr_node_sip_registered", (("node", "a"),))] == 1
    assert got[("ivr_node_sip_registered", (("node", "c"),))] == 0
    assert got[("ivr_node_calls_in_progress", (("node", "a"),))] == 2
    assert ("ivr_node_calls_in_progress", (("node", "b"),)) not in got  # silent: not counted
    assert got[("ivr_database_up", ())] == 1


def test_a_busy_metrics_port_is_a_configuration_error() -> None:
    from ivr.core.errors import ConfigError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"metrics.listen: cannot listen on 127.0.0.1:{port}"):
            metrics.MetricsServer(f"127.0.0.1:{port}", lambda: [])


def test_night_logs_progress_every_30_s_of_its_clock(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    from ivr.campaign.campaign import Campaign
    from ivr.campaign.night import Night, _Progress

    clock = FakeClock(NOW)
    config = parse_config(config_data())
    ids = [survey(store, f"R{i}", f"+37529100000{i}") for i in range(4)]
    night = Night(Campaign(config, store, None, None, FakePhone([]), FakePrompts(), clock))  # type: ignore[arg-type]
    progress = _Progress(night, DAY)
    # (seconds on the night's clock, surveys finished by then)
    for t, done in ((0, 0), (10, 1), (29, 1), (30, 2), (45, 2), (60, 2)):
        clock.t = t
        while store.status_counts().get("done:satisfied", 0) < done:
            n = store.status_counts().get("done:satisfied", 0)
            store.record_outcome(ids[n], "satisfied", "1", None, clock.now(), clock.now())
        with caplog.at_level(logging.INFO, logger="ivr.campaign.night"):
            progress.maybe_log(clock.now())
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress")]
    assert lines == [
        "progress 2026-11-25: 0 of 4 done, 0 in calls, 0 waiting for a retry, 4 due; "
        "finish not yet estimated",
        # 2 done in 30 s: the other 2 in 30 s more
        "progress 2026-11-25: 2 of 4 done, 0 in calls, 0 waiting for a retry, 2 due; "
        "finish estimated at 10:01:00",
        "progress 2026-11-25: 2 of 4 done, 0 in calls, 0 waiting for a retry, 2 due; "
        "finish estimated at 10:02:00",
    ]
    assert progress.seconds_left() == 30
