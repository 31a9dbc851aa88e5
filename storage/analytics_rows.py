"""The surveys behind a figure of :mod:`storage.analytics`: its rows, newest first, and an
iterator that streams them (a server-side cursor on PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import ColumnElement, and_, select

from storage.analytics import AnySelect, Filters, GroupBy, _bucket, _group_column, _is, _where
from storage.models import CallAttempt, Survey

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
    first, last = period_bounds(key, by)
    return and_(Survey.local_date >= first, Survey.local_date <= last)


def period_bounds(key: str, by: GroupBy) -> tuple[date, date]:
    """The first and last day of a day, week or month ``key`` (2026-11-30, 2026-W48,
    2026-11); ValueError (or OverflowError) if ``key`` is not one."""
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
