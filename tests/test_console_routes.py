"""The console through Starlette's TestClient: every route against every role (the server
refuses, not only the page that hides a button), CSRF on every POST, sessions, sign-in."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from ivr.console.app import COOKIE, Console, create_app, may
from ivr.console.routes import ROUTES
from ivr.console.security import (
    SESSION_MAX_AGE_S,
    Session,
    SessionCodec,
    SignInThrottle,
    hash_fingerprint,
    hash_password,
    new_token,
)
from ivr.core.config import parse_config
from storage.admin import Actor, AdminStore
from storage.db import make_engine, upgrade
from storage.models import AuditEntry
from storage.store import NewSurvey, Store
from tests.fakes import FakeClock
from tests.helpers import config_data, password_hash, start_attempt

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # Thursday 10:00 in Minsk
ROLES = ("anonymous", "viewer", "controller", "operator", "admin")
# A valid body for each POST, so an allowed role gets past validation.
FORMS: dict[str, dict[str, str]] = {
    "/login": {"user": "admin", "password": "admin-password"},
    "/pause": {"reason": "trunk maintenance"},
    "/reveal": {"kind": "survey", "ref": "nope"},
    "/settings": {
        "win_mon": "09:00-12:00",
        "channels": "2",
        "calls_per_second": "1",
        "max_attempts": "3",
        "survey_deadline": "3d",
        "retry_busy": "20m",
        "retry_no_answer": "1h",
        "retry_failed": "5m",
        "no_input_retries": "1",
        "holidays": "BY",
        "holidays_as": "sun",
        "working_weekends_as": "mon",
    },
    "/dnc/add": {"phone": "8 029 111 22 33", "note": "asked"},
    "/dnc/remove": {"ref": "x"},
    "/dead/retry": {},
    "/users": {"op": "role", "name": "viewer", "role": "viewer"},
    "/control/review": {"survey": "nope", "note": "checked"},
}


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with a user of each role, made once and copied for each test."""
    path = tmp_path_factory.mktemp("console") / "template.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    admin = AdminStore(engine)
    for role in ("viewer", "controller", "operator", "admin"):
        admin.add_user(Actor("test"), role, role, password_hash(f"{role}-password"), NOW)
    engine.dispose()  # the last connection's close folds the WAL into the file
    return path


@pytest.fixture
def console(tmp_path: Path, template_db: Path) -> Iterator[Console]:
    path = tmp_path / "ivr.sqlite"
    shutil.copy(template_db, path)
    engine = make_engine(f"sqlite:///{path}")
    config = parse_config(config_data())
    clock = FakeClock(NOW)
    yield Console(engine, config, clock, "test-secret")
    engine.dispose()


def client_as(console: Console, role: str) -> tuple[TestClient, str]:
    """A client with a session for ``role`` (anonymous: a session without a user)."""
    client = TestClient(create_app(console), follow_redirects=False)
    token = new_token()
    user = console.admin.user(role)
    fingerprint = hash_fingerprint(user.password_hash) if user else ""
    session = Session(user.name if user else None, token, fingerprint)
    client.cookies.set(COOKIE, console.codec.dumps(session))
    return client, token


def audit_count(console: Console) -> int:
    with console.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)


CASES = [(spec, role) for spec in ROUTES for role in ROLES]
API_DATA = {"/api/figures", "/api/ranking", "/api/rows"}


@pytest.mark.parametrize(
    ("spec", "role"), CASES, ids=[f"{s.method} {s.path} as {r}" for s, r in CASES]
)
def test_every_route_checks_the_role_on_the_server(console: Console, spec, role: str) -> None:
    client, token = client_as(console, role)
    allowed = may("public" if role == "anonymous" else role, spec.role)
    before = audit_count(console)
    if spec.method == "GET":
        r = client.get(spec.path.replace("{survey_id}", "no-such-survey"))
        if spec.path in API_DATA and role == "anonymous":
            # The JSON API checks a session or a bearer token itself: a 401, not the sign-in page.
            assert r.status_code == 401
        elif allowed:  # (a route with a parameter finds nothing here)
            assert r.status_code in (
                (200, 303, 404) if "{" in spec.path else (200, 303)
            ) and "/login" not in r.headers.get("location", "x")
        elif role == "anonymous":
            assert r.status_code == 303 and r.headers["location"] == "/login"
        else:
            assert r.status_code == 403
        return
    r = client.post(spec.path, data={**FORMS.get(spec.path, {}), "csrf": token})
    if allowed:
        assert r.status_code != 403, r.text
    else:
        assert r.status_code == 403
        assert audit_count(console) == before, "a refused request changed something"


POSTS = [s for s in ROUTES if s.method == "POST"]


@pytest.mark.parametrize("spec", POSTS, ids=[s.path for s in POSTS])
def test_every_post_without_the_csrf_token_is_refused(console: Console, spec) -> None:
    client, token = client_as(console, "admin")
    before = audit_count(console)
    assert client.post(spec.path, data=FORMS.get(spec.path, {})).status_code == 403
    forged = {**FORMS.get(spec.path, {}), "csrf": new_token()}
    assert client.post(spec.path, data=forged).status_code == 403
    assert audit_count(console) == before
    assert console.admin.pause_state().paused is False


def test_the_token_may_come_as_the_htmx_header(console: Console) -> None:
    client, token = client_as(console, "operator")
    r = client.post("/pause", data={"reason": "x"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 303 and console.admin.pause_state().paused


def test_sign_in_wrong_password_refused_then_right_one_works(console: Console) -> None:
    client = TestClient(create_app(console), follow_redirects=False)
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    bad = client.post("/login", data={"user": "viewer", "password": "nope", "csrf": token[1]})
    assert bad.status_code == 401 and "Неверное имя пользователя или пароль" in bad.text
    assert client.get("/").status_code == 303  # still signed out
    ok = client.post(
        "/login", data={"user": "viewer", "password": "viewer-password", "csrf": token[1]}
    )
    assert ok.status_code == 303
    home = client.get("/")
    assert home.status_code == 200 and "Звонки сейчас" in home.text
    assert 'action="/pause"' not in home.text  # a viewer gets no form


def test_repeated_failures_are_slowed_per_user_and_address() -> None:
    throttle = SignInThrottle()
    for _ in range(3):
        assert throttle.wait_s("bob", "10.0.0.1", 100.0) == 0
        throttle.failed("bob", "10.0.0.1", 100.0)
    assert throttle.wait_s("bob", "10.0.0.9", 100.0) == pytest.approx(2.0)  # same user
    assert throttle.wait_s("eve", "10.0.0.1", 100.0) == pytest.approx(2.0)  # same address
    assert throttle.wait_s("eve", "10.0.0.9", 100.0) == 0
    assert throttle.wait_s("bob", "10.0.0.1", 102.0) == 0
    throttle.failed("bob", "10.0.0.1", 102.0)
    assert throttle.wait_s("bob", "10.0.0.1", 102.0) == pytest.approx(4.0)  # doubles


def test_the_console_answers_429_while_slowed(console: Console) -> None:
    client = TestClient(create_app(console), follow_redirects=False)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)[1]  # type: ignore[index]
    for _ in range(3):
        client.post("/login", data={"user": "admin", "password": "x", "csrf": token})
    r = client.post("/login", data={"user": "admin", "password": "admin-password", "csrf": token})
    assert r.status_code == 429
    console.clock.t += 3  # type: ignore[attr-defined]
    r = client.post("/login", data={"user": "admin", "password": "admin-password", "csrf": token})
    assert r.status_code == 303


def test_a_session_ends_on_expiry_password_change_and_disable(console: Console) -> None:
    expired = SessionCodec("k", max_age_s=-1)
    assert expired.loads(expired.dumps(Session("a", "t"))) is None
    assert SessionCodec("other").loads(console.codec.dumps(Session("a", "t"))) is None
    assert SESSION_MAX_AGE_S <= 12 * 3600
    client, _ = client_as(console, "operator")
    assert client.get("/").status_code == 200
    console.admin.set_password(Actor("t"), "operator", hash_password("new-password"), NOW)
    assert client.get("/").status_code == 303
    client, _ = client_as(console, "viewer")
    console.admin.set_disabled(Actor("t"), "viewer", True, NOW)
    assert client.get("/").status_code == 303


def test_cookie_is_httponly_and_samesite(console: Console) -> None:
    client = TestClient(create_app(console), follow_redirects=False)
    cookie = client.get("/login").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie


def test_an_invalid_window_is_shown_at_its_field_and_nothing_is_saved(console: Console) -> None:
    client, token = client_as(console, "operator")
    form = {**FORMS["/settings"], "win_tue": "13:00-09:00", "csrf": token}
    r = client.post("/settings", data=form)
    assert r.status_code == 422
    field = re.search(r'id="field-win_tue".*?</div>', r.text, re.S)
    assert field is not None and "range ends before it starts" in field[0]
    assert "call_windows.tue" in field[0]
    assert (
        'id="field-win_mon"' in r.text
        and "field-error" not in re.search(r'id="field-win_mon".*?</div>', r.text, re.S)[0]
    )  # type: ignore[index]
    assert console.store.live_document() == (None, None)


def test_pause_needs_a_reason_and_shows_on_every_page(console: Console) -> None:
    client, token = client_as(console, "operator")
    assert client.post("/pause", data={"reason": " ", "csrf": token}).status_code == 422
    client.post("/pause", data={"reason": "trunk maintenance", "csrf": token})
    for path in ("/", "/settings", "/dnc", "/dead"):
        page = client.get(path).text
        assert "ПРИОСТАНОВЛЕН" in page and "trunk maintenance" in page and "operator" in page


def test_phones_are_masked_and_an_admin_reveal_is_audited(console: Console) -> None:
    store = Store(console.engine)
    store.add_survey(
        NewSurvey("R1", "1", NOW, date(2026, 11, 25), "x", "+375291234567", "ru", None), NOW
    )
    (due,) = store.due_surveys(NOW, 1)
    start_attempt(store, due.id, NOW)
    client, token = client_as(console, "operator")
    client.post("/dnc/add", data={"phone": "8 029 765-43-21", "note": "asked", "csrf": token})
    for path in ("/", "/dnc", "/dnc?format=csv", "/dnc?format=json"):
        text = client.get(path).text
        assert "+375291234567" not in text and "+375297654321" not in text
    assert "+37529*****67" in client.get("/").text
    assert "+37529*****21" in client.get("/dnc?q=%2B375%2029%20765").text
    admin, admin_token = client_as(console, "admin")
    r = admin.post("/reveal", data={"kind": "survey", "ref": due.id, "csrf": admin_token})
    assert "+375291234567" in r.text
    rows, _ = console.admin.audit_rows(action="phone.reveal")
    assert [(r.actor, r.target) for r in rows] == [("admin", "+375291234567")]


def test_every_text_has_its_russian() -> None:
    from ivr.console.i18n import RU

    here = Path(__file__).parents[1] / "ivr" / "console"
    used = set()
    for path in [*here.glob("templates/*.html"), *here.glob("*.py")]:
        used |= set(re.findall(r'\bt\("([^"]+)"', path.read_text(encoding="utf-8")))
    missing = sorted(u for u in used if u not in RU)
    assert not missing, missing


def test_metrics_health_and_readiness_on_the_console(console: Console) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    client = TestClient(create_app(console), follow_redirects=False)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").text.startswith("ready")
    names = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert any(n.startswith("ivr_") for n in names), names


def test_a_refresh_after_the_session_ended_sends_the_page_to_sign_in(console: Console) -> None:
    client = TestClient(create_app(console), follow_redirects=False)
    r = client.get("/now/live", headers={"HX-Request": "true"})
    assert r.headers["HX-Redirect"] == "/login" and "Звонки" not in r.text
