"""The control list in a real browser (Debian's chromium driven by Playwright) against the real
console process (``ivr-rating console``) and the real PostgreSQL server: a controller filters,
reviews, downloads both exports and plays a citizen's comment; a viewer sees masked phones
and no audio. Screenshots go to ``$IVR_ARTIFACTS`` (default: the test's tmp dir)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from ivr.console.security import hash_password
from storage.admin import Actor, AdminStore
from storage.db import make_engine, upgrade
from storage.models import ControlReview
from storage.store import Store
from tests.console_process import console_process
from tests.control_seed import PHONE, Seeded, seed
from tests.helpers import config_data, read_csv
from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS, csrf_of, wait_until

expect.set_options(timeout=30_000)
pytestmark = pytest.mark.tools  # chromium
USERS = {"kira": ("controller", "controller-pass-1"), "vera": ("viewer", "viewer-pass-1")}


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("IVR_ARTIFACTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def site(tmp_path: Path, pg_schema_url: str) -> Iterator[tuple[str, Seeded]]:
    """The console process on a fresh PostgreSQL schema with requests returned for rework
    (dated from the wall clock: the console reads it) and a controller and a viewer."""
    folder = tmp_path / "comments"
    config_path = tmp_path / "config.yaml"
    data = config_data(database=pg_schema_url, ivr={"comment_dir": str(folder)})
    config_path.write_text(yaml.safe_dump(data))
    engine = make_engine(pg_schema_url)
    upgrade(engine)
    now = datetime.now(UTC)
    seeded = seed(Store(engine), folder / "recorded", now)
    for name, (role, password) in USERS.items():
        AdminStore(engine).add_user(Actor("test"), name, role, hash_password(password), now)
    engine.dispose()
    env = {**os.environ, "IVR_CONSOLE_SECRET": "browser-test-secret"}
    with console_process(config_path, tmp_path, env) as (base, _):
        yield base, seeded


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        args = [*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]
        b = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        b.close()


def sign_in(browser: Browser, base: str, name: str) -> Page:
    context = browser.new_context(
        base_url=base, viewport={"width": 1500, "height": 900}, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto("/login")
    page.fill("input[name=user]", name)
    page.fill("input[name=password]", USERS[name][1])
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Сейчас")
    return page


def shown(page: Page) -> list[list[str]]:
    """Request, executor, category, address and phone of each row, as the page shows them."""
    rows = page.locator("#control tbody tr")
    return [
        [rows.nth(i).locator(f"td.{c}").inner_text().strip() for c in
         ("request", "executor", "category", "address", "phone")]
        for i in range(rows.count())
    ]  # fmt: skip


def test_control_list_in_a_browser(
    site: tuple[str, Seeded], browser: Browser, artifacts: Path, pg_schema_url: str
) -> None:
    base, seeded = site
    shot = lambda page, name: page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)  # noqa: E731

    kira = sign_in(browser, base, "kira")
    kira.click("nav >> text=Контроль")
    expect(kira.locator("h1")).to_have_text("Контрольный список")
    expect(kira.locator("#control tbody tr")).to_have_count(4)
    assert [r[0] for r in shown(kira)] == seeded.order()
    expect(kira.locator("#control tr.again")).to_contain_text("снова не доволен")
    expect(kira.locator("#unreviewed")).to_have_text("не рассмотрено: 4")
    shot(kira, "control-01-list")

    # Filter by executor: the page shows only theirs.
    kira.select_option("select[name=executor]", "EX-B")
    kira.click("#control-filters button")
    expect(kira.locator("#control tbody tr")).to_have_count(2)
    assert [r[0] for r in shown(kira)] == ["103", "102"]
    assert all(r[1] == "=ЖЭС № 2" for r in shown(kira))

    # Mark one reviewed with a note: the count of unreviewed falls, the filter stays.
    row = kira.locator('#control tr[data-request="102"]')
    row.locator("input[name=note]").fill("повторный выезд назначен")
    row.locator(".review-form button").click()
    expect(kira.locator(".msg")).to_contain_text("Заявка R102 отмечена рассмотренной")
    expect(kira.locator("#unreviewed")).to_have_text("не рассмотрено: 1")
    expect(kira.locator('#control tr[data-request="102"] td.review')).to_contain_text(
        "повторный выезд назначен"
    )
    assert kira.locator("select[name=executor]").input_value() == "EX-B"
    page_rows = shown(kira)
    shot(kira, "control-02-filtered-reviewed")

    # Both exports open and hold the rows of the page, with the filters written in.
    with kira.expect_download() as got:
        kira.click("#export-csv")
    assert got.value.suggested_filename.endswith(".csv")
    filters, table = read_csv(Path(got.value.path()).read_bytes())
    assert ("executor", "EX-B") in filters
    assert [[r[0], r[2], r[3], r[4], r[5].lstrip("'")] for r in table[1:]] == [
        [r[0], "'" + r[1], r[2], r[3], r[4]] for r in page_rows
    ]  # the executor's name starts with "=": a text in the file, not a formula
    assert table[2][15] == "повторный выезд назначен"
    with kira.expect_download() as got:
        kira.click("#export-xlsx")
    assert got.value.suggested_filename.endswith(".xlsx")
    book = load_workbook(io.BytesIO(Path(got.value.path()).read_bytes()), read_only=True)
    data = [list(r) for r in book["data"].iter_rows(values_only=True)][1:]
    assert [[str(r[0]), r[2], r[3], r[4], r[5].lstrip("'")] for r in data] == [
        [r[0], "'" + r[1], r[2], r[3], r[4]] for r in page_rows
    ]
    assert ["executor", "EX-B"] in [list(r) for r in book["filters"].iter_rows(values_only=True)]

    # The citizen's comment plays in the page, and is the recording the node kept.
    audio = kira.locator('#control tr[data-request="103"] audio')
    expect(audio).to_have_count(1)
    audio.evaluate("a => a.play()")
    wait_until(lambda: audio.evaluate("a => a.currentTime") > 0.2, 30, "the comment to play")
    assert audio.evaluate("a => a.duration") == pytest.approx(2.5, abs=0.05)
    src = audio.get_attribute("src")
    fetched = kira.request.get(f"{base}{src}")
    assert fetched.status == 200 and fetched.headers["content-type"] == "audio/wav"
    wav = seeded.wavs["103"].read_bytes()
    assert hashlib.sha256(fetched.body()).hexdigest() == hashlib.sha256(wav).hexdigest()
    shot(kira, "control-03-comment-playing")

    # A viewer: masked phones only, no audio, no review form; forged requests refused.
    vera = sign_in(browser, base, "vera")
    vera.goto("/control")
    expect(vera.locator("#control tbody tr")).to_have_count(4)
    assert all(r[4] == "+37529*****67" for r in shown(vera))
    assert PHONE not in vera.content()
    expect(vera.locator("#control audio")).to_have_count(0)
    expect(vera.locator(".review-form")).to_have_count(0)
    assert vera.request.get(f"{base}{src}").status == 403
    forged = vera.request.post(
        f"{base}/control/review",
        form={"survey": seeded.ids["101"], "note": "forged", "csrf": csrf_of(vera)},
    )
    assert forged.status == 403
    shot(vera, "control-04-as-viewer")

    engine = make_engine(pg_schema_url)
    try:
        with engine.connect() as conn:
            reviewed = conn.execute(select(ControlReview.survey_id, ControlReview.note)).all()
        assert [tuple(r) for r in reviewed] == [(seeded.ids["102"], "повторный выезд назначен")]
        rows, _ = AdminStore(engine).audit_rows()
        actions = {(r.action, r.actor, r.target) for r in rows}
        assert ("control.review", "kira", "R102") in actions
        assert ("comment.listen", "kira", "R103") in actions
        # The viewer changed nothing: her audit lines are her sign-in and the export she made.
        assert {a for a, who, _ in actions if who == "vera"} <= {"signin", "control.export.csv"}
    finally:
        engine.dispose()
