"""The analytics pages in a real browser (Debian's chromium driven by Playwright) against the
real console process and PostgreSQL: a chart's table shows the database's numbers, a figure
drills down to its masked rows, and the CSV and XLSX downloads open with the same rows.

Screenshots go to ``$IVR_ARTIFACTS`` (default: the test's tmp dir)."""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine

from storage.analytics import Filters, figures
from storage.analytics_rows import ROW_COLUMNS
from storage.db import make_engine
from storage.store import Store
from tests.helpers import read_csv
from tests.test_analytics import A, B, answer, attempt, survey
from tests.test_console_browser import artifacts, browser, sign_in, site  # noqa: F401

pytestmark = pytest.mark.tools  # chromium

WEEK = Filters(date(2026, 11, 1), date(2026, 11, 7))
QUERY = "from=2026-11-01&to=2026-11-07&by=executor&min=1"
SEED = [
    (2, A, "Лифт", "satisfied"),
    (2, A, "Лифт", "satisfied"),
    (3, A, "Отопление", "unsatisfied"),
    (3, A, "Отопление", "busy"),
    (4, A, "Лифт", None),
    (5, B, "Ремонт крыши", "unsatisfied"),
    (5, B, "Лифт", "no_input"),
    (6, B, "Лифт", "satisfied"),
    (7, None, None, "satisfied"),
]


def seed(url: str) -> None:
    """A week of surveys: two executors, satisfied, unsatisfied, busy, not called, waiting."""
    engine = make_engine(url)
    store = Store(engine)
    frunze = "г. Минск, Фрунзенский р-н, ул. Ложинская, д. 5"
    for n, (day, executor, category, outcome) in enumerate(SEED):
        sid = survey(store, f"R{n}", day, executor, category, address=frunze,
                     not_called=None if outcome else "invalid_phone")  # fmt: skip
        if outcome == "busy":
            attempt(store, sid, "busy")
            store.record_outcome(sid, "no_answer", None, "busy", None, store_now())
        elif outcome in ("satisfied", "unsatisfied"):
            answer(store, sid, outcome, "1" if outcome == "satisfied" else "2")
        elif outcome == "no_input":
            answer(store, sid, "no_input", None, sources="")
        else:
            store.record_outcome(sid, "not_called", None, "invalid_phone", None, store_now())
    engine.dispose()


def store_now():  # type: ignore[no-untyped-def]
    from tests.test_analytics import NOW

    return NOW


def test_analytics_in_a_browser(
    site: tuple[str, Path],  # noqa: F811
    browser: Browser,  # noqa: F811
    artifacts: Path,  # noqa: F811
    pg_schema_url: str,
) -> None:
    base, _ = site
    seed(pg_schema_url)
    engine = make_engine(pg_schema_url)
    try:
        check_pages(browser, base, artifacts, engine)
    finally:
        engine.dispose()


def check_pages(chromium: Browser, base: str, folder: Path, engine: Engine) -> None:
    shot = lambda page, name: page.screenshot(path=str(folder / f"{name}.png"), full_page=True)  # noqa: E731

    page = sign_in(chromium, base, "vera")
    expect(page.locator("h1")).to_have_text("Сейчас")
    page.click("nav >> text=Аналитика")
    expect(page.locator("h1")).to_have_text("Аналитика")
    page.goto(f"/analytics?{QUERY}")
    # The charts are drawn, and their tables hold the database's numbers.
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-trend') !== undefined")
    total = figures(engine, WEEK, "total")[0]
    drawn = page.evaluate("() => Chart.getChart('chart-outcomes').data.datasets[0].data")
    wanted = [total.satisfied, total.unsatisfied, total.no_rating, total.not_reached,
              total.not_called, total.pending]  # fmt: skip
    assert drawn == wanted
    for name, n in zip(
        ("satisfied", "unsatisfied", "no_rating", "not_reached"), wanted, strict=False
    ):
        expect(page.locator(f"#outcomes-table tr[data-key={name}] td")).to_have_text(str(n))
    for day in figures(engine, WEEK, "day"):
        row = page.locator(f'#trend-table tr[data-key="{day.key}"]')
        if day.rated:
            expect(row).to_contain_text(f"{100 * (day.satisfaction or 0):.1f} %")
            expect(row).to_contain_text(f"n={day.rated}")
    trend = page.evaluate("() => Chart.getChart('chart-trend').data.datasets[0].data")
    assert trend == [None if d.satisfaction is None else round(100 * d.satisfaction, 1)
                     for d in figures(engine, WEEK, "day")]  # fmt: skip
    a = page.locator('#figures tr[data-key="EX-A"]')
    ex_a = figures(engine, WEEK, "executor")[0]
    assert ex_a.key == "EX-A" and ex_a.satisfaction is not None
    expect(a).to_contain_text(f"{100 * ex_a.satisfaction:.1f} % [")
    expect(a).to_contain_text(f"n={ex_a.rated}")
    shot(page, "20-analytics")

    # Drill down from A's satisfied count to its rows, phones masked.
    a.locator("a[href*='bucket=satisfied']").first.click()
    expect(page).to_have_url(re.compile(r"/analytics/rows\?"))
    expect(page.locator("#rows-count")).to_have_text("строк: 2")
    expect(page.locator("#rows td.phone")).to_have_text(["+37529*****67"] * 2)
    shot(page, "21-analytics-rows")

    # The rows' CSV and XLSX open with the same rows and the filters written in them.
    with page.expect_download() as csv_download:
        page.click("a.csv")
    filters, lines = read_csv(Path(csv_download.value.path()).read_bytes())
    assert ("executor" not in dict(filters)) and dict(filters)["key"] == "EX-A"
    assert lines[0] == list(ROW_COLUMNS) and len(lines) == 3
    shown = sorted(page.locator("#rows tr[data-survey]").evaluate_all(
        "rows => rows.map(r => r.dataset.survey)"))  # fmt: skip
    assert sorted(line[0] for line in lines[1:]) == shown
    with page.expect_download() as xlsx_download:
        page.click("a.xlsx")
    book = load_workbook(io.BytesIO(Path(xlsx_download.value.path()).read_bytes()), read_only=True)
    data = list(book["data"].iter_rows(values_only=True))
    assert sorted(r[0] for r in data[1:]) == shown
    assert dict(book["filters"].iter_rows(min_row=2, values_only=True))["bucket"] == "satisfied"

    # The printable report.
    page.goto(f"/analytics/report?{QUERY}")
    expect(page.locator("#report")).to_contain_text("ЖЭС № 1")
    page.emulate_media(media="print")
    expect(page.locator("header")).to_be_hidden()
    shot(page, "22-analytics-report-print")
