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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeAlias

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    and_,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute

from ivr.core.untrusted import operator_text
from prompts.catalog import category_label
from storage.models import CallAttempt, ControlReview, Survey, SurveyStatus

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


# ---- rows behind a figure -----------------------------------------------------------------
ROW_COLUMNS = (
    "survey_id",
    "portal_request_id",
    "request_number",
    "executor_id",
    "executor_name",
    "category",
    "category_name",
    "district",
    "address",
    "language",
    "phone",
    "closed_at",
    "local_date",
    "round_no",
    "status",
    "outcome",
    "reason",
    "digit",
    "attempts",
    "answered_at",
    "key_sources",
)


def _key_path() -> ColumnElement[str | None]:
    """How the answer's keys came (r/i/b per key) on the survey's last answered attempt."""
    return (
        select(CallAttempt.key_sources)
        .where(CallAttempt.survey_id == Survey.id, CallAttempt.disposition == "answered")
        .order_by(CallAttempt.attempt_no.desc())
        .limit(1)
        .scalar_subquery()
    )


def rows_query(
    filters: Filters,
    by: GroupBy | None = None,
    key: str | None = None,
    bucket: str | None = None,
) -> AnySelect:
    """The surveys behind a figure: those of ``filters``, of group ``key`` (UNKNOWN: the
    unknown group; a period key for day/week/month) and, if given, of one bucket
    (pending, not_called, not_reached, satisfied, unsatisfied, no_rating; also ``answered``,
    ``called``, ``rated``). Newest closing first; columns :data:`ROW_COLUMNS`."""
    q: AnySelect = select(
        Survey.id.label("survey_id"),
        Survey.portal_request_id,
        Survey.request_number,
        Survey.executor_id,
        Survey.executor_name,
        Survey.category,
        Survey.category_name,
        Survey.district,
        Survey.address,
        Survey.language,
        Survey.phone,
        Survey.closed_at,
        Survey.local_date,
        Survey.round_no,
        Survey.status,
        Survey.outcome,
        Survey.reason,
        Survey.digit,
        Survey.attempts,
        Survey.answered_at,
        _key_path().label("key_sources"),
    ).where(*_where(filters))
    if by is not None and key is not None and by != "total":
        q = q.where(_group_condition(by, key))
    if bucket is not None:
        wanted = {
            "answered": ("satisfied", "unsatisfied", "no_rating"),
            "rated": ("satisfied", "unsatisfied"),
            "called": ("satisfied", "unsatisfied", "no_rating", "not_reached"),
        }.get(bucket, (bucket,))
        q = q.where(_bucket().in_(wanted))
    return q.order_by(Survey.closed_at.desc(), Survey.id)


def _group_condition(by: GroupBy, key: str) -> ColumnElement[bool]:
    if by in ("executor", "category", "district"):
        return _is(_group_column(by), key)
    first, last = _period_bounds(key, by)
    return and_(Survey.local_date >= first, Survey.local_date <= last)


def _period_bounds(key: str, by: GroupBy) -> tuple[date, date]:
    if by == "week":
        year, week = key.split("-W")
        first = date.fromisocalendar(int(year), int(week), 1)
        return first, first + timedelta(days=6)
    if by == "month":
        year, month = key.split("-")
        first = date(int(year), int(month), 1)
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return first, following - timedelta(days=1)
    day = date.fromisoformat(key)
    return day, day


def iter_rows(engine: Engine, q: AnySelect, chunk: int = 2000) -> Iterator[dict[str, Any]]:
    """The rows of ``q`` as dicts, fetched in chunks (a server-side cursor on PostgreSQL):
    an export of any size is streamed, never held in memory."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(q)
        for row in result.mappings():
            yield dict(row)


# ---- the control list ---------------------------------------------------------------------
@dataclass(frozen=True)
class ControlEntry:
    """A request returned for rework (an unsatisfied answer), with its review."""

    survey_id: str
    portal_request_id: str
    request_number: str
    executor_id: str | None
    executor_name: str | None
    category: str | None
    address: str | None
    phone: str | None
    closed_at: datetime
    called_at: datetime | None
    digit: str | None
    key_sources: str | None
    round_no: int
    again: bool  # unsatisfied again after rework
    reviewed_at: datetime | None
    reviewed_by: str | None
    note: str | None

    @property
    def reviewed(self) -> bool:
        return self.reviewed_at is not None


def control_query(filters: Filters, reviewed: bool | None = None) -> AnySelect:
    """Every request returned for rework of ``filters``: unsatisfied again first, then the
    newest closing first. ``reviewed``: only those (not) yet reviewed."""
    again = case((Survey.reason == "unsatisfied_again", 1), else_=0)
    q: AnySelect = (
        select(
            Survey.id.label("survey_id"),
            Survey.portal_request_id,
            Survey.request_number,
            Survey.executor_id,
            Survey.executor_name,
            Survey.category,
            Survey.address,
            Survey.phone,
            Survey.closed_at,
            Survey.answered_at.label("called_at"),
            Survey.digit,
            _key_path().label("key_sources"),
            Survey.round_no,
            again.label("again"),
            ControlReview.reviewed_at,
            ControlReview.reviewed_by,
            ControlReview.note,
        )
        .outerjoin(ControlReview, ControlReview.survey_id == Survey.id)
        .where(Survey.outcome == "unsatisfied", *_where(filters))
        .order_by(again.desc(), Survey.closed_at.desc(), Survey.id)
    )
    if reviewed is True:
        q = q.where(ControlReview.survey_id.is_not(None))
    elif reviewed is False:
        q = q.where(ControlReview.survey_id.is_(None))
    return q


def control_list(
    engine: Engine,
    filters: Filters,
    reviewed: bool | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[ControlEntry]:
    q = control_query(filters, reviewed)
    if limit is not None:
        q = q.limit(limit).offset(offset)
    with engine.connect() as conn:
        return [
            ControlEntry(**{**row, "again": bool(row["again"])})
            for row in conn.execute(q).mappings()
        ]


def control_counts(engine: Engine, filters: Filters) -> tuple[int, int]:
    """(returned for rework, of them not yet reviewed) for ``filters``."""
    sub = control_query(filters).order_by(None).subquery()
    q = select(func.count(), func.count().filter(sub.c.reviewed_at.is_(None)))
    with engine.connect() as conn:
        total, unreviewed = conn.execute(q).one()
    return int(total), int(unreviewed)


def mark_reviewed(engine: Engine, survey_id: str, by: str, note: str | None, now: datetime) -> bool:
    """Mark a request returned for rework as reviewed (again: the note and time replaced).

    False if there is no such survey with an unsatisfied answer."""
    with engine.begin() as conn:
        return mark_reviewed_in(conn, survey_id, by, note, now)


def mark_reviewed_in(conn: Any, survey_id: str, by: str, note: str | None, now: datetime) -> bool:
    """:func:`mark_reviewed` inside the caller's transaction (with its audit row)."""
    outcome = conn.scalar(select(Survey.outcome).where(Survey.id == survey_id))
    if outcome != "unsatisfied":
        return False
    exists = conn.scalar(
        select(ControlReview.survey_id).where(ControlReview.survey_id == survey_id)
    )
    values = {"reviewed_at": now, "reviewed_by": by, "note": operator_text(note, 2000)}
    if exists is None:
        conn.execute(insert(ControlReview).values(survey_id=survey_id, **values))
    else:
        conn.execute(
            update(ControlReview).where(ControlReview.survey_id == survey_id).values(**values)
        )
    return True
