"""The query parameters of the analytics pages, exports and API, read once into typed values.

One reader for all of them, so that a figure, its rows, its export and its API answer are
the same selection: ``from``/``to`` (local closing days, both included; by default the last
30 days to yesterday), ``executor``, ``category``, ``district``, ``round``, ``by`` (the
grouping), ``min`` (least count a group needs to be ranked), ``measure``, ``key`` and
``bucket`` (the group and outcome behind one figure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast, get_args
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from storage.analytics import GROUPINGS, Filters, GroupBy, Measure, RoundFilter

BUCKETS = ("pending", "not_called", "not_reached", "satisfied", "unsatisfied", "no_rating",
           "answered", "called", "rated")  # fmt: skip
DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366
DEFAULT_MIN = 30


class BadParam(ValueError):
    """A parameter that cannot be read: names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


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


def _day(raw: str | None, name: str, default: date) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise BadParam(name, "expected a date like 2026-11-30") from exc


def _choice(raw: str | None, name: str, allowed: tuple[str, ...], default: Any) -> Any:
    if not raw:
        return default
    if raw not in allowed:
        raise BadParam(name, "expected one of " + ", ".join(allowed))
    return raw


def read_params(q: Mapping[str, str], now: datetime, tz: ZoneInfo) -> Params:
    """The parameters of a request (BadParam names the first one that is wrong)."""
    yesterday = now.astimezone(tz).date() - timedelta(days=1)
    date_to = _day(q.get("to"), "to", yesterday)
    date_from = _day(q.get("from"), "from", date_to - timedelta(days=DEFAULT_DAYS - 1))
    if date_from > date_to:
        raise BadParam("from", "after 'to'")
    if (date_to - date_from).days >= MAX_DAYS:
        raise BadParam("from", f"a period is at most {MAX_DAYS} days")
    rounds = cast(tuple[str, ...], get_args(RoundFilter))
    filters = Filters(
        date_from,
        date_to,
        executor=q.get("executor") or None,
        category=q.get("category") or None,
        district=q.get("district") or None,
        round=_choice(q.get("round"), "round", rounds, None),
    )
    try:
        min_count = int(q.get("min") or DEFAULT_MIN)
    except ValueError as exc:
        raise BadParam("min", "expected a whole number") from exc
    if not 1 <= min_count <= 1_000_000:
        raise BadParam("min", "expected 1 to 1000000")
    return Params(
        filters,
        by=_choice(q.get("by"), "by", (*GROUPINGS, "total"), "executor"),
        min_count=min_count,
        measure=_choice(q.get("measure"), "measure", ("satisfaction", "reach"), "satisfaction"),
        key=q.get("key") or None,
        bucket=_choice(q.get("bucket"), "bucket", BUCKETS, None),
    )


def trend_grouping(filters: Filters) -> GroupBy:
    """Days for up to two months, weeks up to a year and a half, else months."""
    days = (filters.date_to - filters.date_from).days + 1
    return "day" if days <= 62 else "week" if days <= 550 else "month"
