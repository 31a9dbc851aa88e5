"""Outbox delivery against the real portal emulator over loopback."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from ivr.campaign.delivery import deliver_due
from ivr.entry.cli import main
from ivr.portal.client import PortalClient
from lab.portal_emulator import PortalEmulator
from lab.sample_requests import make_items
from storage.db import make_engine
from storage.store import NewSurvey, Store
from tests.helpers import config_data

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


def test_a_dead_letter_is_sent_again_only_when_the_operator_asks(
    tmp_path: Path, portal: PortalEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """`deliver` leaves a refused rating dead; `deliver --retry-dead ID` (after the portal
    side was fixed) sends it once; an id that is no dead letter re-queues nothing."""
    db = f"sqlite:///{tmp_path / 'ivr.sqlite'}"
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            config_data(database=db, portal={"base_url": portal.base_url, "token": "test-token"})
        )
    )

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["--config", str(config), *args])
        out, err = capsys.readouterr()
        return code, out, err

    assert cli("db", "upgrade")[0] == 0
    store = Store(make_engine(db))
    refused, other = finished(store, portal, ["unsatisfied", "satisfied"])
    portal.fail_next(1, 422, body=b'{"error": "request is archived"}')
    assert cli("deliver")[0] == 0
    assert store.delivery_counts() == {"dead": 1, "delivered": 1}
    code, out, _ = cli("report", "--date", DAY.isoformat())
    assert f"request {refused} " in out and "request is archived" in out
    assert cli("deliver")[0] == 0  # never retried blindly
    assert portal.rating_posts == 2

    code, _, err = cli("deliver", "--retry-dead", other, "no-such-id")
    assert code == 1 and "not a dead letter: " in err and "no-such-id" in err
    assert store.delivery_counts() == {"dead": 1, "delivered": 1}

    code, out, _ = cli("deliver", "--retry-dead", refused)
    assert code == 0 and f"re-queued 1 dead letter(s): {refused}" in out
    assert store.delivery_counts() == {"delivered": 2}
    assert [r[0] for r in portal.ratings].count(refused) == 1
    assert portal.ratings[-1][2]["return_for_rework"] is True
    assert cli("deliver", "--retry-dead")[1].startswith("re-queued 0 dead letter(s)")
    assert portal.rating_posts == 3
    store.engine.dispose()


def test_refused_token_pauses_delivery_and_keeps_results(
    store: Store, portal: PortalEmulator
) -> None:
    finished(store, portal, ["satisfied", "unsatisfied"])
    with client(portal, token="wrong") as c:
        stats = deliver_due(store, c, NOW)
    assert stats.alarm and stats.delivered == 0
    assert store.delivery_counts() == {"pending": 2}
    with client(portal) as c:
        assert deliver_due(store, c, NOW).delivered == 2
