"""The portal client is bounded in time, bytes and pages: a hostile portal (a real HTTP server
on loopback: the emulator's hostile hooks) cannot stall, flood or loop an import or a delivery.

Each fault ends within its bound (asserted with generous margins: the bound plus several
seconds) with a named error, what came before it is kept, and once the portal behaves the day
is imported whole. The bounds are injected small so the tests are quick. SIGTERM through the
command line: tests/test_portal_sigterm.py."""

from __future__ import annotations

import logging
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ivr.campaign.delivery import deliver_due
from ivr.campaign.importer import import_missing_days as import_job
from ivr.core.errors import ImportStopped, PortalRedirected, PortalRejected
from ivr.portal.client import PortalClient
from lab.portal_emulator import PortalEmulator
from lab.sample_requests import make_items
from storage.bulk import dead_letters
from storage.store import Store

MINSK = ZoneInfo("Europe/Minsk")
DAY = date(2026, 3, 1)
DAY_START = datetime(2026, 3, 1, tzinfo=MINSK)
DAY_END = DAY_START + timedelta(days=1)
NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
TOKEN = "test-token"
PHONES = [f"+37529{n:07d}" for n in range(2000001, 2000011)]  # 10 items, pages of 4
SLACK_S = 10.0  # a loaded machine: every wall-clock bound is asserted with this much margin


@pytest.fixture
def portal() -> Iterator[PortalEmulator]:
    with PortalEmulator(make_items(DAY, "Europe/Minsk", PHONES), token=TOKEN) as emulator:
        yield emulator


def client_for(portal: PortalEmulator, **kwargs: Any) -> PortalClient:
    options: dict[str, Any] = {
        "timeout_s": 2.0,
        "page_size": 4,
        "request_deadline_s": 1.5,
        "max_page_bytes": 64 * 1024,
        "max_pages": 20,
    }
    options.update(kwargs)
    return PortalClient(portal.base_url, TOKEN, **options)


def within(seconds: float, fn: Callable[[], Any], what: str) -> Any:
    """``fn()`` in a thread; fail (instead of hanging the suite) if it is not done in time."""
    result: list[Any] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise AssertionError(f"{what} still running after {seconds:.0f} s: unbounded")
    if error:
        raise error[0]
    assert time.monotonic() - started <= seconds
    return result[0]


def import_once(store: Store, client: PortalClient) -> int:
    return int(import_job(store, client, MINSK, NOW, lookback_days=1))


def assert_day_imported_whole(store: Store, client: PortalClient) -> None:
    """Nothing lost: the day was left incomplete, and the next try imports every item."""
    assert not store.import_completed(DAY)
    assert import_once(store, client) == 1
    assert store.import_completed(DAY)
    assert sorted(r.portal_request_id for r in store.report_rows(DAY)) == [
        f"REQ-{1000001 + i}" for i in range(len(PHONES))
    ]


# -- time -------------------------------------------------------------------------------------


def test_a_page_trickled_byte_by_byte_is_cut_at_the_deadline(
    store: Store, portal: PortalEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    portal.fail_next(0, 200, after=1)  # the first page comes whole
    portal.trickle_next(1, byte_every_s=0.2)  # the second: a byte every 0.2 s (> 1 minute)
    with client_for(portal) as client:
        assert within(1.5 + SLACK_S, lambda: import_once(store, client), "trickled import") == 0
        assert "did not finish answering within 1.5 s (portal.request_deadline_s)" in caplog.text
        assert len(store.report_rows(DAY)) == 4  # the first page is kept
        assert_day_imported_whole(store, client)


def test_a_rating_answer_trickled_is_cut_at_the_deadline_and_stays_pending(
    store: Store, portal: PortalEmulator
) -> None:
    with client_for(portal) as client:
        import_once(store, client)
        survey = store.due_surveys(NOW + timedelta(days=1), 1)[0]
        store.record_outcome(survey.id, "satisfied", "1", None, NOW, NOW)
        portal.trickle_next(1, byte_every_s=0.5)
        stats = within(1.5 + SLACK_S, lambda: deliver_due(store, client, NOW), "trickled POST")
        assert stats.deferred == 1 and stats.delivered == 0
        assert store.delivery_counts() == {"pending": 1}
        later = NOW + timedelta(hours=1)
        assert deliver_due(store, client, later).delivered == 1
    assert len(portal.ratings) == 1  # the portal had it once; the repeat was idempotent


# -- bytes ------------------------------------------------------------------------------------


def test_an_endless_page_is_abandoned_at_the_byte_cap_with_memory_bounded(
    store: Store, portal: PortalEmulator
) -> None:
    cap = 256 * 1024
    portal.fail_next(0, 200, after=1)
    portal.endless_next(1)
    with client_for(portal, max_page_bytes=cap, request_deadline_s=30) as client:
        tracemalloc.start()
        try:
            with pytest.raises(PortalRejected, match="larger than 262144 bytes") as caught:
                within(SLACK_S, lambda: list(client.iter_closed(DAY_START, DAY_END)), "endless")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert caught.value.status == 200 and "/requests/closed" in caught.value.url
        assert peak < 4 * cap + 2 * 1024 * 1024, f"peak {peak} bytes for a {cap}-byte cap"
        assert_day_imported_whole(store, client)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"items": [], "next_cursor": null, "pad": "' + b"x" * 100_000 + b'"}',
         "larger than 65536 bytes"),
        (b'{"items": [{}, {}, {}, {}, {}], "next_cursor": null}',
         "5 items, more than the limit=4"),
        (b'{"items": ' + b"[" * 20_000 + b"]" * 20_000 + b', "next_cursor": null}',
         "not JSON: JSON nested deeper than 64 levels"),
        (b'{"items": [' + b'{"a": ' * 200 + b"1" + b"}" * 200 + b'], "next_cursor": null}',
         "not JSON: JSON nested deeper than 64 levels"),
    ],
    ids=["oversized-page", "more-items-than-the-limit", "deep-json", "deep-json-item"],
)  # fmt: skip
def test_a_page_out_of_bounds_is_a_clear_error_and_the_day_is_retried(
    store: Store,
    portal: PortalEmulator,
    body: bytes,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    portal.fail_next(1, 200, body=body, after=1)
    with client_for(portal) as client:
        assert import_once(store, client) == 0
        assert message in caplog.text
        assert len(store.report_rows(DAY)) == 4  # the first page is kept
        assert_day_imported_whole(store, client)


# -- pages ------------------------------------------------------------------------------------


def test_endless_cursors_stop_at_max_pages(
    store: Store, portal: PortalEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    portal.endless_cursors(True)
    with client_for(portal, max_pages=7) as client:
        assert within(SLACK_S, lambda: import_once(store, client), "endless cursors") == 0
        assert "still gives a next cursor after 7 pages (portal.max_pages)" in caplog.text
        assert len(portal.requests_seen) == 7
        portal.endless_cursors(False)
        assert_day_imported_whole(store, client)


# -- redirects --------------------------------------------------------------------------------


def test_a_redirected_import_is_a_configuration_alarm_showing_the_location(
    store: Store, portal: PortalEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    portal.redirect_next(1, "https://user:pw@moved.example/api/v2/requests/closed", status=301)
    with client_for(portal) as client:
        with pytest.raises(PortalRedirected) as caught:
            list(client.iter_closed(DAY_START, DAY_END))
        assert caught.value.status == 301
        assert caught.value.location == "https://***@moved.example/api/v2/requests/closed"
        portal.redirect_next(1, "https://moved.example/api/v2/requests/closed")
        assert import_once(store, client) == 0
        alarms = [r.getMessage() for r in caplog.records if "ALARM" in r.getMessage()]
        assert any("https://moved.example/api/v2" in line for line in alarms)
        assert "check portal.base_url" in caplog.text and "pw@" not in caplog.text
        assert_day_imported_whole(store, client)
    assert [path for _, path in portal.requests_seen if "moved" in path] == []  # not followed


def test_a_redirected_rating_stays_pending_never_a_dead_letter(
    store: Store, portal: PortalEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    with client_for(portal) as client:
        import_once(store, client)
        for survey in store.due_surveys(NOW + timedelta(days=1), 3):
            store.record_outcome(survey.id, "satisfied", "1", None, NOW, NOW)
        portal.redirect_next(1, "http://elsewhere.example/ratings", status=308)
        stats = deliver_due(store, client, NOW)
        assert stats.alarm and stats.dead == 0 and stats.delivered == 0
        assert store.delivery_counts() == {"pending": 3}
        assert dead_letters(store) == []
        assert "ALARM" in caplog.text and "http://elsewhere.example/ratings" in caplog.text
        assert deliver_due(store, client, NOW).delivered == 3  # fixed: all go, once each
    assert len(portal.ratings) == 3


# -- what is kept of an answer ------------------------------------------------------------------


def test_credentials_in_a_refusal_are_redacted_from_the_dead_letter(
    store: Store, portal: PortalEmulator
) -> None:
    echo = (
        b'{"error": "bad rating", "request": {"headers": {"Authorization": "Bearer abc123xyz"},'
        b' "password": "hunter2", "client_secret": "s3cr3t-value"}, "token": "test-token"}'
    )
    with client_for(portal) as client:
        import_once(store, client)
        survey = store.due_surveys(NOW + timedelta(days=1), 1)[0]
        store.record_outcome(survey.id, "satisfied", "1", None, NOW, NOW)
        portal.fail_next(1, 422, body=echo)
        assert deliver_due(store, client, NOW).dead == 1
    answer = dead_letters(store)[0].answer or ""
    assert "bad rating" in answer and "***" in answer
    for secret in ("abc123xyz", "hunter2", "s3cr3t-value", TOKEN):
        assert secret not in answer


# -- the environment is not trusted -------------------------------------------------------------


def test_netrc_and_proxy_settings_from_the_environment_are_ignored(
    portal: PortalEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://proxyuser:proxy-secret@127.0.0.1:9")  # nobody there
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with client_for(portal) as client:
        # Trusted, the .netrc would replace our bearer token (401) or the proxy refuse us.
        items = list(client.iter_closed(DAY_START, DAY_END))
    assert len(items) == len(PHONES)


# -- SIGTERM -----------------------------------------------------------------------------------


def test_a_stop_between_pages_ends_the_import_and_keeps_what_came(portal: PortalEmulator) -> None:
    stop = threading.Event()
    with client_for(portal, stop=stop) as client:
        pages = client.iter_closed(DAY_START, DAY_END)
        first = [next(pages) for _ in range(4)]
        stop.set()
        with pytest.raises(ImportStopped, match="after 1 page"):
            next(pages)
    assert len(first) == 4 and len(portal.requests_seen) == 1


def test_a_stop_ends_the_retry_wait(store: Store, portal: PortalEmulator) -> None:
    stop = threading.Event()
    portal.fail_next(1000, 503)
    with client_for(portal, stop=stop, retry_budget_s=600, backoff_base_s=30) as client:
        threading.Timer(0.5, stop.set).start()
        assert within(SLACK_S, lambda: import_once(store, client), "import while stopping") == 0
    assert not store.import_completed(DAY)


def test_loopback_http_is_fine_and_logs_no_warning(
    portal: PortalEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    from ivr.core.config import parse_config
    from ivr.entry.app import make_portal
    from tests.helpers import config_data

    config = parse_config(config_data(portal={"base_url": portal.base_url, "token": TOKEN}), {})
    with make_portal(config) as client:
        assert len(list(client.iter_closed(DAY_START, DAY_END))) == len(PHONES)
    assert "WARNING" not in caplog.text


def test_insecure_http_allowed_warns_at_every_start(caplog: pytest.LogCaptureFixture) -> None:
    from ivr.core.config import parse_config
    from ivr.entry.app import make_portal
    from tests.helpers import config_data

    portal = {"base_url": "http://portal.example/api", "token": "t", "allow_insecure_http": True}
    config = parse_config(config_data(portal=portal), {})
    caplog.set_level(logging.WARNING, logger="ivr.entry.app")
    for _ in range(2):
        make_portal(config).close()
    warnings = [r for r in caplog.records if "unencrypted" in r.getMessage()]
    assert len(warnings) == 2 and "portal.allow_insecure_http" in warnings[0].getMessage()
