"""The Now page's estimate of when the day's calls finish: at the pace of the last 15 minutes,
inside the call windows only (what does not fit today goes on in the next window), not before
the first retry when only retries are left, and "all done" once nothing is left."""

# ruff: noqa: F811 - the fixtures of test_console_routes are imported by name

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr.console.app import Console
from ivr.console.now import NOW_CACHE_S, NOW_STALE_S, Recent, finish_in_windows, read_now
from ivr.core.config import parse_config
from ivr.core.windows import CallCalendar
from storage.store import NewSurvey, Store
from tests.helpers import config_data, start_attempt, wait_until
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
        start_attempt(store, sid, done_at)
        store.record_outcome(sid, "satisfied", "1", None, done_at, done_at)
    pause = console.admin.pause_state()
    with console.engine.connect() as conn:
        data = read_now(conn, pause, CONFIG, CALENDAR, NOW)
    assert data.remaining == 2 and data.done_total == 2
    assert data.eta == NOW + timedelta(minutes=15)
    client, _ = client_as(console, "viewer")
    assert "пока неизвестно" not in client.get("/now/live").text
    for sid in ids[2:]:
        start_attempt(store, sid, NOW)
        store.record_outcome(sid, "satisfied", "1", None, NOW, NOW)
    assert "всё сделано" not in client.get("/now/live").text  # the figures of a moment ago
    console.clock.t += NOW_STALE_S  # type: ignore[attr-defined]
    assert "всё сделано" in client.get("/now/live").text
    assert data.now.tzinfo is UTC


def test_now_figures_are_shared_for_a_moment_and_a_change_clears_them(console: Console) -> None:
    viewer, _ = client_as(console, "viewer")
    operator, token = client_as(console, "operator")
    queries: list[str] = []
    from sqlalchemy import event

    event.listen(console.engine, "before_cursor_execute",
                 lambda *a: queries.append(a[2]) if "surveys" in a[2] else None)  # fmt: skip
    first = viewer.get("/now/live")
    assert "Server-Timing" in first.headers and first.headers["Server-Timing"].startswith("app;")
    asked = len(queries)
    assert asked > 0
    operator.get("/now/live")
    viewer.get("/")
    assert len(queries) == asked  # two more pages, the same figures
    operator.post("/pause", data={"reason": "trunk", "csrf": token})
    assert "trunk" in viewer.get("/now/live").text
    assert len(queries) == 2 * asked  # the change cleared them
    # Older than NOW_CACHE_S: served as they are, the next computed in the background.
    console.clock.t += NOW_CACHE_S  # type: ignore[attr-defined]
    assert "trunk" in viewer.get("/now/live").text
    wait_until(lambda: len(queries) == 3 * asked, 30, "the background refresh")
    console.clock.t += NOW_STALE_S  # type: ignore[attr-defined]  # too old: in the request
    viewer.get("/now/live")
    assert len(queries) == 4 * asked


def test_recent_serves_fresh_then_stale_while_refreshing_then_recomputes() -> None:
    seen = iter(range(100))
    recent: Recent[int] = Recent(2.0, 10.0)
    assert [recent.get(t, lambda: next(seen)) for t in (10.0, 11.9, 12.0)] == [0, 0, 0]
    wait_until(lambda: recent.get(12.5, lambda: -1) == 1, 30, "the background computation")
    assert recent.get(30.0, lambda: next(seen)) == 2  # too old: computed in the call
    assert recent.get(5.0, lambda: next(seen)) == 3  # the clock went back
    recent.clear()
    assert recent.get(5.0, lambda: next(seen)) == 4


def test_a_computation_begun_before_a_change_is_not_kept() -> None:
    recent: Recent[str] = Recent(2.0, 10.0)
    recent.get(0.0, lambda: "old")

    def slow() -> str:
        recent.clear()  # a change lands while it computes
        return "computed before the change"

    assert recent.get(3.0, slow) == "old"  # stale, refreshed in the background
    wait_until(lambda: recent.get(3.1, lambda: "after") == "after", 30, "the change to win")


def test_nodes_are_worded_in_the_readers_language(console: Console) -> None:
    from storage.heartbeat import NodeHeartbeat, write_heartbeat

    for name, seen, reg, err in (("node-a", NOW, "registered", None),
                                 ("node-b", NOW - timedelta(minutes=5), "failed",
                                  "403 \x1b[2JForbidden")):  # fmt: skip
        write_heartbeat(console.engine, NodeHeartbeat(name, "host1", 42, "0.1.0",
                                                      NOW - timedelta(hours=1), seen, 1, 4, reg,
                                                      err))  # fmt: skip
    client, _ = client_as(console, "viewer")
    page = client.get("/now/live").text
    assert "работает, отметка 0s назад; host1 pid 42 v0.1.0; звонков 1/4" in page
    assert "SIP зарегистрирован" in page and "запущен 2026-11-26 09:00" in page
    assert "регистрация SIP потеряна" in page
    assert "НЕ ОТВЕЧАЕТ уже 5m" in page and "Узел node-b молчит" in page
    assert "последняя ошибка: 403 \\x1b[2JForbidden" in page  # escaped on the page
    client.cookies.set("ivr_lang", "en")
    english = client.get("/now/live").text
    assert "alive, seen 0s ago" in english and "SILENT for 5m" in english
    assert "SIP registered" in english
