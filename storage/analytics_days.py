"""The analytics figures from daily counts: the same numbers as :func:`storage.analytics.figures`,
without reading every survey of a long period.

A local day is *settled* once it is at least ``settle_days`` old and every survey of it has its
final outcome: its surveys no longer change. The first request that needs a settled day counts
its surveys once into ``analytics_day_counts`` and notes the day in ``analytics_days``: for each
dimension (executor, category, district, and ``total``) one row per group, round kind, outcome
bucket and reason (and, of the unsatisfied, how many are reviewed). Once every day of a
calendar month is counted, its counts are summed once into ``analytics_month_counts``
(:func:`roll_up`), so a year by executor reads about 12 rows per group instead of 365.
Figures then add the sums of the period's whole months, the counts of its other settled days
and the live figures of its other days (the recent ones and any not yet settled), and the
answer is exact. (By day or week the monthly sums are not used.)

The counts serve a selection filtered on at most one of executor, category and district
(grouped by that dimension or by time), and any round; a selection across two dimensions (one
executor's categories) is small and is read from the surveys.

What the counts cannot see is a change to a settled day (a day re-imported long after, an edit
by hand): :func:`forget_days` drops the counts of such days and the sums of their months, and
they are counted again (``ivr-rating analytics rebuild --from D --to D``). A controller's review
is counted at once: :func:`storage.control_entries.mark_reviewed_in` adds it to the day's and
the month's ``reviewed``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Engine, and_, case, delete, func, insert, literal, null, or_, select
from sqlalchemy.exc import IntegrityError

from storage.analytics import (
    Figures,
    Filters,
    GroupBy,
    _bucket,
    _category_key,
    _figures,
    _group_column,
    _is,
    _key_of,
    _label,
    _where,
    figures,
    periods,
)
from storage.analytics_tables import (
    AnalyticsDay,
    AnalyticsDayCount,
    AnalyticsMonth,
    AnalyticsMonthCount,
)
from storage.models import ControlReview, Survey, SurveyStatus

SETTLE_DAYS = 7
Tally = dict[str | None, Counter[str]]
Reasons = dict[tuple[str | None, str], Counter[str]]
Names = dict[str | None, str]


def settle_days_for(survey_deadline: timedelta) -> int:
    """The days after which a local day is settled: a week, or two days after the survey
    deadline (``dialing.survey_deadline``) if that is longer."""
    return max(SETTLE_DAYS, survey_deadline.days + 2)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """Contiguous runs of ``days`` (sorted) as (first, last) pairs."""
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _in_ranges(column: Any, runs: list[tuple[date, date]]) -> Any:
    return or_(*(and_(column >= a, column <= b) for a, b in runs))


def settle(engine: Engine, first: date, last: date, today: date, now: datetime,
           settle_days: int = SETTLE_DAYS) -> list[date]:  # fmt: skip
    """Count the settled days of ``first``..``last`` not counted yet; the days counted.

    Two processes counting the same day at once: the second one's insert of the day's row
    waits for the first and fails, and its counts are rolled back with it."""
    last = min(last, today - timedelta(days=settle_days))
    if last < first:
        return []
    with engine.connect() as conn:
        done = set(conn.scalars(select(AnalyticsDay.local_date).where(
            AnalyticsDay.local_date >= first, AnalyticsDay.local_date <= last)))  # fmt: skip
        todo = [d for d in _days(first, last) if d not in done]
        if not todo:
            return []
        still_open = Survey.status != SurveyStatus.DONE
        open_days = set(conn.scalars(select(Survey.local_date).distinct().where(
            still_open, _in_ranges(Survey.local_date, _ranges(todo)))))  # fmt: skip
    wanted = [d for d in todo if d not in open_days]
    for a, b in _ranges(wanted):
        try:
            _count(engine, a, b, now)
        except IntegrityError:
            continue  # another process counted (some of) these days meanwhile
    return wanted


DIMS = ("executor", "category", "district", "total")


def _dim_key(dim: str) -> Any:
    return {"executor": Survey.executor_id, "category": _category_key(),
            "district": Survey.district}.get(dim, null())  # fmt: skip


def lock_reviews(conn: Any) -> None:
    """PostgreSQL: new reviews wait until this transaction ends (a review counted neither in
    the counts being made nor by its own increment, made before they exist, would be lost)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE control_reviews IN SHARE MODE")


def _count(engine: Engine, first: date, last: date, now: datetime) -> None:
    rework = case((Survey.round_no > 1, 1), else_=0)
    bucket = _bucket()
    name = func.max(Survey.executor_name)
    columns = ["local_date", "dim", "key", "name", "rework", "bucket", "reason", "n", "reviewed"]
    in_days = (Survey.local_date >= first, Survey.local_date <= last)
    per_day = select(Survey.local_date, func.count()).where(*in_days).group_by(Survey.local_date)
    with engine.begin() as conn:
        lock_reviews(conn)
        sizes = {d: int(n) for d, n in conn.execute(per_day)}
        conn.execute(insert(AnalyticsDay), [
            {"local_date": d, "surveys": sizes.get(d, 0), "aggregated_at": now}
            for d in _days(first, last)
        ])  # fmt: skip
        for dim in DIMS:
            key = _dim_key(dim)
            groups = [Survey.local_date, rework, bucket, Survey.reason]
            if dim != "total":
                groups.append(key)
            counted = (
                select(
                    Survey.local_date,
                    literal(dim),
                    key,
                    name if dim == "executor" else null(),
                    rework,
                    bucket,
                    Survey.reason,
                    func.count(),
                    func.count(ControlReview.survey_id),
                )  # fmt: skip
                .outerjoin(ControlReview, ControlReview.survey_id == Survey.id)
                .where(*in_days)
                .group_by(*groups)
            )
            conn.execute(insert(AnalyticsDayCount).from_select(columns, counted))


# ---- months: the daily counts of a month whose days are all counted, summed once -----------
def _month_of(day: date) -> date:
    return day.replace(day=1)


def _month_end(month: date) -> date:
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return following - timedelta(days=1)


def roll_up(engine: Engine, first: date, last: date, now: datetime) -> list[date]:
    """Sum into ``analytics_month_counts`` the daily counts of each month touching
    ``first``..``last`` whose days are all counted and that is not summed yet; those months."""
    start, end = _month_of(first), _month_end(_month_of(last))
    with engine.connect() as conn:
        done = set(conn.scalars(select(AnalyticsMonth.month).where(
            AnalyticsMonth.month >= start, AnalyticsMonth.month <= end)))  # fmt: skip
        days = Counter(_month_of(d) for d in conn.scalars(select(AnalyticsDay.local_date).where(
            AnalyticsDay.local_date >= start, AnalyticsDay.local_date <= end)))  # fmt: skip
    whole = [m for m, n in sorted(days.items())
             if m not in done and n == _month_end(m).day]  # fmt: skip
    for month in whole:
        try:
            _sum_month(engine, month, now)
        except IntegrityError:
            continue  # another process summed it meanwhile
    return whole


def _sum_month(engine: Engine, month: date, now: datetime) -> None:
    c = AnalyticsDayCount
    columns = ["month", "dim", "key", "name", "rework", "bucket", "reason", "n", "reviewed"]
    summed = (
        select(
            literal(month, Date),
            c.dim,
            c.key,
            func.max(c.name),
            c.rework,
            c.bucket,
            c.reason,
            func.sum(c.n),
            func.sum(c.reviewed),
        )  # fmt: skip
        .where(c.local_date >= month, c.local_date <= _month_end(month))
        .group_by(c.dim, c.key, c.rework, c.bucket, c.reason)
    )
    with engine.begin() as conn:
        lock_reviews(conn)
        conn.execute(insert(AnalyticsMonth).values(month=month, aggregated_at=now))
        conn.execute(insert(AnalyticsMonthCount).from_select(columns, summed))


def forget_days(engine: Engine, first: date, last: date) -> None:
    """Drop the counts of ``first``..``last`` and the sums of their months (they are counted
    again when next needed)."""
    start, end = _month_of(first), _month_end(_month_of(last))
    with engine.begin() as conn:
        for table in (AnalyticsDayCount, AnalyticsDay):
            conn.execute(delete(table).where(table.local_date >= first,
                                             table.local_date <= last))  # fmt: skip
        for summed in (AnalyticsMonthCount, AnalyticsMonth):
            conn.execute(delete(summed).where(summed.month >= start, summed.month <= end))


# ---- figures from the counts plus the live days --------------------------------------------
def _dimension(filters: Filters, by: GroupBy) -> str | None:
    """The dimension whose counts answer ``filters`` by ``by`` (None: read the surveys)."""
    named = [d for d in ("executor", "category", "district") if getattr(filters, d) is not None]
    if not named:
        return by if by in ("executor", "category", "district") else "total"
    if len(named) == 1 and by in (named[0], "day", "week", "month", "total"):
        return named[0]
    return None


Counts = type[AnalyticsDayCount] | type[AnalyticsMonthCount]


def _date_of(table: Counts) -> Any:
    return table.local_date if table is AnalyticsDayCount else AnalyticsMonthCount.month


def counts_where(table: Counts, filters: Filters, dim: str,
                 runs: list[tuple[date, date]]) -> list[Any]:  # fmt: skip
    """The rows of ``table`` (daily or monthly counts) of dimension ``dim`` in ``runs`` that
    ``filters`` selects (its group of ``dim``, its round)."""
    where: list[Any] = [table.dim == dim, _in_ranges(_date_of(table), runs)]
    if dim != "total" and getattr(filters, dim) is not None:
        where.append(_is(table.key, getattr(filters, dim)))
    if filters.round == "first":
        where.append(table.rework == 0)
    elif filters.round == "rework":
        where.append(table.rework == 1)
    elif filters.round == "again":
        where.append(table.reason == "unsatisfied_again")
    return where


def _from_counts(conn: Any, filters: Filters, by: GroupBy, dim: str,
                 runs: list[tuple[date, date]], c: Counts = AnalyticsDayCount) -> Any:  # fmt: skip
    group = (_date_of(c) if by in ("day", "week", "month") else
             c.key if by == dim != "total" else literal("total")).label("g")  # fmt: skip
    again = func.sum(case((c.reason == "unsatisfied_again", c.n), else_=0))
    q = (
        select(group, c.bucket, c.reason, func.sum(c.n), again, func.max(c.name))
        .where(*counts_where(c, filters, dim, runs))
        .group_by(group, c.bucket, c.reason)
    )
    return conn.execute(q)


def counted_parts(conn: Any, first: date, last: date, months: bool) -> tuple[
        list[tuple[date, date]], list[tuple[date, date]], list[tuple[date, date]]]:  # fmt: skip
    """(runs of summed months wholly in ``first``..``last`` (if ``months``), runs of the other
    counted days, runs of the days to read from the surveys)."""
    summed: list[date] = []
    if months:
        summed = [m for m in conn.scalars(select(AnalyticsMonth.month).where(
            AnalyticsMonth.month >= first, AnalyticsMonth.month <= last))
            if _month_end(m) <= last]  # fmt: skip
    in_months = {d for m in summed for d in _days(m, _month_end(m))}
    counted = set(conn.scalars(select(AnalyticsDay.local_date).where(
        AnalyticsDay.local_date >= first, AnalyticsDay.local_date <= last)))  # fmt: skip
    live = [d for d in _days(first, last) if d not in counted]
    return _ranges(summed), _ranges(counted - in_months), _ranges(live)


def _live(conn: Any, filters: Filters, by: GroupBy, runs: list[tuple[date, date]]) -> Any:
    group = _group_column(by).label("g")
    bucket = _bucket().label("bucket")
    again = func.sum(case((Survey.reason == "unsatisfied_again", 1), else_=0))
    q = (
        select(group, bucket, Survey.reason, func.count(), again, func.max(Survey.executor_name))
        .where(*_where(filters), _in_ranges(Survey.local_date, runs))
        .group_by(group, bucket, Survey.reason)
    )
    return conn.execute(q)


def quick_figures(engine: Engine, filters: Filters, by: GroupBy, today: date, now: datetime,
                  settle_days: int = SETTLE_DAYS) -> list[Figures]:  # fmt: skip
    """:func:`storage.analytics.figures`, from the daily counts where a day is settled."""
    dim = _dimension(filters, by)
    if dim is None:
        return figures(engine, filters, by)
    settle(engine, filters.date_from, filters.date_to, today, now, settle_days)
    roll_up(engine, filters.date_from, filters.date_to, now)
    counts: Tally = defaultdict(Counter)
    reasons: Reasons = defaultdict(Counter)
    names: Names = {}
    with engine.connect() as conn:
        months, days, live = counted_parts(conn, filters.date_from, filters.date_to,
                                           by not in ("day", "week"))  # fmt: skip
        results = []
        if months:
            results.append(_from_counts(conn, filters, by, dim, months, AnalyticsMonthCount))
        if days:
            results.append(_from_counts(conn, filters, by, dim, days))
        if live:
            results.append(_live(conn, filters, by, live))
        for result in results:
            for g, b, why, n, again, name in result:
                _add(counts, reasons, names, by, g, b, why, int(n), int(again or 0), name)
    if by in ("day", "week", "month"):
        keys: list[str | None] = list(periods(filters.date_from, filters.date_to, by))
    elif by == "total":
        keys = ["total"]
    else:
        keys = sorted(counts, key=lambda k: (k is None, -sum(counts[k].values()), k or ""))
    return [_figures(k, _label(k, by, names), counts[k], reasons) for k in keys]


def _add(counts: Tally, reasons: Reasons, names: Names, by: GroupBy, g: Any, b: str,
         why: str | None, n: int, again: int, name: str | None) -> None:  # fmt: skip
    key = _key_of(g, by)
    counts[key][b] += n
    counts[key]["unsatisfied_again"] += again
    if b in ("not_reached", "not_called"):
        reasons[(key, b)][why or b] += n
    if name and by == "executor":
        names[key] = max(name, names.get(key, name))


def total_of(groups: Iterable[Figures]) -> Figures:
    """The total of a grouping's figures (each survey is in exactly one group of a grouping,
    the unknown group and empty periods included): the ``total`` figures without a query."""
    counts: Counter[str] = Counter()
    reached: Counter[str] = Counter()
    called: Counter[str] = Counter()
    for g in groups:
        for name in ("pending", "not_called", "not_reached", "satisfied", "unsatisfied",
                     "unsatisfied_again", "no_rating"):  # fmt: skip
            counts[name] += getattr(g, name)
        reached.update(g.not_reached_reasons)
        called.update(g.not_called_reasons)
    return Figures(
        key="total",
        label="total",
        **counts,
        not_reached_reasons=dict(reached.most_common()),
        not_called_reasons=dict(called.most_common()),
    )
