"""The console application (Starlette, Jinja2, HTMX): the route table, who may use each route,
and the guard every request goes through.

Each route names the least role it needs (``ROUTES``). The guard reads the signed session
cookie, loads the user from the database on every request (a disabled user or a changed role
takes effect at once), checks the role on the server, and checks the CSRF token on every POST.
Anonymous GETs go to the sign-in page; everything else refused is a 403.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from time import perf_counter, thread_time
from typing import Any

from markupsafe import Markup
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ivr.console import i18n
from ivr.console.analytics_params import FIRST_DAY, LAST_DAY, TEXT_MAX
from ivr.console.now import NOW_CACHE_S, NOW_STALE_S, Recent
from ivr.console.security import (
    FLASH_MAX_AGE_S,
    Session,
    SessionCodec,
    SignInThrottle,
    hash_fingerprint,
    new_token,
    same_token,
)
from ivr.core.clock import Clock
from ivr.core.config import Config
from ivr.core.intake import mask_phone
from ivr.core.live_settings import apply
from ivr.core.untrusted import printable
from ivr.core.windows import CallCalendar
from storage.admin import Actor, AdminStore, PauseState, UserRow
from storage.store import Store

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "ivr_session"
FLASH_COOKIE = "ivr_flash"  # what the last POST did, shown once by the page it went to
LANG_COOKIE = "ivr_lang"
RANK = {"public": -1, "viewer": 0, "operator": 1, "admin": 2}
# Roles beside the ladder: each is the role of the ladder it stands on, plus routes of its own
# (which an admin also has). A controller is a viewer who reviews the control list and hears
# the citizens' comments; an operator does neither.
BESIDE = {"controller": "viewer"}


def may(role: str, needed: str) -> bool:
    """Whether a user of ``role`` may use a route that needs ``needed``."""
    if needed in BESIDE:
        return role in (needed, "admin")
    return RANK[BESIDE.get(role, role)] >= RANK[needed]


@dataclass
class Console:
    """What the handlers share: the database, the file's configuration, the clock."""

    engine: Engine
    file_config: Config
    clock: Clock
    secret: str
    secure_cookies: bool = False

    def __post_init__(self) -> None:
        self.codec = SessionCodec(self.secret)
        self.store = Store(self.engine)
        self.admin = AdminStore(self.engine)
        self.throttle = SignInThrottle()
        self._lock = threading.Lock()
        self._effective: tuple[Any, Config, CallCalendar] | None = None
        self.registry: Any = None  # /metrics: built on first scrape
        self.recent_now: Recent[Any] = Recent(NOW_CACHE_S, NOW_STALE_S)  # Now's, shared

    def effective(self) -> tuple[Config, CallCalendar]:
        """The file's configuration with the live settings over it (rebuilt when they change)."""
        doc, stamp = self.store.live_document()
        with self._lock:
            if self._effective is None or self._effective[0] != stamp:
                try:
                    config = apply(self.file_config, doc)
                except Exception as exc:  # noqa: BLE001 - shown as the file's values
                    log.error("live settings ignored: %s", exc)
                    config = self.file_config
                self._effective = (stamp, config, CallCalendar.from_config(config))
            return self._effective[1], self._effective[2]


@dataclass
class Ctx:
    """One request as the handlers see it."""

    request: Request
    console: Console
    session: Session
    user: UserRow | None
    lang: str
    form: dict[str, str]
    uploads: dict[str, Any] = field(default_factory=dict)
    _pause: PauseState | None = None

    def pause_state(self) -> PauseState:
        """Read once per request (the banner and Now both show it)."""
        if self._pause is None:
            self._pause = self.console.admin.pause_state()
        return self._pause

    @property
    def role(self) -> str:
        return self.user.role if self.user else "public"

    def can(self, role: str) -> bool:
        return may(self.role, role)

    @property
    def actor(self) -> Actor:
        client = self.request.client
        return Actor(self.user.name if self.user else "?", client.host if client else None)

    @property
    def now(self) -> datetime:
        return self.console.clock.now()

    def t(self, text: str, **kw: Any) -> str:
        out = i18n.translate(text, self.lang)
        return out.format(**kw) if kw else out


Handler = Callable[[Ctx], Awaitable[Response]]


@dataclass(frozen=True)
class RouteSpec:
    path: str
    method: str
    role: str  # the least role: public, viewer, operator or admin; or controller (``may``)
    handler: Handler
    name: str


templates = Jinja2Templates(directory=str(HERE / "templates"))


def _shown(value: Any) -> Any:
    """Every value a page prints has its control and format characters escaped (a note or a
    portal answer cannot reorder the page with a bidi override); markup made by the templates
    themselves, and line breaks, stay."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return printable(value, keep="\n\t")
    return value


templates.env.finalize = _shown
# The bounds a form's inputs show (the server checks them again: analytics_params).
templates.env.globals.update(first_day=FIRST_DAY, last_day=LAST_DAY, text_max=TEXT_MAX)


def render(ctx: Ctx, template: str, status: int = 200, **values: Any) -> Response:
    local = ctx.console.file_config.tz

    def when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return "-" if value is None else value.astimezone(local).strftime(fmt)

    flash = ctx.request.cookies.get(FLASH_COOKIE)
    if "msg" not in values:
        values["msg"] = ctx.console.codec.loads_flash(flash)
    values.update(
        ctx=ctx,
        t=ctx.t,
        when=when,
        mask=mask_phone,
        csrf=ctx.session.csrf,
        pause=ctx.pause_state() if ctx.user else None,
    )
    response = templates.TemplateResponse(ctx.request, template, values, status_code=status)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")  # shown once
    return response


def back_to(ctx: Ctx, path: str, msg: str | None = None) -> Response:
    """303 to ``path`` (a local page); ``msg`` is shown there once, carried in a signed cookie,
    never in the address (where anyone could write a link that shows their own words)."""
    response = RedirectResponse(path, status_code=303)
    if msg:
        response.set_cookie(
            FLASH_COOKIE,
            ctx.console.codec.dumps_flash(msg),
            max_age=FLASH_MAX_AGE_S,
            httponly=True,
            samesite="strict",
            secure=ctx.console.secure_cookies,
            path="/",
        )
    return response


def _lang(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, i18n.DEFAULT)
    return lang if lang in i18n.LANGUAGES else i18n.DEFAULT


def _guard(console: Console, spec: RouteSpec) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        started, cpu = perf_counter(), thread_time()  # Server-Timing: wall and CPU time
        session = console.codec.loads(request.cookies.get(COOKIE))
        fresh = session is None
        if session is None:
            session = Session(None, new_token())
        user = console.admin.user(session.user) if session.user else None
        if user is not None and (
            user.disabled or hash_fingerprint(user.password_hash) != session.fingerprint
        ):
            user, session, fresh = None, Session(None, new_token()), True
        ctx = Ctx(request, console, session, user, _lang(request), {})
        if spec.method == "POST":
            parsed = await request.form()
            ctx.form = {k: v for k, v in parsed.items() if isinstance(v, str)}
            ctx.uploads = {k: v for k, v in parsed.items() if not isinstance(v, str)}
            token = ctx.form.get("csrf") or request.headers.get("x-csrf-token")
            if fresh or not same_token(session.csrf, token):
                return _refuse(ctx, ctx.t("The form has expired; reload the page and try again."))
        if not ctx.can(spec.role):
            if user is None and request.headers.get("hx-request"):
                # An HTMX refresh after the session ended: the whole page goes to sign-in.
                response: Response = Response(status_code=200, headers={"HX-Redirect": "/login"})
            elif user is None and spec.method == "GET":
                response = RedirectResponse("/login", status_code=303)
            else:
                return _refuse(ctx, ctx.t("You may not do this."))
        else:
            response = await spec.handler(ctx)
            if spec.method == "POST":
                console.recent_now.clear()  # a change shows at once
        if fresh:
            set_session(console, response, session)
        response.headers["Server-Timing"] = (
            f"app;dur={(perf_counter() - started) * 1000:.1f}, "
            f"cpu;dur={(thread_time() - cpu) * 1000:.1f}"
        )
        return response

    return endpoint


def _refuse(ctx: Ctx, message: str) -> Response:
    return render(ctx, "error.html", status=403, message=message)


def set_session(console: Console, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        console.codec.dumps(session),
        max_age=console.codec.max_age_s,
        httponly=True,
        samesite="strict",
        secure=console.secure_cookies,
        path="/",
    )


def create_app(console: Console) -> Starlette:
    from ivr.console.routes import ROUTES

    routes: list[Route | Mount] = [
        Route(spec.path, _guard(console, spec), methods=[spec.method], name=spec.name)
        for spec in ROUTES
    ]
    routes.append(Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"))

    async def not_found(request: Request, exc: Exception) -> Response:
        return HTMLResponse(i18n.translate("Not found.", _lang(request)), status_code=404)

    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.state.console = console
    return app
