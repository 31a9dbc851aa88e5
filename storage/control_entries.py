"""The control list's entries: every request returned for rework (an unsatisfied answer) of
a selection, unsatisfied again first, then the newest closing; and a controller's review."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, func, insert, literal, or_, select, tuple_, update

from ivr.core.untrusted import operator_text
from storage.analytics import AnySelect, Filters, _category_key, _where
from storage.analytics_days import _date_of, _month_of
from storage.analytics_rows import _key_path
from storage.analytics_tables import AnalyticsDayCount, AnalyticsMonthCount
from storage.models import ControlReview, Survey


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
        .order_by(again.desc(), Survey.closed_at.desc(), Survey.id.desc())
    )
    if reviewed is True:
        q = q.where(ControlReview.survey_id.is_not(None))
    elif reviewed is False:
        q = q.where(ControlReview.survey_id.is_(None))
    return q


@dataclass(frozen=True)
class Mark:
    """An entry's place in the list's order (unsatisfied again first, then closed_at and id
    descending): a page starts after the last entry of the one before, or ends before the
    first entry of the one after."""

    again: bool
    closed_at: datetime
    survey_id: str

    def token(self) -> str:
        return f"{int(self.again)},{self.closed_at.astimezone(UTC).isoformat()},{self.survey_id}"

    @staticmethod
    def parse(text: str) -> Mark | None:
        """The mark of :meth:`token` (None if ``text`` is not one)."""
        again, _, rest = text.partition(",")
        closed, _, survey_id = rest.partition(",")
        try:
            moment = datetime.fromisoformat(closed)
            if moment.tzinfo is None:
                return None
            moment = moment.astimezone(UTC)  # 0001-01-01T00:00+14:00 is before year 1
        except (ValueError, OverflowError):
            return None
        if again not in ("0", "1") or not survey_id:
            return None
        return Mark(again == "1", moment, survey_id[:36])


def control_page_ids(
    conn: Any, filters: Filters, reviewed: bool | None, limit: int,
    after: Mark | None = None, before: Mark | None = None,
) -> list[str]:  # fmt: skip
    """The ids of one page of the list: the first, the one after ``after`` or the one before
    ``before``, read in the list's order from ``ix_surveys_control_order`` (keyset, no
    OFFSET: a deep page costs what the first does). The entries unsatisfied again are one
    part, the others the next; each is read newest first (oldest first backwards)."""
    mark, back = (before, True) if before is not None else (after, False)
    parts = [False, True] if back else [True, False]
    if mark is not None:
        parts = parts[parts.index(mark.again) :]
    found: list[str] = []
    for again in parts:
        here = mark if mark is not None and mark.again == again else None
        q = _part_ids(filters, reviewed, again, here, back).limit(limit - len(found))
        found += [str(i) for i in conn.scalars(q)]
        if len(found) >= limit:
            break
    return found


def _part_ids(filters: Filters, reviewed: bool | None, again: bool, mark: Mark | None,
              back: bool) -> AnySelect:  # fmt: skip
    is_again = Survey.reason == "unsatisfied_again"
    first = datetime.combine(filters.date_from - timedelta(days=1), time(), UTC)
    last = datetime.combine(filters.date_to + timedelta(days=2), time(), UTC)
    q: AnySelect = select(Survey.id).where(
        Survey.outcome == "unsatisfied",
        is_again if again else or_(Survey.reason.is_(None), ~is_again),
        *_where(filters),
        # Any time zone's local day lies within these bounds: the index is read in them only.
        Survey.closed_at >= first,
        Survey.closed_at < last,
    )
    if reviewed is not None:
        q = q.outerjoin(ControlReview, ControlReview.survey_id == Survey.id)
        found = ControlReview.survey_id
        q = q.where(found.is_not(None) if reviewed else found.is_(None))
    if mark is not None:
        key = tuple_(Survey.closed_at, Survey.id)
        at = tuple_(literal(mark.closed_at, Survey.closed_at.type), literal(mark.survey_id))
        q = q.where(key > at if back else key < at)
    if back:
        return q.order_by(Survey.closed_at, Survey.id)
    return q.order_by(Survey.closed_at.desc(), Survey.id.desc())


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
        _count_review(conn, survey_id)
    else:
        conn.execute(
            update(ControlReview).where(ControlReview.survey_id == survey_id).values(**values)
        )
    return True


def _count_review(conn: Any, survey_id: str) -> None:
    """Add a new review to the ``reviewed`` of its survey's counted day and summed month, in
    each dimension (nothing when the day is not counted: it is read from the surveys)."""
    day, executor, category, district, round_no, reason = conn.execute(
        select(
            Survey.local_date,
            Survey.executor_id,
            _category_key(),
            Survey.district,
            Survey.round_no,
            Survey.reason,
        ).where(Survey.id == survey_id)  # fmt: skip
    ).one()
    for table, when in ((AnalyticsDayCount, day), (AnalyticsMonthCount, _month_of(day))):
        groups = or_(
            table.dim == "total",
            and_(table.dim == "executor", table.key.is_not_distinct_from(executor)),
            and_(table.dim == "category", table.key.is_not_distinct_from(category)),
            and_(table.dim == "district", table.key.is_not_distinct_from(district)),
        )
        conn.execute(
            update(table)
            .where(
                _date_of(table) == when,
                table.bucket == "unsatisfied",
                groups,
                table.rework == (1 if round_no > 1 else 0),
                table.reason.is_not_distinct_from(reason),
            )  # fmt: skip
            .values(reviewed=table.reviewed + 1)
        )
