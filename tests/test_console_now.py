"""The Now page's estimate of when the day's calls finish: at the pace of the last 15 minutes,
inside the call windows only (what does not fit today goes on in the next window), not before
the first retry when only retries are left, and "all done" once nothing is left."""

# ruff: noqa: F811 - the fixtures of test_console_routes are imported by name

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr.config import parse_config
from ivr.console.app import Console
from ivr.console.now import finish_in_windows, read_now
from ivr.windows import CallCalendar
from storage.store import NewSurvey, Store
from tests.helpers import config_data
from tests.test_console_routes import NOW, client_as, console, template_db  # noqa: F401

MINSK = ZoneInfo("Europe/Minsk")
CONFIG = parse_config(config_data())  # mon-fri 09:00-13:00, 14:00-20:00; sat 10:00-16:00
CALENDAR = CallCalendar.from_config(CONFIG)
MAX_CALL = timedelta(seconds=CONFIG.dialing.max_call_s)


def minsk(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 11, day, hh, mm, tzinfo=MINSK)


@pytest.mark.parametrize(
    ("start", "calling", "finish"),
    [
        (minsk(26, 10), timedelta(hours=1), minsk(26, 11)),
        (minsk(26, 12), timedelta(hours=2), minsk(26, 15)),  # the lunch break skipped
        (minsk(26, 19), timedelta(hours=2), minsk(27, 10)),  # on in tomorrow's first window
        (minsk(26, 21), timedelta(minutes=30), minsk(27, 9, 30)),  # the window is closed now
        (minsk(27, 19), timedelta(hours=2), minsk(28, 11)),  # Saturday's single window
        (minsk(28, 15), timedelta(hours=2), minsk(30, 10)),  # Sunday has none
    ],
    ids=["inside", "over-lunch", "into-tomorrow", "window-closed", "to-saturday", "over-sunday"],
)
def test_the_finish_goes_on_in_the_next_windows(
    start: datetime, calling: timedelta, finish: datetime
) -> None:
    assert finish_in_windows(start, calling, CALENDAR, MINSK, MAX_CALL) == finish


def test_no_estimate_past_eight_days() -> None:
    a_week = timedelta(hours=60)  # about six working days of windows
    assert finish_in_windows(minsk(26, 10), a_week, CALENDAR, MINSK, MAX_CALL) is not None
    too_long = timedelta(hours=100)
    assert finish_in_windows(minsk(26, 10), too_long, CALENDAR, MINSK, MAX_CALL) is None


def _surveys(store: Store, n: int) -> list[str]:
    for i in range(n):
        store.add_survey(NewSurvey(f"R{i}", str(i), NOW, date(2026, 11, 25), "x",
                                   f"+3752912345{i:02d}", "ru", None), NOW)  # fmt: skip
    return [s.id for s in store.due_surveys(NOW, n)]


def test_now_estimates_at_the_recent_pace_and_says_all_done(console: Console) -> None:
    store = Store(console.engine)
    ids = _surveys(store, 4)
    done_at = NOW - timedelta(minutes=5)
    for sid in ids[:2]:  # two finished in the last 15 minutes: 15 more for the other two
        store.start_attempt(sid, done_at)
        store.record_outcome(sid, "satisfied", "1", None, done_at, done_at)
    pause = console.admin.pause_state()
    with console.engine.connect() as conn:
        data = read_now(conn, pause, CONFIG, CALENDAR, NOW)
    assert data.remaining == 2 and data.done_total == 2
    assert data.eta == NOW + timedelta(minutes=15)
    client, _ = client_as(console, "viewer")
    assert "пока неизвестно" not in client.get("/now/live").text
    for sid in ids[2:]:
        store.start_attempt(sid, NOW)
        store.record_outcome(sid, "satisfied", "1", None, NOW, NOW)
    assert "всё сделано" in client.get("/now/live").text
    assert data.now.tzinfo is UTC
