"""Call windows and local days. Pure: every function takes ``now``; nothing reads the clock.

Windows are evaluated in the configured time zone (never the server's local time). Which
ranges a day has comes from its ``CallCalendar``: the weekday's windows, except on blackout
dates (none), public holidays and transferred days off (``calendar.holidays_as``, default
Sunday's) and Saturdays made working days (``calendar.working_weekends_as``, default Monday's).

Times shown to operators (status, reports, logs, ``config check``) are local to the configured
zone and written one way everywhere: :func:`format_local`, ``2026-11-30 14:05:09 +03``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ivr.core.config import WEEKDAYS, TimeRange

if TYPE_CHECKING:
    from ivr.core.config import Config


class CallCalendar:
    """The call windows of each date."""

    def __init__(
        self,
        windows: Mapping[str, Sequence[TimeRange]],
        holidays_country: str | None = None,
        holidays_as: str = "sun",
        working_weekends_as: str = "mon",
        blackout_dates: Iterable[date] = (),
    ) -> None:
        self.windows = windows
        self.holidays_as = holidays_as
        self.working_weekends_as = working_weekends_as
        self.blackout = frozenset(blackout_dates)
        self._lock = threading.Lock()
        self._holidays: Any = None
        if holidays_country is not None:
            import holidays

            self._holidays = holidays.country_holidays(holidays_country)

    @classmethod
    def from_config(cls, config: Config) -> CallCalendar:
        cal = config.calendar
        return cls(
            config.call_windows,
            cal.holidays,
            cal.holidays_as,
            cal.working_weekends_as,
            cal.blackout_dates,
        )

    def kind(self, day: date) -> str:
        """'blackout', 'holiday', 'working_weekend' or 'normal'."""
        if day in self.blackout:
            return "blackout"
        if self._holidays is None:
            return "normal"
        with self._lock:  # the holidays object fills a year in on first use
            if day in self._holidays:
                return "holiday"
            if day in self._holidays.weekend_workdays:
                return "working_weekend"
        return "normal"

    def holiday_name(self, day: date) -> str | None:
        if self._holidays is None:
            return None
        with self._lock:
            name: str | None = self._holidays.get(day)
        return name

    def ranges(self, day: date) -> Sequence[TimeRange]:
        kind = self.kind(day)
        if kind == "blackout":
            return ()
        weekday = {
            "holiday": self.holidays_as,
            "working_weekend": self.working_weekends_as,
        }.get(kind, WEEKDAYS[day.weekday()])
        return self.windows.get(weekday, ())


Windows = CallCalendar | Mapping[str, Sequence[TimeRange]]


def _calendar(windows: Windows) -> CallCalendar:
    return windows if isinstance(windows, CallCalendar) else CallCalendar(windows)


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
    for rng in _calendar(windows).ranges(day):
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


def format_local(moment: datetime, tz: ZoneInfo) -> str:
    """The one way a moment is shown to an operator: ``2026-11-30 14:05:09 +03`` in ``tz``
    (a naive moment is taken as UTC, as the database keeps it)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(tz)
    offset = local.strftime("%z")  # +0300, +0530
    offset = offset[:3] if offset[3:] == "00" else f"{offset[:3]}:{offset[3:]}"
    return f"{local.strftime('%Y-%m-%d %H:%M:%S')} {offset}"


def next_daily(now: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first local ``at`` after ``now`` (when a daily job such as the import runs next)."""
    local = now.astimezone(tz)
    for offset in range(3):
        candidate = datetime.combine(local.date() + timedelta(days=offset), at, tzinfo=tz)
        if candidate > local:
            return candidate
    raise AssertionError("unreachable: a day later is always after now")


@dataclass(frozen=True)
class DayPlan:
    day: date
    kind: str  # 'normal', 'holiday', 'working_weekend' or 'blackout'
    uses: str  # whose windows the day takes: its own weekday, holidays_as, working_weekends_as
    ranges: tuple[TimeRange, ...]
    holiday: str | None = None


def plan_days(calendar: CallCalendar, first: date, days: int = 7) -> list[DayPlan]:
    """The call windows of ``days`` dates from ``first``, holidays, working Saturdays and
    blackout dates applied (``config check`` shows the next week)."""
    out = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        kind = calendar.kind(day)
        uses = {"holiday": calendar.holidays_as, "working_weekend": calendar.working_weekends_as}
        out.append(
            DayPlan(
                day,
                kind,
                uses.get(kind, WEEKDAYS[day.weekday()]),
                tuple(calendar.ranges(day)),
                calendar.holiday_name(day) if kind == "holiday" else None,
            )
        )
    return out
