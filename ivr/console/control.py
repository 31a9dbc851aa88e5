"""The control list: every request returned for rework (an unsatisfied answer), unsatisfied
again first, then the newest; filters, review with a note, the citizen's spoken comment, and
exports (CSV for Excel, XLSX) with the filters written in the file.

Who may do what (checked by the server, ``CONTROL_ROUTES``): everyone signed in sees the list
and exports it (phones masked); a controller (and an admin) also marks entries reviewed and
hears the comments; every review, listen and export is audited.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response, StreamingResponse

from ivr.console.analytics import bad_request, count_settled, past_the_end
from ivr.console.analytics_params import (
    BadParam,
    choice,
    once_each,
    read_period,
    text,
    whole,
)
from ivr.console.app import Ctx, RouteSpec, back_to, render
from ivr.core.config import Config
from ivr.core.exports import csv_chunks, write_xlsx
from ivr.core.intake import mask_phone
from prompts.catalog import category_label
from storage.analytics import UNKNOWN, Filters
from storage.control_entries import Mark
from storage.control_list import (
    NOTE_MAX,
    control_page_query,
    control_rows_query,
    control_summary,
    read_control_page,
    recording,
    review,
)

PAGE_SIZE = 100
DEFAULT_DAYS = 30
MAX_PAGE = 10_000_000
MARK_MAX = 120  # a mark is about 70 characters
ID_MAX = 36  # a survey id
ROUNDS = {
    "first": "first closing",
    "rework": "closed again after rework",
    "again": "unsatisfied again",
}
KEY_PATHS = {"r": "RTP event", "i": "SIP INFO", "b": "in-band tone"}
HEADER = (
    "Request", "Link", "Executor", "Category", "Address", "Phone", "Closed", "Called",
    "Key", "Key path", "Round", "Unsatisfied again", "Comment, s", "Reviewed", "Reviewed by",
    "Note",
)  # fmt: skip


@dataclass(frozen=True)
class View:
    """The list's filters as read from the query string (:func:`read_view`)."""

    filters: Filters
    reviewed: bool | None = None
    page: int = 1
    after: str = ""  # the page follows this entry (storage.control_entries.Mark)
    before: str = ""  # the page precedes this one

    def params(self, **over: Any) -> dict[str, str]:
        f = self.filters
        out = {"from": f.date_from.isoformat(), "to": f.date_to.isoformat(),
               "executor": f.executor or "", "category": f.category or "",
               "round": f.round or "",
               "reviewed": {True: "yes", False: "no", None: ""}[self.reviewed],
               "after": self.after, "before": self.before}  # fmt: skip
        out.update({k: str(v) for k, v in over.items()})
        return {k: v for k, v in out.items() if v}

    def link(self, **over: Any) -> str:
        return "/control?" + urlencode(self.params(**over))

    def described(self) -> list[tuple[str, str]]:
        out = self.filters.described()
        if self.reviewed is not None:
            out.append(("reviewed", "yes" if self.reviewed else "no"))
        return out


def read_view(ctx: Ctx, query: Mapping[str, str]) -> View:
    """The list's selection, read as the analytics pages read theirs
    (:mod:`ivr.console.analytics_params`): a wrong value is a BadParam naming it."""
    once_each(query)
    config, _ = ctx.console.effective()
    today = ctx.now.astimezone(config.tz).date()
    date_from, date_to = read_period(query, today, DEFAULT_DAYS + 1)
    filters = Filters(
        date_from,
        date_to,
        executor=text(query.get("executor"), "executor"),
        category=text(query.get("category"), "category"),
        round=choice(query.get("round"), "round", tuple(ROUNDS), None),
    )
    reviewed = choice(query.get("reviewed"), "reviewed", ("yes", "no"), None)
    page = whole(query.get("page"), "page", 1, MAX_PAGE)  # old links: ?page=N
    after, before = (_mark(query, name) for name in ("after", "before"))
    return View(filters, {"yes": True, "no": False, None: None}[reviewed], page, after, before)


def _mark(query: Mapping[str, str], name: str) -> str:
    """A page's mark (:meth:`Mark.token`), as the page's own links carry it, or ""."""
    raw = text(query.get(name), name, MARK_MAX) or ""
    if raw and Mark.parse(raw) is None:
        raise BadParam(name, "not a mark of this list (follow the page's links)")
    return raw


@lru_cache(maxsize=4096)
def _category(name: str | None, sent: str | None) -> str:
    """The category as shown: the catalog's label, else the text as sent, else unknown."""
    return category_label(name) if name else sent or UNKNOWN


def key_path(ctx: Ctx, sources: str | None) -> str:
    """How the keys came: "RTP event", "SIP INFO", "in-band tone" (→ between several)."""
    return " → ".join(ctx.t(KEY_PATHS.get(s, s)) for s in sources or "")


def entry(ctx: Ctx, config: Config, row: Mapping[str, Any]) -> dict[str, Any]:
    """One row as the page and the exports show it (no database access: on SQLite a second
    transaction would wait for the cursor this row comes from)."""
    return {
        **row,
        "link": config.control.link(row["portal_request_id"], row["request_number"]),
        "executor": row["executor_name"] or row["executor_id"] or UNKNOWN,
        "category_shown": _category(row["category_name"], row["category"]),
        "phone_masked": mask_phone(row["phone"]) if row["phone"] else "",
        "key_path": key_path(ctx, row["key_sources"]),
        "again": bool(row["again"]),
        "recording": bool(row["recording"]),
    }


def _rows(ctx: Ctx, view: View) -> list[dict[str, Any]]:
    """The page's rows: the first page, or the page after (before) the marked entry; a page
    number without a mark (an old link) is found by its offset."""
    config, _ = ctx.console.effective()
    f, reviewed = view.filters, view.reviewed
    with ctx.console.engine.connect() as conn:
        if view.page == 1 or view.after or view.before:
            rows = read_control_page(conn, f, reviewed, PAGE_SIZE, view.after, view.before)
        else:
            q = control_page_query(f, reviewed, PAGE_SIZE, (view.page - 1) * PAGE_SIZE)
            rows = [dict(row) for row in conn.execute(q).mappings()]
    return [entry(ctx, config, row) for row in rows]


def marks(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """The marks of the page's first and last entries (for the links to the pages around)."""
    if not rows:
        return "", ""
    first, last = (
        Mark(bool(r["again"]), r["closed_at"], r["survey_id"]) for r in (rows[0], rows[-1])
    )
    return first.token(), last.token()


async def control_page(ctx: Ctx) -> Response:
    try:
        view = read_view(ctx, ctx.request.query_params)
        fmt = choice(ctx.request.query_params.get("format"), "format", ("csv", "xlsx"), None)
    except BadParam as exc:
        return bad_request(ctx, exc)
    if fmt is not None:
        return await export(ctx, view, fmt)
    count_settled(ctx, view.filters)
    summary = control_summary(ctx.console.engine, view.filters)
    total, unreviewed = summary.total, summary.unreviewed
    shown = {None: total, False: unreviewed, True: total - unreviewed}[view.reviewed]
    pages = max(1, -(-shown // PAGE_SIZE))
    if view.page > pages and not (view.after or view.before):  # an old link, past the end
        return bad_request(ctx, past_the_end(pages))
    rows = _rows(ctx, view)
    first, last = marks(rows)
    return render(
        ctx,
        "control.html",
        view=view,
        rows=rows,
        first_mark=first,
        last_mark=last,
        total=total,
        unreviewed=unreviewed,
        shown=shown,
        pages=pages,
        executors=summary.executors,
        categories=[(c, c if c == UNKNOWN else category_label(c)) for c in summary.categories],
        rounds=[(r, ctx.t(label)) for r, label in ROUNDS.items()],
    )


EXPORTED = (
    "request_number", "portal_request_id", "executor_id", "executor_name", "category",
    "address", "phone", "closed_at", "called_at", "digit", "key_sources", "round_no", "again",
    "reviewed_at", "reviewed_by", "note", "category_name", "comment_s",
)  # fmt: skip
"""The columns of :func:`storage.control_list.control_rows_query` an export reads."""


def _export_rows(ctx: Ctx, config: Config, view: View) -> Iterator[list[Any]]:
    """The whole list as export rows in ``HEADER`` order, as the page shows them: plain tuples
    from a server-side cursor (no mapping or dict per row), each key path and category label
    made once per distinct value. About 100 k rows a minute's work before, seconds now."""
    yes, no = ctx.t("yes"), ctx.t("no")
    paths: dict[str | None, str] = {}
    link = config.control.link
    query = control_rows_query(view.filters, view.reviewed)
    with ctx.console.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=2000).execute(query)
        (number, request, ex_id, ex_name, sent, address, phone, closed, called, digit, sources,
         round_no, again, reviewed_at, reviewed_by, note, cat_name, comment_s) = (
            list(result.keys()).index(c) for c in EXPORTED)  # fmt: skip
        for r in result:
            path = paths.get(r[sources])
            if path is None:
                path = paths[r[sources]] = key_path(ctx, r[sources])
            comment = r[comment_s]
            yield [
                r[number], link(r[request], r[number]) or "", r[ex_name] or r[ex_id] or UNKNOWN,
                _category(r[cat_name], r[sent]), r[address] or "",
                mask_phone(r[phone]) if r[phone] else "", r[closed], r[called], r[digit] or "",
                path, r[round_no], yes if r[again] else no,
                round(comment, 1) if comment is not None else None,
                r[reviewed_at], r[reviewed_by] or "", r[note] or "",
            ]  # fmt: skip


async def export(ctx: Ctx, view: View, fmt: str) -> Response:
    """The whole filtered list (every page), streamed: CSV row by row from a server-side
    cursor; XLSX written to a temporary file by openpyxl's write-only mode, then sent."""
    config, _ = ctx.console.effective()
    header = [ctx.t(h) for h in HEADER]
    described = view.described()
    ctx.console.admin.record(ctx.actor, ctx.now, f"control.export.{fmt}",
                             urlencode(view.params()) or None)  # fmt: skip
    stamp = ctx.now.astimezone(config.tz).strftime("%Y%m%d-%H%M")
    name = f"control-{view.filters.date_from}-{view.filters.date_to}-{stamp}"
    if fmt == "csv":
        chunks = csv_chunks(header, _export_rows(ctx, config, view), described, config.tz)
        return StreamingResponse(
            (c.encode("utf-8") for c in chunks),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    fd, path = tempfile.mkstemp(prefix="ivr-control-", suffix=".xlsx")
    os.close(fd)
    try:
        await run_in_threadpool(
            write_xlsx, Path(path), header, _export_rows(ctx, config, view), described, config.tz
        )
    except BaseException:
        os.unlink(path)
        raise
    return FileResponse(
        path,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename=f"{name}.xlsx",
        background=BackgroundTask(os.unlink, path),
    )


async def control_review(ctx: Ctx) -> Response:
    back = ctx.form.get("back", "")
    local = back.startswith("/control?") and len(back) <= 2000 or back == "/control"
    back = back if local else "/control"
    survey, note = ctx.form.get("survey"), ctx.form.get("note")
    try:
        if text(survey, "survey", ID_MAX) is None:
            raise BadParam("survey", "required")
        if note is not None and len(note) > NOTE_MAX:
            raise BadParam("note", "at most {most} characters", most=NOTE_MAX)
    except BadParam as exc:
        return bad_request(ctx, exc)
    done = review(ctx.console.admin, ctx.actor, str(survey), note, ctx.now)
    if done is None:
        msg = ctx.t("Not found.")
    else:
        msg = ctx.t("Request {r} marked reviewed.", r=done.portal_request_id)
    return back_to(ctx, back, msg)


async def comment_audio(ctx: Ctx) -> Response:
    """The citizen's recording (WAV), for the <audio> of the list; byte ranges served for
    seeking. Each listen is audited once (the request that starts at the first byte)."""
    survey_id = str(ctx.request.path_params.get("survey_id", ""))
    config, _ = ctx.console.effective()
    try:  # a NUL or an id longer than any: no such recording (PostgreSQL refuses a NUL)
        text(survey_id, "survey", ID_MAX)
        found = recording(ctx.console.engine, survey_id, config.ivr.comment_dir)
    except BadParam:
        found = None
    if found is None or found.path is None:
        return Response(ctx.t("No recording kept for this request."), status_code=404,
                        media_type="text/plain; charset=utf-8")  # fmt: skip
    wanted = ctx.request.headers.get("range", "").replace(" ", "")
    if not wanted or wanted.startswith("bytes=0-"):
        ctx.console.admin.record(ctx.actor, ctx.now, "comment.listen", found.portal_request_id)
    return FileResponse(found.path, media_type="audio/wav",
                        headers={"Cache-Control": "private, no-store"})  # fmt: skip


CONTROL_ROUTES = [
    RouteSpec("/control", "GET", "viewer", control_page, "control"),
    RouteSpec("/control/review", "POST", "controller", control_review, "control_review"),
    RouteSpec("/control/comment/{survey_id}", "GET", "controller", comment_audio, "comment"),
]
