"""The figures from daily counts and monthly sums equal the figures from the surveys, on SQLite
and PostgreSQL, for every grouping and filter; unsettled days are read live; forgotten days are
counted again (also by `ivr-rating analytics rebuild`); the control list's totals from the counts
equal the surveys', and a review is counted at once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from storage.admin import Actor, AdminStore
from storage.analytics import UNKNOWN, Filters, GroupBy, figures
from storage.analytics_days import forget_days, quick_figures, roll_up, settle, total_of
from storage.analytics_tables import (
    AnalyticsDay,
    AnalyticsDayCount,
    AnalyticsMonth,
    AnalyticsMonthCount,
)
from storage.control_entries import control_counts, mark_reviewed
from storage.control_list import ControlSummary, control_summary, review
from storage.models import AuditEntry, Survey
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


# ---- months, the control list's totals, reviews and rebuilds -------------------------------
@pytest.fixture
def ids(request: pytest.FixtureRequest) -> dict[str, str]:
    """The week's survey ids (``week`` is the fixture every test here uses)."""
    found: dict[str, str] = request.getfixturevalue("week")
    return found


LATER = date(2027, 1, 10)  # October to December all settled
LATER_NOW = datetime(2027, 1, 10, 7, 0, tzinfo=UTC)
QUARTER = (date(2026, 10, 1), date(2026, 12, 31))
CONTROL_SELECTIONS = [
    {}, {"executor": "EX-A"}, {"executor": "EX-B"}, {"executor": UNKNOWN},
    {"category": "heating"}, {"category": "Ремонт крыши"},
    {"executor": "EX-A", "category": "heating"},
    {"round": "again"}, {"round": "first"}, {"round": "rework"},
    {"executor": "EX-B", "round": "rework"},
]  # fmt: skip


def summaries(store: Store, period: tuple[date, date] = QUARTER) -> list[ControlSummary]:
    return [control_summary(store.engine, Filters(*period, **kw)) for kw in CONTROL_SELECTIONS]


def agree_with_the_surveys(store: Store, period: tuple[date, date] = QUARTER) -> None:
    for kw in CONTROL_SELECTIONS:
        f = Filters(*period, **kw)
        s = control_summary(store.engine, f)
        assert (s.total, s.unreviewed) == control_counts(store.engine, f), kw


def test_whole_months_are_summed_and_give_the_live_figures(
    store: Store, ids: dict[str, str]
) -> None:
    answer(store, ids["s8"], "satisfied", "1")  # every day of November final
    for name, selection in SELECTIONS.items():
        quarter = replace(selection, date_from=QUARTER[0], date_to=QUARTER[1])
        for by in GROUPINGS:
            quick = quick_figures(store.engine, quarter, by, LATER, LATER_NOW)
            assert plain(quick) == plain(figures(store.engine, quarter, by)), (name, by)
    with store.engine.connect() as conn:
        months = set(conn.scalars(select(AnalyticsMonth.month)))
        summed = conn.scalar(select(func.sum(AnalyticsMonthCount.n)).where(
            AnalyticsMonthCount.dim == "total"))  # fmt: skip
    assert months == {date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)}
    assert summed == 12  # the week's ten, R6's first round (October) and R10


def test_a_month_with_a_day_not_counted_is_not_summed(store: Store) -> None:
    assert roll_up(store.engine, *QUARTER, LATER_NOW) == []
    settle(store.engine, *QUARTER, LATER, LATER_NOW)  # November 6 waits for R8's call
    assert roll_up(store.engine, *QUARTER, LATER_NOW) == [date(2026, 10, 1), date(2026, 12, 1)]
    assert roll_up(store.engine, *QUARTER, LATER_NOW) == []  # once


def test_control_totals_from_the_counts_follow_reviews_and_rebuilds(
    store: Store, ids: dict[str, str]
) -> None:
    answer(store, ids["s8"], "satisfied", "1")
    days = (date(2026, 11, 3), date(2026, 11, 6))
    live, live_days = summaries(store), summaries(store, days)  # nothing counted: surveys
    agree_with_the_surveys(store)
    settle(store.engine, *QUARTER, LATER, LATER_NOW)
    assert len(roll_up(store.engine, *QUARTER, LATER_NOW)) == 3
    assert summaries(store) == live  # totals and choices, from the months' sums
    assert summaries(store, days) == live_days  # from the days' counts
    # A review is counted at once in its day and its month; a second review of the same
    # entry replaces the first and is not counted twice.
    assert mark_reviewed(store.engine, ids["s3"], "kira", None, LATER_NOW)
    assert mark_reviewed(store.engine, ids["s3"], "kira", "again", LATER_NOW)
    # As the console does it: in the session that writes its audit entry.
    assert review(AdminStore(store.engine), Actor("kira"), ids["s6"], None, LATER_NOW)
    agree_with_the_surveys(store)
    agree_with_the_surveys(store, days)
    assert control_summary(store.engine, Filters(*QUARTER)).unreviewed == 3  # of 5
    # A correction to a counted day (an outcome changed by hand) is seen after a rebuild.
    with store.engine.begin() as conn:
        conn.execute(update(Survey).where(Survey.id == ids["s11"]).values(outcome="satisfied"))
    stale = control_summary(store.engine, Filters(*QUARTER))
    assert stale.total == 5 != control_counts(store.engine, Filters(*QUARTER))[0]
    forget_days(store.engine, date(2026, 11, 6), date(2026, 11, 6))
    agree_with_the_surveys(store)  # November is read from its days and the surveys
    settle(store.engine, *QUARTER, LATER, LATER_NOW)
    assert roll_up(store.engine, *QUARTER, LATER_NOW) == [date(2026, 11, 1)]
    agree_with_the_surveys(store)
    for by in GROUPINGS:
        quarter = Filters(*QUARTER)
        quick = quick_figures(store.engine, quarter, by, LATER, LATER_NOW)
        assert plain(quick) == plain(figures(store.engine, quarter, by)), by


def test_rebuild_command_counts_a_corrected_day_again(
    store: Store, ids: dict[str, str], tmp_path: Path
) -> None:
    """``ivr-rating analytics rebuild`` in its own process, as an operator runs it."""
    import yaml

    from tests.helpers import config_data
    from tests.test_cli import ivr

    week_days = (date(2026, 11, 1), date(2026, 11, 7))
    settle(store.engine, *week_days, TODAY, NOW)
    with store.engine.begin() as conn:
        conn.execute(update(Survey).where(Survey.id == ids["s1"]).values(outcome="unsatisfied"))
    assert plain(quick_figures(store.engine, WEEK, "executor", TODAY, NOW)) != plain(
        figures(store.engine, WEEK, "executor")
    )
    config = tmp_path / "config.yaml"
    url = store.engine.url.render_as_string(hide_password=False)
    config.write_text(yaml.safe_dump(config_data(database=url)))
    argv = ["--config", str(config), "analytics", "rebuild", "--from", "2026-11-01"]
    done = ivr(*argv, "--to", "2026-11-07")
    assert done.returncode == 0, done.stderr
    assert "analytics rebuild 2026-11-01..2026-11-07: 6 settled days counted again" in done.stdout
    assert plain(quick_figures(store.engine, WEEK, "executor", TODAY, NOW)) == plain(
        figures(store.engine, WEEK, "executor")
    )
    backwards = ivr(*argv, "--to", "2026-10-01")
    assert backwards.returncode == 2 and "--from: after '--to'" in backwards.stderr
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "analytics.rebuild")) == 1  # fmt: skip


def test_an_outcome_that_changes_on_a_day_not_settled_is_seen_at_once(
    store: Store, ids: dict[str, str]
) -> None:
    """R8's day waits for its call, so it is read from the surveys: its outcome, when it
    comes (unsatisfied: a request returned for rework), is in the figures and the control
    list's totals at once, next to the counted days."""
    settle(store.engine, WEEK.date_from, WEEK.date_to, TODAY, NOW)
    roll_up(store.engine, WEEK.date_from, WEEK.date_to, NOW)
    answer(store, ids["s8"], "unsatisfied", "2")
    for by in GROUPINGS:
        quick = quick_figures(store.engine, WEEK, by, TODAY, NOW)
        assert plain(quick) == plain(figures(store.engine, WEEK, by)), by
    agree_with_the_surveys(store, (WEEK.date_from, WEEK.date_to))
    assert control_counts(store.engine, WEEK) == (4, 4)
