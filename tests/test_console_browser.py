"""The console in a real browser (Debian's chromium driven by Playwright) against the real
console process (``ivr-rating console``) and the real PostgreSQL server.

A screenshot of each page goes to ``$IVR_ARTIFACTS`` (default: the test's tmp dir)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ivr.campaign.dialer import Dialer
from ivr.console.security import hash_password
from ivr.core.config import WEEKDAYS, load_config
from storage.admin import Actor, AdminStore
from storage.db import make_engine, upgrade
from storage.store import Store
from tests.console_process import console_process
from tests.fakes import FakeClock, FakePhone, FakePrompts
from tests.helpers import config_data, wait_until

pytestmark = pytest.mark.tools  # chromium
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A loaded CI machine answers slowly: wait on what a person sees, for up to 30 s.
expect.set_options(timeout=30_000)
PASSWORDS = {"vera": "viewer-pass-1", "oleg": "operator-pass-1", "anna": "admin-pass-1"}
ROLES = {"vera": "viewer", "oleg": "operator", "anna": "admin"}


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("IVR_ARTIFACTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def site(tmp_path: Path, pg_schema_url: str) -> Iterator[tuple[str, Path]]:
    """The console process on a fresh PostgreSQL schema, with a user of each role."""
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config_data(database=pg_schema_url)))
    engine = make_engine(pg_schema_url)
    upgrade(engine)
    admin = AdminStore(engine)
    now = datetime.now(UTC)
    for name, password in PASSWORDS.items():
        admin.add_user(Actor("test"), name, ROLES[name], hash_password(password), now)
    engine.dispose()
    env = {**os.environ, "IVR_CONSOLE_SECRET": "browser-test-secret"}
    with console_process(config_path, tmp_path, env) as (base, _):
        yield base, config_path


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def sign_in(browser: Browser, base: str, name: str, password: str | None = None) -> Page:
    page = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(30_000)
    page.goto("/login")
    page.fill("input[name=user]", name)
    page.fill("input[name=password]", password or PASSWORDS[name])
    page.click("button[type=submit]")
    return page


def cli(config_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``ivr-rating ARGS`` run in this process (the same code as the installed command; a
    subprocess would only add its start-up time)."""
    from ivr.entry import app
    from ivr.entry.cli import main

    made = []
    real = app.make_store

    def make_store(config):  # type: ignore[no-untyped-def]
        made.append(real(config))
        return made[-1]

    capsys.readouterr()
    app.make_store = make_store
    try:
        code = main(["--config", str(config_path), *args])
    finally:
        app.make_store = real
        for store in made:
            store.engine.dispose()  # the command's process would end here
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def csrf_of(page: Page) -> str:
    headers = page.get_attribute("body", "hx-headers")
    assert headers is not None
    return str(json.loads(headers)["X-CSRF-Token"])


def test_console_in_a_browser(
    site: tuple[str, Path],
    browser: Browser,
    artifacts: Path,
    pg_schema_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, config_path = site
    shot = lambda page, name: page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)  # noqa: E731

    # Sign-in: a wrong password is refused, and nothing behind it is reachable.
    page = sign_in(browser, base, "oleg", "wrong-password")
    expect(page.locator(".error")).to_contain_text("Неверное имя пользователя или пароль")
    shot(page, "01-login-refused")
    page.goto("/settings")
    expect(page).to_have_url(re.compile(r"/login$"))

    # A viewer sees but cannot change: no form, and a forged POST (even with the token) is
    # refused by the server.
    viewer = sign_in(browser, base, "vera")
    expect(viewer.locator("h1")).to_have_text("Сейчас")
    expect(viewer.locator("#pause-form")).to_have_count(0)
    viewer.goto("/settings")
    expect(viewer.locator("#settings-form")).to_have_count(0)
    expect(viewer.locator("#win_mon")).to_have_attribute("readonly", "")
    token = csrf_of(viewer)
    forged = viewer.request.post(f"{base}/pause", form={"reason": "forged", "csrf": token})
    assert forged.status == 403
    forged = viewer.request.post(f"{base}/settings", form={"win_mon": "", "csrf": token})
    assert forged.status == 403
    shot(viewer, "02-settings-as-viewer")

    # An operator edits a window while a node runs: an invalid range shows at its field...
    engine = make_engine(pg_schema_url)
    store = Store(engine)
    clock = FakeClock(datetime.now(UTC))
    node = Dialer(store, FakePhone([]), FakePrompts(), load_config(config_path), clock)
    operator = sign_in(browser, base, "oleg")
    operator.goto("/settings")
    operator.fill("#win_wed", "13:00-09:00")
    operator.click("#settings-form button[type=submit]")
    error = operator.locator("#field-win_wed .field-error")
    expect(error).to_contain_text("range ends before it starts")
    expect(operator.locator("#field-win_tue .field-error")).to_have_count(0)
    shot(operator, "03-settings-invalid-window")
    # ...and a valid one is what the running node uses within seconds.
    today = WEEKDAYS[datetime.now(UTC).weekday()]
    operator.goto("/settings")
    operator.fill(f"#win_{today}", "07:15-08:45")
    operator.fill("#win_wed", "09:00-12:00" if today != "wed" else "07:15-08:45")
    operator.click("#settings-form button[type=submit]")
    expect(operator.locator(".msg")).to_contain_text("Сохранено")
    expect(operator.locator("#preview")).to_contain_text("07:15-08:45")
    shot(operator, "04-settings-saved")

    def node_uses_it() -> bool:
        clock.t += 2.5
        node.start_due(clock.now())
        return [f"{r.start:%H:%M}-{r.end:%H:%M}" for r in node.config.call_windows[today]] == [
            "07:15-08:45"
        ]

    wait_until(node_uses_it, 20, "the running node to use the new window")
    assert node.calendar.ranges(datetime.now(UTC).date())[0].start.hour in (7,)
    node.drain()

    # Pause with a reason: on Now, on every page, and in `ivr-rating status`.
    operator.goto("/")
    operator.fill("#pause-form input[name=reason]", "замена транка")
    operator.click("#pause-form button")
    banner = operator.locator("#pause-banner")
    expect(banner).to_contain_text("ПРИОСТАНОВЛЕН")
    expect(banner).to_contain_text("замена транка")
    expect(banner).to_contain_text("oleg")
    shot(operator, "05-now-paused")
    status = cli(config_path, capsys, "status")
    assert "PAUSED; " in status and "paused by oleg" in status and "замена транка" in status
    # Now refreshes itself (HTMX, no reload): a resume from the CLI shows up on the open page.
    marker = operator.evaluate("() => { window.__kept = 42; return window.__kept; }")
    cli(config_path, capsys, "resume")
    expect(banner).to_contain_text("Обзвон идёт", timeout=15_000)
    assert operator.evaluate("() => window.__kept") == marker  # the same page, not reloaded

    # A POST without the CSRF token is refused, even for an operator.
    refused = operator.request.post(f"{base}/pause", form={"reason": "no token"})
    assert refused.status == 403
    assert "no token" not in cli(config_path, capsys, "status")

    # The do-not-call list: added in the console, masked, searchable in any format.
    operator.goto("/dnc")
    operator.fill("#dnc-add input[name=phone]", "8 (029) 555-12-34")
    operator.fill("#dnc-add input[name=note]", "просил не звонить")
    operator.click("#dnc-add button")
    expect(operator.locator("#dnc")).to_contain_text("+37529*****34")
    expect(operator.locator("#dnc")).to_contain_text("oleg")
    operator.goto("/dnc?q=%2B375%2029%20555%2012%2034")
    expect(operator.locator("#dnc tbody tr")).to_have_count(1)
    assert "+375295551234" not in operator.content()
    shot(operator, "06-dnc")
    operator.goto("/dead")
    shot(operator, "07-dead-letters")

    # The administrator's audit log shows each change, with who and from where.
    admin = sign_in(browser, base, "anna")
    admin.goto("/audit")
    log = admin.locator("#audit")
    for action, who in (
        ("settings.save", "oleg"),
        ("pause", "oleg"),
        ("resume", "cli:"),
        ("dnc.add", "oleg"),
    ):
        expect(log.locator("tr", has_text=action).filter(has_text=who).first).to_be_visible()
    expect(log).to_contain_text("127.0.0.1")
    assert "forged" not in admin.content() and "no token" not in admin.content()
    assert "+375295551234" not in admin.content()
    shot(admin, "08-audit")
    admin.goto("/users")
    expect(admin.locator("#users")).to_contain_text("vera")
    shot(admin, "09-users")
    admin.goto("/")
    shot(admin, "10-now")
    engine.dispose()
    assert datetime.now(UTC) - clock.start < timedelta(hours=1)
