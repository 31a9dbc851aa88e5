"""Analytics and the control list on SQLite and PostgreSQL, against figures computed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, select

from ivr.campaign.importer import ImportSummary, store_items
from storage.analytics import UNKNOWN, Filters, figures, periods, ranking, wilson
from storage.analytics_rows import rows_query
from storage.control_entries import (
    Mark,
    control_counts,
    control_list,
    control_page_ids,
    mark_reviewed,
)
from storage.models import ControlReview, Survey
from storage.store import AttemptResult, NewSurvey, Store
from tests.helpers import start_attempt

NOW = datetime(2026, 11, 10, 7, 0, tzinfo=UTC)
WEEK = Filters(date(2026, 11, 1), date(2026, 11, 7))  # Sunday 1 .. Saturday 7
MINSK = ZoneInfo("Europe/Minsk")

A = ("EX-A", "ЖЭС № 1")
B = ("EX-B", "ЖЭС № 2")


# ---- Wilson: hand-computed values (z = 1.96) -----------------------------------------------
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 1, 0.0, 0.7935),  # z^2 / (1 + z^2)
        (1, 1, 0.2065, 1.0),  # 1 / (1 + z^2)
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (8, 10, 0.4902, 0.9433),
        (1, 2, 0.0945, 0.9055),
    ],
    ids=["0_of_1", "1_of_1", "0_of_10", "10_of_10", "8_of_10", "1_of_2"],
)
def test_wilson_interval(k: int, n: int, low: float, high: float) -> None:
    interval = wilson(k, n)
    assert interval is not None
    assert interval == pytest.approx((low, high), abs=5e-5)


def test_wilson_of_nothing_is_none_and_impossible_counts_raise() -> None:
    assert wilson(0, 0) is None
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_periods_include_empty_ones() -> None:
    assert periods(date(2026, 11, 1), date(2026, 11, 3), "day") == [
        "2026-11-01",
        "2026-11-02",
        "2026-11-03",
    ]
    assert periods(WEEK.date_from, WEEK.date_to, "week") == ["2026-W44", "2026-W45"]
    assert periods(date(2026, 12, 31), date(2027, 1, 1), "month") == ["2026-12", "2027-01"]


# ---- a week of surveys ---------------------------------------------------------------------
def survey(
    store: Store,
    pid: str,
    day: int,
    executor: tuple[str, str] | None,
    category: str | None,
    *,
    address: str | None = None,
    closed_hour: int = 9,
    not_called: str | None = None,
    closed: datetime | None = None,
) -> str:
    from ivr.core.district import district_of
    from prompts.catalog import category_name

    closed_at = closed or datetime(2026, 11, day, closed_hour, tzinfo=UTC)
    store.add_survey(
        NewSurvey(
            portal_request_id=pid,
            request_number=pid.removeprefix("R"),
            closed_at=closed_at,
            local_date=closed_at.astimezone(MINSK).date(),
            phone_raw="8 029 123-45-67",
            phone="+375291234567",
            language="ru",
            category=category,
            not_called_reason=not_called,
            executor_id=executor[0] if executor else None,
            executor_name=executor[1] if executor else None,
            address=address,
            category_name=category_name(category),
            district=district_of(address),
        ),
        NOW,
    )
    with store.engine.connect() as conn:
        return str(
            conn.scalar(
                select(Survey.id).where(
                    Survey.portal_request_id == pid, Survey.closed_at == closed_at
                )
            )
        )


def attempt(store: Store, sid: str, disposition: str, sources: str | None = None) -> None:
    aid = start_attempt(store, sid, NOW)
    answered = NOW if disposition == "answered" else None
    store.finish_attempt(
        aid,
        AttemptResult(
            None, 200, None, answered, NOW, "1" if sources else "", disposition, None, sources
        ),
    )


def answer(store: Store, sid: str, outcome: str, digit: str | None, sources: str = "r") -> None:
    attempt(store, sid, "answered", sources)
    store.record_outcome(sid, outcome, digit, None, NOW, NOW)


@pytest.fixture
def week(store: Store) -> dict[str, str]:
    ids: dict[str, str] = {}
    frunze = "г. Минск, Фрунзенский р-н, ул. Ложинская, д. 5"
    ids["s1"] = survey(store, "R1", 2, A, "Лифт", address=frunze)
    answer(store, ids["s1"], "satisfied", "1")
    ids["s2"] = survey(store, "R2", 2, A, "Ліфт")  # the same catalog category
    answer(store, ids["s2"], "satisfied", "1")
    ids["s3"] = survey(store, "R3", 3, A, "Отопление", address="Минск, Центрального района")
    attempt(store, ids["s3"], "busy")
    answer(store, ids["s3"], "unsatisfied", "2", sources="b")
    ids["s4"] = survey(store, "R4", 3, A, "Отопление")
    attempt(store, ids["s4"], "busy")
    attempt(store, ids["s4"], "busy")
    store.record_outcome(ids["s4"], "no_answer", None, "busy", None, NOW)
    ids["s5"] = survey(store, "R5", 4, A, "Лифт", not_called="invalid_phone")
    # B: a request closed again after rework, unsatisfied again
    first = survey(store, "R6", 1, B, "Ремонт крыши", closed=datetime(2026, 10, 20, tzinfo=UTC))
    answer(store, first, "unsatisfied", "2")
    ids["s6"] = survey(store, "R6", 5, B, "Ремонт крыши")
    answer(store, ids["s6"], "unsatisfied", "2", sources="i")
    ids["s7"] = survey(store, "R7", 5, B, "Лифт")
    answer(store, ids["s7"], "no_input", None, sources="")
    ids["s8"] = survey(store, "R8", 6, B, "Лифт")  # still waiting for its call
    ids["s9"] = survey(store, "R9", 6, None, None)  # as stored before executors were kept
    answer(store, ids["s9"], "satisfied", "1")
    ids["s11"] = survey(store, "R11", 6, A, "Отопление")
    answer(store, ids["s11"], "unsatisfied", "2")
    # outside the week
    out = survey(store, "R10", 8, A, "Лифт")
    answer(store, out, "unsatisfied", "2")
    return ids


def rows_of(engine: Engine, q: Any) -> list[dict[str, Any]]:
    """The rows behind a figure (``rows_query``) as dicts."""
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(q).mappings()]


def by_key(engine: Engine, by: str, filters: Filters = WEEK) -> dict[str | None, dict[str, object]]:
    return {f.key: f.as_dict() for f in figures(engine, filters, by)}  # type: ignore[arg-type]


def test_by_executor(store: Store, week: dict[str, str]) -> None:
    result = figures(store.engine, WEEK, "executor")
    assert [(f.key, f.label) for f in result] == [
        ("EX-A", "ЖЭС № 1"),
        ("EX-B", "ЖЭС № 2"),
        (None, UNKNOWN),
    ]
    a, b, unknown = (f.as_dict() for f in result)
    assert {k: a[k] for k in ("surveys", "called", "answered", "satisfied", "unsatisfied")} == {
        "surveys": 6, "called": 5, "answered": 4, "satisfied": 2, "unsatisfied": 2,
    }  # fmt: skip
    assert a["satisfaction"] == 0.5 and a["reach"] == 0.8
    assert (a["satisfaction_low"], a["satisfaction_high"]) == pytest.approx(wilson(2, 4))
    assert (a["reach_low"], a["reach_high"]) == pytest.approx(wilson(4, 5))
    assert a["not_reached_reasons"] == {"busy": 1}
    assert a["not_called_reasons"] == {"invalid_phone": 1}
    # B: one unsatisfied again, one answered without a key, one waiting
    assert (b["surveys"], b["pending"], b["rated"]) == (3, 1, 1)
    assert (b["unsatisfied"], b["unsatisfied_again"], b["no_rating"]) == (1, 1, 1)
    assert (b["satisfaction"], b["reach"]) == (0.0, 1.0)
    assert (b["satisfaction_low"], b["satisfaction_high"]) == pytest.approx((0.0, 0.7935), abs=1e-4)
    assert (unknown["surveys"], unknown["satisfied"], unknown["satisfaction"]) == (1, 1, 1.0)


def test_by_category_merges_catalog_wordings(store: Store, week: dict[str, str]) -> None:
    cats = by_key(store.engine, "category")
    assert list(cats) == ["lift", "heating", "Ремонт крыши", None]
    assert cats["lift"]["label"] == "Лифт"
    assert (cats["lift"]["surveys"], cats["lift"]["satisfied"]) == (5, 2)
    assert (cats["heating"]["unsatisfied"], cats["heating"]["not_reached"]) == (2, 1)
    assert cats[None]["label"] == UNKNOWN


def test_by_district_from_the_address(store: Store, week: dict[str, str]) -> None:
    districts = by_key(store.engine, "district")
    assert districts["Фрунзенский р-н"]["satisfied"] == 1
    assert districts["Центральный р-н"]["unsatisfied"] == 1
    assert districts[None]["surveys"] == 8


def test_by_day_and_week_include_empty_periods(store: Store, week: dict[str, str]) -> None:
    days = by_key(store.engine, "day")
    assert list(days) == [f"2026-11-0{d}" for d in range(1, 8)]
    assert [days[k]["surveys"] for k in days] == [0, 2, 2, 1, 2, 3, 0]
    assert days["2026-11-01"]["satisfaction"] is None and days["2026-11-01"]["reach"] is None
    weeks = by_key(store.engine, "week")
    assert list(weeks) == ["2026-W44", "2026-W45"]
    assert (weeks["2026-W44"]["surveys"], weeks["2026-W45"]["surveys"]) == (0, 10)
    months = by_key(store.engine, "month")
    assert months == {"2026-11": months["2026-11"]} and months["2026-11"]["surveys"] == 10


def test_an_empty_period_and_a_single_survey(store: Store, week: dict[str, str]) -> None:
    empty = Filters(date(2026, 12, 1), date(2026, 12, 1))
    assert figures(store.engine, empty, "executor") == []
    (total,) = figures(store.engine, empty, "total")
    assert (total.surveys, total.satisfaction, total.satisfaction_ci) == (0, None, None)
    one = Filters(date(2026, 11, 2), date(2026, 11, 2), executor="EX-A", category="lift",
                  district="Фрунзенский р-н")  # fmt: skip
    (only,) = figures(store.engine, one, "total")
    assert (only.surveys, only.satisfied, only.satisfaction) == (1, 1, 1.0)
    assert only.satisfaction_ci == pytest.approx((0.2065, 1.0), abs=1e-4)


def test_filters_by_unknown_and_round(store: Store, week: dict[str, str]) -> None:
    (unknown,) = figures(store.engine, Filters(WEEK.date_from, WEEK.date_to, executor=UNKNOWN),
                         "total")  # fmt: skip
    assert unknown.surveys == 1
    again = Filters(WEEK.date_from, WEEK.date_to, round="again")
    assert [f.key for f in figures(store.engine, again, "executor")] == ["EX-B"]
    rework = Filters(WEEK.date_from, WEEK.date_to, round="rework")
    (total,) = figures(store.engine, rework, "total")
    assert total.surveys == 1


def test_ranking_needs_a_minimum_count(store: Store, week: dict[str, str]) -> None:
    groups = figures(store.engine, WEEK, "executor")
    assert [f.key for f in ranking(groups, "satisfaction", min_count=2)] == ["EX-A"]
    assert [f.key for f in ranking(groups, "satisfaction", min_count=1)] == ["EX-B", "EX-A"]
    assert [f.key for f in ranking(groups, "reach", min_count=3)] == ["EX-A"]
    assert ranking(groups, "satisfaction", min_count=100) == []


def test_drill_down_gives_the_rows_behind_a_figure(store: Store, week: dict[str, str]) -> None:
    figure = {f.key: f for f in figures(store.engine, WEEK, "executor")}["EX-A"]
    rows = list(rows_of(store.engine, rows_query(WEEK, "executor", "EX-A", "answered")))
    assert len(rows) == figure.answered == 4
    assert {r["survey_id"] for r in rows} == {week["s1"], week["s2"], week["s3"], week["s11"]}
    busy = list(rows_of(store.engine, rows_query(WEEK, "day", "2026-11-03", "not_reached")))
    assert [r["survey_id"] for r in busy] == [week["s4"]]
    unknown = list(rows_of(store.engine, rows_query(WEEK, "executor", UNKNOWN)))
    assert [r["survey_id"] for r in unknown] == [week["s9"]]
    w45 = list(rows_of(store.engine, rows_query(WEEK, "week", "2026-W45", "rated")))
    assert len(w45) == 6


def test_control_list_again_first_then_newest(store: Store, week: dict[str, str]) -> None:
    entries = control_list(store.engine, WEEK)
    assert [e.survey_id for e in entries] == [week["s6"], week["s11"], week["s3"]]
    s6, s11, s3 = entries
    assert (s6.again, s6.round_no, s6.key_sources, s6.executor_name) == (True, 2, "i", "ЖЭС № 2")
    assert (s3.again, s3.round_no, s3.key_sources, s3.digit) == (False, 1, "b", "2")
    assert s3.address == "Минск, Центрального района" and s3.category == "Отопление"
    assert not any(e.reviewed for e in entries)
    only_a = control_list(store.engine, Filters(WEEK.date_from, WEEK.date_to, executor="EX-A"))
    assert [e.survey_id for e in only_a] == [week["s11"], week["s3"]]


def test_mark_reviewed_with_a_note(store: Store, week: dict[str, str]) -> None:
    assert control_counts(store.engine, WEEK) == (3, 3)
    assert mark_reviewed(store.engine, week["s3"], "controller1", "called the ЖЭС", NOW)
    assert not mark_reviewed(store.engine, week["s1"], "controller1", "satisfied", NOW)
    assert not mark_reviewed(store.engine, "no-such-survey", "controller1", None, NOW)
    assert control_counts(store.engine, WEEK) == (3, 2)
    later = NOW + timedelta(hours=1)
    assert mark_reviewed(store.engine, week["s3"], "controller2", "rework confirmed", later)
    (s3,) = [e for e in control_list(store.engine, WEEK) if e.survey_id == week["s3"]]
    assert (s3.reviewed, s3.reviewed_by, s3.note, s3.reviewed_at) == (
        True, "controller2", "rework confirmed", later,
    )  # fmt: skip
    unreviewed = control_list(store.engine, WEEK, reviewed=False)
    assert [e.survey_id for e in unreviewed] == [week["s6"], week["s11"]]
    assert [e.survey_id for e in control_list(store.engine, WEEK, reviewed=True)] == [week["s3"]]


@pytest.mark.parametrize("reviewed", [None, False, True], ids=["all", "unreviewed", "reviewed"])
def test_keyset_pages_walk_the_list_in_its_order(
    store: Store, week: dict[str, str], reviewed: bool | None
) -> None:
    """Pages read after the last entry shown (and before the first) give the list's order,
    also through entries closed at the same moment and across the unsatisfied-again part."""
    for pid in ("R30", "R31", "R32"):  # three closed at the same moment
        sid = survey(store, pid, 4, A, "Лифт", closed_hour=11)
        answer(store, sid, "unsatisfied", "2")
        if pid != "R32":
            assert mark_reviewed(store.engine, sid, "kira", None, NOW)
    assert mark_reviewed(store.engine, week["s3"], "kira", None, NOW)
    assert mark_reviewed(store.engine, week["s6"], "kira", None, NOW)
    period = Filters(date(2026, 10, 1), date(2026, 11, 30))
    for f in (period, Filters(period.date_from, period.date_to, executor="EX-A")):
        entries = control_list(store.engine, f, reviewed)
        mark = {e.survey_id: Mark(e.again, e.closed_at, e.survey_id) for e in entries}
        pages: list[list[str]] = []
        with store.engine.connect() as conn:
            while ids := control_page_ids(conn, f, reviewed, 2, mark[pages[-1][-1]] if pages
                                          else None):  # fmt: skip
                pages.append(ids)
            assert [i for page in pages for i in page] == [e.survey_id for e in entries]
            for earlier, later in zip(pages, pages[1:], strict=False):
                back = control_page_ids(conn, f, reviewed, 2, before=mark[later[0]])
                assert back[::-1] == earlier
    assert len(pages) >= 2
    some = Mark(True, NOW, week["s6"])
    assert Mark.parse(some.token()) == some
    assert Mark.parse("1,yesterday,x") is None and Mark.parse("") is None


# ---- time zone: a closing just before and just after local midnight -----------------------
def test_local_day_boundaries_in_minsk(store: Store) -> None:
    items = [
        {"id": "R-late", "phone": "+375291000001", "closed_at": "2026-11-02T20:59:59Z",
         "executor": {"id": 17, "name": "ЖЭС № 17"}, "category": "Лифт",
         "address": "г. Минск, Первомайский р-н, ул. Кульман, 1"},
        {"id": "R-midnight", "phone": "+375291000002", "closed_at": "2026-11-03T00:00:00+03:00",
         "executor": "not an object", "language": "be"},
    ]  # fmt: skip
    summary = ImportSummary(date(2026, 11, 2))
    store_items(items, date(2026, 11, 2), store, MINSK, NOW, summary)
    assert (summary.new, summary.rejected) == (2, 0)
    days = by_key(store.engine, "day", Filters(date(2026, 11, 2), date(2026, 11, 3)))
    assert (days["2026-11-02"]["surveys"], days["2026-11-03"]["surveys"]) == (1, 1)
    rows = {
        r["portal_request_id"]: r
        for r in rows_of(store.engine, rows_query(Filters(date(2026, 11, 2), date(2026, 11, 3))))
    }
    late = rows["R-late"]
    assert (late["executor_id"], late["executor_name"], late["category_name"]) == (
        "17", "ЖЭС № 17", "lift",
    )  # fmt: skip
    assert late["district"] == "Первомайский р-н" and late["language"] is None
    midnight = rows["R-midnight"]
    assert (midnight["executor_id"], midnight["language"], midnight["local_date"]) == (
        None, "be", date(2026, 11, 3),
    )  # fmt: skip


# ---- migration 0009 keeps what was there -----------------------------------------------------
def test_migration_keeps_older_surveys_as_unknown(db_url: str) -> None:
    from alembic.script import ScriptDirectory

    from storage.db import alembic_config, make_engine, upgrade

    engine = make_engine(db_url)
    try:
        before = ScriptDirectory.from_config(alembic_config(engine)).get_revision("0009")
        assert before is not None and isinstance(before.down_revision, str)
        upgrade(engine, before.down_revision)  # the schema 0009 starts from
        with engine.begin() as conn:
            conn.execute(
                insert(Survey.__table__).values(  # the columns 0003 has
                    id="old-1", portal_request_id="R-old", request_number="1",
                    closed_at=datetime(2026, 11, 2, 9, tzinfo=UTC), local_date=date(2026, 11, 2),
                    phone_raw="x", phone="+375291234567", language="ru", category="ЛИФТ",
                    status="done", attempts=1, outcome="satisfied", reason=None, digit="1",
                    created_at=datetime(2026, 11, 2, 9, tzinfo=UTC), round_no=1,
                )
            )  # fmt: skip
        upgrade(engine)
        (f,) = figures(engine, Filters(date(2026, 11, 2), date(2026, 11, 2)), "executor")
        assert (f.key, f.label, f.satisfied) == (None, UNKNOWN, 1)
        (cat,) = figures(engine, Filters(date(2026, 11, 2), date(2026, 11, 2)), "category")
        assert (cat.key, cat.label) == ("lift", "Лифт")
        with engine.connect() as conn:
            row = (
                conn.execute(select(Survey.__table__).where(Survey.id == "old-1")).mappings().one()
            )
            assert (row["category"], row["phone"], row["digit"]) == ("ЛИФТ", "+375291234567", "1")
            assert conn.execute(select(ControlReview.__table__)).all() == []
    finally:
        engine.dispose()
