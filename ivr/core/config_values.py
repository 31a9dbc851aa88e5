"""The value types of the configuration: durations with units, calendar dates, times of day and
their ranges, weekday windows, and a database URL fit to print. Each parser raises ``ValueError``
with a message a person can act on; pydantic names the key it came from (``ivr.core.config``)."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: object) -> timedelta:
    """'20m', '1h30m', '45s', '2d' or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _NUMBER.fullmatch(text):
            return timedelta(seconds=float(text))
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
            return timedelta(seconds=sum(float(n) * unit[u] for n, u in parts))
    raise ValueError("expected a duration like 20m, 1h30m or 45s")


def _seconds(value: object) -> float:
    return parse_duration(value).total_seconds()


def days_value(value: object) -> object:
    if isinstance(value, str) and not _NUMBER.fullmatch(value.strip()):
        span = parse_duration(value)
        if span % timedelta(days=1):
            raise ValueError("expected a whole number of days, like 90 or 90d")
        return span.days
    return value


def date_value(value: object) -> object:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not a date: {value.strip()[:20]!r} (expected YYYY-MM-DD)") from None
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
CalendarDate = Annotated[date, BeforeValidator(date_value)]
# A number of seconds that also takes units: "2m" and 120 are the same.
Seconds = Annotated[float, BeforeValidator(_seconds)]
Days = Annotated[int, BeforeValidator(days_value)]


def unquoted_time(value: int) -> str:
    """YAML 1.1 reads 10:30 as 10*60+30: name what was probably meant."""
    return (
        f'write times in quotes ("{value // 60}:{value % 60:02d}"); unquoted, YAML reads '
        f"{value // 60}:{value % 60:02d} as the number {value}"
    )


def safe_url(url: str) -> str:
    """A database URL fit to print: its password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(not a database URL)"


class TimeRange(BaseModel):
    model_config = ConfigDict(frozen=True)
    start: time
    end: time | None  # None means midnight at the end of the day ("24:00")

    def contains(self, t: time) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


def parse_hhmm(text: str) -> time | None:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not m:
        raise ValueError(f"expected HH:MM, got {text!r}")
    hh, mm = int(m.group(1)), int(m.group(2))
    if (hh, mm) == (24, 0):
        return None
    if hh > 23 or mm > 59:
        raise ValueError(f"not a time of day: {text!r}")
    return time(hh, mm)


def parse_range(value: object) -> TimeRange:
    if isinstance(value, TimeRange):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(unquoted_time(value))
    if not isinstance(value, str) or value.count("-") != 1:
        raise ValueError('expected a range like "09:00-13:00"')
    a, b = value.split("-")
    start, end = parse_hhmm(a), parse_hhmm(b)
    if start is None:
        raise ValueError(f"a range cannot start at 24:00: {value!r}")
    if end is not None and end <= start:
        raise ValueError(f"range ends before it starts: {value!r}")
    return TimeRange(start=start, end=end)


WindowRange = Annotated[TimeRange, BeforeValidator(parse_range)]


def format_range(r: TimeRange) -> str:
    end = "24:00" if r.end is None else r.end.strftime("%H:%M")
    return f"{r.start.strftime('%H:%M')}-{end}"


def _union(a: TimeRange, b: TimeRange) -> TimeRange:
    end = None if a.end is None or b.end is None else max(a.end, b.end)
    return TimeRange(start=min(a.start, b.start), end=end)


def weekday_ranges(v: dict[str, tuple[TimeRange, ...]]) -> dict[str, tuple[TimeRange, ...]]:
    """Every weekday's ranges, sorted; an unknown weekday or overlapping ranges are refused."""
    unknown = sorted(set(v) - set(WEEKDAYS))
    if unknown:
        raise ValueError(f"unknown weekday {unknown[0]!r}; use {', '.join(WEEKDAYS)}")
    windows = {d: tuple(sorted(v.get(d, ()), key=lambda r: r.start)) for d in WEEKDAYS}
    for day, ranges in windows.items():
        for a, b in zip(ranges, ranges[1:], strict=False):
            if a.end is None or b.start < a.end:
                raise ValueError(
                    f"{day}: {format_range(a)} and {format_range(b)} overlap; write them "
                    f"as one range ({format_range(_union(a, b))})"
                )
    return windows
