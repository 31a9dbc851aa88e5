"""Outbox delivery against the real portal emulator over loopback."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from ivr.delivery import deliver_due
from ivr.lab.portal_emulator import PortalEmulator
from ivr.lab.sample_requests import make_items
from ivr.portal import PortalClient
from storage.store import NewSurvey, Store

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
DAY = date(2026, 11, 26)


@pytest.fixture
def portal() -> Iterator[PortalEmulator]:
    items = make_items(DAY, "Europe/Minsk", [f"+37529100000{i}" for i in range(4)])
    with PortalEmulator(items) as emu:
        yield emu


def finished(store: Store, portal: PortalEmulator, outcomes: list[str]) -> list[str]:
    for item in portal_items(portal)[: len(outcomes)]:
        store.add_survey(
            NewSurvey(
                item["id"],
                item["number"],
                datetime.fromisoformat(item["closed_at"]),
                DAY,
                item["phone"],
                item["phone"],
                "ru",
                None,
            ),
            NOW,
        )
    ids = []
    for s, outcome in zip(store.due_surveys(NOW, 10), outcomes, strict=False):
        store.record_outcome(
            s.id, outcome, "2" if outcome == "unsatisfied" else "1", None, NOW, NOW
        )
        ids.append(s.portal_request_id)
    return ids


def portal_items(portal: PortalEmulator) -> list[dict[str, str]]:
    return make_items(DAY, "Europe/Minsk", [f"+37529100000{i}" for i in range(4)])


def client(portal: PortalEmulator, token: str = "test-token") -> PortalClient:
    return PortalClient(portal.base_url, token, timeout_s=3, page_size=100)


def test_delivers_each_once_unsatisfied_first(store: Store, portal: PortalEmulator) -> None:
    finished(store, portal, ["satisfied", "unsatisfied", "satisfied"])
    with client(portal) as c:
        stats = deliver_due(store, c, NOW)
        again = deliver_due(store, c, NOW)
    assert (stats.delivered, again.delivered) == (3, 0)
    assert portal.ratings[0][2]["outcome"] == "unsatisfied"
    assert portal.ratings[0][2]["return_for_rework"] is True
    assert len({key for _, key, _ in portal.ratings}) == 3 and portal.rating_posts == 3


def test_unavailable_portal_defers_and_nothing_is_lost(
    store: Store, portal: PortalEmulator
) -> None:
    finished(store, portal, ["satisfied", "satisfied"])
    portal.fail_next(1, 503)
    with client(portal) as c:
        stats = deliver_due(store, c, NOW, rng=random.Random(1))
        assert (stats.deferred, stats.delivered) == (1, 0)
        assert store.delivery_counts() == {"pending": 2}
        later = NOW + timedelta(minutes=11)
        assert deliver_due(store, c, later).delivered == 2
    assert store.delivery_counts() == {"delivered": 2}
    assert len(portal.ratings) == 2


def test_retry_after_is_honoured(store: Store, portal: PortalEmulator) -> None:
    finished(store, portal, ["satisfied"])
    portal.fail_next(1, 429, retry_after=30)
    with client(portal) as c:
        deliver_due(store, c, NOW)
        assert deliver_due(store, c, NOW + timedelta(seconds=29)).delivered == 0
        assert deliver_due(store, c, NOW + timedelta(seconds=30)).delivered == 1


def test_rejected_rating_becomes_a_dead_letter(store: Store, portal: PortalEmulator) -> None:
    finished(store, portal, ["satisfied", "unsatisfied"])
    portal.fail_next(1, 422, body=b'{"error": "bad outcome"}')
    with client(portal) as c:
        stats = deliver_due(store, c, NOW)
    assert (stats.dead, stats.delivered) == (1, 1)
    assert store.delivery_counts() == {"dead": 1, "delivered": 1}


def test_refused_token_pauses_delivery_and_keeps_results(
    store: Store, portal: PortalEmulator
) -> None:
    finished(store, portal, ["satisfied", "unsatisfied"])
    with client(portal, token="wrong") as c:
        stats = deliver_due(store, c, NOW)
    assert stats.auth_failed and stats.delivered == 0
    assert store.delivery_counts() == {"pending": 2}
    with client(portal) as c:
        assert deliver_due(store, c, NOW).delivered == 2
