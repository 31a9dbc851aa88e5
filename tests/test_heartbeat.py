"""Node heartbeats on SQLite and PostgreSQL: upsert, silence judged on an injected clock, the
writer fed by a running dialer, and what ``ivr-rating status`` says about the nodes."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from ivr.campaign.dialer import Dialer
from ivr.campaign.heartbeat import HeartbeatWriter, NodeProbe
from ivr.campaign.operator import status_text
from ivr.core.config import parse_config
from storage.heartbeat import NodeHeartbeat, list_nodes, write_heartbeat
from storage.store import Store
from tests.fakes import FakeClock, FakePhone, FakePrompts
from tests.helpers import config_data

T0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def beat(name: str, seen_at: datetime, **changes: object) -> NodeHeartbeat:
    hb = NodeHeartbeat(
        name=name,
        host="host-" + name,
        pid=4242,
        version="0.1.0",
        started_at=T0,
        seen_at=seen_at,
        calls_up=1,
        channel_cap=4,
        registration="registered",
        last_error=None,
    )
    return replace(hb, **changes)  # type: ignore[arg-type]


def test_write_is_an_upsert_and_list_reads_it_back(engine: Engine) -> None:
    write_heartbeat(engine, beat("b", T0))
    write_heartbeat(engine, beat("a", T0))
    later = T0 + timedelta(seconds=5)
    write_heartbeat(
        engine,
        beat("b", later, calls_up=3, registration="failed", last_error="SIP: 403 Forbidden"),
    )
    nodes = list_nodes(engine, later)
    assert [n.name for n in nodes] == ["a", "b"]
    b = nodes[1]
    assert (b.seen_at, b.calls_up, b.registration, b.last_error) == (
        later,
        3,
        "failed",
        "SIP: 403 Forbidden",
    )
    assert b.started_at == T0 and b.host == "host-b" and b.pid == 4242


@pytest.mark.parametrize(
    ("age_s", "silent"),
    [(0, False), (29.9, False), (30, False), (30.1, True), (3600, True)],
    ids=["just-seen", "almost", "at-limit", "past-limit", "an-hour"],
)
def test_a_node_is_silent_after_30_s_without_a_heartbeat(
    engine: Engine, age_s: float, silent: bool
) -> None:
    write_heartbeat(engine, beat("a", T0))
    (node,) = list_nodes(engine, T0 + timedelta(seconds=age_s))
    assert node.silent is silent


def test_silence_limit_is_a_parameter(engine: Engine) -> None:
    write_heartbeat(engine, beat("a", T0))
    assert list_nodes(engine, T0 + timedelta(seconds=20), silent_after_s=10)[0].silent


def test_unknown_registration_state_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="registration"):
        write_heartbeat(engine, beat("a", T0, registration="maybe"))


def test_writer_reports_the_running_dialer_and_the_last_error(store: Store) -> None:
    clock = FakeClock(T0)
    config = parse_config(config_data(dialing={"channels": 3}, node={"name": "n1"}))
    probe = NodeProbe("n1", clock, FakePhone([]))
    writer = HeartbeatWriter(store.engine, probe, every_s=3600)
    with writer:
        (node,) = list_nodes(store.engine, clock.now())
        assert (node.calls_up, node.channel_cap, node.registration) == (0, 0, "unregistered")
        with Dialer(store, FakePhone([]), FakePrompts(), config, clock) as dialer:
            probe.dialer = dialer
            logging.getLogger("ivr.test").error("portal unreachable: %s", "timeout")
            clock.sleep(12)
            assert writer.beat()
            (node,) = list_nodes(store.engine, clock.now())
            assert node.channel_cap == 3 and not node.silent
            assert node.seen_at == T0 + timedelta(seconds=12)
            assert node.last_error == "ivr.test: portal unreachable: timeout"
    # Stopped cleanly: the node leaves the list (gone, not silent).
    assert list_nodes(store.engine, clock.now()) == []


def test_status_never_says_running_without_a_live_node(store: Store) -> None:
    config = parse_config(config_data())
    text = status_text(config, store, T0)
    assert "state:              no node running" in text
    assert "none has ever run" in text

    write_heartbeat(store.engine, beat("a", T0))
    write_heartbeat(store.engine, beat("b", T0 - timedelta(minutes=5), registration="failed"))
    text = status_text(config, store, T0 + timedelta(seconds=4))
    assert "state:              running (1 node(s) alive)" in text
    lines = text.splitlines()
    a = next(line for line in lines if line.strip().startswith("a:"))
    b = next(line for line in lines if line.strip().startswith("b:"))
    assert "alive, seen 4s ago" in a and "calls 1/4" in a and "SIP registered" in a
    assert "SILENT for 5m" in b and "SIP failed" in b

    # An hour later both are silent: the state says so, not "running".
    text = status_text(config, store, T0 + timedelta(hours=1))
    assert "state:              no node running" in text
    assert text.count("SILENT") == 2
    # Two days later they are forgotten (a crashed host-pid node must not stay for ever).
    assert list_nodes(store.engine, T0 + timedelta(days=2)) == []

    store.set_flag("paused", "1", T0)
    later = T0 + timedelta(hours=1)
    assert "state:              PAUSED; no node running" in status_text(config, store, later)
    assert "state:              PAUSED; running (1 node" in status_text(config, store, T0)
