"""Control and analytics: how satisfied citizens are, and how many were reached, by group.

Plain SQLAlchemy Core on an Engine (the same SQL on SQLite and PostgreSQL). A period is a
range of local closing days (``surveys.local_date``: the day the request was closed, in the
configured time zone, fixed at import), both ends included.

Each survey round falls in exactly one *bucket*:

- ``pending``: no final outcome yet (waiting for, or in, a call);
- ``not_called``: final without a call (``not_called`` outcome, or given up before any attempt);
- ``not_reached``: called, never answered (busy, no answer, declined, ...: the ``reason``);
- ``satisfied`` / ``unsatisfied``: the citizen's answer (``unsatisfied_again`` counts as
  unsatisfied, and is also counted on its own);
- ``no_rating``: answered but no rating (no key, opted out).

Satisfaction = satisfied / (satisfied + unsatisfied); reach = answered / called, where
called = not_reached + satisfied + unsatisfied + no_rating and answered = the last three.
Each comes with its count and a 95 % Wilson score interval.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal, TypeAlias

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    case,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute

from prompts.catalog import category_label
from storage.models import Survey, SurveyStatus

AnySelect: TypeAlias = Select[*tuple[Any, ...]]
Column: TypeAlias = ColumnElement[Any] | InstrumentedAttribute[Any]
GroupBy = Literal["executor", "category", "district", "day", "week", "month", "total"]
GROUPINGS: tuple[GroupBy, ...] = ("executor", "category", "district", "day", "week", "month")
RoundFilter = Literal["first", "rework", "again"]
"""first: round 1; rework: a later closing after rework; again: unsatisfied again."""

ANSWERED_OUTCOMES = ("satisfied", "unsatisfied", "no_input", "opted_out")
UNKNOWN = "unknown"
"""Shown for a group the portal did not name (surveys stored before executors were kept)."""
Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``successes`` out of ``n`` (None when n is 0).

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n}")
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denominator = 1 + z2 / n
    low = 0.0 if successes == 0 else (centre - margin) / denominator
    high = 1.0 if successes == n else (centre + margin) / denominator
    return low, high


@dataclass(frozen=True)
class Filters:
    """Which surveys: closed on local days ``date_from``..``date_to`` and, if set, of one
    executor / category (catalog name, else the text as sent) / district / round."""

    date_from: date
    date_to: date
    executor: str | None = None
    category: str | None = None
    district: str | None = None
    round: RoundFilter | None = None

    def described(self) -> list[tuple[str, str]]:
        """The filters as (name, value) pairs, to be written into an export."""
        out = [("from", self.date_from.isoformat()), ("to", self.date_to.isoformat())]
        for name in ("executor", "category", "district", "round"):
            value = getattr(self, name)
            if value is not None:
                out.append((name, str(value)))
        return out


@dataclass(frozen=True)
class Figures:
    """The counts of one group, and the rates derived from them."""

    key: str | None  # None: the portal did not say (shown as unknown)
    label: str
    pending: int = 0
    not_called: int = 0
    not_reached: int = 0
    satisfied: int = 0
    unsatisfied: int = 0
    unsatisfied_again: int = 0
    no_rating: int = 0
    not_reached_reasons: dict[str, int] = field(default_factory=dict)
    not_called_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def surveys(self) -> int:
        return self.pending + self.not_called + self.called

    @property
    def answered(self) -> int:
        return self.satisfied + self.unsatisfied + self.no_rating

    @property
    def called(self) -> int:
        return self.answered + self.not_reached

    @property
    def rated(self) -> int:
        return self.satisfied + self.unsatisfied

    @property
    def satisfaction(self) -> float | None:
        return self.satisfied / self.rated if self.rated else None

    @property
    def satisfaction_ci(self) -> tuple[float, float] | None:
        return wilson(self.satisfied, self.rated)

    @property
    def reach(self) -> float | None:
        return self.answered / self.called if self.called else None

    @property
    def reach_ci(self) -> tuple[float, float] | None:
        return wilson(self.answered, self.called)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (JSON, CSV): counts, rates and intervals."""
        sat, reach = self.satisfaction_ci, self.reach_ci
        return {
            "key": self.key,
            "label": self.label,
            "surveys": self.surveys,
            "pending": self.pending,
            "not_called": self.not_called,
            "called": self.called,
            "answered": self.answered,
            "not_reached": self.not_reached,
            "satisfied": self.satisfied,
            "unsatisfied": self.unsatisfied,
            "unsatisfied_again": self.unsatisfied_again,
            "no_rating": self.no_rating,
            "rated": self.rated,
            "satisfaction": self.satisfaction,
            "satisfaction_low": sat[0] if sat else None,
            "satisfaction_high": sat[1] if sat else None,
            "reach": self.reach,
            "reach_low": reach[0] if reach else None,
            "reach_high": reach[1] if reach else None,
            "not_reached_reasons": dict(self.not_reached_reasons),
            "not_called_reasons": dict(self.not_called_reasons),
        }


# ---- SQL pieces ---------------------------------------------------------------------------
def _bucket() -> ColumnElement[str]:
    answered = Survey.outcome.in_(ANSWERED_OUTCOMES)
    return case(
        (Survey.status != SurveyStatus.DONE, literal("pending")),
        (Survey.outcome == "satisfied", literal("satisfied")),
        (Survey.outcome == "unsatisfied", literal("unsatisfied")),
        (answered, literal("no_rating")),
        (or_(Survey.outcome == "not_called", Survey.attempts == 0), literal("not_called")),
        else_=literal("not_reached"),
    )


def _category_key() -> ColumnElement[str | None]:
    return func.coalesce(Survey.category_name, Survey.category)


def _where(filters: Filters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        Survey.local_date >= filters.date_from,
        Survey.local_date <= filters.date_to,
    ]
    if filters.executor is not None:
        conditions.append(_is(Survey.executor_id, filters.executor))
    if filters.category is not None:
        conditions.append(_is(_category_key(), filters.category))
    if filters.district is not None:
        conditions.append(_is(Survey.district, filters.district))
    if filters.round == "first":
        conditions.append(Survey.round_no == 1)
    elif filters.round == "rework":
        conditions.append(Survey.round_no > 1)
    elif filters.round == "again":
        conditions.append(Survey.reason == "unsatisfied_again")
    return conditions


def _is(column: Column, value: str) -> ColumnElement[bool]:
    """``value`` UNKNOWN selects the rows where the portal did not say."""
    return column.is_(None) if value == UNKNOWN else column == value


def _group_column(by: GroupBy) -> Column:
    if by == "executor":
        return Survey.executor_id
    if by == "category":
        return _category_key()
    if by == "district":
        return Survey.district
    if by in ("day", "week", "month"):
        return Survey.local_date
    return literal("total")


def period_key(day: date, by: GroupBy) -> str:
    """The period a local day falls in: "2026-11-30", "2026-W49" (ISO week), "2026-11"."""
    if by == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if by == "month":
        return f"{day.year}-{day.month:02d}"
    return day.isoformat()


def periods(date_from: date, date_to: date, by: GroupBy) -> list[str]:
    """Every period of the range, in order (so that an empty one still shows, as zero)."""
    keys: list[str] = []
    day = date_from
    while day <= date_to:
        key = period_key(day, by)
        if not keys or keys[-1] != key:
            keys.append(key)
        day += timedelta(days=1)
    return keys


def figures(engine: Engine, filters: Filters, by: GroupBy) -> list[Figures]:
    """The figures of each group of the filtered surveys.

    Groups by executor, category and district: those that have surveys, largest first (the
    unknown group last). By day, week or month: every period of the range, in order, empty
    ones as zero. ``total``: one group (also when there is nothing)."""
    group = _group_column(by).label("g")
    bucket = _bucket().label("bucket")
    reason = Survey.reason.label("reason")
    q = (
        select(
            group,
            bucket,
            reason,
            func.count().label("n"),
            func.sum(case((Survey.reason == "unsatisfied_again", 1), else_=0)).label("again"),
            func.max(Survey.executor_name).label("name"),
        )
        .where(*_where(filters))
        .group_by(group, bucket, reason)
    )
    counts: dict[str | None, Counter[str]] = defaultdict(Counter)
    reasons: dict[tuple[str | None, str], Counter[str]] = defaultdict(Counter)
    names: dict[str | None, str] = {}
    with engine.connect() as conn:
        for g, b, why, n, again, name in conn.execute(q):
            key = _key_of(g, by)
            counts[key][b] += int(n)
            counts[key]["unsatisfied_again"] += int(again or 0)
            if b in ("not_reached", "not_called"):
                reasons[(key, b)][why or b] += int(n)
            if name and by == "executor":
                names[key] = name
    if by in ("day", "week", "month"):
        keys: list[str | None] = list(periods(filters.date_from, filters.date_to, by))
    elif by == "total":
        keys = ["total"]
    else:
        keys = sorted(counts, key=lambda k: (k is None, -sum(counts[k].values()), k or ""))
    return [_figures(k, _label(k, by, names), counts[k], reasons) for k in keys]


def _key_of(value: object, by: GroupBy) -> str | None:
    if by in ("day", "week", "month"):
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
        return period_key(day, by)
    return None if value is None else str(value)


def _label(key: str | None, by: GroupBy, names: dict[str | None, str]) -> str:
    if key is None:
        return UNKNOWN
    if by == "executor":
        return names.get(key, key)
    if by == "category":
        return category_label(key)
    return key


def _figures(
    key: str | None,
    label: str,
    counts: Counter[str],
    reasons: dict[tuple[str | None, str], Counter[str]],
) -> Figures:
    return Figures(
        key=key,
        label=label,
        pending=counts["pending"],
        not_called=counts["not_called"],
        not_reached=counts["not_reached"],
        satisfied=counts["satisfied"],
        unsatisfied=counts["unsatisfied"],
        unsatisfied_again=counts["unsatisfied_again"],
        no_rating=counts["no_rating"],
        not_reached_reasons=dict(reasons.get((key, "not_reached"), Counter()).most_common()),
        not_called_reasons=dict(reasons.get((key, "not_called"), Counter()).most_common()),
    )


Measure = Literal["satisfaction", "reach"]


def ranking(
    groups: Sequence[Figures], measure: Measure = "satisfaction", min_count: int = 30
) -> list[Figures]:
    """Groups with at least ``min_count`` ratings (satisfaction) or calls (reach), worst first
    (ties: the larger group first). The unknown group is never ranked."""

    def n(f: Figures) -> int:
        return f.rated if measure == "satisfaction" else f.called

    def rate(f: Figures) -> float:
        value = f.satisfaction if measure == "satisfaction" else f.reach
        assert value is not None
        return value

    ranked = [f for f in groups if f.key is not None and n(f) >= max(1, min_count)]
    return sorted(ranked, key=lambda f: (rate(f), -n(f), f.label))
