"""Helpers of the console's tables: CSV and JSON exports with the page's filters, and opaque
references to do-not-call entries (a page never holds a full number, even in a form).

Every text cell of an export has its control characters escaped, and a CSV cell never starts
like a formula (:mod:`ivr.core.untrusted`), whatever an operator or the portal wrote into it."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from ivr.core.untrusted import csv_cell, printable

if TYPE_CHECKING:
    from ivr.console.app import Ctx


def table_response(fmt: str, name: str, headers: list[str], rows: list[list[Any]]) -> Response:
    if fmt == "json":
        shown = [[printable(c) if isinstance(c, str) else c for c in r] for r in rows]
        body = json.dumps([dict(zip(headers, r, strict=True)) for r in shown], ensure_ascii=False)
        return Response(body, media_type="application/json")
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(headers)
    w.writerows([csv_cell(c) if isinstance(c, str) else c for c in r] for r in rows)
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
