"""The campaign core: its explicit steps, driven the same way by ``night`` and ``run``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ivr.campaign.campaign import EXPIRE_EVERY_S, Campaign, Expired
from ivr.campaign.night import Night
from ivr.core.config import Config, parse_config
from storage.store import NewSurvey, Store
from tests.fakes import FakeClock, FakePhone, FakePrompts
from tests.helpers import config_data

# Thursday 2026-11-26 10:00 in Minsk (07:00 UTC) is inside the default weekday window.
INSIDE = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
DAY = date(2026, 11, 26)


def cfg() -> Config:
    return parse_config(config_data(dialing={"survey_deadline": "6h"}), env={})


def add(store: Store, pid: str, phone: str, closed_at: datetime) -> None:
    store.add_survey(NewSurvey(pid, pid[1:], closed_at, DAY, "x", phone, "ru", None), closed_at)


def campaign(store: Store, clock: FakeClock) -> Campaign:
    return Campaign(cfg(), store, None, None, FakePhone([]), FakePrompts(), clock)  # type: ignore[arg-type]


def test_expire_ends_overdue_surveys_and_recovers_dead_nodes_claims(store: Store) -> None:
    clock = FakeClock(INSIDE)
    add(store, "R2", "+375291000002", INSIDE - timedelta(hours=1))
    (claimed,) = store.claim_due(INSIDE, 1, "dead-node", timedelta(minutes=5), DAY)
    add(store, "R1", "+375291000001", INSIDE - timedelta(hours=7))  # past its 6 h deadline
    c = campaign(store, clock)
    try:
        assert c.expire(INSIDE) == Expired(overdue=1, recovered=0)  # the lease still runs
        later = INSIDE + timedelta(minutes=6)
        assert c.expire(later) == Expired(overdue=0, recovered=1)
        assert store.attempt_history(claimed.surveys[0].id) == ["interrupted"]
        rows = {r.portal_request_id: r for r in store.report_rows()}
        assert (rows["R1"].outcome, rows["R1"].reason) == ("no_answer", "survey_expired")
        assert rows["R2"].outcome is None  # retried later, not ended
    finally:
        c.drain()


def test_starting_calls_expires_nothing(store: Store) -> None:
    """Expiry is its own step: dial_due leaves an overdue survey alone (nothing is due to dial
    outside a window, yet before, a round of the dialer also ended the overdue ones)."""
    clock = FakeClock(INSIDE)
    add(store, "R1", "+375291000001", INSIDE - timedelta(hours=7))
    c = campaign(store, clock)
    try:
        c.dialer.paused.set()
        assert c.dial_due(INSIDE, DAY) == 0
        assert store.report_rows()[0].outcome is None
    finally:
        c.drain()


@pytest.mark.parametrize("elapsed_s", [0.0, EXPIRE_EVERY_S - 1], ids=["same-instant", "29-s-later"])
def test_the_night_runs_the_expiry_at_once_then_every_30_s(store: Store, elapsed_s: float) -> None:
    clock = FakeClock(INSIDE)
    night = Night(campaign(store, clock))
    add(store, "R1", "+375291000001", INSIDE - timedelta(hours=7))
    night._expire(INSIDE)
    assert store.report_rows()[0].outcome == "no_answer"
    add(store, "R2", "+375291000002", INSIDE - timedelta(hours=7))
    clock.t += elapsed_s
    night._expire(INSIDE)
    assert {r.portal_request_id: r.outcome for r in store.report_rows()}["R2"] is None
    clock.t += EXPIRE_EVERY_S
    night._expire(INSIDE)
    assert {r.portal_request_id: r.outcome for r in store.report_rows()}["R2"] == "no_answer"
    night.campaign.drain()
