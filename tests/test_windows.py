"""Call windows and local days, with time as an input."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr.core.config import parse_range
from ivr.core.windows import (
    CallCalendar,
    can_start_call,
    local_day_bounds,
    next_opening,
    window_end,
    yesterday,
)

MINSK = ZoneInfo("Europe/Minsk")  # UTC+3 all year
WEEKDAY = (parse_range("09:00-13:00"), parse_range("14:00-20:00"))
WINDOWS = {
    "mon": WEEKDAY,
    "tue": WEEKDAY,
    "wed": WEEKDAY,
    "thu": WEEKDAY,
    "fri": WEEKDAY,
    "sat": (parse_range("10:00-16:00"),),
    "sun": (),
}
TWO_MIN = timedelta(minutes=2)


def minsk(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=MINSK)


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        (minsk(2026, 11, 26, 8, 59), False),  # Thursday, before the window
        (minsk(2026, 11, 26, 9, 0), True),
        (minsk(2026, 11, 26, 12, 57), True),  # ends 12:59, before 13:00
        (minsk(2026, 11, 26, 12, 59), False),  # a 2-minute call would overrun 13:00
        (minsk(2026, 11, 26, 13, 30), False),  # lunch gap
        (minsk(2026, 11, 26, 19, 58), True),
        (minsk(2026, 11, 26, 22, 0), False),  # night
        (minsk(2026, 11, 28, 15, 0), True),  # Saturday window
        (minsk(2026, 11, 29, 12, 0), False),  # Sunday: none
        (datetime(2026, 11, 26, 6, 30, tzinfo=UTC), True),  # 09:30 in Minsk
        (datetime(2026, 11, 26, 5, 30, tzinfo=UTC), False),  # 08:30 in Minsk, 05:30 UTC
    ],
    ids=[
        "before",
        "opening",
        "fits-before-close",
        "would-overrun",
        "lunch",
        "evening",
        "night",
        "saturday",
        "sunday",
        "utc-inside",
        "utc-outside",
    ],
)
def test_can_start_call(moment: datetime, allowed: bool) -> None:
    assert can_start_call(moment, WINDOWS, MINSK, TWO_MIN) is allowed


def test_next_opening_skips_lunch_night_and_sunday() -> None:
    assert next_opening(minsk(2026, 11, 26, 13, 5), WINDOWS, MINSK, TWO_MIN) == minsk(
        2026, 11, 26, 14
    )
    assert next_opening(minsk(2026, 11, 26, 21), WINDOWS, MINSK, TWO_MIN) == minsk(2026, 11, 27, 9)
    assert next_opening(minsk(2026, 11, 28, 17), WINDOWS, MINSK, TWO_MIN) == minsk(2026, 11, 30, 9)
    inside = minsk(2026, 11, 26, 10, 15)
    assert next_opening(inside, WINDOWS, MINSK, TWO_MIN) == inside


def test_no_window_at_all_gives_none() -> None:
    assert next_opening(minsk(2026, 11, 26, 10), {}, MINSK, TWO_MIN) is None


def test_window_reaching_midnight() -> None:
    late = {"thu": (parse_range("18:00-24:00"),)}
    assert window_end(minsk(2026, 11, 26, 23, 50), late, MINSK) == minsk(2026, 11, 27, 0)
    assert can_start_call(minsk(2026, 11, 26, 23, 50), late, MINSK, TWO_MIN)
    assert not can_start_call(minsk(2026, 11, 26, 23, 59), late, MINSK, TWO_MIN)


def test_local_day_bounds_follow_the_zone_not_the_server() -> None:
    start, end = local_day_bounds(date(2026, 11, 26), MINSK)
    assert start.astimezone(UTC) == datetime(2026, 11, 25, 21, tzinfo=UTC)
    assert end - start == timedelta(days=1)
    # A zone with a DST change that day: the local day is 23 hours long.
    berlin = ZoneInfo("Europe/Berlin")
    s, e = local_day_bounds(date(2026, 3, 29), berlin)
    assert (e.astimezone(UTC) - s.astimezone(UTC)) == timedelta(hours=23)


def test_yesterday_in_minsk() -> None:
    # 22:30 UTC on the 26th is already 01:30 on the 27th in Minsk.
    assert yesterday(datetime(2026, 11, 26, 22, 30, tzinfo=UTC), MINSK) == date(2026, 11, 26)
    assert yesterday(datetime(2026, 11, 26, 20, 30, tzinfo=UTC), MINSK) == date(2026, 11, 25)


# ---- the calendar: holidays of Belarus, working Saturdays, blackout dates -------------------
BY = CallCalendar(WINDOWS, "BY", blackout_dates=[date(2026, 12, 31)])


@pytest.mark.parametrize(
    ("day", "kind", "first_range"),
    [
        (date(2026, 11, 26), "normal", "09:00"),  # an ordinary Thursday
        (date(2026, 11, 7), "holiday", None),  # October Revolution Day (a Saturday): Sunday's
        (date(2026, 1, 7), "holiday", None),  # Orthodox Christmas, a Wednesday: no calls
        (date(2025, 1, 6), "holiday", None),  # a transferred day off (Monday)
        (date(2025, 1, 11), "working_weekend", "09:00"),  # the Saturday worked for it: Monday's
        (date(2026, 4, 25), "working_weekend", "09:00"),
        (date(2026, 11, 28), "normal", "10:00"),  # an ordinary Saturday
        (date(2026, 12, 31), "blackout", None),
    ],
    ids=[
        "weekday",
        "holiday-on-saturday",
        "holiday-midweek",
        "transferred-day-off",
        "working-saturday-2025",
        "working-saturday-2026",
        "plain-saturday",
        "blackout",
    ],
)
def test_calendar_days(day: date, kind: str, first_range: str | None) -> None:
    assert BY.kind(day) == kind
    ranges = BY.ranges(day)
    assert (ranges[0].start.strftime("%H:%M") if ranges else None) == first_range


def test_no_calls_on_a_holiday_and_calls_on_a_working_saturday() -> None:
    christmas = datetime(2026, 1, 7, 11, 0, tzinfo=MINSK)
    assert not can_start_call(christmas, BY, MINSK, TWO_MIN)
    assert next_opening(christmas, BY, MINSK, TWO_MIN) == datetime(2026, 1, 8, 9, 0, tzinfo=MINSK)
    working_saturday = datetime(2026, 4, 25, 16, 30, tzinfo=MINSK)  # after Saturday's 16:00
    assert can_start_call(working_saturday, BY, MINSK, TWO_MIN)
    plain = CallCalendar(WINDOWS)  # without the holiday calendar it is a Saturday
    assert not can_start_call(working_saturday, plain, MINSK, TWO_MIN)


def test_calendar_from_config_and_bad_country() -> None:
    from ivr.core.config import parse_config
    from ivr.core.errors import ConfigError

    base = {
        "portal": {"base_url": "http://127.0.0.1:9", "token": "t"},
        "sip": {"server": "s", "username": "u", "password": "p", "local_ip": "127.0.0.1"},
    }
    cfg = parse_config({**base, "calendar": {"blackout_dates": ["2026-11-26"]}}, env={})
    assert CallCalendar.from_config(cfg).kind(date(2026, 11, 26)) == "blackout"
    with pytest.raises(ConfigError, match="calendar.holidays"):
        parse_config({**base, "calendar": {"holidays": "XX"}}, env={})
