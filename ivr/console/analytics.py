"""The analytics pages of the console: figures by group with their intervals, rankings, charts,
the rows behind any figure, exports of every table, and the printable period report.

Every page reads its selection with :func:`read_params`, so a figure's link to its rows and
the export links carry the same filters. The numbers come from :mod:`storage.analytics`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote_plus

from markupsafe import Markup, escape
from sqlalchemy import func, select
from starlette.responses import Response, StreamingResponse

from ivr.campaign.period_report import COLUMNS, figure_row
from ivr.console.analytics_params import (
    BadParam,
    Params,
    choice,
    read_params,
    trend_grouping,
    whole,
)
from ivr.console.app import Ctx, RouteSpec, render
from ivr.core.exports import csv_chunks, write_xlsx
from ivr.core.intake import mask_phone
from storage.analytics import UNKNOWN, Figures, Filters, GroupBy, ranking
from storage.analytics_days import quick_figures, roll_up, settle, settle_days_for, total_of
from storage.analytics_rows import ROW_COLUMNS, rows_query

PAGE_ROWS = 50
MAX_PAGE = 10_000_000
TABLES = ("figures", "ranking", "trend", "rows")
RANKED = ("executor", "category", "district")
OUTCOMES = ("satisfied", "unsatisfied", "no_rating", "not_reached", "not_called", "pending")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def figures_of(ctx: Ctx, filters: Filters, by: GroupBy) -> list[Figures]:
    """The figures of ``filters`` by ``by``: settled days from their daily counts
    (:mod:`storage.analytics_days`), a day being settled a week after closing or, with a
    longer survey deadline, two days after it."""
    today, settle_days = _settling(ctx)
    return quick_figures(ctx.console.engine, filters, by, today, ctx.now, settle_days)


def _settling(ctx: Ctx) -> tuple[date, int]:
    """(today, the days after which a day is settled) as the console's configuration says."""
    config, _ = ctx.console.effective()
    return ctx.now.astimezone(config.tz).date(), settle_days_for(config.dialing.survey_deadline)


def count_settled(ctx: Ctx, filters: Filters) -> None:
    """Count the settled days of ``filters``' period not counted yet, and sum its whole months
    (what the control list's summary reads besides the recent days)."""
    today, settle_days = _settling(ctx)
    engine, f = ctx.console.engine, filters
    settle(engine, f.date_from, f.date_to, today, ctx.now, settle_days)
    roll_up(engine, f.date_from, f.date_to, ctx.now)


def params_of(ctx: Ctx) -> Params:
    return read_params(ctx.request.query_params, ctx.now, ctx.console.file_config.tz)


def bad_request(ctx: Ctx, exc: BadParam) -> Response:
    """The 400 page of a wrong parameter, naming it (in the page's language)."""
    message = f"{exc.name}: {ctx.t(exc.template, **exc.values)}"
    return render(ctx, "error.html", status=400, message=message)


def past_the_end(pages: int) -> BadParam:
    """A page number past the last page (an old link): which pages there are."""
    return BadParam("page", "expected a whole number from {low} to {high}", low=1, high=pages)


def chart_data(trend: list[Figures], total: Figures, t: Callable[[str], str]) -> dict[str, Any]:
    """What the page's charts draw (and its tables show): rates in percent, counts as is."""

    def pct(v: float | None) -> float | None:
        return None if v is None else round(100 * v, 1)

    reasons = {**total.not_reached_reasons, **total.not_called_reasons}
    return {
        "trend": {
            "labels": [f.label for f in trend],
            "satisfaction": [pct(f.satisfaction) for f in trend],
            "reach": [pct(f.reach) for f in trend],
        },
        "outcomes": {
            "labels": [t(f"outcome: {o}") for o in OUTCOMES],
            "counts": [_bucket(total, o) for o in OUTCOMES],
        },  # fmt: skip
        "reasons": {"labels": list(reasons), "counts": list(reasons.values())},
    }


def rate_html(value: float | None, ci: tuple[float, float] | None, n: int, href: str) -> Markup:
    """A rate as the tables show it: the percentage (a link to its rows), its 95 % interval
    and its count (a function, not a template macro: a page may hold a thousand of them)."""
    if value is None or ci is None:
        return Markup('<span class="muted">-</span>')
    link = escape(href)
    low, high = 100 * ci[0], 100 * ci[1]
    return Markup(f'<a href="{link}">{100 * value:.1f} %</a> <span class="ci">[{low:.1f}–'
                  f'{high:.1f}]</span> <span class="n">n={n}</span>')  # fmt: skip


def _bucket(f: Figures, name: str) -> int:
    return int(getattr(f, name))


async def analytics_page(ctx: Ctx) -> Response:
    try:
        p = params_of(ctx)
    except BadParam as exc:
        return bad_request(ctx, exc)
    groups = figures_of(ctx, p.filters, p.by)
    total = total_of(groups)
    trend_by = trend_grouping(p.filters)
    trend = groups if p.by == trend_by else figures_of(ctx, p.filters, trend_by)
    ranked = ranking(groups, p.measure, p.min_count) if p.by in RANKED else []
    return render(ctx, "analytics.html", p=p, groups=groups, total=total, trend=trend,
                  trend_by=trend_by, ranked=ranked, ranked_by=p.by in RANKED,
                  outcomes=OUTCOMES, charts=_script_json(chart_data(trend, total, ctx.t)),
                  rows_link=RowsLinks(p), group_link=_group_links(p),
                  rate=rate_html)  # fmt: skip


def _script_json(value: Any) -> str:
    """JSON to place inside a <script> element: no "<" can close it."""
    return json.dumps(value).replace("<", "\\u003c")


def _group_links(p: Params) -> Any:
    """The analytics page of one group (its trend): the selection with that group's filter."""
    prefix = "/analytics?" + p.query(**{p.by: None})
    return lambda key: f"{prefix}&{p.by}={quote_plus(key)}"


class RowsLinks:
    """The rows page of one figure: group ``key`` of grouping ``by``, outcome ``bucket``
    (the query of each group made once: a page of 300 executors has thousands of links)."""

    def __init__(self, p: Params) -> None:
        selection = p.query(by=None, key=None, bucket=None, min=None, measure=None)
        self.prefix = f"/analytics/rows?{selection}&"

    def __call__(self, by: str, key: str | None, bucket: str | None = None) -> str:
        link = f"{self.prefix}by={by}&key={quote_plus(UNKNOWN if key is None else key)}"
        return link if bucket is None else f"{link}&bucket={bucket}"


def _rows_q(p: Params) -> Any:
    return rows_query(p.filters, p.by if p.key is not None else None, p.key, p.bucket)


def shown_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as a page or an export shows it: the phone masked."""
    return {**row, "phone": mask_phone(row["phone"]) if row.get("phone") else ""}


async def rows_page(ctx: Ctx) -> Response:
    try:
        p = params_of(ctx)
        page = whole(ctx.request.query_params.get("page"), "page", 1, MAX_PAGE)
    except BadParam as exc:
        return bad_request(ctx, exc)
    q = _rows_q(p)
    with ctx.console.engine.connect() as conn:
        count = int(conn.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0)
        pages = max(1, -(-count // PAGE_ROWS))
        rows = []
        if page <= pages:
            found = conn.execute(q.limit(PAGE_ROWS).offset((page - 1) * PAGE_ROWS)).mappings()
            rows = [shown_row(dict(r)) for r in found]
    if page > pages:  # an old link past the end (answered once the connection is closed)
        return bad_request(ctx, past_the_end(pages))
    return render(ctx, "analytics_rows.html", p=p, rows=rows, count=count, page=page,
                  pages=pages, query=p.query())  # fmt: skip


# ---- exports -------------------------------------------------------------------------------
PHONE = ROW_COLUMNS.index("phone")


def export_rows(engine: Any, q: Any, chunk: int = 2000) -> Iterator[list[Any]]:
    """The rows of ``q`` as lists in :data:`ROW_COLUMNS` order, phones masked, fetched in
    chunks (a server-side cursor on PostgreSQL): never all in memory."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(q)
        for row in result:
            values = list(row)
            phone = values[PHONE]
            values[PHONE] = mask_phone(phone) if phone else ""
            yield values


def export_table(ctx: Ctx, p: Params, table: str) -> tuple[list[str], Iterator[list[Any]]]:
    """(header, rows) of one of the page's tables: figures, ranking, trend or rows."""
    if table == "rows":
        return list(ROW_COLUMNS), export_rows(ctx.console.engine, _rows_q(p))
    if table == "trend":
        groups = figures_of(ctx, p.filters, trend_grouping(p.filters))
    else:
        groups = figures_of(ctx, p.filters, p.by)
    if table == "ranking":
        groups = ranking(groups, p.measure, p.min_count)
    if table == "figures":
        groups = [*groups, replace(total_of(groups), label="TOTAL")]
    return list(COLUMNS), iter([figure_row(f) for f in groups])


async def export(ctx: Ctx) -> Response:
    query = ctx.request.query_params
    try:
        p = params_of(ctx)
        table = choice(query.get("table"), "table", TABLES, "figures")
        fmt = choice(query.get("format"), "format", ("csv", "xlsx"), "csv")
    except BadParam as exc:
        return bad_request(ctx, exc)
    described = [*p.described(), ("table", table)]
    if table == "ranking":
        described += [("measure", p.measure), ("min", str(p.min_count))]
    header, rows = export_table(ctx, p, table)
    tz = ctx.console.file_config.tz
    name = f"ivr-{table}-{p.filters.date_from}-{p.filters.date_to}.{fmt}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "csv":
        chunks = (c.encode("utf-8") for c in csv_chunks(header, rows, described, tz))
        return StreamingResponse(chunks, media_type="text/csv; charset=utf-8",
                                 headers=disposition)  # fmt: skip
    return StreamingResponse(_xlsx_chunks(header, rows, described, tz), media_type=XLSX,
                             headers=disposition)  # fmt: skip


def _xlsx_chunks(header: list[str], rows: Iterator[list[Any]], described: Any,
                 tz: Any) -> Iterator[bytes]:  # fmt: skip
    """The workbook, written to a temporary file (openpyxl's write-only mode) then streamed."""
    import tempfile

    with tempfile.TemporaryFile() as out:
        write_xlsx(out, header, rows, described, tz)
        out.seek(0)
        while chunk := out.read(1 << 16):
            yield chunk


# ---- the printable period report -----------------------------------------------------------
async def report_page(ctx: Ctx) -> Response:
    """Per executor: calls, reach, satisfaction with interval, unsatisfied again, and the trend
    (satisfaction in the first half of the period against the second half)."""
    try:
        p = params_of(ctx)
    except BadParam as exc:
        return bad_request(ctx, exc)
    f = p.filters
    groups = figures_of(ctx, f, "executor")
    total = total_of(groups)
    half = f.date_from + timedelta(days=(f.date_to - f.date_from).days // 2)
    after = replace(f, date_from=half + timedelta(days=1))
    first = {g.key: g for g in figures_of(ctx, replace(f, date_to=half), "executor")}
    second = {g.key: g for g in figures_of(ctx, after, "executor")}
    if f.date_from == f.date_to:
        second = {}
    return render(ctx, "analytics_report.html", p=p, groups=groups, total=total, first=first,
                  second=second, half=half)  # fmt: skip


ANALYTICS_ROUTES = [
    RouteSpec("/analytics", "GET", "viewer", analytics_page, "analytics"),
    RouteSpec("/analytics/rows", "GET", "viewer", rows_page, "analytics_rows"),
    RouteSpec("/analytics/export", "GET", "viewer", export, "analytics_export"),
    RouteSpec("/analytics/report", "GET", "viewer", report_page, "analytics_report"),
]
