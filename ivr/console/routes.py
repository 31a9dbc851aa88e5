"""The console's pages and actions, and the least role each needs (``ROUTES``)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from ivr.console.app import LANG_COOKIE, Ctx, RouteSpec, back_to, render, set_session
from ivr.console.control import CONTROL_ROUTES
from ivr.console.now import SILENT_SHOWN_S, node_row, now_figures
from ivr.console.security import (
    Session,
    hash_fingerprint,
    hash_password,
    new_token,
    verify_password as check_password,
)
from ivr.console.signins import audit_sign_in
from ivr.console.tables import dnc_ref, find_dnc, table_response
from ivr.core.intake import mask_phone, normalize_phone
from ivr.core.live_settings import form_values, preview, validate
from ivr.core.windows import format_local
from storage.admin import ROLES
from storage.bulk import dead_letters


# ---- sign-in -------------------------------------------------------------------------------
async def login_page(ctx: Ctx) -> Response:
    return render(ctx, "login.html", error=None)


async def login(ctx: Ctx) -> Response:
    name = ctx.form.get("user", "").strip()[:64]
    password = ctx.form.get("password", "")
    client = ctx.request.client
    address = client.host if client else "?"
    mono = ctx.console.clock.monotonic()
    wait = ctx.console.throttle.wait_s(name, address, mono)
    user = ctx.console.admin.user(name) if name else None
    if wait > 0:
        if ctx.console.throttle.first_refusal(name, address):
            audit_sign_in(ctx, "signin.throttled", user, {"wait_s": int(wait) + 1})
        msg = ctx.t("Too many failed attempts; try again in {s} s.", s=int(wait) + 1)
        return render(ctx, "login.html", status=429, error=msg)
    ok = check_password(user.password_hash if user else None, password)
    if not ok or user is None or user.disabled:
        ctx.console.throttle.failed(name, address, mono)
        audit_sign_in(ctx, "signin.failed", user, None)
        return render(ctx, "login.html", status=401, error=ctx.t("Wrong user name or password."))
    ctx.console.throttle.succeeded(name, address)
    audit_sign_in(ctx, "signin", user, None)
    response = RedirectResponse("/", status_code=303)
    set_session(
        ctx.console, response, Session(user.name, new_token(), hash_fingerprint(user.password_hash))
    )
    return response


async def logout(ctx: Ctx) -> Response:
    if ctx.user is not None:
        audit_sign_in(ctx, "signout", ctx.user, None)
    response = RedirectResponse("/login", status_code=303)
    set_session(ctx.console, response, Session(None, new_token()))
    return response


async def language(ctx: Ctx) -> Response:
    lang = ctx.request.query_params.get("to", "ru")
    target = ctx.request.query_params.get("next", "/")
    # Only a path of this site: "//host" and "/\\host" would lead a browser to another site.
    local = target.startswith("/") and not target.startswith(("//", "/\\"))
    response = RedirectResponse(target if local else "/", status_code=303)
    response.set_cookie(LANG_COOKIE, lang if lang in ("ru", "en") else "ru", samesite="strict")
    return response


# ---- now -----------------------------------------------------------------------------------
def _now_values(ctx: Ctx) -> dict[str, Any]:
    config, calendar = ctx.console.effective()
    pause, console = ctx.pause_state(), ctx.console
    data, nodes = console.recent_now.get(console.clock.monotonic(), lambda: now_figures(
        console.engine, pause, config, calendar, ctx.now))  # fmt: skip
    now = data.now
    rows = [node_row(n, now) for n in nodes if not n.silent or n.silent_for_s(now) < SILENT_SHOWN_S]
    return {"data": data, "nodes": rows}


async def now_page(ctx: Ctx) -> Response:
    return render(ctx, "now.html", **_now_values(ctx))


async def now_live(ctx: Ctx) -> Response:
    return render(ctx, "_now_live.html", oob=True, **_now_values(ctx))


async def pause(ctx: Ctx) -> Response:
    reason = ctx.form.get("reason", "").strip()
    if not reason:
        return render(ctx, "now.html", status=422, reason_error=ctx.t("A reason is required."),
                      **_now_values(ctx))  # fmt: skip
    ctx.console.admin.pause(ctx.actor, reason[:200], ctx.now)
    return back_to(ctx, "/")


async def resume(ctx: Ctx) -> Response:
    ctx.console.admin.resume(ctx.actor, ctx.now)
    return back_to(ctx, "/")


async def reveal(ctx: Ctx) -> Response:
    """An administrator sees one full number; audited."""
    kind, ref = ctx.form.get("kind", ""), ctx.form.get("ref", "")
    phone = None
    if kind == "survey":
        from storage.models import Survey

        with ctx.console.store._tx() as s:
            row = s.get(Survey, ref)
            phone = row.phone if row is not None else None
    elif kind == "dnc":
        phone = find_dnc(ctx, ref)
    if phone is None:
        return HTMLResponse(ctx.t("Not found."), status_code=404)
    ctx.console.admin.record(ctx.actor, ctx.now, "phone.reveal", phone)
    return HTMLResponse(f"<span class='revealed'>{phone}</span>")


# ---- settings ------------------------------------------------------------------------------
def _settings_values(ctx: Ctx) -> dict[str, Any]:
    config, _ = ctx.console.effective()
    doc, stamp = ctx.console.store.live_document()
    by = None
    if doc is not None:
        from storage.models import LiveSettings

        with ctx.console.store._tx() as s:
            row = s.get(LiveSettings, "campaign")
            by = row.updated_by if row else None
    today = ctx.now.astimezone(config.tz).date()
    return {"live_at": stamp, "live_by": by, "days": preview(config, today), "config": config}


async def settings_page(ctx: Ctx) -> Response:
    config, _ = ctx.console.effective()
    return render(ctx, "settings.html", values=form_values(config), errors={},
                  **_settings_values(ctx))  # fmt: skip


async def settings_save(ctx: Ctx) -> Response:
    checked = validate(ctx.form, ctx.console.file_config)
    if checked.errors:
        return render(ctx, "settings.html", status=422, values=ctx.form, errors=checked.errors,
                      msg=ctx.t("Not saved: correct the fields marked."),
                      **_settings_values(ctx))  # fmt: skip
    ctx.console.admin.save_live_settings(ctx.actor, checked.document, ctx.now)
    return back_to(ctx, "/settings", ctx.t("Saved; every node applies it within seconds."))


async def settings_reset(ctx: Ctx) -> Response:
    ctx.console.admin.reset_live_settings(ctx.actor, ctx.now)
    return back_to(ctx, "/settings", ctx.t("Back to the file's values: done."))


# ---- do-not-call ---------------------------------------------------------------------------
async def dnc_page(ctx: Ctx) -> Response:
    q = ctx.request.query_params.get("q", "").strip()
    e164 = normalize_phone(q) if q else None
    digits = "".join(c for c in q if c.isdigit())
    rows = ctx.console.admin.dnc_rows(e164 or digits or None)
    fmt = ctx.request.query_params.get("format")
    if fmt in ("csv", "json"):
        return table_response(
            fmt,
            "do-not-call",
            ["phone", "source", "note", "added_at", "added_by"],
            [
                [
                    mask_phone(r.phone),
                    r.source,
                    r.note or "",
                    r.added_at.isoformat(),
                    r.added_by or "",
                ]
                for r in rows
            ],  # fmt: skip
        )
    return render(ctx, "dnc.html", rows=rows, q=q, ref=lambda p: dnc_ref(ctx, p))


async def dnc_add(ctx: Ctx) -> Response:
    phone = normalize_phone(ctx.form.get("phone", ""))
    if phone is None:
        return back_to(ctx, "/dnc", ctx.t("Not a valid phone number."))
    added = ctx.console.admin.dnc_add(ctx.actor, phone, ctx.form.get("note"), ctx.now)
    return back_to(ctx, "/dnc", ctx.t("Added." if added else "Already on the list."))


async def dnc_remove(ctx: Ctx) -> Response:
    phone = find_dnc(ctx, ctx.form.get("ref", ""))
    if phone is None:
        return back_to(ctx, "/dnc", ctx.t("Not found."))
    ctx.console.admin.dnc_remove(ctx.actor, phone, ctx.now)
    return back_to(ctx, "/dnc", ctx.t("Removed."))


async def dnc_import(ctx: Ctx) -> Response:
    upload = ctx.uploads.get("file")
    raw = (await upload.read()).decode("utf-8-sig", errors="replace") if upload else ""
    rows, bad = [], 0
    for record in csv.reader(io.StringIO(raw)):
        if not record or record[0].strip().lower() in ("phone", "телефон"):
            continue
        phone = normalize_phone(record[0])
        if phone is None:
            bad += 1
            continue
        rows.append((phone, record[1].strip() if len(record) > 1 else None))
    added = ctx.console.admin.dnc_import(ctx.actor, rows, ctx.now)
    return back_to(ctx, "/dnc", ctx.t("Imported {n}, already listed or invalid {m}.", n=added,
                               m=bad + len(rows) - added))  # fmt: skip


# ---- dead letters --------------------------------------------------------------------------
async def dead_page(ctx: Ctx) -> Response:
    letters = dead_letters(ctx.console.store)
    fmt = ctx.request.query_params.get("format")
    if fmt in ("csv", "json"):
        return table_response(
            fmt,
            "dead-letters",
            ["request_id", "survey_id", "http_status", "answer", "tries"],
            [
                [d.portal_request_id, d.survey_id, d.http_status, d.answer or "", d.tries]
                for d in letters
            ],  # fmt: skip
        )
    return render(ctx, "dead.html", letters=letters)


async def dead_retry(ctx: Ctx) -> Response:
    ids = [ctx.form["id"]] if ctx.form.get("id") else []
    try:
        requeued = ctx.console.admin.retry_dead(ctx.actor, ctx.now, ids)
    except ValueError:
        return back_to(ctx, "/dead", ctx.t("Not found."))
    return back_to(ctx, "/dead", ctx.t("Re-queued {n}.", n=len(requeued)))


# ---- users ---------------------------------------------------------------------------------
async def users_page(ctx: Ctx) -> Response:
    return render(ctx, "users.html", users=ctx.console.admin.users(), roles=ROLES)


async def users_change(ctx: Ctx) -> Response:
    f, admin = ctx.form, ctx.console.admin
    name = f.get("name", "").strip()
    try:
        match f.get("op"):
            case "add":
                admin.add_user(ctx.actor, name, f.get("role", ""),
                               hash_password(f.get("password", "")), ctx.now)  # fmt: skip
            case "role":
                admin.set_role(ctx.actor, name, f.get("role", ""), ctx.now)
            case "passwd":
                admin.set_password(ctx.actor, name, hash_password(f.get("password", "")), ctx.now)
            case "disable" | "enable":
                admin.set_disabled(ctx.actor, name, f["op"] == "disable", ctx.now)
            case _:
                return back_to(ctx, "/users", ctx.t("Not found."))
    except ValueError as exc:  # the catalog has each of these messages
        return back_to(ctx, "/users", ctx.t(str(exc)))
    return back_to(ctx, "/users", ctx.t("Done."))


# ---- audit ---------------------------------------------------------------------------------
def _target(target: str | None) -> str:
    return mask_phone(target) if target and target.startswith("+") else (target or "")


async def audit_page(ctx: Ctx) -> Response:
    p = ctx.request.query_params
    rows, total = ctx.console.admin.audit_rows(500, p.get("action") or None, p.get("actor") or None)
    fmt = p.get("format")
    cells = [
        [r.at.isoformat(timespec="seconds"), r.actor, r.address or "", r.action, _target(r.target),
         json.dumps(r.before, ensure_ascii=False) if r.before is not None else "",
         json.dumps(r.after, ensure_ascii=False) if r.after is not None else ""]
        for r in rows
    ]  # fmt: skip
    if fmt in ("csv", "json"):
        headers = ["at", "actor", "address", "action", "target", "before", "after"]
        return table_response(fmt, "audit", headers, cells)
    tz = ctx.console.file_config.tz  # the page shows local times, the exports ISO in UTC
    shown = [[format_local(r.at, tz), *c[1:]] for r, c in zip(rows, cells, strict=True)]
    return render(ctx, "audit.html", rows=shown, total=total, action=p.get("action", ""),
                  actor=p.get("actor", ""))  # fmt: skip


# ---- for administrators' monitoring (no phone number, no request id) ------------------------
async def metrics(ctx: Ctx) -> Response:
    from ivr.campaign import gauges, metrics as m

    console = ctx.console
    if console.registry is None:
        console.registry = gauges.console_registry(console.engine, console.clock,
                                              console.file_config.tz)  # fmt: skip
    body, content_type = m.exposition(console.registry)
    return Response(body, media_type=content_type)


async def healthz(ctx: Ctx) -> Response:
    from ivr.campaign import metrics as m

    status, text = m.healthz()
    return PlainTextResponse(text, status_code=status)


async def readyz(ctx: Ctx) -> Response:
    from ivr.campaign import metrics as m

    status, text = m.readyz(m.readiness_problems(ctx.console.engine, None))
    return PlainTextResponse(text, status_code=status)


ROUTES = [
    RouteSpec("/metrics", "GET", "public", metrics, "metrics"),
    RouteSpec("/healthz", "GET", "public", healthz, "healthz"),
    RouteSpec("/readyz", "GET", "public", readyz, "readyz"),
    RouteSpec("/login", "GET", "public", login_page, "login_page"),
    RouteSpec("/login", "POST", "public", login, "login"),
    RouteSpec("/logout", "POST", "public", logout, "logout"),
    RouteSpec("/lang", "GET", "public", language, "lang"),
    RouteSpec("/", "GET", "viewer", now_page, "now"),
    RouteSpec("/now/live", "GET", "viewer", now_live, "now_live"),
    RouteSpec("/pause", "POST", "operator", pause, "pause"),
    RouteSpec("/resume", "POST", "operator", resume, "resume"),
    RouteSpec("/reveal", "POST", "admin", reveal, "reveal"),
    RouteSpec("/settings", "GET", "viewer", settings_page, "settings"),
    RouteSpec("/settings", "POST", "operator", settings_save, "settings_save"),
    RouteSpec("/settings/reset", "POST", "operator", settings_reset, "settings_reset"),
    RouteSpec("/dnc", "GET", "viewer", dnc_page, "dnc"),
    RouteSpec("/dnc/add", "POST", "operator", dnc_add, "dnc_add"),
    RouteSpec("/dnc/remove", "POST", "operator", dnc_remove, "dnc_remove"),
    RouteSpec("/dnc/import", "POST", "operator", dnc_import, "dnc_import"),
    RouteSpec("/dead", "GET", "viewer", dead_page, "dead"),
    RouteSpec("/dead/retry", "POST", "operator", dead_retry, "dead_retry"),
    RouteSpec("/users", "GET", "admin", users_page, "users"),
    RouteSpec("/users", "POST", "admin", users_change, "users_change"),
    RouteSpec("/audit", "GET", "admin", audit_page, "audit"),
]
ROUTES += CONTROL_ROUTES

# The analytics pages and the JSON API (their own modules).
from ivr.console.analytics import ANALYTICS_ROUTES  # noqa: E402
from ivr.console.api import API_ROUTES  # noqa: E402

ROUTES += [*ANALYTICS_ROUTES, *API_ROUTES]
