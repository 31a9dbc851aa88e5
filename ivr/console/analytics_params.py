"""The query parameters of the analytics pages, exports and API, read once into typed values.

One reader for all of them, so that a figure, its rows, its export and its API answer are
the same selection: ``from``/``to`` (local closing days, both included; by default the last
30 days to yesterday), ``executor``, ``category``, ``district``, ``round``, ``by`` (the
grouping), ``min`` (least count a group needs to be ranked), ``measure``, ``key`` and
``bucket`` (the group and outcome behind one figure). The control list and the CLI read
their days, numbers and texts with the same functions.

Every value is checked here, once: a day from FIRST_DAY to LAST_DAY, a period of at most
MAX_DAYS days, a whole number within its range, a text without control characters and at
most TEXT_MAX long, a parameter given once. A wrong one is a :class:`BadParam` naming it (a
400 page or JSON answer, or a CLI usage error), never a default put in its place.
"""

from __future__ import annotations

import argparse
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast, get_args
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from storage.analytics import GROUPINGS, Filters, GroupBy, Measure, RoundFilter
from storage.analytics_rows import period_bounds

BUCKETS = ("pending", "not_called", "not_reached", "satisfied", "unsatisfied", "no_rating",
           "answered", "called", "rated")  # fmt: skip
DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366
DEFAULT_MIN, MAX_MIN = 30, 1_000_000
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
TEXT_MAX = 300  # the longest executor name kept
MAX_LIMIT, MAX_OFFSET = 1000, 1_000_000_000  # the API's rows per answer, rows skipped


class BadParam(ValueError):
    """A parameter that cannot be read: names it. ``problem`` is a template of the catalog
    (:mod:`ivr.console.i18n`) filled with ``values``, so that a page can say it in Russian."""

    def __init__(self, name: str, problem: str, **values: Any) -> None:
        self.name, self.template, self.values = name, problem, values
        self.problem = problem.format(**values)
        super().__init__(f"{name}: {self.problem}")


@dataclass(frozen=True)
class Params:
    filters: Filters
    by: GroupBy = "executor"
    min_count: int = DEFAULT_MIN
    measure: Measure = "satisfaction"
    key: str | None = None
    bucket: str | None = None

    def query(self, **override: Any) -> str:
        """The URL query of these parameters (``override``: changed ones, None drops one)."""
        f = self.filters
        values: dict[str, Any] = {
            "from": f.date_from.isoformat(), "to": f.date_to.isoformat(),
            "executor": f.executor, "category": f.category, "district": f.district,
            "round": f.round, "by": self.by, "min": self.min_count, "measure": self.measure,
            "key": self.key, "bucket": self.bucket,
        }  # fmt: skip
        values.update(override)
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    def described(self) -> list[tuple[str, str]]:
        """Everything that selects the rows, to be written into an export."""
        out = self.filters.described()
        out.append(("by", self.by))
        for name in ("key", "bucket"):
            value = getattr(self, name)
            if value is not None:
                out.append((name, str(value)))
        return out


def _out_of_days(name: str) -> BadParam:
    return BadParam(name, "expected a day from {first} to {last}", first=FIRST_DAY, last=LAST_DAY)


def parse_day(text: str, name: str) -> date:
    """A day (YYYY-MM-DD) from FIRST_DAY to LAST_DAY: every reader of a day, the CLI's too."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadParam(name, "expected a date like 2026-11-30") from exc
    if not FIRST_DAY <= day <= LAST_DAY:
        raise _out_of_days(name)
    return day


def check_period(first: date, last: date, names: tuple[str, str] = ("from", "to")) -> None:
    """BadParam unless ``first``..``last`` is a period (at most MAX_DAYS days)."""
    if first > last:
        raise BadParam(names[0], "after '{other}'", other=names[1])
    if (last - first).days >= MAX_DAYS:
        raise BadParam(names[0], "a period is at most {days} days", days=MAX_DAYS)


def arg_day(text: str) -> date:
    """:func:`parse_day` as an argparse ``type`` (argparse names the option; exit code 2)."""
    try:
        return parse_day(text, "day")
    except BadParam as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


def _day(raw: str | None, name: str, default: date) -> date:
    return parse_day(raw, name) if raw else default


def read_period(q: Mapping[str, str], default_to: date, days: int) -> tuple[date, date]:
    """(from, to) of a query: ``to`` by default ``default_to``, ``from`` ``days`` days
    earlier (both included)."""
    date_to = _day(q.get("to"), "to", default_to)
    date_from = _day(q.get("from"), "from", max(FIRST_DAY, date_to - timedelta(days=days - 1)))
    check_period(date_from, date_to)
    return date_from, date_to


def choice(raw: str | None, name: str, allowed: tuple[str, ...], default: Any) -> Any:
    if not raw:
        return default
    if raw not in allowed:
        raise BadParam(name, "expected one of {allowed}", allowed=", ".join(allowed))
    return raw


def whole(raw: str | None, name: str, default: int, high: int, low: int = 1) -> int:
    """A whole number from ``low`` to ``high`` (``default`` when not given)."""
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12 or not low <= int(raw) <= high:
        raise BadParam(name, "expected a whole number from {low} to {high}", low=low, high=high)
    return int(raw)


def text(raw: str | None, name: str, most: int = TEXT_MAX) -> str | None:
    """A free text (a group's key, a mark): None when empty; no control character (a NUL
    is refused by PostgreSQL), at most ``most`` characters."""
    if not raw:
        return None
    if len(raw) > most:
        raise BadParam(name, "at most {most} characters", most=most)
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in raw):
        raise BadParam(name, "control characters are not allowed")
    return raw


def once_each(q: Mapping[str, str]) -> None:
    """BadParam naming a parameter given more than once (which would one mean?)."""
    getlist = getattr(q, "getlist", None)
    if getlist is not None:
        for name in q:
            if len(getlist(name)) > 1:
                raise BadParam(name, "given more than once")


PERIODS = {"day": "2026-11-30", "week": "2026-W48", "month": "2026-11"}


def _group_key(raw: str | None, by: str) -> str | None:
    """A group's key; of a day, week or month grouping, one of them with a day from
    FIRST_DAY to LAST_DAY."""
    key = text(raw, "key")
    if key is not None and by in PERIODS:
        try:
            first, last = period_bounds(key, cast(GroupBy, by))
        except (ValueError, OverflowError) as exc:
            raise BadParam("key", "expected a period like {example}", example=PERIODS[by]) from exc
        if last < FIRST_DAY or first > LAST_DAY:  # a week may straddle a bound
            raise _out_of_days("key")
    return key


def read_params(q: Mapping[str, str], now: datetime, tz: ZoneInfo) -> Params:
    """The parameters of a request (BadParam names the first one that is wrong)."""
    once_each(q)
    yesterday = now.astimezone(tz).date() - timedelta(days=1)
    date_from, date_to = read_period(q, yesterday, DEFAULT_DAYS)
    rounds = cast(tuple[str, ...], get_args(RoundFilter))
    filters = Filters(
        date_from,
        date_to,
        executor=text(q.get("executor"), "executor"),
        category=text(q.get("category"), "category"),
        district=text(q.get("district"), "district"),
        round=choice(q.get("round"), "round", rounds, None),
    )
    by = choice(q.get("by"), "by", (*GROUPINGS, "total"), "executor")
    return Params(
        filters,
        by=by,
        min_count=whole(q.get("min"), "min", DEFAULT_MIN, MAX_MIN),
        measure=choice(q.get("measure"), "measure", ("satisfaction", "reach"), "satisfaction"),
        key=_group_key(q.get("key"), by),
        bucket=choice(q.get("bucket"), "bucket", BUCKETS, None),
    )


def trend_grouping(filters: Filters) -> GroupBy:
    """Days for up to two months, weeks up to a year and a half, else months."""
    days = (filters.date_to - filters.date_from).days + 1
    return "day" if days <= 62 else "week" if days <= 550 else "month"
