"""The JSON API under ``/api/``: the analytics figures, rankings and rows for the portal or a
BI tool, described by ``/api/openapi.json`` (:mod:`ivr.console.openapi`).

A request is let in by a signed-in console session (any role) or by a bearer token made with
``ivr-rating token add NAME`` (``Authorization: Bearer ...``); anything else is a 401. Phones
are masked as everywhere in the console. The selection is read as on the pages
(:mod:`ivr.console.analytics_params`), so an API answer and a page show the same numbers.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from starlette.responses import JSONResponse, Response

from ivr.console.analytics import RANKED, figures_of, shown_row
from ivr.console.analytics_params import (
    MAX_LIMIT,
    MAX_OFFSET,
    BadParam,
    Params,
    read_params,
    whole,
)
from ivr.console.app import Ctx, RouteSpec
from ivr.console.openapi import SPEC
from storage.analytics import ranking
from storage.analytics_days import total_of
from storage.analytics_rows import ROW_COLUMNS, rows_query
from storage.api_tokens import ApiTokens


def _error(status: int, message: str, **headers: str) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _bad(exc: BadParam) -> Response:
    """A 400 naming the wrong parameter (``parameter``) and what is wrong (``error``)."""
    return JSONResponse({"error": str(exc), "parameter": exc.name}, status_code=400)


def _authorised(ctx: Ctx) -> bool:
    if ctx.user is not None:
        return True
    scheme, _, token = ctx.request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    return ApiTokens(ctx.console.engine).check(token.strip(), ctx.now) is not None


def _params(ctx: Ctx) -> Params | Response:
    if not _authorised(ctx):
        return _error(401, "sign in or send a bearer token", **{"WWW-Authenticate": "Bearer"})
    try:
        return read_params(ctx.request.query_params, ctx.now, ctx.console.file_config.tz)
    except BadParam as exc:
        return _bad(exc)


def _selection(p: Params) -> dict[str, Any]:
    return dict(p.filters.described())


async def api_figures(ctx: Ctx) -> Response:
    p = _params(ctx)
    if isinstance(p, Response):
        return p
    groups = figures_of(ctx, p.filters, p.by)
    total = total_of(groups)
    return JSONResponse({"filters": _selection(p), "by": p.by,
                         "groups": [g.as_dict() for g in groups],
                         "total": total.as_dict()})  # fmt: skip


async def api_ranking(ctx: Ctx) -> Response:
    p = _params(ctx)
    if isinstance(p, Response):
        return p
    if p.by not in RANKED:
        return _bad(BadParam("by", "expected one of {allowed}", allowed=", ".join(RANKED)))
    ranked = ranking(figures_of(ctx, p.filters, p.by), p.measure, p.min_count)
    return JSONResponse({"filters": _selection(p), "by": p.by, "measure": p.measure,
                         "min": p.min_count,
                         "groups": [g.as_dict() for g in ranked]})  # fmt: skip


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


async def api_rows(ctx: Ctx) -> Response:
    p = _params(ctx)
    if isinstance(p, Response):
        return p
    query = ctx.request.query_params
    try:
        limit = whole(query.get("limit"), "limit", 100, MAX_LIMIT)
        offset = whole(query.get("offset"), "offset", 0, MAX_OFFSET, low=0)
    except BadParam as exc:
        return _bad(exc)
    q = rows_query(p.filters, p.by if p.key is not None else None, p.key, p.bucket)
    with ctx.console.engine.connect() as conn:
        count = int(conn.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0)
        rows = [shown_row(dict(r)) for r in conn.execute(q.limit(limit).offset(offset)).mappings()]
    described = _selection(p)
    if p.key is not None:
        described.update(by=p.by, key=p.key)
    if p.bucket is not None:
        described["bucket"] = p.bucket
    return JSONResponse({
        "filters": described, "count": count, "limit": limit, "offset": offset,
        "rows": [{c: _json_value(r[c]) for c in ROW_COLUMNS} for r in rows],
    })  # fmt: skip


async def api_openapi(ctx: Ctx) -> Response:
    return JSONResponse(SPEC)


API_ROUTES = [
    RouteSpec("/api/openapi.json", "GET", "public", api_openapi, "api_openapi"),
    RouteSpec("/api/figures", "GET", "public", api_figures, "api_figures"),
    RouteSpec("/api/ranking", "GET", "public", api_ranking, "api_ranking"),
    RouteSpec("/api/rows", "GET", "public", api_rows, "api_rows"),
]
"""``public`` for the console's guard: each handler lets in a session or a bearer token."""
