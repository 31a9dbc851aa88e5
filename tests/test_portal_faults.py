"""The portal link under faults, against the real emulator over loopback, on SQLite and PostgreSQL.

Each scenario runs a whole night's portal traffic (import until complete, an outcome for every
survey, delivery until the outbox is empty) with a fault injected, then checks what a user of
the portal would check: exactly one rating per survey, none missing, and the database and the
portal agree on every rating."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.campaign.delivery import BACKOFF_CAP_S, deliver_due
from ivr.campaign.importer import import_missing_days as import_job
from ivr.portal.client import PortalClient
from lab.portal_emulator import PortalEmulator
from lab.sample_requests import make_items
from storage.models import Delivery, Survey
from storage.store import Store
from tests.fakes import FakeClock
from tests.helpers import wait_until

MINSK = ZoneInfo("Europe/Minsk")
DAY = date(2026, 3, 1)
NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 10:00 in Minsk the next day
TOKEN = "test-token"
PHONES = [f"+37529{n:07d}" for n in range(1000001, 1000013)] + [
    "+12025550123",  # foreign: disallowed_number
    "12345",  # invalid_phone
    "8 (029) 700-00-01",  # refused calls in the portal: no_consent
]


@pytest.fixture
def items() -> list[dict[str, Any]]:
    day_items = make_items(DAY, "Europe/Minsk", PHONES)
    day_items[-1]["consent_to_calls"] = False
    broken = dict(day_items[0], id="REQ-BROKEN", closed_at="yesterday")  # rejected, not rated
    return [*day_items, broken]


@pytest.fixture
def portal(items: list[dict[str, Any]]) -> Iterator[PortalEmulator]:
    with PortalEmulator(items, token=TOKEN) as emulator:
        yield emulator


def client_for(
    portal: PortalEmulator, clock: FakeClock, token: str = TOKEN, **kwargs: Any
) -> PortalClient:
    options: dict[str, Any] = {
        "timeout_s": 0.5,
        "page_size": 4,
        "retry_budget_s": 120.0,
        "clock": clock,
        "rng": random.Random(7),
    }
    options.update(kwargs)
    return PortalClient(portal.base_url, token, **options)


def import_until_complete(store: Store, client: PortalClient, tries: int = 5) -> None:
    """What the service does: import, and retry the incomplete day later."""
    for _ in range(tries):
        import_job(store, client, MINSK, NOW, lookback_days=1)
        if store.import_completed(DAY):
            return
    raise AssertionError(f"the import of {DAY} never completed")


def answer_everyone(store: Store) -> None:
    """Every dialable survey gets an outcome (the calls themselves are tested elsewhere)."""
    for i, survey in enumerate(store.due_surveys(NOW + timedelta(days=1), 1000)):
        outcome = "unsatisfied" if i % 3 == 0 else "satisfied"
        digit = "2" if outcome == "unsatisfied" else "1"
        store.record_outcome(survey.id, outcome, digit, None, NOW, NOW)


def deliver_until_empty(store: Store, client: PortalClient, start: datetime = NOW) -> datetime:
    """The delivery loop, with time moved past every backoff instead of slept."""
    now = start
    for _ in range(100):
        stats = deliver_due(store, client, now, rng=random.Random(3))
        if store.delivery_counts().get("pending", 0) == 0:
            return now
        if not stats.alarm:
            now += timedelta(seconds=BACKOFF_CAP_S + 1)
        else:
            return now
    raise AssertionError("the outbox never emptied")


def assert_portal_agrees(store: Store, portal: PortalEmulator) -> None:
    """Exactly one rating per survey, none missing; database and portal agree."""
    ratings = portal.ratings
    keys = [key for _, key, _ in ratings]
    assert len(keys) == len(set(keys)), "a survey was rated twice"
    with Session(store.engine) as s:
        surveys = {sv.id: sv for sv in s.scalars(select(Survey))}
        deliveries = {d.survey_id: d for d in s.scalars(select(Delivery))}
    expected_requests = {f"REQ-{1000001 + i}" for i in range(len(PHONES))}
    assert sorted(sv.portal_request_id for sv in surveys.values()) == sorted(expected_requests)
    assert set(deliveries) == set(surveys), "a survey has no rating in the outbox"
    assert {d.state for d in deliveries.values()} == {"delivered"}
    assert {key: (rid, body) for rid, key, body in ratings} == {
        sid: (d.portal_request_id, d.payload) for sid, d in deliveries.items()
    }
    reasons = {body["reason"] for _, _, body in ratings if body["outcome"] == "not_called"}
    assert reasons == {"disallowed_number", "invalid_phone", "no_consent"}
    assert all(
        body["return_for_rework"] == (body["outcome"] == "unsatisfied") for *_, body in ratings
    )


def run_night(store: Store, portal: PortalEmulator, client: PortalClient) -> None:
    import_until_complete(store, client)
    answer_everyone(store)
    deliver_until_empty(store, client)


Fault = Callable[[PortalEmulator], None]
SCENARIOS: dict[str, tuple[Fault, Fault]] = {
    # (fault before the import, fault before the delivery)
    "5xx-burst": (
        lambda p: (p.fail_next(3, 503), p.fail_next(2, 502, after=2))[0],
        lambda p: (p.fail_next(4, 500), p.fail_next(3, 503, after=5))[0],
    ),
    "429-retry-after": (
        lambda p: p.fail_next(2, 429, retry_after=7, after=1),
        lambda p: p.fail_next(3, 429, retry_after=30, after=2),
    ),
    "slower-than-timeout": (
        lambda p: p.stall_next(2, 1.5),
        lambda p: p.stall_next(2, 1.5),  # the stalled POSTs are recorded: lost responses
    ),
    "malformed-json-page": (
        lambda p: (
            p.fail_next(1, 200, body=b"<html>502 Bad gateway</html>", after=1),
            p.fail_next(1, 200, body=b'{"items": [', after=1),
        )[0],
        lambda p: None,
    ),  # fmt: skip
    "page-repeats-previous-items": (
        lambda p: p.overlap_next_page(3),
        lambda p: None,
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=list(SCENARIOS))
def test_night_survives_the_fault(store: Store, portal: PortalEmulator, scenario: str) -> None:
    before_import, before_delivery = SCENARIOS[scenario]
    clock = FakeClock()
    with client_for(portal, clock) as client:
        before_import(portal)
        import_until_complete(store, client)
        answer_everyone(store)
        before_delivery(portal)
        deliver_until_empty(store, client)
    assert_portal_agrees(store, portal)


def test_pull_honours_retry_after_and_backs_off_within_the_budget(
    store: Store, portal: PortalEmulator
) -> None:
    clock = FakeClock()
    waits: list[float] = []
    real_sleep = clock.sleep

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        real_sleep(seconds)

    clock.sleep = sleep  # type: ignore[method-assign]
    portal.fail_next(1, 429, retry_after=7)
    portal.fail_next(3, 503)
    with client_for(portal, clock, backoff_base_s=2.0) as client:
        assert import_job(store, client, MINSK, NOW, lookback_days=1) == 1
    assert waits[0] == 7  # the portal's Retry-After, exactly
    # Then exponential backoff with jitter (the 429 counted): within [ceiling/2, ceiling].
    for wait, ceiling in zip(waits[1:], (4.0, 8.0, 16.0), strict=True):
        assert ceiling / 2 <= wait <= ceiling


def test_pull_gives_up_at_the_budget_and_the_day_is_retried_later(
    store: Store, portal: PortalEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    portal.fail_next(50, 503, after=1)  # longer than the budget
    with client_for(portal, clock, retry_budget_s=30.0) as client:
        assert import_job(store, client, MINSK, NOW, lookback_days=1) == 0
        assert 0 < clock.t <= 30.0  # waited, but never past the budget
        assert not store.import_completed(DAY)
        assert len(store.report_rows(DAY)) == 4  # the first page is kept
        portal.clear_faults()  # the portal recovers
        run_night(store, portal, client)
    assert "failed, will retry later" in caplog.text
    assert_portal_agrees(store, portal)


def test_a_retry_after_beyond_the_budget_gives_up_at_once(
    store: Store, portal: PortalEmulator
) -> None:
    clock = FakeClock()
    portal.fail_next(1, 429, retry_after=3600)
    with client_for(portal, clock, retry_budget_s=60.0) as client:
        assert import_job(store, client, MINSK, NOW, lookback_days=1) == 0
    assert clock.t == 0  # no pointless wait: the periodic retry comes back later


def test_refused_token_then_fixed(
    store: Store, portal: PortalEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    portal.fail_next(1, 401, after=1)  # the token is revoked after the first page
    with client_for(portal, clock) as client:
        assert import_job(store, client, MINSK, NOW, lookback_days=1) == 0
    assert not store.import_completed(DAY)
    assert len(store.report_rows(DAY)) == 4  # what came before the refusal is kept
    alarm = [r.getMessage() for r in caplog.records if "ALARM" in r.getMessage()]
    assert alarm and portal.base_url in alarm[0] and TOKEN not in caplog.text
    # The wrong token: nothing is imported, delivery is paused and nothing is lost.
    with client_for(portal, clock, token="expired") as wrong:
        assert import_job(store, wrong, MINSK, NOW, lookback_days=1) == 0
        answer_everyone(store)
        stats = deliver_due(store, wrong, NOW)
        assert stats.alarm and stats.delivered == 0
    assert "expired" not in caplog.text
    assert store.delivery_counts().get("delivered", 0) == 0
    # Fixed: the rest is imported once, every result delivered once.
    with client_for(portal, clock) as client:
        run_night(store, portal, client)
    assert_portal_agrees(store, portal)


def test_portal_killed_and_restarted_mid_delivery(
    store: Store, portal: PortalEmulator, db_url: str
) -> None:
    clock = FakeClock()
    with client_for(portal, clock) as client:
        import_until_complete(store, client)
    answer_everyone(store)
    port = int(portal.base_url.split(":")[2].split("/")[0])
    total = store.delivery_counts()["pending"]
    # Delivery is under way; the portal hangs on the 6th rating, then dies.
    portal.fail_next(0, 200, after=5)
    portal.stall_next(1, 30.0)
    client = client_for(portal, clock, timeout_s=10.0)
    worker = threading.Thread(target=deliver_due, args=(store, client, NOW), daemon=True)
    worker.start()
    wait_until(lambda: portal.rating_posts >= 6, 10, "the 6th rating to reach the portal")
    portal.stop()  # killed; the stalled rating may or may not be recorded
    worker.join(timeout=15)
    assert not worker.is_alive()
    client.close()
    counts = store.delivery_counts()
    assert counts.get("pending", 0) > 0 and sum(counts.values()) == total
    # Our side restarts too: a new engine and store on the same database.
    from storage.db import make_engine

    engine = make_engine(db_url)
    try:
        restarted_store = Store(engine)
        with PortalEmulator(portal._items, token=TOKEN, port=port, book=portal.book) as again:
            assert again.base_url == portal_base(port)
            with client_for(again, clock) as client:
                deliver_until_empty(restarted_store, client, NOW + timedelta(seconds=1))
            assert_portal_agrees(restarted_store, again)
    finally:
        engine.dispose()


def portal_base(port: int) -> str:
    return f"http://127.0.0.1:{port}/api/v1"


def test_an_unsatisfied_result_goes_first_and_carries_return_for_rework(
    store: Store, portal: PortalEmulator
) -> None:
    clock = FakeClock()
    with client_for(portal, clock) as client:
        run_night(store, portal, client)
    outcomes = [body["outcome"] for _, _, body in portal.ratings]
    unsatisfied = outcomes.count("unsatisfied")
    assert unsatisfied > 0 and outcomes[:unsatisfied] == ["unsatisfied"] * unsatisfied
