"""The console's audit of sign-ins and sign-outs, and what operators type (do-not-call notes,
pause reasons, review notes) stored and shown with its control characters escaped: on the
pages, in the CSV and JSON exports and in the CLI's ``dnc list`` and ``status``."""

# ruff: noqa: F811 - the fixtures of test_console_routes are imported by name

from __future__ import annotations

import argparse
import json
import re
from datetime import timedelta

from sqlalchemy import insert, select
from starlette.testclient import TestClient

from ivr.campaign import operator
from ivr.console.app import Console, create_app
from ivr.core.untrusted import has_control, operator_text, printable
from storage.models import AuditEntry, DoNotCall
from tests.test_console_routes import NOW, client_as, console, template_db  # noqa: F401

HOSTILE = "позвонить \x1b[31mпозже\x1b[0m\r\nзавтра \u202eвонзоп\u202c конец"


def _token(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert found is not None
    return found[1]


def _entries(console: Console) -> list[AuditEntry]:
    with console.engine.connect() as conn:
        return list(conn.execute(select(AuditEntry).order_by(AuditEntry.id)).all())  # type: ignore[arg-type]


def _signins(console: Console) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (e.action, e.actor, e.target, e.address)
        for e in _entries(console)
        if e.action.startswith(("signin", "signout"))
    ]


def test_sign_ins_failures_throttling_and_sign_outs_are_audited(console: Console) -> None:
    client = TestClient(create_app(console), follow_redirects=False)
    token = _token(client)
    typed_as_name = "Secret-Pa55word!"  # a password typed into the name field
    client.post("/login", data={"user": typed_as_name, "password": "x", "csrf": token})
    for _ in range(2):
        client.post("/login", data={"user": "operator", "password": "wrong-one", "csrf": token})
    for _ in range(3):  # refused unheard while slowed: audited once
        refused = client.post(
            "/login", data={"user": "operator", "password": "operator-password", "csrf": token}
        )
        assert refused.status_code == 429
    console.clock.t += 3  # type: ignore[attr-defined]
    ok = client.post(
        "/login", data={"user": "operator", "password": "operator-password", "csrf": token}
    )
    assert ok.status_code == 303
    page = client.get("/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    assert client.post("/logout", data={"csrf": csrf[1]}).status_code == 303
    assert client.get("/").status_code == 303
    assert _signins(console) == [
        ("signin.failed", "anonymous", None, "testclient"),
        ("signin.failed", "anonymous", "operator", "testclient"),
        ("signin.failed", "anonymous", "operator", "testclient"),
        ("signin.throttled", "anonymous", "operator", "testclient"),
        ("signin", "operator", "operator", "testclient"),
        ("signout", "operator", "operator", "testclient"),
    ]
    stored = json.dumps(
        [[e.actor, e.target, e.address, e.before, e.after] for e in _entries(console)]
    )
    for secret in ("wrong-one", "operator-password", typed_as_name, 'x"'):
        assert secret not in stored
    # The administrator sees them in the audit log (and its export), filtered by action.
    admin, _ = client_as(console, "admin")
    log = admin.get("/audit?action=signin").text
    assert "signin.failed" in log and "signin.throttled" in log and "signout" not in log
    assert "operator-password" not in admin.get("/audit?format=csv").text


def test_a_signed_out_or_anonymous_sign_out_records_nothing(console: Console) -> None:
    client = TestClient(create_app(console), follow_redirects=False)
    token = _token(client)
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    assert _signins(console) == []


def test_operator_text_is_stored_escaped() -> None:
    stored = operator_text(HOSTILE, 200)
    assert stored is not None and not has_control(stored)
    assert "\\x1b[31mпозже" in stored and "\\u202e" in stored and "\\r\\n" in stored
    assert operator_text(" \x00 ", 200) == "\\x00"
    assert operator_text("   ", 200) is None and operator_text(None, 10) is None
    assert len(operator_text("ж" * 500, 200) or "") == 200
    assert printable("a\nb\x1b", keep="\n") == "a\nb\\x1b"


def test_a_hostile_note_and_reason_are_escaped_everywhere(console: Console) -> None:
    client, token = client_as(console, "operator")
    client.post("/dnc/add", data={"phone": "8 029 765-43-21", "note": HOSTILE, "csrf": token})
    client.post("/pause", data={"reason": HOSTILE, "csrf": token})
    # A note stored raw by an older version is escaped on the way out as well.
    with console.engine.begin() as conn:
        conn.execute(
            insert(DoNotCall).values(
                phone="+375291112233", source="operator", added_at=NOW, note="old\x1b]0;x\x07"
            )
        )
    with console.engine.connect() as conn:
        notes = [n for (n,) in conn.execute(select(DoNotCall.note)).all()]
    assert any(n and "\\x1b[31m" in n for n in notes)  # stored escaped
    outputs = {
        "page": client.get("/dnc").text,
        "now": client.get("/").text,
        "csv": client.get("/dnc?format=csv").text,
        "json": json.loads(client.get("/dnc?format=json").text),
        "audit": client_as(console, "admin")[0].get("/audit?format=csv").text,
    }
    for name in ("page", "now", "csv", "audit"):
        text = outputs[name].replace("\r\n", "\n")  # a CSV line ends with CR LF
        for bad in ("\x1b", "\u202e", "\x07", "\r"):
            assert bad not in text, (name, bad)
    assert "\\x1b[31mпозже" in outputs["page"] and "old\\x1b]0;x\\x07" in outputs["page"]
    assert "\\u202eвонзоп" in outputs["now"]  # the pause banner
    assert all(not has_control(row["note"]) for row in outputs["json"])
    store = console.store
    args = argparse.Namespace(command="dnc", dnc_command="list")
    code, listed = operator.run(args, console.file_config, store, NOW)
    assert code == 0 and "old\\x1b]0;x\\x07" in listed and "\x1b" not in listed
    status = operator.status_text(console.file_config, store, NOW + timedelta(seconds=1))
    assert "PAUSED" in status and "\\u202e" in status and "\x1b" not in status
    assert "\u202e" not in status and "\r" not in status
    # The audit log keeps the escaped text too, never the raw characters.
    rows, _ = console.admin.audit_rows(action="pause")
    assert rows[0].after["reason"] == operator_text(HOSTILE, 200)


def test_the_language_switch_never_leads_to_another_site(console: Console) -> None:
    client = TestClient(create_app(console), follow_redirects=False)
    for target, where in (("/dnc?q=1", "/dnc?q=1"), ("//evil.example/x", "/"),
                          ("/\\evil.example", "/"), ("https://evil.example", "/")):  # fmt: skip
        r = client.get("/lang", params={"to": "en", "next": target})
        assert r.status_code == 303 and r.headers["location"] == where, target


def test_a_user_name_is_plain(console: Console) -> None:
    import pytest

    from storage.admin import Actor

    for bad in ("", "a b", "x\x1b[2J", "ü" * 65, "name\u202e"):
        with pytest.raises(ValueError, match="user name"):
            console.admin.add_user(Actor("t"), bad, "viewer", "hash", NOW)
    console.admin.add_user(Actor("t"), "ivan.petrov@115", "viewer", "hash", NOW)
    console.admin.add_user(Actor("t"), "Иван_1", "viewer", "hash", NOW)


def test_a_refused_user_change_is_explained_in_russian(console: Console) -> None:
    admin, token = client_as(console, "admin")
    for form, said in (
        ({"op": "add", "name": "viewer", "role": "viewer", "password": "long-enough"},
         "пользователь с таким именем уже есть"),
        ({"op": "add", "name": "new", "role": "viewer", "password": "short"},
         "пароль должен быть не короче 8 символов"),
        ({"op": "add", "name": "a b", "role": "viewer", "password": "long-enough"},
         "имя пользователя: от 1 до 64 букв"),
        ({"op": "role", "name": "ghost", "role": "viewer"}, "нет пользователя с таким именем"),
    ):  # fmt: skip
        r = admin.post("/users", data={**form, "csrf": token})
        assert r.headers["location"] == "/users", form
        assert said in admin.get("/users").text, form


def test_the_audit_page_shows_local_times_and_exports_utc(console: Console) -> None:
    client, token = client_as(console, "operator")
    client.post("/pause", data={"reason": "trunk", "csrf": token})
    admin, _ = client_as(console, "admin")
    assert "2026-11-26 10:00:00 +03" in admin.get("/audit?action=pause").text  # 07:00 UTC
    assert "2026-11-26T07:00:00+00:00" in admin.get("/audit?action=pause&format=csv").text
