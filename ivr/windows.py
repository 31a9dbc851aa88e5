"""Call windows and local days. Pure: every function takes ``now``; nothing reads the clock.

Windows are evaluated in the configured time zone (never the server's local time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ivr.config import WEEKDAYS, TimeRange

Windows = Mapping[str, Sequence[TimeRange]]


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[local midnight of ``day``, next local midnight), as aware datetimes in ``tz``."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def yesterday(now: datetime, tz: ZoneInfo) -> date:
    return local_date(now, tz) - timedelta(days=1)


def _intervals(day: date, windows: Windows, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    out = []
    for rng in windows.get(WEEKDAYS[day.weekday()], ()):
        start = datetime.combine(day, rng.start, tzinfo=tz)
        end = (
            datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
            if rng.end is None
            else datetime.combine(day, rng.end, tzinfo=tz)
        )
        out.append((start, end))
    return sorted(out)


def window_end(now: datetime, windows: Windows, tz: ZoneInfo) -> datetime | None:
    """End of the window ``now`` is in, or None when outside every window."""
    local = now.astimezone(tz)
    for start, end in _intervals(local.date(), windows, tz):
        if start <= local < end:
            return end
    return None


def can_start_call(now: datetime, windows: Windows, tz: ZoneInfo, max_call: timedelta) -> bool:
    """A call may start only if it can end (at its maximum length) before its window closes."""
    end = window_end(now, windows, tz)
    return end is not None and now + max_call <= end


def next_opening(
    now: datetime, windows: Windows, tz: ZoneInfo, max_call: timedelta
) -> datetime | None:
    """The first moment at or after ``now`` when a call may start; None if no window in 8 days."""
    local = now.astimezone(tz)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        for start, end in _intervals(day, windows, tz):
            if end - max_call < start:
                continue  # too short to hold one call
            candidate = max(start, local)
            if candidate + max_call <= end:
                return candidate
    return None
