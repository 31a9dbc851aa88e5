"""A number an operator puts on the do-not-call list in the console is not dialled by a running
node: the console process and an ``ivr-rating run`` node on the real PostgreSQL, Kamailio and
SIPp citizens, the portal emulator, and Debian's chromium driven by Playwright.

The operator pauses calling in the browser before the node starts, so the node has imported
both citizens' requests and waits when the number is listed; then the operator resumes, the
node calls the other citizen, and the listed one gets no INVITE."""

# ruff: noqa: F811 - the fixtures of test_console_browser are imported by name

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ivr.console.security import hash_password
from lab.night_lab import Citizen, LabSettings, NightLab, lab_day
from storage.admin import Actor, AdminStore
from storage.db import make_engine, upgrade
from tests.console_process import console_process
from tests.test_console_browser import (  # noqa: F401
    PASSWORDS,
    ROLES,
    artifacts,
    browser,
    sign_in,
    wait_until,
)

pytestmark = [pytest.mark.peers, pytest.mark.tools]  # and chromium

LISTED = Citizen("+375291000041", "press:1")  # listed in the console while the node waits
CONTROL = Citizen("+375291000042", "press:1")  # proves the node did call
NODE = "node-console"


def invites_to(lab: NightLab, citizen: Citizen) -> int:
    return sum(s.messages().count(f"INVITE sip:{citizen.user}@") for s in lab.sipps)


@pytest.fixture
def lab(tmp_path: Path, pg_schema_url: str) -> Iterator[NightLab]:
    overrides = {"database": pg_schema_url, "node": {"name": NODE}}
    with NightLab(tmp_path, lab_day(), (LISTED, CONTROL), with_bad_items=False,
                  settings=LabSettings(ring_timeout_s=6), overrides=overrides) as lab:  # fmt: skip
        engine = make_engine(pg_schema_url)
        upgrade(engine)
        admin = AdminStore(engine)
        for name, password in PASSWORDS.items():
            admin.add_user(Actor("test"), name, ROLES[name], hash_password(password),
                           datetime.now(UTC))  # fmt: skip
        engine.dispose()
        yield lab


def test_a_number_listed_in_the_console_is_not_dialled_by_a_running_node(
    lab: NightLab, browser, artifacts: Path
) -> None:
    shot = lambda page, name: page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)  # noqa: E731
    env = {**lab.env(), "IVR_CONSOLE_SECRET": "dnc-peers-secret"}
    with console_process(lab.config_path, lab.workdir, env) as (base, _):
        node = None
        try:
            operator = sign_in(browser, base, "oleg")
            operator.fill("#pause-form input[name=reason]", "проверка списка")
            operator.click("#pause-form button")
            expect(operator.locator("#pause-banner")).to_contain_text("проверка списка")

            node = lab.popen("run")
            # The node shows up alive and has imported both requests; paused, it calls nobody.
            expect(operator.locator("#nodes")).to_contain_text(NODE, timeout=90_000)
            due = operator.locator("#progress tr", has_text="К звонку сейчас")
            expect(due).to_contain_text("2", timeout=120_000)
            assert node.poll() is None

            operator.goto("/dnc")
            operator.fill("#dnc-add input[name=phone]", "8 029 100-00-41")
            operator.fill("#dnc-add input[name=note]", "попросил не звонить")
            operator.click("#dnc-add button")
            expect(operator.locator(".msg")).to_contain_text("Добавлен")
            expect(operator.locator("#dnc")).to_contain_text("+37529*****41")
            shot(operator, "11-dnc-listed-while-node-runs")

            operator.goto("/")
            operator.click("text=Возобновить обзвон")
            expect(operator.locator("#pause-banner")).to_contain_text("Обзвон идёт")

            def control_rated() -> bool:
                assert node is not None and node.poll() is None, "the node died"
                return any(r[0] for r in lab.portal.ratings if r[2].get("outcome") == "satisfied")

            wait_until(control_rated, 180, "the other citizen's rating at the portal")
            wait_until(lambda: len(lab.portal.ratings) == 2, 60, "both ratings at the portal")
            expect(operator.locator("#progress")).to_contain_text("не звонили", timeout=30_000)
            shot(operator, "12-now-after-the-listed-number")
            audited(browser, base, artifacts)
        finally:
            if node is not None:
                node.send_signal(signal.SIGTERM)
                node.wait(timeout=120)

    assert invites_to(lab, CONTROL) == 1
    assert invites_to(lab, LISTED) == 0
    ratings = {r["outcome"]: r for r in lab.ratings_by_request().values()}
    assert set(ratings) == {"satisfied", "not_called"}
    assert ratings["not_called"]["reason"] == "do_not_call"
    assert ratings["not_called"]["attempts"] == 0
    logs = [lab.workdir / "console.log", *lab.workdir.glob("runner-*.log")]
    text = "".join(p.read_text() for p in logs)
    assert "291000041" not in text and "291000042" not in text  # numbers masked


def audited(browser, base: str, artifacts: Path) -> None:
    """The administrator's audit log shows the pause, the listing and the resume by oleg."""
    admin = sign_in(browser, base, "anna")
    admin.goto("/audit")
    log = admin.locator("#audit")
    for action in ("pause", "dnc.add", "resume", "signin"):
        expect(log.locator("tr", has_text=action).filter(has_text="oleg").first).to_be_visible()
    assert "+375291000041" not in admin.content()
    admin.screenshot(path=str(artifacts / "13-audit-dnc-peers.png"), full_page=True)
