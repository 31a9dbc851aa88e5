"""Helpers of the console's tables: CSV and JSON exports with the page's filters, and opaque
references to do-not-call entries (a page never holds a full number, even in a form)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

if TYPE_CHECKING:
    from ivr.console.app import Ctx


def table_response(fmt: str, name: str, headers: list[str], rows: list[list[Any]]) -> Response:
    if fmt == "json":
        body = json.dumps([dict(zip(headers, r, strict=True)) for r in rows], ensure_ascii=False)
        return Response(body, media_type="application/json")
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(headers)
    w.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def dnc_ref(ctx: Ctx, phone: str) -> str:
    key = ctx.console.secret.encode()
    return hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()[:24]


def find_dnc(ctx: Ctx, ref: str) -> str | None:
    """The listed number whose reference is ``ref``."""
    for row in ctx.console.admin.dnc_rows(limit=1_000_000):
        if hmac.compare_digest(dnc_ref(ctx, row.phone), ref):
            return row.phone
    return None
