"""The figures from daily counts equal the figures from the surveys, on SQLite and PostgreSQL,
for every grouping and filter; unsettled days are read live; forgotten days are counted again."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from storage.analytics import UNKNOWN, GroupBy, figures
from storage.analytics_days import forget_days, quick_figures, settle, total_of
from storage.models import AnalyticsDay, AnalyticsDayCount
from storage.store import Store
from tests.test_analytics import WEEK, A, answer, survey, week  # noqa: F401 - the fixture

TODAY = date(2026, 11, 30)
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
GROUPINGS: tuple[GroupBy, ...] = ("executor", "category", "district", "day", "week", "month",
                                  "total")  # fmt: skip
SELECTIONS = {
    "week": WEEK,
    "october_to_november": WEEK.__class__(date(2026, 10, 1), date(2026, 11, 29)),
    "executor_a": WEEK.__class__(WEEK.date_from, WEEK.date_to, executor="EX-A"),
    "unknown_executor": WEEK.__class__(WEEK.date_from, WEEK.date_to, executor=UNKNOWN),
    "lift": WEEK.__class__(WEEK.date_from, WEEK.date_to, category="lift"),
    "frunze": WEEK.__class__(WEEK.date_from, WEEK.date_to, district="Фрунзенский р-н"),
    "first_round": WEEK.__class__(WEEK.date_from, WEEK.date_to, round="first"),
    "rework": WEEK.__class__(WEEK.date_from, WEEK.date_to, round="rework"),
    "again": WEEK.__class__(WEEK.date_from, WEEK.date_to, round="again"),
}


def plain(groups: list) -> list[dict[str, object]]:  # type: ignore[type-arg]
    return [g.as_dict() for g in groups]


pytestmark = pytest.mark.usefixtures("week")


@pytest.mark.parametrize("name", list(SELECTIONS), ids=list(SELECTIONS))
def test_counts_give_the_live_figures(store: Store, name: str) -> None:
    selection = SELECTIONS[name]
    total = figures(store.engine, selection, "total")[0].as_dict()
    for by in GROUPINGS:
        live = plain(figures(store.engine, selection, by))
        quick = quick_figures(store.engine, selection, by, TODAY, NOW)
        assert plain(quick) == live, by
        assert total_of(quick).as_dict() == total, by
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(AnalyticsDayCount)) > 0


def test_a_day_with_a_survey_still_waiting_is_read_live(store: Store) -> None:
    counted = settle(store.engine, WEEK.date_from, WEEK.date_to, TODAY, NOW)
    assert date(2026, 11, 6) not in counted  # R8 waits for its call
    assert date(2026, 11, 5) in counted
    # Too recent: not settled, whatever its surveys.
    assert settle(store.engine, date(2026, 11, 24), TODAY, TODAY, NOW) == []


def test_forgotten_days_are_counted_again(store: Store) -> None:
    before = plain(quick_figures(store.engine, WEEK, "executor", TODAY, NOW))
    # A change to a counted day (a late re-import) is not seen until the day is forgotten.
    late = survey(store, "R20", 2, A, "Лифт")
    answer(store, late, "satisfied", "1")
    assert plain(quick_figures(store.engine, WEEK, "executor", TODAY, NOW)) == before
    forget_days(store.engine, date(2026, 11, 2), date(2026, 11, 2))
    again = plain(quick_figures(store.engine, WEEK, "executor", TODAY, NOW))
    assert again == plain(figures(store.engine, WEEK, "executor")) != before
    with store.engine.connect() as conn:
        assert conn.scalar(select(AnalyticsDay.surveys).where(
            AnalyticsDay.local_date == date(2026, 11, 2))) == 3  # fmt: skip
